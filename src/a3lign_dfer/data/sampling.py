"""Segment-based frame sampling (the DFER standard for 16-frame clips).

The clip is cut into `num` equal segments and one frame is taken from each: a
random one in training, the centre one at evaluation, so test predictions are
deterministic. Clips shorter than `num` repeat frames in order (never loop back),
so temporal order survives the padding.
"""
from __future__ import annotations

import numpy as np


def segment_indices(num_frames: int, num: int, train: bool, rng: np.random.Generator | None = None) -> np.ndarray:
    if num_frames < 1:
        raise ValueError("cannot sample from a clip with no frames")
    if num_frames < num:
        return (np.arange(num) * num_frames) // num
    edges = np.linspace(0, num_frames, num + 1)
    if train:
        if rng is None:
            raise ValueError("training sampling needs a random generator")
        picks = edges[:-1] + rng.random(num) * np.diff(edges)
    else:
        picks = (edges[:-1] + edges[1:]) / 2
    return np.minimum(np.floor(picks).astype(np.int64), num_frames - 1)
