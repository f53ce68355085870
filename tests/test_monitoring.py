"""The drift monitor's parts without a pipeline: camera knobs of the generator, crop statistics, PCA, and
the Evidently comparison with its drift rules on toy tables. Against a real artifact: tests/test_pipeline.py."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import PARAMS, ROOT

from a3lign_dfer.config.params import load_params

from a3lign_dfer.config.schema import to_dict
from a3lign_dfer.data.synthetic import render_clip
from a3lign_dfer.data.face_track import FaceTrack
from a3lign_dfer.inference.video_input import CropStats
from a3lign_dfer.monitoring.columns import STATS, embedding_columns
from a3lign_dfer.monitoring.pca import Pca
from a3lign_dfer.monitoring.profile import DriftProfile

SMALL = replace(PARAMS.synthetic, min_frames=12, max_frames=12)


def test_camera_knobs_darken_blur_and_shrink_without_moving_anything_else():
    base = render_clip(SMALL, "happy", 0, 3, 1)
    dark = render_clip(replace(SMALL, light_gain=0.4), "happy", 0, 3, 1)
    small = render_clip(replace(SMALL, face_scale=0.6), "happy", 0, 3, 1)
    blurred = render_clip(replace(SMALL, extra_blur=2.0), "happy", 0, 3, 1)
    assert dark.frames.mean() < 0.5 * base.frames.mean()
    np.testing.assert_array_equal(dark.boxes, base.boxes)                 # same face, same place: only the light
    np.testing.assert_allclose(small.boxes[:, 3] / base.boxes[:, 3], 0.6, rtol=0.05)
    np.testing.assert_array_equal(small.controls, base.controls)          # same expression
    lap = lambda clip: np.mean([np.var(np.diff(f.astype(float), 2, axis=0)) for f in clip.frames])  # noqa: E731
    assert lap(blurred) < 0.5 * lap(base)


def test_knobs_are_checked():
    with pytest.raises(ValueError, match="synthetic.face_scale"):
        load_params(ROOT / "params.yaml", {"synthetic": {"face_scale": 0}})
    with pytest.raises(ValueError, match="drift.embedding.method"):
        load_params(ROOT / "params.yaml", {"drift": {"embedding": {"method": "cosine"}}})


def test_crop_stats_measure_light_contrast_sharpness_and_face_size():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    flat = np.full((4, 32, 32, 3), 40, np.uint8)
    def track(found: int) -> FaceTrack:                                  # 5 decoded frames, face side 30 px
        return FaceTrack(np.array([[50, 50, 30]] * 5, float), found, np.arange(5), np.zeros((5, 4)), 5, (120, 160), 1)

    stats, dull = CropStats.of(sharp, track(4)), CropStats.of(flat, track(5))
    assert dull.brightness == pytest.approx(40) and dull.contrast == 0 and dull.sharpness == 0
    assert stats.contrast > 40 and stats.sharpness > 1000
    assert stats.face_size == pytest.approx(30 / 120) and stats.detection_rate == 0.8 and stats.frames == 5
    assert STATS == ("brightness", "contrast", "sharpness", "face_size", "detection_rate", "frames")


def test_pca_keeps_the_main_directions_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) * np.array([5, 3, 1, 0.1, 0.1, 0.1]) + 7
    pca = Pca.fit(x, 4)
    assert pca.components.shape == (4, 6) and np.all(np.diff(pca.explained) <= 0)
    assert pca.explained[:3].sum() > 0.99
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(4), atol=1e-5)
    assert Pca.fit(x[:3], 32).components.shape == (2, 6)                  # at most N - 1 components
    pca.save(tmp_path / "pca.safetensors")
    loaded = Pca.load(tmp_path / "pca.safetensors")
    np.testing.assert_array_equal(loaded.transform(x), pca.transform(x))


def _table(rng, n, brightness=120.0, classes=("happy", "sad", "neutral"), weights=(0.4, 0.3, 0.3)):
    table = pd.DataFrame(rng.normal(size=(n, 8)), columns=embedding_columns(8))
    for name, (mean, std) in {"brightness": (brightness, 10), "contrast": (40, 5), "sharpness": (900, 100),
                              "face_size": (0.4, 0.05), "detection_rate": (1, 0), "frames": (26, 3)}.items():
        table[name] = rng.normal(mean, std, n)
    table["predicted"] = rng.choice(classes, n, p=weights)
    table["confidence"] = rng.uniform(0.4, 1, n)
    return table


def test_drift_rules_on_toy_tables():
    """A same-distribution batch passes; a darker one with another class mix is flagged, naming what moved."""
    from a3lign_dfer.monitoring.drift import compare

    rng = np.random.default_rng(0)
    cfg = PARAMS.drift
    profile = DriftProfile(Pca(np.zeros(8, np.float32), np.eye(8, dtype=np.float32), np.ones(8, np.float32)),
                           _table(rng, 120), embedding_columns(8), list(STATS), cfg,
                           {"thresholds": to_dict(cfg), "reference": {"split": "val"}})
    _, clean = compare(_table(rng, 40), profile, "clean", {})
    assert not clean["drift"] and clean["reasons"] == [] and clean["drifted_share"] <= cfg.drifted_share
    _, shifted = compare(_table(rng, 40, brightness=70, weights=(0.1, 0.1, 0.8)), profile, "night", {})
    assert shifted["drift"] and shifted["alarm_columns"] == ["brightness"]
    assert "brightness" in shifted["drifted_columns"] and any("class mix" in r for r in shifted["reasons"])
    assert shifted["columns"]["brightness"]["current_mean"] < 80 < shifted["columns"]["brightness"]["reference_mean"]
    assert shifted["prediction"]["class_mix"]["current"]["neutral"] > 0.6
