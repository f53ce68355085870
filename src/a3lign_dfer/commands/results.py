"""`results`: the README results block, rewritten from reports/."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "rewrite the README results table from reports/"


def add_arguments(p) -> None:
    p.add_argument("--readme", default="README.md")
    p.add_argument("--reports", default="reports")


def run(args) -> None:
    from a3lign_dfer.evaluation.results_table import update_readme

    update_readme(Path(args.readme), Path(args.reports))
    print(f"updated the results table in {args.readme}")


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
