"""What a frame must look like before CLIP's image encoder sees it: a module without torch at import, so the
preprocessing that serving runs in worker processes imports neither torch nor transformers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ImageSpec:
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) RGB frames -> normalized (N, 3, size, size) floats on their device, as CLIP expects."""
        import torch
        import torch.nn.functional as F

        x = frames.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size,) * 2, mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def graph_input(self, crops: np.ndarray) -> np.ndarray:
        """uint8 (frames, H, W, 3) face crops -> the graph's float32 (frames, 3, size, size) input: `normalize`,
        as the feature cache the model trained on, so export, predict, timelines, the service and the drift
        monitor give the graph the same bits."""
        import torch

        return self.normalize(torch.from_numpy(crops)).numpy()
