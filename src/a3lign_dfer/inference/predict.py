"""Frames -> logits with the class matrix computed once.

The class vectors depend on MAT only, so they are computed once per model and
reused for every clip; nothing here imports training code, so evaluation (and
later export and serving) sit on this module alone.
"""
from __future__ import annotations

import numpy as np
import torch

from a3lign_dfer.data.feature_cache import FeatureSet
from a3lign_dfer.model.a3lign import A3lignDFER
from a3lign_dfer.model.clip_backbone import FrozenCLIP


@torch.no_grad()
def class_matrix(model: A3lignDFER, clip: FrozenCLIP) -> torch.Tensor:
    """(C, D) class vectors in eval mode (no dropout); restores the model's mode."""
    was_training = model.training
    model.eval()
    vectors = model.class_vectors(model.text_features(clip))
    model.train(was_training)
    return vectors


@torch.no_grad()
def predict_logits(model: A3lignDFER, clip: FrozenCLIP, data: FeatureSet, batch_size: int = 256,
                   permute_seed: int | None = None, class_vectors: torch.Tensor | None = None) -> torch.Tensor:
    """(N, C) logits with centre sampling, in eval mode; `permute_seed` shuffles each clip's frames."""
    was_training = model.training
    model.eval()
    vectors = class_matrix(model, clip) if class_vectors is None else class_vectors
    permute = np.random.default_rng(permute_seed) if permute_seed is not None else None
    out = []
    for start in range(0, len(data), batch_size):
        idx = np.arange(start, min(start + batch_size, len(data)))
        x = data.gather(idx, model.spec.frames, train=False, permute=permute).to(vectors.device)
        out.append(model(x, vectors).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, len(model.spec.classes))
