"""Test batches for the drift monitor: synthetic videos under a params override.

A batch is the synthetic generator run with new identities (a seed other than
data.seed) and, for a shifted batch, changed camera knobs or class mix, e.g.
`synthetic.light_gain=0.4` (a darker room), `synthetic.extra_blur=2.0` with
`synthetic.noise_gain=4` (a worse camera), `synthetic.face_scale=0.6` (faces further
away) or `synthetic.class_weights=[...]` (another population). Only videos/ and the
generator's manifest go into the folder; the drift command reads the videos.

Example: python -m a3lign_dfer make-batch data/batches/night --identities 8 --seed 101 --set synthetic.light_gain=0.4
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from a3lign_dfer.config.data import SyntheticConfig
from a3lign_dfer.data.synthetic import generate


def make_batch(out_dir: Path, cfg: SyntheticConfig, classes: tuple[str, ...], seed: int, identities: int,
               clips_per_identity: int | None = None) -> pd.DataFrame:
    """`identities` new identities x clips_per_identity clips of `cfg` (one split, no training data) in out_dir."""
    cfg = replace(cfg, identities={"test": identities},
                  clips_per_identity=clips_per_identity or cfg.clips_per_identity)
    return generate(cfg, classes, seed, Path(out_dir))
