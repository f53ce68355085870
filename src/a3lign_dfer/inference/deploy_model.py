"""The serving graph: preprocessed frames -> class logits and probabilities.

CLIP image encoder, then the video path of the trained model (DE_video or JAS),
then cosine similarity with the class matrix, which depends on MAT only and is
therefore computed once and stored as a constant: the text encoder is not part
of what serves.

A third output, `embedding`, is what the drift monitor compares: the mean over
frames of the L2-normalised CLIP image features (what the model sees, before its
trained video path), so every backend that serves the graph also gives it.

The one-piece model is literally its two halves, ImageEncoder (per frame) then Head
(per clip): export writes each half as its own graph too, so a per-frame timeline
can encode every frame once and run the head over any window of cached features,
and the image encoder, nearly all of the compute, can be quantized on its own.
"""
from __future__ import annotations

import torch
from torch import nn

from a3lign_dfer.inference.predict import class_matrix
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.clip_backbone import FrozenCLIP

OUTPUTS = ("logits", "probabilities", "embedding")   # forward's outputs, in order: the graph's output names


class ImageEncoder(nn.Module):
    """(N, 3, H, W) float32 preprocessed frames -> (N, D) projected CLIP image features, frame by frame."""

    def __init__(self, clip: FrozenCLIP):
        super().__init__()
        self.vision = clip.model.vision_model
        self.projection = clip.model.visual_projection

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.vision(pixel_values=images).pooler_output)


class Head(nn.Module):
    """(B, F, D) frame features -> logits (B, C), probabilities (B, C), embedding (B, D)."""

    def __init__(self, model: A3lignDFER, class_vectors: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("class_vectors", class_vectors.detach().clone())

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.model(features, self.class_vectors)
        # Divided by a broadcast norm (not F.normalize, whose Expand hides the width from ONNX shape inference).
        embedding = (features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)).mean(dim=1)
        return logits, logits.softmax(dim=-1), embedding


class DeployModel(nn.Module):
    """(B, F, 3, H, W) float32 preprocessed frames -> logits (B, C), probabilities (B, C), embedding (B, D)."""

    def __init__(self, clip: FrozenCLIP, model: A3lignDFER, class_vectors: torch.Tensor | None = None):
        super().__init__()
        self.encoder = ImageEncoder(clip)
        self.head = Head(model, class_matrix(model, clip) if class_vectors is None else class_vectors)
        self.eval().requires_grad_(False)

    @property
    def class_vectors(self) -> torch.Tensor:
        return self.head.class_vectors

    def image_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, H, W) -> (B, F, D): exactly what the feature cache stores."""
        b, f = frames.shape[:2]
        features = self.encoder(frames.flatten(0, 1))
        return features.view(b, f, self.encoder.projection.out_features)   # a static width in the graph

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(self.image_features(frames))
