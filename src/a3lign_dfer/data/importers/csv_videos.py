"""Your own face videos: <data.root>/<data.csv> with columns path,label,split.

path is relative to data.root, labels are names from data.classes (case-insensitive),
split is train, val or test; optional columns clip_id (default: the file name without
extension) and identity (who is in the clip: a carved val split keeps identities apart).
Without any val row, val is carved out of train. Frames are counted by the container
here and on decoding by the face crop stage.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from a3lign_dfer.config.data import DataConfig
from a3lign_dfer.data.importers.builder import ManifestBuilder
from a3lign_dfer.data.importers.labels import ClassMap
from a3lign_dfer.data.manifest import reject
from a3lign_dfer.errors import ConfigError, MissingInput


def import_csv(root: Path, data: DataConfig) -> ManifestBuilder:
    listing = root / data.csv
    if not listing.is_file():
        raise MissingInput(f"label file not found: {listing} (expected columns path,label,split)")
    try:
        table = pd.read_csv(listing, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{listing}: empty annotation file (expected columns path,label,split)") from None
    except pd.errors.ParserError as err:
        raise ConfigError(f"{listing}: malformed annotation file: {err}") from None
    missing = {"path", "label", "split"} - set(table.columns)
    if missing:
        raise ConfigError(f"{listing}: malformed annotation file: missing column(s) {sorted(missing)} "
                         f"(columns are {list(table.columns)})")
    builder = ManifestBuilder("csv", 0, root, ClassMap("csv", {c: () for c in data.classes}, data.classes))
    for line, rec in enumerate(table.to_dict("records"), start=2):     # line 1 is the header
        where = f"{builder.rel(listing)}:{line}"
        path = rec["path"].strip()
        if not path:
            builder.rejects.append(reject("", where, "malformed_line", f"{where}: no path"))
            continue
        clip_id = rec.get("clip_id", "").strip() or Path(path).stem
        builder.add(clip_id, rec["split"].strip(), rec["label"], path, "video", where,
                    identity=rec.get("identity", "").strip() or None)
    return builder
