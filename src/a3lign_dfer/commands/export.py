"""`export`: models/deploy, the one artifact predict, serve and drift read."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "models/deploy: ONNX graph, parity check, Triton repo, TensorRT where possible"


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", required=True, help="the final model's checkpoint")
    p.add_argument("--crops", required=True, help="face-crop folder (test clips for the parity check)")
    p.add_argument("--eval", required=True, help="evaluate's metrics.json (copied into the manifest)")
    p.add_argument("--shuffle", required=True, help="shuffle-check's metrics.json (copied into the manifest)")
    p.add_argument("--raw", required=True, help="the raw manifest's folder (validation videos for the drift reference)")
    p.add_argument("--features", required=True, help="feature cache (training clips: the drift PCA)")
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", required=True)


def run(args) -> None:
    from a3lign_dfer.config.deploy import ExportParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.export.bundle import export_deploy
    from a3lign_dfer.report_files import EXPORT

    metrics = export_deploy(Path(args.checkpoint), Path(args.crops), Path(args.eval), Path(args.shuffle),
                            load(ExportParams, args.params), Path(args.out), Path(args.raw), Path(args.features))
    EXPORT.write(Path(args.metrics), metrics)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
