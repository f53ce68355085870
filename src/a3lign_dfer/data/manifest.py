"""The canonical clip manifest: one Parquet table every stage reads and writes.

Paths are relative to a root folder so a dataset can move between machines; the
frame count is what was counted on disk, never what an annotation file claims.

Required columns are COLUMNS. Optional columns, written where the dataset knows them:
- `identity`: who is in the clip; a validation split carved out of train keeps
  identities apart (the synthetic benchmark and a CSV with an identity column have it).
- `kind`: "video" (path is a video file: face crop decodes and detects) or "frames"
  (path is a folder of face-cropped frames: face crop only resizes). Absent means video.
Every clip that cannot be used is a row of the rejects table, named by file and PROBLEMS key.
The rules every row keeps are INVARIANTS, checked here on every read and write and by the
`validate` stage's Great Expectations suite (data/validation.py), from the same functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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


HOLDS = "holds"            # the evidence of a row that keeps an invariant


@dataclass(frozen=True)
class Invariant:
    """A rule every manifest row keeps. `evidence` gives, per row, what breaks it (HOLDS where nothing does)."""

    name: str
    rule: str
    evidence: Callable[[pd.DataFrame, tuple[str, ...]], pd.Series]


def _shown(broken: pd.Series, text: pd.Series | str) -> pd.Series:
    return pd.Series(text, index=broken.index).astype(str).where(broken, HOLDS)


def _label_idx(df: pd.DataFrame, classes: tuple[str, ...]) -> pd.Series:
    position = df["label_name"].map({c: i for i, c in enumerate(classes)})
    return _shown(df["label_idx"] != position, "label_idx " + df["label_idx"].astype(str) + " but "
                  + df["label_name"].map(repr) + " is at " + position.astype("Int64").astype(str))


INVARIANTS = (
    Invariant("clip_id_given", "every clip has an id", lambda df, c: _shown(df["clip_id"].isna(), "no clip_id")),
    Invariant("clip_id_unique", "no clip_id twice (crops are stored under frames/<clip_id>)",
              lambda df, c: _shown(df["clip_id"].duplicated(keep=False), "clip_id listed "
                                   + df.groupby("clip_id")["clip_id"].transform("size").astype(str) + " times")),
    Invariant("split_known", f"split is one of {list(SPLITS)}",
              lambda df, c: _shown(~df["split"].isin(SPLITS), "split " + df["split"].map(repr))),
    Invariant("label_known", "label_name is a class of data.classes",
              lambda df, c: _shown(~df["label_name"].isin(c), "label_name " + df["label_name"].map(repr))),
    Invariant("label_idx_by_name", "label_idx is the position of label_name in data.classes (labels map by name, "
                                   "never by index)", _label_idx),
    Invariant("kind_known", f"kind is one of {list(KINDS)} (absent: video)",
              lambda df, c: _shown(~kinds(df).isin(KINDS), "kind " + kinds(df).map(repr))),
)


def evidence(df: pd.DataFrame, classes: tuple[str, ...]) -> pd.DataFrame:
    """One column per invariant (its name): what breaks it in each row, HOLDS where nothing does."""
    return pd.DataFrame({inv.name: inv.evidence(df, classes) for inv in INVARIANTS}, index=df.index)


def validate(df: pd.DataFrame, classes: tuple[str, ...], where: str = "manifest") -> pd.DataFrame:
    """Check the columns and every invariant; raise naming the rule and the first offending clips."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}")
    shown = evidence(df, classes)
    for inv in INVARIANTS:
        broken = shown[inv.name] != HOLDS
        if broken.any():
            rows = [f"clip {clip} ({why})" for clip, why in zip(df.loc[broken, "clip_id"], shown.loc[broken, inv.name])]
            raise ValueError(f"{where}: {inv.rule}, but {broken.sum()} row(s) break it: {'; '.join(rows[:3])}")
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
