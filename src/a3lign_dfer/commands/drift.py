"""`drift`: an Evidently drift report of a batch of videos against the artifact's reference profile."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module
from a3lign_dfer.config.deploy import BACKENDS, DEPLOY_DIR

HELP = ("Evidently drift report of a batch of videos against the reference profile in models/deploy; exit 3 when "
        "drift is flagged, 1 when videos could not be read")


def add_arguments(p) -> None:
    p.add_argument("batch", nargs="+", help="a folder of videos, a CSV with a `path` column (a `predict --out` "
                                            "table works), or video files")
    p.add_argument("--deploy", default=str(DEPLOY_DIR))
    p.add_argument("--out", help="report folder (default: reports/drift/<batch name>)")
    p.add_argument("--backend", default="onnxruntime", choices=BACKENDS)
    p.add_argument("--device", default=None)


def run(args) -> int:
    from a3lign_dfer.monitoring.drift import run_drift

    out = Path(args.out) if args.out else Path("reports/drift") / Path(args.batch[0]).stem
    return run_drift(args.batch, Path(args.deploy), out, args.backend, args.device)


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
