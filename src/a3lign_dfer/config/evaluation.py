"""params.yaml sections read on held-out clips: the shuffled-frame check (paper Table 5), the paper's experiments."""
from __future__ import annotations

from dataclasses import dataclass

from a3lign_dfer.config.data import ScaleConfig


@dataclass(frozen=True)
class ShuffleCheckConfig:
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class ShuffleCheckParams:
    shuffle_check: ShuffleCheckConfig


@dataclass(frozen=True)
class GridConfig:
    """Figure 3: one DVC experiment per (S, T) cell and seed."""

    sentences: tuple[int, ...]
    tokens: tuple[int, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class PaperConfig:
    seeds: tuple[int, ...]           # training seeds of every in-memory experiment (mean +- std)
    grid: GridConfig


@dataclass(frozen=True)
class PaperParams:
    paper: PaperConfig
    scale: ScaleConfig
