"""The synthetic benchmark: determinism, the fear/surprise order-only pair, splits, captions."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dataclasses import replace

from conftest import PARAMS

from a3lign_dfer.config.params import load_params
from a3lign_dfer.data import manifest
from a3lign_dfer.data.synthetic import CONTROLS, PROTOTYPES, caption_for, generate, plan, render_clip
from a3lign_dfer.data.video_io import read_video

CLASSES = PARAMS.data.classes
SMALL = replace(PARAMS.synthetic, identities={"train": 3, "val": 2, "test": 1}, clips_per_identity=2, min_frames=12,
                max_frames=16, workers=1)


def _digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted((out / "videos").glob("*.mp4"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synthetic")
    out = {"a": base / "a", "b": base / "b", "other": base / "other"}
    generate(SMALL, CLASSES, 0, out["a"])
    generate(replace(SMALL, workers=2), CLASSES, 0, out["b"])  # other worker count
    generate(SMALL, CLASSES, 1, out["other"])
    return out


def test_same_seed_same_output_whatever_the_worker_count(runs):
    a, b = runs["a"], runs["b"]
    pd.testing.assert_frame_equal(pd.read_parquet(a / "manifest.parquet"), pd.read_parquet(b / "manifest.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(a / "captions.parquet"), pd.read_parquet(b / "captions.parquet"))
    assert (a / "class_prompts.json").read_text() == (b / "class_prompts.json").read_text()
    assert _digests(a) == _digests(b)  # libx264 with one thread is bit-exact
    assert (a / "generate.json").read_bytes() == (b / "generate.json").read_bytes()


def test_different_seed_different_output(runs):
    a = pd.read_parquet(runs["a"] / "manifest.parquet")
    other = pd.read_parquet(runs["other"] / "manifest.parquet")
    assert not a.equals(other)
    assert set(_digests(runs["a"]).values()).isdisjoint(_digests(runs["other"]).values())


def test_outputs_layout_and_manifest(runs):
    out = runs["a"]
    df = manifest.read(out / "manifest.parquet", CLASSES)
    assert list(df.columns) == manifest.COLUMNS + ["identity", "true_label_idx"]
    assert len(df) == 6 * SMALL.clips_per_identity
    assert (df["dataset"] == "synthetic").all() and (df["fold"] == 0).all()
    assert df["path"].str.fullmatch(r"videos/syn_\d{5}\.mp4").all()
    assert df["num_frames"].between(SMALL.min_frames, SMALL.max_frames).all()
    for row in df.head(3).itertuples():
        frames = read_video(out / row.path)
        assert frames.shape == (row.num_frames, SMALL.height, SMALL.width, 3)
    summary = json.loads((out / "generate.json").read_text())
    assert summary["clips"] == len(df) and "seconds" not in summary  # timings would break DVC's hash
    assert sum(sum(c.values()) for c in summary["clips_per_split_and_class"].values()) == len(df)


def test_captions_one_per_frame(runs):
    out = runs["a"]
    df = pd.read_parquet(out / "manifest.parquet")
    captions = pd.read_parquet(out / "captions.parquet")
    assert list(captions.columns) == ["clip_id", "frame_idx", "caption"]
    counts = captions.groupby("clip_id")["frame_idx"].agg(["count", "min", "max"])
    merged = df.set_index("clip_id").join(counts)
    assert (merged["count"] == merged["num_frames"]).all()
    assert (merged["min"] == 0).all() and (merged["max"] == merged["num_frames"] - 1).all()
    prompts = json.loads((out / "class_prompts.json").read_text())
    assert list(prompts) == list(CLASSES)
    assert prompts["fear"] == prompts["surprise"]
    assert len(set(prompts.values())) == len(CLASSES) - 1


def test_captions_reflect_controls():
    happy = render_clip(SMALL, "happy", 0, 3, 1)
    apex = int(np.argmax(happy.controls[:, CONTROLS.index("lip_corner")]))
    assert "smile" in caption_for(happy.controls[apex])
    neutral = render_clip(SMALL, "neutral", 0, 4, 1)
    assert all(caption_for(c) == "a face with a neutral expression" for c in neutral.controls)
    assert caption_for(PROTOTYPES["surprise"]) == "a face with raised eyebrows, wide open eyes and an open mouth"
    assert "lowered" in caption_for(PROTOTYPES["angry"]) and "wrinkled nose" in caption_for(PROTOTYPES["disgust"])


def test_mafw_class_list_has_a_prototype_per_class_apart_in_its_caption():
    from a3lign_dfer.data.importers.mafw import ORDER

    captions = {c: caption_for(PROTOTYPES[c]) for c in ORDER}
    assert captions["fear"] == captions["surprise"] and len(set(captions.values())) == len(ORDER) - 1
    assert [captions[c] for c in ("anger", "happiness", "sadness")] == [caption_for(PROTOTYPES[c]) for c in
                                                                         ("angry", "happy", "sad")]
    rows = plan(replace(SMALL, class_weights=(1.0,) * len(ORDER), identities={"train": 8, "val": 2, "test": 2},
                        clips_per_identity=3), ORDER, 0)
    assert set(rows.query("split == 'train'")["true_label_idx"]) == set(range(len(ORDER)))


def test_fear_is_time_reversed_surprise():
    cfg = replace(PARAMS.synthetic, min_frames=20, max_frames=30)
    for index, identity in [(5, 2), (11, 7)]:
        fear = render_clip(cfg, "fear", 0, index, identity)
        surprise = render_clip(cfg, "surprise", 0, index, identity)
        np.testing.assert_array_equal(fear.frames, surprise.frames[::-1])
        np.testing.assert_array_equal(fear.boxes, surprise.boxes[::-1])
        np.testing.assert_array_equal(fear.controls, surprise.controls[::-1])
        brow = surprise.controls[:, CONTROLS.index("brow")]
        step = np.diff(brow)
        assert step.max() > 2 * -step.min()  # surprise: fast onset, slow offset; fear the mirror image
        fear_step = np.diff(fear.controls[:, CONTROLS.index("brow")])
        assert -fear_step.min() > 2 * fear_step.max()


def test_render_gives_face_boxes_inside_the_frame():
    clip = render_clip(SMALL, "angry", 0, 0, 0)
    x, y, w, h = clip.boxes.T
    assert clip.frames.dtype == np.uint8 and clip.frames.shape[1:] == (SMALL.height, SMALL.width, 3)
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= SMALL.width).all() and (y + h <= SMALL.height).all()
    assert (h >= 60).all() and (h <= 170).all()


def test_default_plan_splits_imbalance_and_noise():
    cfg = load_params(Path(__file__).parents[1] / "params.yaml").synthetic
    rows = plan(cfg, CLASSES, 1)
    assert len(rows) == 170 * cfg.clips_per_identity
    ids = {s: set(rows.loc[rows["split"] == s, "identity"]) for s in manifest.SPLITS}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert [len(ids[s]) for s in manifest.SPLITS] == [70, 40, 60]
    assert (rows["split"] == "test").sum() >= 300
    for s in manifest.SPLITS:  # every class in every split
        assert set(rows.loc[rows["split"] == s, "true_label_idx"]) == set(range(len(CLASSES)))
    counts = rows["true_label_idx"].value_counts()
    rare = {CLASSES.index("disgust"), CLASSES.index("fear")}
    assert set(counts.index[-2:]) == rare
    assert counts[CLASSES.index("happy")] > 4 * counts[CLASSES.index("disgust")]
    flipped = rows["label_idx"] != rows["true_label_idx"]
    assert 0 < flipped.mean() < 0.08


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="pride"):
        plan(replace(PARAMS.synthetic, class_weights=(1.0, 1.0)), ("happy", "pride"), 0)
