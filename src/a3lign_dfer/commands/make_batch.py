"""`make-batch`: a synthetic batch of new identities, the drift monitor's test data."""
from __future__ import annotations

import sys
from pathlib import Path

from a3lign_dfer.commands import run_module

HELP = "a synthetic batch of new identities under a params override (drift monitor test data)"


def add_arguments(p) -> None:
    p.add_argument("out", help="batch folder (videos/ and the generator's manifest)")
    p.add_argument("--identities", type=int, default=8)
    p.add_argument("--clips-per-identity", type=int, default=None, help="default: synthetic.clips_per_identity")
    p.add_argument("--seed", type=int, default=100, help="generator seed; any value but data.seed draws new faces")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="params override, e.g. --set synthetic.light_gain=0.4")


def overrides(pairs: list[str]) -> dict:
    """`section.key=value` pairs (values read as YAML: 0.4, [1, 0, 0]) as a nested params override."""
    import yaml

    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: --set needs key=value, got {pair!r}")
        *sections, last = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = yaml.safe_load(value)
    return out


def run(args) -> None:
    from a3lign_dfer.config.data import PrepareParams
    from a3lign_dfer.config.schema import load
    from a3lign_dfer.monitoring.batches import make_batch

    params = load(PrepareParams, args.params, overrides(args.set))
    rows = make_batch(Path(args.out), params.synthetic, tuple(params.data.classes), args.seed, args.identities,
                      args.clips_per_identity)
    print(f"{len(rows)} videos in {Path(args.out) / 'videos'}")


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
