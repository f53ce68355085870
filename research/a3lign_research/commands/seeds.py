"""`seeds`: one DVC experiment per training seed; mean +- std to reports/seeds."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "one DVC experiment per training seed; mean +- std to reports/seeds"


def add_arguments(p) -> None:
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="params override for every seed (dvc exp run -S), e.g. --set stage3.lr.mat=0.003")
    p.add_argument("--out", default="reports/seeds")
    p.add_argument("--prefix", default="seed", help="experiment names are <prefix>-<seed>")


def run(args) -> None:
    from a3lign_research.seeds import run_seeds

    summary = run_seeds(args.seeds, args.set, Path("."), Path(args.out), args.prefix)
    print((Path(args.out) / "summary.md").read_text())
    print(f"experiments: {summary['experiments']}")


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
