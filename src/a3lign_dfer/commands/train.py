"""`train`: one training stage of config/stage_table.py (a BAP rung or an all-at-once ablation)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from a3lign_dfer.commands import run_module
from a3lign_dfer.config.stage_table import STAGES

HELP = "run one training stage (a BAP stage or an all-at-once ablation)"


def add_arguments(p) -> None:
    p.add_argument("--stage", required=True, choices=[row.name for row in STAGES])
    p.add_argument("--features", required=True)
    p.add_argument("--init", help="the checkpoint the stage starts from (its `starts_from` in the stage table)")
    p.add_argument("--out", required=True)
    p.add_argument("--live", required=True, help="DVCLive directory for per-epoch metrics")
    p.add_argument("--device", default=None)


def run(args) -> None:
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.config.training import TrainingParams
    from a3lign_dfer.training.run_stage import run_stage

    summary = run_stage(args.stage, load(TrainingParams, args.params), Path(args.features), Path(args.out),
                        Path(args.live), Path(args.init) if args.init else None, args.device)
    val = summary.val
    print(json.dumps({"stage": summary.stage, "selected": summary.selected, "layers": summary.layers,
                      "seconds": summary.seconds}, indent=2))
    print(json.dumps({"war": val.war, "uar": val.uar, "per_class_recall": val.per_class_recall,
                      "shuffled_uar_drop": val.shuffled.uar_drop}, indent=2))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
