"""The canonical clip manifest: one Parquet table every stage reads and writes.

Paths are relative to a root folder so a dataset can move between machines; the
frame count is what was counted on disk, never what an annotation file claims.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["dataset", "fold", "split", "clip_id", "path", "num_frames", "label_idx", "label_name"]
SPLITS = ("train", "val", "test")
REJECT_COLUMNS = ["clip_id", "path", "reason"]


def validate(df: pd.DataFrame, classes: tuple[str, ...], where: str = "manifest") -> pd.DataFrame:
    """Check the columns, splits and class names; raise with the offending rows named."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}")
    bad_split = df.loc[~df["split"].isin(SPLITS), "clip_id"].tolist()
    if bad_split:
        raise ValueError(f"{where}: split must be one of {SPLITS}; offending clips: {bad_split[:5]}")
    bad_label = df.loc[~df["label_name"].isin(classes), ["clip_id", "label_name"]]
    if len(bad_label):
        raise ValueError(f"{where}: unknown label(s) {sorted(set(bad_label['label_name']))} "
                         f"(classes {list(classes)}); e.g. clip {bad_label['clip_id'].iloc[0]}")
    expected_idx = df["label_name"].map({c: i for i, c in enumerate(classes)})
    if not (expected_idx == df["label_idx"]).all():
        raise ValueError(f"{where}: label_idx does not match the class order {list(classes)}")
    if df["clip_id"].duplicated().any():
        raise ValueError(f"{where}: duplicate clip_id {df.loc[df['clip_id'].duplicated(), 'clip_id'].iloc[0]}")
    return df


def write(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.reset_index(drop=True).to_parquet(path, index=False)


def read(path: str | Path, classes: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    return validate(pd.read_parquet(path), classes, where=str(path))


def write_rejects(rows: list[dict], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=REJECT_COLUMNS).to_csv(path, index=False)
