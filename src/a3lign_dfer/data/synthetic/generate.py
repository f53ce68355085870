"""The embedded synthetic benchmark: raw face videos, manifest, frame captions, prompts.

Design choices that matter downstream:
- fear is an order-only twin of surprise. A fear clip is generated exactly like a
  surprise clip (fast 1-3 frame onset, hold, slow offset; same draws for identity,
  head motion, light and noise) and then its frame order is reversed. The unordered
  set of frames is therefore distributed identically for the two classes; only the
  temporal order tells them apart, so a frame-averaging model cannot separate them.
- Labels are DFEW-like imbalanced (class_weights) with label_noise flips; the clean
  label is kept in `true_label_idx`.
- Splits are identity-disjoint, with a fixed number of identities each; class quotas are drawn per split with at least one
  clip of every class whenever the split has enough clips.
- Every clip draws from its own generator seeded by (seed, clip index), so output is
  identical whatever the worker count.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from a3lign_dfer.config.data import SyntheticConfig
from a3lign_dfer.data import manifest
from a3lign_dfer.data.parallel import run_parallel
from a3lign_dfer.data.synthetic.controls import PROTOTYPES, caption_for
from a3lign_dfer.data.synthetic.render import render_clip
from a3lign_dfer.data.video_io import write_video


def _quota(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer split of `total` proportional to `weights` (largest remainder), every positive
    weight getting at least 1 when `total` allows it."""
    weights = np.asarray(weights, np.float64) / np.sum(weights)
    minimum = (weights > 0).astype(int) if total >= np.count_nonzero(weights) else np.zeros(len(weights), int)
    counts = np.maximum(np.floor(weights * total).astype(int), minimum)
    while counts.sum() < total:
        counts[np.argmax(weights * total - counts)] += 1
    while counts.sum() > total:
        spare = np.where(counts > minimum, counts - weights * total, -np.inf)
        counts[np.argmax(spare)] -= 1
    return counts


def plan(cfg: SyntheticConfig, classes: tuple[str, ...], seed: int) -> pd.DataFrame:
    """One row per clip: clip index, identity, split, clean and (possibly flipped) label."""
    unknown = [c for c in classes if c not in PROTOTYPES]
    if unknown:
        raise ValueError(f"synthetic data has no prototype for {unknown}; known: {sorted(PROTOTYPES)}")
    if len(cfg.class_weights) != len(classes):
        raise ValueError(f"synthetic.class_weights has {len(cfg.class_weights)} entries for {len(classes)} classes")
    bad = sorted(set(cfg.identities) - set(manifest.SPLITS))
    if bad:
        raise ValueError(f"synthetic.identities: unknown split(s) {bad}; known: {list(manifest.SPLITS)}")
    rng = np.random.default_rng([seed, 2])
    names = list(cfg.identities)
    id_split = rng.permutation(np.repeat(names, [cfg.identities[s] for s in names]))

    n = sum(cfg.identities.values()) * cfg.clips_per_identity
    identity = np.arange(n) // cfg.clips_per_identity
    split = id_split[identity]
    true_label = np.zeros(n, int)
    for name in names:
        rows = np.flatnonzero(split == name)
        labels = np.repeat(np.arange(len(classes)), _quota(len(rows), np.array(cfg.class_weights)))
        true_label[rows] = rng.permutation(labels)
    label = true_label.copy()
    flip = rng.random(n) < cfg.label_noise
    if len(classes) > 1:
        label[flip] = (true_label[flip] + rng.integers(1, len(classes), flip.sum())) % len(classes)
    return pd.DataFrame({"clip_index": np.arange(n), "identity": identity, "split": split,
                         "label_idx": label, "true_label_idx": true_label})


def _make_clip(task: tuple) -> tuple[int, list[str]]:
    """Worker: render, encode, caption one clip; returns (frames written, captions)."""
    cfg, label, seed, index, identity, path = task
    clip = render_clip(cfg, label, seed, index, identity)
    written = write_video(clip.frames, path, cfg.fps)
    return written, [caption_for(c) for c in clip.controls]


def generate(cfg: SyntheticConfig, classes: tuple[str, ...], seed: int, out_dir: Path) -> pd.DataFrame:
    """Write videos/, manifest.parquet, captions.parquet, class_prompts.json, generate.json."""
    start = time.time()
    out_dir = Path(out_dir)
    rows = plan(cfg, classes, seed)
    rows["clip_id"] = [f"syn_{i:05d}" for i in rows["clip_index"]]
    rows["path"] = "videos/" + rows["clip_id"] + ".mp4"
    shutil.rmtree(out_dir / "videos", ignore_errors=True)
    (out_dir / "videos").mkdir(parents=True)
    tasks = [(cfg, classes[r.true_label_idx], seed, r.clip_index, r.identity, out_dir / r.path)
             for r in rows.itertuples()]
    results = run_parallel(_make_clip, tasks, cfg.workers, desc="synthetic videos")

    rows["num_frames"] = [written for written, _ in results]
    rows["dataset"], rows["fold"] = "synthetic", 0
    rows["label_name"] = [classes[i] for i in rows["label_idx"]]
    df = manifest.validate(rows[manifest.COLUMNS + ["identity", "true_label_idx"]], classes)
    manifest.write(df, out_dir / "manifest.parquet")
    captions = pd.DataFrame(
        [(cid, t, text) for cid, (_, texts) in zip(df["clip_id"], results) for t, text in enumerate(texts)],
        columns=["clip_id", "frame_idx", "caption"])
    captions.to_parquet(out_dir / "captions.parquet", index=False)
    prompts = {c: caption_for(PROTOTYPES[c]) for c in classes}
    (out_dir / "class_prompts.json").write_text(json.dumps(prompts, indent=2) + "\n")
    summary = {
        "clips": len(df),
        "frames": int(df["num_frames"].sum()),
        "seed": seed,
        "identities": dict(cfg.identities),
        "noisy_labels": int((df["label_idx"] != df["true_label_idx"]).sum()),
        "clips_per_split_and_class": {s: df.loc[df["split"] == s, "label_name"].value_counts()
                                      .reindex(classes, fill_value=0).astype(int).to_dict()
                                      for s in manifest.SPLITS},
    }
    # No timings in here: data/raw must hash the same on every run of the same seed.
    (out_dir / "generate.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"generated {len(df)} clips in {time.time() - start:.1f} s")
    return df
