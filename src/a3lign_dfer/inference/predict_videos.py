"""`predict`: label and class probabilities for video files, reading only models/deploy.

One video prints its label; many (a folder, a CSV with a `path` column) give a
predictions table. A bad file gets one line on stderr naming it and why; the
others are still predicted, and the exit status is 1 if any failed.

Example: python -m a3lign_dfer predict data/raw/videos/syn_00003.mp4 --backend onnxruntime
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from a3lign_dfer.data.frame_folders import IMAGE_SUFFIXES
from a3lign_dfer.inference.backends import load_backend
from a3lign_dfer.inference.video_input import InputError, PreprocessSpec, video_input
from a3lign_dfer.serving.artifact import verify

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


def predict_videos(inputs: list[str], deploy_dir: Path, backend: str, device: str = "cpu", as_json: bool = False,
                   out_csv: str | None = None, precision: str = "fp32") -> int:
    # A missing or changed file, or INT8 the manifest does not release, is one line before any work.
    verify(deploy_dir).require_precision(precision)
    spec = PreprocessSpec.load(deploy_dir / "preprocess.json")
    classes = json.loads((deploy_dir / "labels.json").read_text())["classes"]
    run = load_backend(deploy_dir, backend, device, precision)
    try:
        paths = expand(inputs)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows, failed = [], 0
    for path in paths:
        try:
            frames = video_input(path, spec).numpy()[None]
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        _, probs, _ = run(np.ascontiguousarray(frames, dtype=np.float32))
        probs = probs[0]
        row = {"path": str(path), "label": classes[int(probs.argmax())],
               "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs)}}
        rows.append(row)
        if as_json:
            print(json.dumps(row | {"backend": backend, "precision": precision}))
        else:
            top = ", ".join(f"{c} {p:.3f}" for c, p in sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:3])
            print(f"{path}: {row['label']} ({top})")
    if out_csv:
        table = pd.DataFrame([{"path": r["path"], "label": r["label"], **r["probabilities"]} for r in rows])
        table.to_csv(out_csv, index=False)
    return 1 if failed else 0
