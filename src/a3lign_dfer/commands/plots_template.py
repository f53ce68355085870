"""`plots-template`: an offline HTML template for `dvc plots show` (Vega scripts inlined)."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "offline HTML template for `dvc plots show` (Vega scripts inlined)"


def add_arguments(p) -> None:
    p.add_argument("--out", default=".dvc/plots_offline.html")


def run(args) -> None:
    from a3lign_dfer.reporting.plots_template import write_template

    print(f"wrote {write_template(Path(args.out))} (name it with `dvc config plots.html_template`, "
          "relative to .dvc/)")


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
