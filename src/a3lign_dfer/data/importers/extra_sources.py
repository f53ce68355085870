"""data.extra_sources: more labelled clips for training, added to whatever data.dataset the manifest holds.

Each source is a folder in the `csv` importer's layout (labels.csv with path,label,split and optional
clip_id, identity; paths relative to the folder), e.g. data/feedback, which `feedback export` writes
from the prediction log. Its train and val clips join the manifest; its test clips do not: the
benchmark's test split stays the benchmark's, and a source's test clips are scored apart by the
release gate (the labelled feedback).

A clip keeps its source apart: its clip id and identity are prefixed with the folder's name
(`feedback-<id>`, `feedback:<identity>`), so a source can neither collide with the dataset's clips
nor merge a person with one of the dataset's identities. Its `path` is relative to data.root like
every other row (`../feedback/videos/x.mp4` when data.root is data/raw): face_crop and every other
reader resolve `data.root / path` and need no change; both folders given relative (to the repository,
as params.yaml names them) keep the manifest the same bytes on every machine, and where either is
absolute the path is absolute. A source without any listed clip changes nothing, so an empty
data/feedback leaves the prepare stage's outputs byte for byte as they were without it.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from a3lign_dfer.config.data import DataConfig
from a3lign_dfer.data import manifest
from a3lign_dfer.data.importers.csv_videos import import_csv
from a3lign_dfer.errors import MissingInput

LABELS = "labels.csv"
HELD_OUT = "test"         # a source's split that never joins the manifest


@dataclass(frozen=True)
class ExtraSource:
    """One folder of data.extra_sources as read: the rows it adds and what it leaves out."""

    name: str                    # the folder's name: the prefix of its clip ids and identities
    folder: str                  # as data.extra_sources names it
    rows: pd.DataFrame           # manifest rows it adds (train and val), paths relative to data.root
    held_out: int                # its test clips (not added)
    rejects: list[dict]          # its clips that cannot be used (rejects.csv rows)

    def report(self, classes: tuple[str, ...]) -> dict:
        return {"name": self.name, "folder": self.folder, "clips_added": len(self.rows),
                "clips_per_split_and_class": {s: self.rows.loc[self.rows["split"] == s, "label_name"].value_counts()
                                              .reindex(classes, fill_value=0).astype(int).to_dict()
                                              for s in manifest.SPLITS if s != HELD_OUT},
                "held_out_test_clips": self.held_out, "rejected": len(self.rejects), "rejects": self.rejects}


def source_name(folder: str) -> str:
    return os.path.basename(os.path.normpath(folder))


def path_from_root(file: Path, root: Path) -> str:
    """`file` as a manifest path: relative to data.root where both are relative, else absolute."""
    if not file.is_absolute() and not root.is_absolute():
        return Path(os.path.relpath(file, root)).as_posix()
    return file.resolve().as_posix()


def read_source(folder: str, data: DataConfig) -> ExtraSource:
    root, name = Path(folder), source_name(folder)
    if not root.is_dir():
        raise MissingInput(f"data.extra_sources: {folder} is not a folder (expected {folder}/{LABELS} with columns "
                           "path,label,split)")
    builder = import_csv(root, dataclasses.replace(data, csv=LABELS))
    rows = pd.DataFrame(builder.rows, columns=manifest.COLUMNS + ["identity", "kind"])
    held_out = int((rows["split"] == HELD_OUT).sum())
    rows = rows[rows["split"] != HELD_OUT].reset_index(drop=True)
    rows["dataset"] = name
    rows["clip_id"] = f"{name}-" + rows["clip_id"].astype(str)
    rows["path"] = [path_from_root(root / p, Path(data.root)) for p in rows["path"]]
    rows["identity"] = [None if pd.isna(i) else f"{name}:{i}" for i in rows["identity"]]
    return ExtraSource(name, folder, rows, held_out, builder.rejects)


def read_sources(data: DataConfig) -> list[ExtraSource]:
    return [read_source(folder, data) for folder in data.extra_sources]


def with_sources(df: pd.DataFrame, sources: list[ExtraSource], classes: tuple[str, ...]) -> pd.DataFrame:
    """The manifest `df` with the sources' rows appended; `df` itself where they add none.

    Added rows take the dataset's fold, so identity checks run within it. The dataset's own columns
    stay: `identity` becomes text (None where unknown) when either side has one; a column only the
    dataset has (the benchmark's true_label_idx) is missing (NA) for the added rows, integers staying
    integers; `kind` is kept only where the dataset has it (its absence means video, as added clips are).
    """
    added = [s.rows for s in sources if len(s.rows)]
    if not added:
        return df
    extra = pd.concat(added, ignore_index=True)
    extra["fold"] = df["fold"].iloc[0] if len(df) else 0
    base = df.copy()
    if "kind" not in base.columns and (extra["kind"] == "video").all():
        extra = extra.drop(columns="kind")
    elif "kind" not in base.columns:
        base["kind"] = "video"
    if "identity" in base.columns or extra["identity"].notna().any():
        base["identity"] = base["identity"].map(lambda i: None if pd.isna(i) else str(i)) \
            if "identity" in base.columns else None
    else:
        extra = extra.drop(columns="identity")
    merged = pd.concat([base, extra], ignore_index=True)
    for column in df.columns:
        if pd.api.types.is_integer_dtype(df[column]) and merged[column].isna().any():
            merged[column] = merged[column].astype("Int64")
    merged = merged[list(dict.fromkeys([*base.columns, *extra.columns]))]
    return manifest.validate(merged, classes, where="manifest with data.extra_sources")


def extra_sources_report(sources: list[ExtraSource], classes: tuple[str, ...]) -> dict | None:
    """The prepare stage's record of its extra sources (extra_sources.json); None where no source listed a
    clip, so an empty source leaves no file behind."""
    listed = [s for s in sources if len(s.rows) or s.held_out or s.rejects]
    return {"sources": [s.report(classes) for s in listed]} if listed else None


def summary_line(sources: list[ExtraSource]) -> str:
    return "; ".join(f"{s.folder}: {len(s.rows)} clip(s) added, {s.held_out} test clip(s) held out, "
                     f"{len(s.rejects)} rejected" for s in sources)
