"""`results`: README's results block, re-rendered from reports/."""
from __future__ import annotations

import sys

from a3lign_dfer.commands import run_module

HELP = "re-render README's results block from reports/ (seeds/summary.json and the pipeline's reports)"


def add_arguments(p) -> None:
    pass


def run(args) -> None:
    from a3lign_research.blocks import BLOCKS, republish

    republish("results")
    print(f"updated the results block in {BLOCKS['results'].page}")


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
