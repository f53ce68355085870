"""`evaluate`: the test split, read once: Table 4 rows and the final model's confusion matrix."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "test split: Table 4 rows, confusion matrix"


def add_arguments(p) -> None:
    """Also the arguments of `shuffle-check`, which reads the same checkpoints."""
    p.add_argument("--features", required=True)
    p.add_argument("--ladder", nargs="+", required=True,
                   help="BAP checkpoints in ladder order (Table 4 rows); the last is the final model")
    p.add_argument("--all-at-once", nargs="*", default=[], help="all-at-once ablation checkpoints (Table 4 rows)")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default=None)


def run(args) -> None:
    from a3lign_dfer.evaluation.evaluate import evaluate_checkpoints

    result = evaluate_checkpoints([Path(c) for c in args.ladder], [Path(c) for c in args.all_at_once],
                                  Path(args.features), Path(args.out), args.device)
    print(json.dumps({k: result[k] for k in ("war", "uar", "table4")}, indent=2))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
