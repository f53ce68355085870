"""The serving graph: preprocessed frames -> class logits and probabilities.

CLIP image encoder, then the video path of the trained model (DE_video or JAS),
then cosine similarity with the class matrix, which depends on MAT only and is
therefore computed once and stored as a constant: the text encoder is not part
of what serves.

A third output, `embedding`, is what the drift monitor compares: the mean over
frames of the L2-normalised CLIP image features (what the model sees, before its
trained video path), so every backend that serves the graph also gives it.
"""
from __future__ import annotations

import torch
from torch import nn

from a3lign_dfer.inference.predict import class_matrix
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.clip_backbone import FrozenCLIP

OUTPUTS = ("logits", "probabilities", "embedding")   # forward's outputs, in order: the graph's output names

class DeployModel(nn.Module):
    """(B, F, 3, H, W) float32 preprocessed frames -> logits (B, C), probabilities (B, C), embedding (B, D)."""

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
        return self.projection(pooled).view(b, f, self.projection.out_features)   # a static width in the graph

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.image_features(frames)
        logits = self.model(features, self.class_vectors)
        # Divided by a broadcast norm (not F.normalize, whose Expand hides the width from ONNX shape inference).
        embedding = (features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)).mean(dim=1)
        return logits, logits.softmax(dim=-1), embedding
