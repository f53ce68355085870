"""`shuffle-check`: the test split in shuffled frame order (paper Table 5)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module
from a3lign_dfer.commands.evaluate import add_arguments  # noqa: F401  (the same checkpoints and flags)

HELP = "test split in shuffled frame order (Table 5)"


def run(args) -> None:
    from a3lign_dfer.config.evaluation import ShuffleCheckParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.evaluation.shuffle_check import shuffle_check

    params = load(ShuffleCheckParams, args.params)
    result = shuffle_check([Path(c) for c in args.ladder], [Path(c) for c in args.all_at_once], Path(args.features),
                           params.shuffle_check, Path(args.out), args.device)
    print(json.dumps({k: result[k] for k in ("uar", "shuffled", "table5")}, indent=2))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
