"""The PCA that turns a clip embedding into a few dozen drift columns.

Fitted once, on the training clips, and saved with the deployment artifact
(safetensors), so the reference and every later batch are projected alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file


@dataclass(frozen=True)
class Pca:
    mean: np.ndarray          # (D,)
    components: np.ndarray    # (k, D), orthonormal rows, by decreasing variance
    explained: np.ndarray     # (k,) share of the fitted data's variance each component explains

    @classmethod
    def fit(cls, x: np.ndarray, k: int) -> "Pca":
        """The top min(k, D, N - 1) principal directions of the rows of x (N, D)."""
        x = np.asarray(x, np.float64)
        mean = x.mean(0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        k = max(1, min(k, x.shape[1], len(x) - 1))
        variance = s ** 2
        explained = variance[:k] / max(variance.sum(), 1e-30)
        vt = vt[:k] * np.where(vt[:k].sum(1, keepdims=True) < 0, -1.0, 1.0)   # a sign that does not flip between fits
        return cls(mean.astype(np.float32), vt.astype(np.float32), explained.astype(np.float32))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) - self.mean) @ self.components.T

    def save(self, path: Path) -> None:
        save_file({"mean": torch.from_numpy(self.mean), "components": torch.from_numpy(self.components),
                   "explained": torch.from_numpy(self.explained)}, path)

    @classmethod
    def load(cls, path: Path) -> "Pca":
        t = load_file(path)
        return cls(t["mean"].numpy(), t["components"].numpy(), t["explained"].numpy())
