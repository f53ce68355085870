"""Turn a dataset into the canonical manifest (the `prepare` stage).

`synthetic` generates the embedded benchmark into the output folder. `csv` reads
your own face videos listed in <data.root>/<data.csv> with columns
path,label,split (path relative to data.root); labels are matched by name, never
by index, and rows that cannot be used go to rejects.csv with the reason.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import pandas as pd

from a3lign_dfer.config import Params
from a3lign_dfer.data import manifest


def prepare_manifest(params: Params, out_dir: Path) -> pd.DataFrame:
    classes = tuple(params.data.classes)
    if params.data.dataset == "synthetic":
        from a3lign_dfer.data.synthetic import generate

        if Path(params.data.root) != out_dir:
            raise ValueError(f"data.dataset is synthetic, so data.root ({params.data.root}) must be the prepare "
                             f"stage's output folder ({out_dir})")
        return generate(params.synthetic, classes, params.data.seed, out_dir)
    if params.data.dataset == "csv":
        df, rejects = import_csv(Path(params.data.root), params.data.csv, classes)
        manifest.write(df, out_dir / "manifest.parquet")
        manifest.write_rejects(rejects, out_dir / "rejects.csv")
        return df
    raise ValueError(f"data.dataset {params.data.dataset!r} has no importer; known: synthetic, csv")


def import_csv(root: Path, csv_name: str, classes: tuple[str, ...]) -> tuple[pd.DataFrame, list[dict]]:
    listing = root / csv_name
    if not listing.exists():
        raise FileNotFoundError(f"label file not found: {listing} (expected columns path,label,split)")
    table = pd.read_csv(listing)
    missing = {"path", "label", "split"} - set(table.columns)
    if missing:
        raise ValueError(f"{listing}: missing column(s) {sorted(missing)}")
    rows, rejects = [], []
    for rec in table.itertuples():
        clip_id = Path(rec.path).stem if "clip_id" not in table.columns else str(rec.clip_id)
        label = str(rec.label).strip().lower()
        frames = _count_frames(root / rec.path)
        reason = None
        if label not in classes:
            reason = f"unknown label {rec.label!r} (classes {list(classes)})"
        elif rec.split not in manifest.SPLITS:
            reason = f"split {rec.split!r} is not one of {manifest.SPLITS}"
        elif frames == 0:
            reason = f"cannot read video {root / rec.path}"
        if reason:
            rejects.append({"clip_id": clip_id, "path": rec.path, "reason": reason})
            continue
        rows.append({"dataset": "csv", "fold": 0, "split": rec.split, "clip_id": clip_id, "path": rec.path,
                     "num_frames": frames, "label_idx": classes.index(label), "label_name": label})
    df = pd.DataFrame(rows, columns=manifest.COLUMNS)
    return manifest.validate(df, classes, where=str(listing)), rejects


def _count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
