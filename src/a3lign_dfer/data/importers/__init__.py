"""Turn a dataset into the canonical manifest (the `prepare` stage), chosen by data.dataset.

`synthetic` generates the embedded benchmark into the output folder. Every other
importer reads the dataset where it lies (data.root) and writes into the output
folder: manifest.parquet (paths relative to data.root), rejects.csv (every clip that
cannot be used: the file and the problem) and import_report.json (clips per split and
class, the val carve, rejects by problem, frame-count mismatches, the class order).
Labels are matched by name, never by index. Either way the train and val clips of
data.extra_sources join the manifest (extra_sources.py; extra_sources.json says what
each added, held out and rejected, written only when one lists a clip).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from a3lign_dfer.config.data import PrepareParams
from a3lign_dfer.data import manifest
from a3lign_dfer.data.importers.csv_videos import import_csv
from a3lign_dfer.data.importers.dfew import import_dfew
from a3lign_dfer.data.importers.extra_sources import (
    ExtraSource,
    extra_sources_report,
    read_sources,
    summary_line,
    with_sources,
)
from a3lign_dfer.data.importers.ferv39k import import_ferv39k
from a3lign_dfer.data.importers.list_files import import_lists
from a3lign_dfer.data.importers.mafw import import_mafw
from a3lign_dfer.errors import ConfigError, MissingInput

IMPORTERS = {"dfew": import_dfew, "ferv39k": import_ferv39k, "mafw": import_mafw, "list": import_lists,
             "csv": import_csv}


def import_dataset(params: PrepareParams) -> tuple[pd.DataFrame, list[dict], dict]:
    """The manifest, rejects and import report of data.dataset at data.root (not synthetic)."""
    data = params.data
    if data.dataset not in IMPORTERS:
        raise ConfigError(f"data.dataset {data.dataset!r} has no importer; known: synthetic, {', '.join(IMPORTERS)}")
    root = Path(data.root)
    if not root.is_dir():
        raise MissingInput(f"data.root {root} is not a folder: point data.root at the {data.dataset} dataset")
    builder = IMPORTERS[data.dataset](root, data)
    return builder.build(data.val_fraction, data.seed)


def prepare_manifest(params: PrepareParams, out_dir: Path) -> pd.DataFrame:
    classes = tuple(params.data.classes)
    out_dir = Path(out_dir)
    if params.data.dataset == "synthetic":
        from a3lign_dfer.data.synthetic import generate

        if Path(params.data.root) != out_dir:
            raise ConfigError(f"data.dataset is synthetic, so data.root ({params.data.root}) must be the prepare "
                             f"stage's output folder ({out_dir})")
        sources = read_sources(params.data)       # before the slow part: a bad source fails at once
        generated = generate(params.synthetic, classes, params.data.seed, out_dir)
        df = with_sources(generated, sources, classes)
        if df is not generated:
            manifest.write(df, out_dir / "manifest.parquet")
        _record_sources(sources, classes, out_dir)
        return df
    if Path(params.data.root).resolve() == out_dir.resolve():
        raise ConfigError(f"data.root ({params.data.root}) is the prepare stage's output folder, which DVC clears "
                         f"before the stage runs: point data.root at the {params.data.dataset} dataset")
    df, rejects, report = import_dataset(params)
    sources = read_sources(params.data)
    df = with_sources(df, sources, classes)
    manifest.write(df, out_dir / "manifest.parquet")
    manifest.write_rejects(rejects, out_dir / "rejects.csv")
    (out_dir / "import_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['dataset']} fold {report['fold']}: {report['clips']} clips "
          f"({', '.join(f'{s} {sum(c.values())}' for s, c in report['clips_per_split_and_class'].items())}), "
          f"{report['rejected']} rejected {report['rejected_by_problem'] or ''} -> {out_dir / 'rejects.csv'}, "
          f"{report['frame_count_mismatches']} frame-count mismatch(es)")
    _record_sources(sources, classes, out_dir)
    return df


def _record_sources(sources: list[ExtraSource], classes: tuple[str, ...], out_dir: Path) -> None:
    report, path = extra_sources_report(sources, classes), out_dir / "extra_sources.json"
    if report is None:
        path.unlink(missing_ok=True)            # a stale record of an earlier run outside DVC
        return
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"data.extra_sources: {summary_line(sources)} -> {path}")
