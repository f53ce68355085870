"""Label and class probabilities of video files, reading only models/deploy (the `predict` command's library).

The inputs are files, folders (the clips under them) or CSVs (their `path` column): `expand`. A
Predictor answers one clip at a time, so a caller can show each answer as it comes and go on past
a bad file (InputError names it and why).

Example: python -m a3lign_dfer predict data/raw/videos/syn_00003.mp4 --backend onnxruntime
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from a3lign_dfer.data.frame_folders import IMAGE_SUFFIXES
from a3lign_dfer.inference.artifact import verify
from a3lign_dfer.inference.backends import load_backend
from a3lign_dfer.inference.video_input import InputError, video_input

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def _holds_frames(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def clips_under(folder: Path) -> list[Path]:
    """A folder holding frame images is one clip; any other folder, the videos and frame folders below it."""
    if _holds_frames(folder):
        return [folder]
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES
                  or (p.is_dir() and _holds_frames(p)))


def expand(inputs: list[str]) -> list[Path]:
    """Files as given, folders as the clips under them (clips_under), CSVs as their `path` column."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += clips_under(item)
        elif item.suffix.lower() == ".csv" and item.is_file():
            table = pd.read_csv(item)
            if "path" not in table.columns:
                raise InputError(f"{item}: a CSV of videos needs a `path` column", "bad_list")
            paths += [p if p.is_absolute() else item.parent / p for p in map(Path, table["path"])]
        else:
            paths.append(item)
    return paths


@dataclass(frozen=True)
class VideoPrediction:
    path: Path
    label: str
    probabilities: dict[str, float]          # class -> probability (6 decimals), in the artifact's class order

    def to_json(self) -> dict:
        return {"path": str(self.path), "label": self.label, "probabilities": self.probabilities}


class Predictor:
    """One verified artifact run by one backend: a video file (or frame folder) -> VideoPrediction."""

    def __init__(self, deploy_dir: Path, backend: str, device: str = "cpu", precision: str = "fp32"):
        # A missing or changed file, or INT8 the manifest does not release, is one line before any work.
        self.artifact = verify(deploy_dir)
        self.artifact.require_precision(precision)
        self.spec = self.artifact.preprocess()
        self.classes = self.artifact.manifest.classes
        self.run = load_backend(deploy_dir, backend, device, precision)

    def __call__(self, path: Path) -> VideoPrediction:
        """The prediction for one clip; InputError naming the file when it cannot be used."""
        frames = video_input(path, self.spec)[None]
        _, probs, _ = self.run(np.ascontiguousarray(frames, dtype=np.float32))
        return VideoPrediction(path, self.classes[int(probs[0].argmax())],
                               {c: round(float(p), 6) for c, p in zip(self.classes, probs[0])})


def predictions_table(rows: list[VideoPrediction]) -> pd.DataFrame:
    """One row per prediction: path, label, then one probability column per class."""
    return pd.DataFrame([{"path": str(r.path), "label": r.label, **r.probabilities} for r in rows])
