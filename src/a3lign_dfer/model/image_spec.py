"""What a frame must look like before CLIP's image encoder sees it: a module without torch, so the
preprocessing that serving runs in worker processes imports neither torch nor transformers."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageSpec:
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
