"""`predict`: labels and class probabilities of video files, from the deployment artifact only.

One line per video as it is predicted (text, or JSON with --json); a bad file gets one line on stderr
naming it and why, the others are still predicted, and the exit status is 1 if any failed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module
from a3lign_dfer.config.deploy import BACKENDS, DEPLOY_DIR, PRECISIONS

HELP = "label and class probabilities of video files, from models/deploy only"
SYNTHETIC = ("warning: {deploy} was trained on the embedded synthetic benchmark (drawn faces) and is not meant for "
             "real faces; to train on your own videos, see README \"Your own videos and a real CLIP\"")


def add_arguments(p) -> None:
    p.add_argument("videos", nargs="+", help="video files, folders of videos, or CSV files with a `path` column")
    p.add_argument("--deploy", default=str(DEPLOY_DIR))
    p.add_argument("--backend", default="onnxruntime", choices=BACKENDS)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="int8: the INT8 image encoder (onnxruntime only), refused unless the manifest releases it")
    p.add_argument("--json", action="store_true", help="one JSON object per video instead of text")
    p.add_argument("--out", help="also write the predictions table (CSV) here")
    p.add_argument("--device", default=None)


def run(args) -> int:
    from a3lign_dfer.inference.predict_videos import Predictor, expand, predictions_table
    from a3lign_dfer.inference.video_input import InputError

    predictor = Predictor(Path(args.deploy), args.backend, args.device, args.precision)
    if predictor.artifact.learned_synthetic_faces:
        print(SYNTHETIC.format(deploy=args.deploy), file=sys.stderr)
    try:
        paths = expand(args.videos)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows, failed = [], 0
    for path in paths:
        try:
            row = predictor(path)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        rows.append(row)
        if args.json:
            print(json.dumps(row.to_json() | {"backend": args.backend, "precision": args.precision}))
        else:
            top = sorted(row.probabilities.items(), key=lambda kv: -kv[1])[:3]
            print(f"{path}: {row.label} ({', '.join(f'{c} {p:.3f}' for c, p in top)})")
    if args.out:
        predictions_table(rows).to_csv(args.out, index=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
