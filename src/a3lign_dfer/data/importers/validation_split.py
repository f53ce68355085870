"""Carve a validation split out of train, for datasets whose official folds have only train and test.

Checkpoint selection then never sees test. Seeded, stratified by class (each class gives
about `fraction` of its train clips, at least one when it has two or more, and keeps at
least one in train) and identity-disjoint where identities are known: whole identities
move, never single clips of one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def carve_validation(df: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, dict]:
    """A copy of `df` with part of its train rows relabelled val, and what was done."""
    df = df.copy()
    train = df[df["split"] == "train"]
    by_identity = "identity" in df.columns and len(train) > 0 and train["identity"].notna().all()
    groups = train["identity"].astype(str) if by_identity else train["clip_id"].astype(str)
    counts = pd.crosstab(groups, train["label_name"])                 # group x class, rows sorted
    total = counts.sum(0).to_numpy()
    target = np.where(total >= 2, np.clip(np.round(fraction * total), 1, total - 1), 0)
    picked, in_val = [], np.zeros_like(total)
    for g in np.random.default_rng([seed, 2024]).permutation(counts.index.to_numpy()):
        clips = counts.loc[g].to_numpy()
        if np.any((total - in_val - clips < 1) & (total > 0)):        # a class would leave train entirely
            continue
        if np.abs(in_val + clips - target).sum() < np.abs(in_val - target).sum():
            picked.append(g)
            in_val += clips
        if np.array_equal(in_val, target):
            break
    df.loc[groups.index[groups.isin(picked)], "split"] = "val"
    return df, {"carved_from": "train", "fraction": fraction, "seed": seed,
                "unit": "identity" if by_identity else "clip",
                "val_clips": int(in_val.sum()), "target_val_clips": int(target.sum())}
