"""`predict`: labels and class probabilities of video files, from the deployment artifact only."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module
from a3lign_dfer.config.deploy import BACKENDS, PRECISIONS

HELP = "label and class probabilities of video files, from models/deploy only"


def add_arguments(p) -> None:
    p.add_argument("videos", nargs="+", help="video files, folders of videos, or CSV files with a `path` column")
    p.add_argument("--deploy", default="models/deploy")
    p.add_argument("--backend", default="onnxruntime", choices=BACKENDS)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="int8: the INT8 image encoder (onnxruntime only), refused unless the manifest releases it")
    p.add_argument("--json", action="store_true", help="one JSON object per video instead of text")
    p.add_argument("--out", help="also write the predictions table (CSV) here")
    p.add_argument("--device", default=None)


def run(args) -> int:
    from a3lign_dfer.inference.predict_videos import predict_videos

    return predict_videos(args.videos, Path(args.deploy), args.backend, args.device, args.json, args.out,
                          args.precision)


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
