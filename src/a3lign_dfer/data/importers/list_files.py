"""The list files many DFER codebases share: one clip a line, `path num_frames label`.

`path` is the clip's frame folder relative to data.root (an absolute path under
data.root is made relative), `label` is 0-based in the order data.list_classes names
(data.classes when empty). The frame count is recounted on disk; a mismatch is reported
in import_report.json, never used. data.lists names one file per split ({fold} is
replaced by data.fold); a split without a list (val) is carved out of train.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from a3lign_dfer.config.data import DataConfig
from a3lign_dfer.data import manifest
from a3lign_dfer.data.importers.builder import ManifestBuilder
from a3lign_dfer.data.importers.labels import ClassMap
from a3lign_dfer.errors import ConfigError

FORMAT = "path num_frames label"


def _parse(text: str) -> tuple[str, int, int]:
    fields = text.rsplit(maxsplit=2)
    if len(fields) != 3:
        raise ValueError(f"{len(fields)} space-separated field(s), not 3")
    path, frames, label = fields
    if not frames.isdigit():
        raise ValueError(f"num_frames {frames!r} is not a whole number")
    try:
        label_idx = int(label)
    except ValueError:
        raise ValueError(f"label {label!r} is not a number") from None
    return path, int(frames), label_idx


def import_lists(root: Path, data: DataConfig) -> ManifestBuilder:
    unknown = sorted(set(data.lists) - set(manifest.SPLITS))
    if unknown or "train" not in data.lists:
        raise ConfigError(f"data.lists needs a train list and splits among {manifest.SPLITS}, got {dict(data.lists)}")
    names = tuple(data.list_classes) or tuple(data.classes)
    builder = ManifestBuilder("list", data.fold, root, ClassMap("list", {n: () for n in names}, data.classes))
    for split, pattern in data.lists.items():
        path = root / pattern.format(fold=data.fold)
        for where, (clip, listed, label_idx) in builder.annotation(path, FORMAT, _parse):
            folder = Path(clip)
            if folder.is_absolute() and folder.is_relative_to(root):
                folder = folder.relative_to(root)
            label = names[label_idx] if 0 <= label_idx < len(names) else str(label_idx)
            clip_id = "__".join(PurePosixPath(folder.as_posix()).parts).lstrip("/_") or clip
            builder.add(clip_id, split, label, folder.as_posix(), "frames", where, listed_frames=listed)
    return builder
