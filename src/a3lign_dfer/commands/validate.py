"""`validate`: the Great Expectations data gate between face_crop and training."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = ("Great Expectations suite on the crops manifest and crops on disk; fails (exit 1) on bad data, "
        "writes Data Docs")


def add_arguments(p) -> None:
    p.add_argument("--crops", required=True, help="face-crop folder (manifest.parquet, frames/)")
    p.add_argument("--out", required=True, help="Data Docs site folder")
    p.add_argument("--metrics", required=True, help="summary JSON: verdict, class counts, smallest class")


def run(args) -> int:
    import pandas as pd

    from a3lign_dfer.config.data import ValidateParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.data.validation import ValidationFailed, validate_crops
    from a3lign_dfer.report_files import VALIDATION

    params = load(ValidateParams, args.params)
    path = Path(args.crops) / "manifest.parquet"
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    # Read as stored, not through manifest.read: the suite, not a first raise, reports what is wrong.
    try:
        summary = validate_crops(pd.read_parquet(path), Path(args.crops), tuple(params.data.classes),
                                 params.validate, Path(args.out), source=str(path))
    except ValidationFailed as failed:
        VALIDATION.write(Path(args.metrics), failed.summary)
        print(failed, file=sys.stderr)
        return 1
    VALIDATION.write(Path(args.metrics), summary)
    print(json.dumps({k: summary[k] for k in ("success", "clips", "clips_per_split", "smallest_class")}, indent=2))
    print(f"Data Docs: {summary['data_docs']}")
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
