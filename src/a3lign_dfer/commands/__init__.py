"""The subcommands, one module each: `HELP`, `add_arguments(parser)` and `run(args)`.

dvc.yaml runs a stage's module directly (`python -m a3lign_dfer.commands.<stage>`), so
a stage depends on its own module and what that imports, never on the list of all
subcommands (`cli.py`): adding a subcommand re-runs no stage. Each `run` reads
params.yaml through its area's typed view and takes its paths as arguments, so
dvc.yaml is the one place paths are named. Heavy imports stay inside `run`.
"""
from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

from a3lign_dfer.errors import DEBUG_ENV, UserError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def command_name(module: ModuleType) -> str:
    """`a3lign_dfer train`, `a3lign_research seeds`: the package and the command as the CLI spells them."""
    package, *_, name = module.__spec__.name.split(".")
    return f"{package} {name.replace('_', '-')}"


def add_params_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")


def invoke(module: ModuleType, args: argparse.Namespace) -> int:
    if getattr(args, "device", "") is None:       # --device not given: the GPU where there is one
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return module.run(args) or 0
    except UserError as err:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"{command_name(module)}: error: {err}", file=sys.stderr)
        return 2


def run_module(module: ModuleType, argv: list[str] | None = None) -> int:
    """`python -m a3lign_dfer.commands.<name>`: the same command as `python -m a3lign_dfer <name>` (and so for
    the research wing's commands)."""
    parser = argparse.ArgumentParser(prog=command_name(module), description=module.HELP)
    add_params_option(parser)
    module.add_arguments(parser)
    return invoke(module, parser.parse_args(argv))
