"""The drift monitor's per-video columns, built through the serving path.

One row per readable video: its embedding's PCA components (emb_00, emb_01, ...),
the crop statistics (CropStats: brightness, contrast, sharpness, face size, detection
rate, frame count) and what the deployed model says (predicted class, confidence =
its probability). Export builds the reference profile with this function on the
validation clips and the drift command builds a batch's rows with it, so the two
always compare like with like: same decoding, face crop, JPEG round trip, sampling
and graph as `predict`.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from a3lign_dfer.inference.backends import Backend
from a3lign_dfer.inference.video_input import CropStats, InputError, PreprocessSpec, face_frames
from a3lign_dfer.monitoring.pca import Pca
from a3lign_dfer.monitoring.results import EMBEDDING_PREFIX

STATS = tuple(f.name for f in dataclasses.fields(CropStats))
PREDICTIONS = ("predicted", "confidence")


def embedding_columns(k: int) -> list[str]:
    return [f"{EMBEDDING_PREFIX}{i:02d}" for i in range(k)]


def _read(task: tuple[Path, PreprocessSpec]) -> tuple[np.ndarray | None, CropStats | None, str | None]:
    """Worker: one video's sampled crops and stats, or the reason it cannot be used. Never raises on bad input."""
    path, spec = task
    try:
        faces = face_frames(path, spec)
    except InputError as err:
        return None, None, str(err)
    return faces.crops, faces.stats, None


def _one_thread() -> None:
    cv2.setNumThreads(1)   # the pool already uses every core


def _read_all(paths: Sequence[Path], spec: PreprocessSpec, workers: int, desc: str) -> Iterator[tuple]:
    """_read over `paths` in order, streamed (only a few videos' crops are held at a time)."""
    tasks = [(Path(p), spec) for p in paths]
    workers = min(workers, len(tasks))
    if workers <= 1:
        yield from tqdm(map(_read, tasks), total=len(tasks), desc=desc, unit="video")
        return
    with mp.get_context("spawn").Pool(workers, initializer=_one_thread) as pool:   # spawn: see data.parallel
        yield from tqdm(pool.imap(_read, tasks), total=len(tasks), desc=desc, unit="video")


def video_columns(paths: Sequence[Path], run: Backend, spec: PreprocessSpec, classes: Sequence[str], pca: Pca,
                  workers: int, batch: int = 16, desc: str = "videos") -> tuple[pd.DataFrame, list[dict]]:
    """The column table (one row per readable video: path, emb_.., stats, predictions) and the unreadable
    videos as {path, reason}. `workers` processes decode and crop; the graph runs `batch` videos at a time."""
    rows, bad, pending = [], [], []
    names = embedding_columns(len(pca.components))

    def flush() -> None:
        _, probs, embedding = run(np.stack([spec.image.graph_input(stored) for _, stored, _ in pending]))
        for (path, _, stats), p, e in zip(pending, probs, pca.transform(embedding)):
            rows.append({"path": str(path), **dict(zip(names, e.tolist())), **dataclasses.asdict(stats),
                         "predicted": classes[int(p.argmax())], "confidence": float(p.max())})
        pending.clear()

    for path, (stored, stats, error) in zip(paths, _read_all(paths, spec, workers, desc)):
        if error is not None:
            bad.append({"path": str(path), "reason": error})
            continue
        pending.append((path, stored, stats))
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return pd.DataFrame(rows, columns=["path", *names, *STATS, *PREDICTIONS]), bad
