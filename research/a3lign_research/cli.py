"""`python -m a3lign_research <command>` (or `a3lign-research <command>`): the research wing's commands, in the
product's parser (`a3lign_dfer.cli`): seeds, folds, paper, results."""
from __future__ import annotations

import sys

from a3lign_dfer.cli import build_parser, named_command
from a3lign_dfer.commands import invoke

COMMANDS = ("seeds", "folds", "paper", "results")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(named_command(argv, COMMANDS), "a3lign_research", COMMANDS, __doc__)
    args = parser.parse_args(argv)
    return invoke(args.module, args)


if __name__ == "__main__":
    sys.exit(main())
