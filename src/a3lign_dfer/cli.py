"""`python -m a3lign_dfer <command>` (or `a3lign-dfer <command>`): every subcommand in one parser.

Each subcommand lives in its own module under `commands/`; dvc.yaml runs a stage's
module directly, so this list is no dependency of any stage. Only the named command's
module is imported (some import torch to build their options): the others are names
in the parser, loaded when no command is named (`--help`).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from a3lign_dfer.commands import add_params_option, invoke

COMMANDS = ("prepare", "face_crop", "validate", "pretrain_clip", "features", "train", "evaluate", "shuffle_check",
            "export", "predict", "drift", "timeline", "serve", "make_batch", "release", "report_page",
            "plots_template", "feedback")


def named_command(argv: list[str], commands: tuple[str, ...] = COMMANDS) -> str | None:
    """The command argv names (its first word that is one, `--params FILE` skipped), or None."""
    words = iter(argv)
    for word in words:
        if word == "--params":
            next(words, None)
        elif not word.startswith("-"):
            name = word.replace("-", "_")
            return name if name in commands else None
    return None


def build_parser(only: str | None = None, package: str = "a3lign_dfer",
                 commands: tuple[str, ...] = COMMANDS, description: str = __doc__) -> argparse.ArgumentParser:
    """Every command's parser (modules `<package>.commands.<name>`), or only `only`'s in full (the others by
    name). The research wing's CLI is this parser over its own commands."""
    parser = argparse.ArgumentParser(prog=package, description=description.split("\n\n")[0])
    add_params_option(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in commands:
        if only is not None and name != only:
            sub.add_parser(name.replace("_", "-"))
            continue
        module = importlib.import_module(f"{package}.commands.{name}")
        p = sub.add_parser(name.replace("_", "-"), help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(named_command(argv)).parse_args(argv)
    return invoke(args.module, args)


if __name__ == "__main__":
    sys.exit(main())
