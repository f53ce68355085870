"""`python -m a3lign_dfer <command>` (or `a3lign-dfer <command>`): every subcommand in one parser.

Each subcommand lives in its own module under `commands/`; dvc.yaml runs a stage's
module directly, so this list is no dependency of any stage.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from a3lign_dfer.commands import add_params_option, invoke

COMMANDS = ("prepare", "face_crop", "validate", "pretrain_clip", "features", "train", "evaluate", "shuffle_check",
            "seeds", "folds", "paper", "export", "predict", "drift", "serve", "make_batch", "release", "report_page",
            "plots_template", "results")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="a3lign_dfer", description=__doc__)
    add_params_option(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"a3lign_dfer.commands.{name}")
        p = sub.add_parser(name.replace("_", "-"), help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return invoke(args.module, args)


if __name__ == "__main__":
    sys.exit(main())
