"""`release`: the quality gate on the built model; a pass registers a GTO version."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "quality gate on the built model; a pass registers a GTO version (staging)"


def add_arguments(p) -> None:
    p.add_argument("--prod", action="store_true", help="also assign prod")


def run(args) -> None:
    from a3lign_dfer.config.deploy import ReleaseParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.registry.release import release

    stages = ["staging", "prod"] if args.prod else ["staging"]
    result = release(Path("."), load(ReleaseParams, args.params).release, stages, "release command")
    print(result["gate"])
    print(f"{result['artifact']} {result['version']} (commit {result['commit'][:10]}): {result['stages']}")


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
