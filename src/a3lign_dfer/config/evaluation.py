"""params.yaml sections read on held-out clips: the shuffled-frame check (paper Table 5)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShuffleCheckConfig:
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class ShuffleCheckParams:
    shuffle_check: ShuffleCheckConfig
