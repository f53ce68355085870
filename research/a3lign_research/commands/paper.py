"""`paper`: the paper's tables and figures on this pipeline's feature cache, to reports/paper/."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "the paper's experiments (Tables 2, 3, 6, Figures 3, 4, fidelity checks) to reports/paper/"


def add_arguments(p) -> None:
    from a3lign_research.paper.experiments import EXPERIMENTS, OPT_IN

    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"experiments to run, in this order: {', '.join(EXPERIMENTS)} (default: all but "
                        f"{', '.join(OPT_IN)}); "
                        "index.md and the docs' paper block are rewritten after any of them")
    p.add_argument("--features", default="data/features", help="the pipeline's feature cache")
    p.add_argument("--checkpoint", default="models/stage3", help="the final model (Figure 4, Table 6)")
    p.add_argument("--out", default="reports/paper")
    p.add_argument("--no-block", action="store_true",
                   help="leave the docs' `paper` block as it is (it is re-rendered only when --out is reports/paper)")


def run(args) -> None:
    from a3lign_dfer.config.evaluation import PaperParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.errors import UserError
    from a3lign_research import ROOT
    from a3lign_research.paper.experiments import EXPERIMENTS, OPT_IN, Setup, write_index

    unknown = sorted(set(args.names) - set(EXPERIMENTS))
    if unknown:
        raise UserError(f"unknown experiment(s) {', '.join(unknown)}; known: {', '.join(EXPERIMENTS)}")
    params = load(PaperParams, args.params)
    setup = Setup(params.paper, params.scale, args.params, args.features, args.checkpoint, ".", Path(args.out))
    for name in [n for n in EXPERIMENTS if n in (args.names or set(EXPERIMENTS) - set(OPT_IN))]:
        print(f"== {name}", flush=True)
        EXPERIMENTS[name](setup)
    publishes = not args.no_block and Path(args.out).resolve() == (ROOT / "reports/paper").resolve()
    write_index(setup, ROOT if publishes else None)
    print((setup.out / "index.md").read_text())


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
