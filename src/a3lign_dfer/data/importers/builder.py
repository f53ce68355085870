"""What every importer shares: clips in, canonical manifest + rejects + import report out.

An importer parses its annotation files and hands each clip to ManifestBuilder.add,
which checks it in this order (the first problem found is the one recorded):
duplicate clip id, label by name, files on disk (frame folder or video). Clips that
pass become manifest rows with the frame count found on disk; a count an annotation
file claims is compared and a mismatch reported, never used. build() carves val out
of train where the dataset has none.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from a3lign_dfer.config.data import DataConfig
from a3lign_dfer.data import manifest
from a3lign_dfer.data.frame_folders import frame_files
from a3lign_dfer.data.importers.annotations import read_lines
from a3lign_dfer.data.importers.labels import ClassMap
from a3lign_dfer.data.importers.validation_split import carve_validation
from a3lign_dfer.data.manifest import ClipError
from a3lign_dfer.data.video_io import probe_video
from a3lign_dfer.errors import ConfigError


class ManifestBuilder:
    def __init__(self, dataset: str, fold: int, root: Path, labels: ClassMap) -> None:
        self.dataset, self.fold, self.root, self.labels = dataset, fold, Path(root), labels
        self.rows: list[dict] = []
        self.rejects: list[dict] = []
        self.mismatches: list[dict] = []
        self._first_listed: dict[str, str] = {}

    def rel(self, path: str | Path) -> str:
        """`path` relative to data.root where it lies under it (as manifests and rejects name files)."""
        path = Path(path)
        return (path.relative_to(self.root) if path.is_relative_to(self.root) else path).as_posix()

    def annotation(self, path: Path, fmt: str, parse: Callable[[str], tuple],
                   header: str | None = None) -> list[tuple[str, tuple]]:
        """(where = "file:line", parse(line)) of every line that parses; the others are malformed_line
        rejects. A file of which no line parses is an error (a wrong file, not a few bad lines)."""
        lines = read_lines(path, fmt, header)
        parsed = []
        for no, text in lines:
            where = f"{self.rel(path)}:{no}"
            try:
                parsed.append((where, parse(text)))
            except ValueError as err:
                self.rejects.append(manifest.reject("", where, "malformed_line",
                                                    f"{where}: {err} (expected `{fmt}`): {text!r}"))
        if not parsed:
            no, text = lines[0]
            raise ConfigError(f"{path}: malformed annotation file: none of its {len(lines)} line(s) reads as "
                             f"`{fmt}` (line {no}: {text!r})")
        return parsed

    def add(self, clip_id: str, split: str, label: str, path: str, kind: str, where: str,
            listed_frames: int | None = None, identity: str | None = None) -> None:
        """One listed clip: a manifest row, or a reject naming the file and the problem."""
        first = self._first_listed.setdefault(clip_id, where)
        if first != where:
            self.rejects.append(manifest.reject(clip_id, where, "duplicate_clip",
                                                f"{where}: clip {clip_id} is listed again (first at {first}, kept)"))
            return
        if split not in manifest.SPLITS:
            self.rejects.append(manifest.reject(clip_id, where, "unknown_split",
                                                f"{where}: split {split!r} is not one of {manifest.SPLITS}"))
            return
        class_name = self.labels.resolve(label)
        if class_name is None:
            self.rejects.append(manifest.reject(clip_id, where, "unknown_label",
                                                f"{where}: {self.labels.unknown_reason(label)}"))
            return
        try:
            on_disk = len(frame_files(self.root / path)) if kind == "frames" else probe_video(self.root / path).frames
        except ClipError as err:
            self.rejects.append(manifest.reject(clip_id, self.rel(err.path), err.problem,
                                                f"{err.reason}: {self.rel(err.path)} (listed at {where})"))
            return
        if listed_frames is not None and listed_frames != on_disk:
            self.mismatches.append({"clip_id": clip_id, "path": self.rel(self.root / path), "where": where,
                                    "listed": listed_frames, "on_disk": on_disk})
        self.rows.append({"dataset": self.dataset, "fold": self.fold, "split": split, "clip_id": clip_id,
                          "path": self.rel(self.root / path), "num_frames": on_disk,
                          "label_idx": self.labels.classes.index(class_name), "label_name": class_name,
                          "identity": identity, "kind": kind})

    def build(self, val_fraction: float, seed: int) -> tuple[pd.DataFrame, list[dict], dict]:
        """The manifest (val carved out of train if no clip is val), rejects and the import report."""
        classes = self.labels.classes
        columns = manifest.COLUMNS + ["identity", "kind"]
        df = pd.DataFrame(self.rows, columns=columns)
        if df["identity"].isna().all():
            df = df.drop(columns="identity")
        if not len(df):
            raise ConfigError(f"{self.dataset}: no usable clip (all {len(self.rejects)} rejected; first: "
                             f"{self.rejects[0]['reason'] if self.rejects else 'none listed'})")
        carve = None
        if not (df["split"] == "val").any():
            df, carve = carve_validation(df, val_fraction, seed)
        df = manifest.validate(df.reset_index(drop=True), classes, where=f"{self.dataset} manifest")
        report = {
            "dataset": self.dataset, "fold": self.fold, "classes": list(classes), "clips": len(df),
            "clips_per_split_and_class": {s: df.loc[df["split"] == s, "label_name"].value_counts()
                                          .reindex(classes, fill_value=0).astype(int).to_dict()
                                          for s in manifest.SPLITS},
            "val": carve or {"carved_from": None, "note": "the dataset has its own val split"},
            "rejected": len(self.rejects),
            "rejected_by_problem": pd.Series([r["problem"] for r in self.rejects], dtype=object)
                                     .value_counts().to_dict(),
            "frame_count_mismatches": len(self.mismatches),
            "mismatches": self.mismatches,
        }
        return df, self.rejects, report


@dataclass(frozen=True)
class OfficialSplits:
    """A dataset shipped as face frame folders with one train and one test annotation file per official
    fold (DFEW, MAFW): everything but the line format is the same import."""

    dataset: str
    names: dict[str, tuple[str, ...]]      # other names each label may have in data.classes
    folds: tuple[int, ...]
    split_file: str                        # under data.root, with {split} and {fold}
    frames: str                            # the folder of the clips' frame folders, under data.root
    fmt: str                               # one annotation line, as error messages show it
    parse: Callable[[str], tuple[str, str]]   # line -> (clip id, label); ValueError if malformed
    header: str | None = None

    def import_fold(self, root: Path, data: DataConfig) -> ManifestBuilder:
        if data.fold not in self.folds:
            raise ConfigError(f"data.fold is {data.fold}; {self.dataset.upper()} has folds {list(self.folds)}")
        builder = ManifestBuilder(self.dataset, data.fold, root, ClassMap(self.dataset, self.names, data.classes))
        for split in ("train", "test"):
            path = root / self.split_file.format(split=split, fold=data.fold)
            for where, (clip_id, label) in builder.annotation(path, self.fmt, self.parse, header=self.header):
                builder.add(clip_id, split, label, f"{self.frames}/{clip_id}", "frames", where)
        return builder
