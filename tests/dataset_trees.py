"""Tiny dataset trees in the real on-disk layouts of DFEW, FERV39k, MAFW and the list files,
with real JPEG frames, for the importer tests and the DFEW end-to-end `dvc repro`."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

DFEW_ORDER = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")   # DFEW labels 1..7


def write_frames(folder: Path, n: int, seed: int, size: int = 24, name=lambda t: f"{t + 1:05d}.jpg") -> None:
    """n real JPEG frames; frame t is a noisy image whose mean grows with t (so order is checkable)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for t in range(n):
        image = np.clip(rng.normal(40 + 12 * t, 8, (size, size, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / name(t)), image)


def make_dfew(root: Path, clips_per_class: int = 5, frames: tuple[int, int] = (6, 10), size: int = 24) -> dict:
    """DFEW layout, 5 folds: clip i (1-based) has DFEW label 1 + (i-1) % 7 and is a test clip of
    fold 1 + ((i-1) // 7) % 5; every other clip of a fold is train. Returns {clip_id: (label name, frames)}."""
    truth = {}
    n = clips_per_class * len(DFEW_ORDER)
    rows = {fold: {"train": [], "test": []} for fold in range(1, 6)}
    for i in range(1, n + 1):
        label = 1 + (i - 1) % 7
        count = frames[0] + i % (frames[1] - frames[0] + 1)
        write_frames(root / "Clip/clip_224x224" / f"{i:05d}", count, seed=i, size=size)
        truth[f"{i:05d}"] = (DFEW_ORDER[label - 1], count)
        test_fold = 1 + ((i - 1) // 7) % 5
        for fold in rows:
            rows[fold]["test" if fold == test_fold else "train"].append(f"{i},{label}")
    for fold, splits in rows.items():
        for split, lines in splits.items():
            write_dfew_split(root, split, fold, lines)
    return truth


def write_dfew_split(root: Path, split: str, fold: int, lines: list[str]) -> Path:
    path = root / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("video_name,label\n" + "".join(f"{line}\n" for line in lines))
    return path
