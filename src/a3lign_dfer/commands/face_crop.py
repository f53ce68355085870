"""`face-crop`: detect, track and crop the face in every raw video."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "detect, track and crop faces in every raw video"


def add_arguments(p) -> None:
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)


def run(args) -> None:
    from a3lign_dfer.config.data import FaceCropParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.data import manifest
    from a3lign_dfer.data.face_crop import crop_dataset
    from a3lign_dfer.report_files import FACE_CROP

    params = load(FaceCropParams, args.params)
    classes = tuple(params.data.classes)
    raw = manifest.read(Path(args.raw) / "manifest.parquet", classes)
    out = Path(args.out)
    crops, rejects, metrics = crop_dataset(raw, Path(params.data.root), out, params.face_crop, params.scale, classes)
    manifest.write(crops, out / "manifest.parquet")
    manifest.write_rejects(rejects, out / "rejects.csv")
    FACE_CROP.write(Path(args.metrics), metrics)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
