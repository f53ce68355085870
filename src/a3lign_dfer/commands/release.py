"""`release`: the quality gate and the comparison with prod on the built model; a pass registers a GTO version.
`release --rollback` moves prod back to the version that held it before.

Examples:
    python -m a3lign_dfer release                 # gates, then the next version + staging
    python -m a3lign_dfer release --prod          # ... and prod
    python -m a3lign_dfer release --rollback      # prod back to its previous version
"""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = ("quality gate and comparison with prod on the built model; a pass registers a GTO version (staging); "
        "--rollback moves prod back")


def add_arguments(p) -> None:
    from a3lign_dfer.registry.challenger import CROPS_DIR, FEEDBACK_DIR

    p.add_argument("--prod", action="store_true", help="also assign prod (params release.promote_to_prod: after_gate "
                                                       "does on every pass)")
    p.add_argument("--rollback", action="store_true",
                   help="register nothing: reassign prod to the version that held it before the current one")
    p.add_argument("--crops", type=Path, default=CROPS_DIR,
                   help=f"the face_crop stage's output, whose test clips both models are scored on (default: {CROPS_DIR})")
    p.add_argument("--feedback", type=Path, default=FEEDBACK_DIR,
                   help=f"the feedback export, whose test rows are scored apart (default: {FEEDBACK_DIR}; absent: none)")


def run(args) -> int:
    from a3lign_dfer.config.deploy import ReleaseParams
    from a3lign_dfer.config.schema import load

    cfg = load(ReleaseParams, args.params).release
    if args.rollback:
        from a3lign_dfer.registry.rollback import rollback

        moved = rollback(".", cfg.artifact)
        print(f"{moved.artifact} {moved.stage}: {moved.current} -> {moved.previous}")
        return 0
    from a3lign_dfer.registry.release import release, release_stages

    result = release(Path("."), cfg, release_stages(cfg, args.prod), "release command", args.crops, args.feedback)
    print(result["gate"])
    print(f"\nChampion/challenger: {result['challenger'].verdict} ({result['challenger_markdown']})")
    print(f"{result['artifact']} {result['version']} (commit {result['commit'][:10]}): {result['stages']}")
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
