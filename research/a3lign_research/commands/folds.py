"""`folds`: the official folds (data.fold) on one feature pass; per-fold and mean +- std to reports/folds."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = ("the official folds (data.fold of dfew, mafw) after `dvc repro`: one feature pass over every clip, then one "
        "training per fold; per-fold and mean +- std WAR/UAR to reports/folds")


def add_arguments(p) -> None:
    p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--raw", default="data/raw", help="the workspace's imported manifest (prepare)")
    p.add_argument("--crops", default="data/crops", help="the workspace's face crops of every clip (face_crop)")
    p.add_argument("--pool", default="data/folds", help="the feature pass over every clip and each fold's splits")
    p.add_argument("--out", default="reports/folds")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the GPU where there is one)")


def run(args) -> None:
    from a3lign_dfer.config.params import load_params
    from a3lign_research.folds import run_folds

    run_folds(load_params(args.params), Path(args.params), args.folds, Path(args.raw), Path(args.crops),
              Path(args.pool), Path(args.out), args.device)
    print((Path(args.out) / "summary.md").read_text())


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
