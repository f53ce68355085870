"""The canonical clip manifest: one Parquet table every stage reads and writes.

Paths are relative to a root folder so a dataset can move between machines; the
frame count is what was counted on disk, never what an annotation file claims.

Required columns are COLUMNS. Optional columns, written where the dataset knows them:
- `identity`: who is in the clip; a validation split carved out of train keeps
  identities apart (the synthetic benchmark and a CSV with an identity column have it).
- `kind`: "video" (path is a video file: face crop decodes and detects) or "frames"
  (path is a folder of face-cropped frames: face crop only resizes). Absent means video.
Every clip that cannot be used is a row of the rejects table, named by file and PROBLEMS key.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["dataset", "fold", "split", "clip_id", "path", "num_frames", "label_idx", "label_name"]
SPLITS = ("train", "val", "test")
KINDS = ("video", "frames")
REJECT_COLUMNS = ["clip_id", "path", "problem", "reason"]
# What can be wrong with a clip (the `problem` column of rejects.csv).
PROBLEMS = {
    "malformed_line": "a line of an annotation file that does not read in the file's format",
    "unknown_label": "a label that is not a class of data.classes (by name)",
    "unknown_split": "a split that is not train, val or test",
    "duplicate_clip": "a clip id listed again (the first listing is kept)",
    "missing_frame_folder": "the clip's frame folder does not exist",
    "empty_frame_folder": "the clip's frame folder holds no images",
    "zero_byte_image": "a frame image of 0 bytes",
    "unreadable_image": "a frame image OpenCV cannot decode",
    "missing_video": "the video file does not exist",
    "empty_video": "the video file has 0 bytes",
    "not_a_video": "no known video container and OpenCV/FFmpeg cannot open it",
    "truncated_video": "a video container that ends early or cannot be decoded to its end",
    "no_face": "the face is found in too few frames",
}


class ClipError(ValueError):
    """A clip that cannot be used; carries the file it is about and its PROBLEMS key."""

    def __init__(self, path: str | Path, problem: str, reason: str, prefix: str = "") -> None:
        if problem not in PROBLEMS:
            raise KeyError(f"unknown problem {problem!r}; known: {sorted(PROBLEMS)}")
        super().__init__(f"{prefix}{path}: {reason}")
        self.path, self.problem, self.reason = str(path), problem, reason


def reject(clip_id: str, path: str | Path, problem: str, reason: str) -> dict:
    """One rejects-table row; `path` names the file the problem is in."""
    if problem not in PROBLEMS:
        raise KeyError(f"unknown problem {problem!r}; known: {sorted(PROBLEMS)}")
    return {"clip_id": clip_id, "path": str(path), "problem": problem, "reason": reason}


def kinds(df: pd.DataFrame) -> pd.Series:
    """The `kind` of every clip ("video" where the column is absent)."""
    return df["kind"] if "kind" in df.columns else pd.Series("video", index=df.index)


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
    bad_kind = sorted(set(kinds(df)) - set(KINDS))
    if bad_kind:
        raise ValueError(f"{where}: kind must be one of {KINDS}, got {bad_kind}")
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
