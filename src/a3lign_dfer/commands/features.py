"""`features`: frozen CLIP image features of every frame, cached for the training stages."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "cache frozen CLIP image features of every frame"


def add_arguments(p) -> None:
    p.add_argument("--crops", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, or auto (default): each worker's GPU where it has one (README \"Scaling out\")")


def run(args) -> None:
    from a3lign_dfer.config.model import FeaturesParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.data import manifest
    from a3lign_dfer.data.features import ClipEncoder, build_feature_cache
    from a3lign_dfer.report_files import FEATURES

    params = load(FeaturesParams, args.params)
    crops = manifest.read(Path(args.crops) / "manifest.parquet", tuple(params.data.classes))
    metrics = build_feature_cache(crops, Path(args.crops), ClipEncoder.of(params.clip.model, args.device), params.features,
                                  params.data.seed, Path(args.out), params.scale)
    FEATURES.write(Path(args.metrics), metrics)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
