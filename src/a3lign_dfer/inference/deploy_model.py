"""The serving graph: preprocessed frames -> class logits and probabilities.

CLIP image encoder, then the video path of the trained model (DE_video or JAS),
then cosine similarity with the class matrix, which depends on MAT only and is
therefore computed once and stored as a constant: the text encoder is not part
of what serves.
"""
from __future__ import annotations

import torch
from torch import nn

from a3lign_dfer.inference.predict import class_matrix
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.clip_backbone import FrozenCLIP


class DeployModel(nn.Module):
    """(B, F, 3, H, W) float32 preprocessed frames -> logits (B, C), probabilities (B, C)."""

    def __init__(self, clip: FrozenCLIP, model: A3lignDFER, class_vectors: torch.Tensor | None = None):
        super().__init__()
        self.vision = clip.model.vision_model
        self.projection = clip.model.visual_projection
        self.model = model
        vectors = class_matrix(model, clip) if class_vectors is None else class_vectors
        self.register_buffer("class_vectors", vectors.detach().clone())
        self.eval().requires_grad_(False)

    def image_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, H, W) -> (B, F, D): exactly what the feature cache stores."""
        b, f = frames.shape[:2]
        pooled = self.vision(pixel_values=frames.flatten(0, 1)).pooler_output
        return self.projection(pooled).view(b, f, -1)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(self.image_features(frames), self.class_vectors)
        return logits, logits.softmax(dim=-1)
