"""`prepare`: the canonical manifest (the embedded default generates the synthetic benchmark)."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "write the canonical manifest (generates the synthetic benchmark)"


def add_arguments(p) -> None:
    p.add_argument("--out", required=True)


def run(args) -> None:
    from a3lign_dfer.config.data import PrepareParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.data.importers import prepare_manifest

    prepare_manifest(load(PrepareParams, args.params), Path(args.out))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
