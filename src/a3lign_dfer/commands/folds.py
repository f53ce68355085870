"""`folds`: one DVC experiment per official fold (data.fold); per-fold and mean +- std to reports/folds."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module
from a3lign_dfer.commands.seeds import add_sweep_arguments

HELP = "one DVC experiment per official fold (data.fold); per-fold and mean +- std WAR/UAR to reports/folds"


def add_arguments(p) -> None:
    p.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    add_sweep_arguments(p, "fold", "train.seed=1")


def run(args) -> None:
    from a3lign_dfer.evaluation.folds import run_folds

    summary = run_folds(args.folds, args.set, Path("."), Path(args.out), args.prefix)
    print((Path(args.out) / "summary.md").read_text())
    print(f"experiments: {summary['experiments']}")


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
