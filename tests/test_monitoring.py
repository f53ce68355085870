"""The drift monitor's parts without a pipeline: camera knobs of the generator, crop statistics, PCA, the
Evidently comparison on toy tables, and, on hand-built results without Evidently, the drift rules, the threshold
choice, the summary's JSON and its words. Against a real artifact: tests/test_pipeline.py."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import PARAMS, ROOT

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.config.params import load_params

from a3lign_dfer.config.schema import to_dict
from a3lign_dfer.data.synthetic import render_clip
from a3lign_dfer.data.face_track import FaceTrack
from a3lign_dfer.inference.video_input import CropStats
from a3lign_research.drift_calibration import choose_thresholds, chosen_thresholds
from a3lign_dfer.monitoring.columns import STATS, embedding_columns
from a3lign_dfer.monitoring.pca import Pca
from a3lign_dfer.monitoring.profile import DriftProfile
from a3lign_dfer.monitoring.results import ClassMixDrift, ColumnDrift, EmbeddingDrift
from a3lign_dfer.monitoring.rules import RULES, alarms
from a3lign_dfer.monitoring.summary import EXIT_DRIFT, Comparison, DriftSummary
from a3lign_dfer.monitoring.text import describe

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


def test_drift_comparison_on_toy_tables():
    """Real Evidently: a same-distribution batch passes; a darker one with another class mix is flagged, naming
    what moved; each result read by metric id is the one Evidently reports for that column; the embedding's score
    and verdict are its method's own."""
    from a3lign_dfer.monitoring.drift import compare, embedding_method

    rng = np.random.default_rng(0)
    cfg = PARAMS.drift
    profile = DriftProfile(Pca(np.zeros(8, np.float32), np.eye(8, dtype=np.float32), np.ones(8, np.float32)),
                           _table(rng, 120), embedding_columns(8), list(STATS), cfg,
                           {"thresholds": to_dict(cfg), "reference": {"split": "val"}})
    _, clean = compare(_table(rng, 40), profile, "clean", {})
    assert not clean.alarms.drift and clean.alarms.drifted_share <= cfg.drifted_share
    snapshot, shifted = compare(_table(rng, 40, brightness=70, weights=(0.1, 0.1, 0.8)), profile, "night", {})
    assert shifted.alarms.fired == ("columns", "class_mix") and shifted.alarms.beyond_chance == ("brightness",)
    assert "brightness" in shifted.alarms.drifted_columns and shifted.columns["brightness"].drifted
    assert shifted.columns["brightness"].current_mean < 80 < shifted.columns["brightness"].reference_mean
    assert shifted.class_mix.current["neutral"] > 0.6 and shifted.class_mix.score < cfg.class_mix_p_value
    reported = {m["config"]["column"]: m["value"] for m in snapshot.dict()["metrics"] if "column" in m["config"]}
    assert {c: r.score for c, r in shifted.columns.items()} == {c: reported[c] for c in shifted.columns}
    assert (shifted.class_mix.score, shifted.confidence.score) == (reported["predicted"], reported["confidence"])

    moved = _table(rng, 40)
    moved[embedding_columns(4)] += 1.5                      # the embedding moves, nothing else
    _, embedded = compare(moved, profile, "moved", {})
    emb = embedding_columns(8)
    score, drifted, _ = embedding_method(cfg.embedding)(moved[emb].reset_index(drop=True),
                                                        profile.reference[emb].reset_index(drop=True))
    assert embedded.embedding.score == pytest.approx(score) and drifted and "embedding" in embedded.alarms.fired
    # Too few clips for Evidently's t-SNE panel (a small reference, a small batch): the same method scores it.
    small = replace(profile, reference=profile.reference.iloc[:7])
    snapshot, few = compare(moved.iloc[:10], small, "few", {})
    score, _, _ = embedding_method(cfg.embedding)(moved[emb].iloc[:10].reset_index(drop=True),
                                                  small.reference[emb].reset_index(drop=True))
    assert few.embedding.score == pytest.approx(score) and "embedding" in few.alarms.fired
    assert not any("Embedding" in m["metric_name"] for m in snapshot.dict()["metrics"])


def test_drift_command_usage_errors_exit_2(tmp_path, capsys):
    """An artifact without a reference profile, and a folder without videos: exit 2 with the reason."""
    from a3lign_dfer.monitoring.drift import run_drift

    (tmp_path / "batch").mkdir()
    assert run_drift([str(tmp_path / "batch")], tmp_path / "deploy", tmp_path / "out") == 2
    assert "has no drift reference profile" in capsys.readouterr().err
    folder = tmp_path / "deploy/drift"                      # a profile as export writes it, of a toy reference
    folder.mkdir(parents=True)
    Pca(np.zeros(8, np.float32), np.eye(8, dtype=np.float32), np.ones(8, np.float32)).save(folder / "pca.safetensors")
    _table(np.random.default_rng(0), 20).to_parquet(folder / "reference.parquet")
    profile = {"columns": {"embedding": embedding_columns(8), "stats": list(STATS)},
               "thresholds": to_dict(PARAMS.drift), "reference": {"split": "val"}}
    (folder / "profile.json").write_text(json.dumps(profile))
    assert run_drift([str(tmp_path / "batch")], tmp_path / "deploy", tmp_path / "out") == 2
    assert capsys.readouterr().err == f"error: no videos in {tmp_path / 'batch'}\n"


# The drift rules, the threshold choice, the summary and its words: pure, on hand-built results.
RULES_CFG = replace(PARAMS.drift, column_p_value=0.05, drifted_share=0.3, alarm_p_value=1e-4, class_mix_p_value=0.01,
                    embedding=replace(PARAMS.drift.embedding, method="mmd", threshold=0.05))


def _column(p: float, mean: float = 0.0) -> ColumnDrift:
    return ColumnDrift(score=p, method="ks", threshold=0.05, drifted=p < 0.05, reference_mean=1.0, current_mean=mean)


def _comparison(ps: dict[str, float], mix_p: float = 0.5, embedding: float = 0.0, cfg=RULES_CFG) -> Comparison:
    return Comparison(columns={c: _column(p) for c, p in ps.items()},
                      class_mix=ClassMixDrift(mix_p, "TVD", 0.05, mix_p < 0.05, {"happy": 1.0}, {"happy": 1.0}),
                      confidence=_column(0.5), embedding=EmbeddingDrift(embedding, 4), thresholds=cfg)


def _quiet(n: int = 10, **moved: float) -> dict[str, float]:
    """n input columns at p 0.5, some of them set to other p-values."""
    return {f"emb_{i:02d}": 0.5 for i in range(n - 2)} | {"brightness": 0.5, "sharpness": 0.5} | moved


def test_share_rule_fires_above_the_drifted_share_only():
    at = alarms({c: _column(p) for c, p in _quiet(emb_00=0.01, emb_01=0.01, emb_02=0.01).items()}, 0.5, 0.0,
                RULES_CFG)
    assert at.drifted_columns == ("emb_00", "emb_01", "emb_02") and at.drifted_share == pytest.approx(0.3)
    assert at.fired == () and not at.drift                           # 30% is not above 30%
    above = alarms({c: _column(p) for c, p in _quiet(emb_00=0.01, emb_01=0.01, emb_02=0.01, brightness=0.01).items()},
                   0.5, 0.0, RULES_CFG)
    assert above.fired == ("share",) and above.drift and above.drifted_share == pytest.approx(0.4)


def test_columns_rule_fires_below_the_alarm_p_value_only():
    assert alarms({c: _column(p) for c, p in _quiet(sharpness=1e-4).items()}, 0.5, 0.0, RULES_CFG).fired == ()
    hit = alarms({c: _column(p) for c, p in _quiet(sharpness=9e-5, emb_03=1e-9).items()}, 0.5, 0.0, RULES_CFG)
    assert hit.fired == ("columns",) and hit.beyond_chance == ("emb_03", "sharpness")      # in input order


def test_embedding_rule_fires_above_its_threshold_only():
    columns = {c: _column(p) for c, p in _quiet().items()}
    assert alarms(columns, 0.5, 0.05, RULES_CFG).fired == ()
    assert alarms(columns, 0.5, 0.0501, RULES_CFG).fired == ("embedding",)


def test_class_mix_rule_fires_below_its_p_value_and_never_at_zero():
    columns = {c: _column(p) for c, p in _quiet().items()}
    assert alarms(columns, 0.01, 0.0, RULES_CFG).fired == ()
    assert alarms(columns, 0.0099, 0.0, RULES_CFG).fired == ("class_mix",)
    assert alarms(columns, 0.0, 0.0, replace(RULES_CFG, class_mix_p_value=0.0)).fired == ()
    every = alarms({c: _column(1e-6) for c in columns}, 0.0, 1.0, RULES_CFG)
    assert every.fired == RULES and every.drift


def test_thresholds_are_chosen_one_grid_step_beyond_the_selection_batches():
    """Largest share 0.2, smallest p 3e-4, largest MMD 0.004, smallest class-mix p 0.2 on the selection set."""
    clean = [_comparison(_quiet(emb_00=0.01, emb_01=0.02), mix_p=0.2, embedding=0.004),
             _comparison(_quiet(sharpness=3e-4), mix_p=0.9, embedding=0.001)]
    choices = choose_thresholds(clean, RULES_CFG)
    assert {rule: (c.quiet_from, c.chosen) for rule, c in choices.items()} == {
        "share": (0.2, 0.3), "columns": (1e-4, 1e-5), "embedding": (0.005, 0.01), "class_mix": (0.05, 0.01)}
    chosen = chosen_thresholds(choices, RULES_CFG)
    assert (chosen.drifted_share, chosen.alarm_p_value, chosen.embedding.threshold, chosen.class_mix_p_value) == \
        (0.3, 1e-5, 0.01, 0.01)
    assert chosen.column_p_value == RULES_CFG.column_p_value and chosen.embedding.method == "mmd"
    assert not any(c.alarms_under(chosen).drift for c in clean)
    # A value no grid step keeps quiet: the least sensitive one, and no quiet value to report.
    loud = choose_thresholds([_comparison(_quiet(brightness=1e-9))], RULES_CFG)["columns"]
    assert loud.quiet_from is None and loud.chosen == loud.grid[-1]


def _summary(comparison: Comparison | None, bad: list[dict] | None = None) -> DriftSummary:
    return DriftSummary(batch="night", inputs=["data/batches/night"], videos=12, readable=12 - len(bad or []),
                        bad_files=bad or [], reference_split="val", reference_clips=240, deploy=str(DEPLOY_DIR),
                        backend="onnxruntime", report_html="reports/drift/night/report.html",
                        report_json="reports/drift/night/report.json" if comparison else None, comparison=comparison)


def test_summary_round_trips_through_json_with_its_verdict_written_out():
    shifted = _summary(_comparison(_quiet(brightness=1e-9, emb_02=1e-6), mix_p=0.001, embedding=0.2),
                       [{"path": "a.mp4", "reason": "a.mp4: no face"}])
    assert DriftSummary.from_json(shifted.to_json()) == shifted
    raw = json.loads(shifted.to_json())
    assert raw["drift"] and raw["exit_code"] == EXIT_DRIFT and raw["alarm_columns"] == ["emb_02", "brightness"]
    assert raw["embedding"] == {"method": "mmd", "score": 0.2, "threshold": 0.05, "drifted": True, "components": 4}
    assert raw["reasons"] == list(describe(shifted).reasons) and len(raw["reasons"]) == 3
    raw["drift"], raw["reasons"] = False, []                  # what follows from the results is recomputed on reading
    assert DriftSummary.from_dict(raw).drift
    clean, unreadable = _summary(_comparison(_quiet())), _summary(None, [{"path": "b.mp4", "reason": "empty"}])
    assert (clean.exit_code, unreadable.exit_code) == (0, 1)
    assert DriftSummary.from_json(unreadable.to_json()) == unreadable


def test_summary_in_words():
    shifted = describe(_summary(_comparison(_quiet(emb_02=1e-6, brightness=1e-9), mix_p=0.001, embedding=0.2)))
    assert shifted.verdict == "DRIFT" and shifted.alert
    assert shifted.compared == "12 of 12 videos compared with 240 reference clips (val)"
    assert shifted.reasons == (
        "2 column(s) moved beyond chance (p < 0.0001): brightness (p=1e-09, mean 1 -> 0), "
        "emb_02 (p=1e-06, mean 1 -> 0)",
        "the embedding drifted (mmd score 0.2 > 0.05)",
        "the predicted-class mix drifted (TVD permutation p = 0.001 < 0.01)")
    assert shifted.checks["columns beyond chance"] == "brightness, emb_02"           # crop statistics first
    assert shifted.checks["drifted input columns"] == "2 of 10 (20%; flag above 30%): emb_02, brightness"
    assert shifted.line == "DRIFT in night: " + "; ".join(shifted.reasons) + " -> reports/drift/night/report.html"
    assert [row[0] for row in shifted.drifted_table] == ["brightness", "emb_02"]      # lowest p first
    many = describe(_summary(_comparison({f"emb_{i:02d}": 1e-9 for i in range(9)} | {"brightness": 0.5})))
    assert many.reasons[1].endswith("and 3 more")
    assert many.checks["columns beyond chance"].endswith(", emb_05 and 3 more")
    clean = describe(_summary(_comparison(_quiet())))
    assert (clean.verdict, clean.alert, clean.reasons, clean.checks["columns beyond chance"]) == \
        ("no drift", False, (), "none")
    assert clean.line == "no drift in night: 12 of 12 videos compared with 240 reference clips (val) -> " \
                         "reports/drift/night/report.html"
    nothing = describe(_summary(None, [{"path": "b.mp4", "reason": "empty file"}] * 12))
    assert (nothing.verdict, nothing.alert, nothing.checks) == ("no readable video", True, {})
    assert nothing.compared == "none of the 12 videos could be read: nothing to compare"
    assert nothing.unreadable == (("b.mp4", "empty file"),) * 12


def test_a_batch_of_another_kind_than_the_reference_carries_the_caveat_through_json_and_words():
    frames_ref = {"frames": 240}
    videos = replace(_summary(_comparison(_quiet())), kinds={"video": 12}, reference_kinds=frames_ref)
    same = replace(videos, kinds={"frames": 12})
    text = describe(videos)
    assert text.caveat.startswith("the reference is a dataset's aligned face crops (frame folders) and this batch "
                                  "holds raw videos through the face track: face_size and detection_rate")
    assert text.line.endswith(f" (caveat: {text.caveat}) -> reports/drift/night/report.html")
    assert describe(same).caveat is None and describe(_summary(_comparison(_quiet()))).caveat is None
    assert DriftSummary.from_json(videos.to_json()) == videos
    assert json.loads(videos.to_json())["caveat"] == text.caveat


def test_a_frame_folder_reads_as_the_face_crop_stage_stored_it(tmp_path):
    """The serving path's frames of a frame folder are the crops the features stage encoded, pixel for pixel,
    at the sampled frames; a folder of frame folders and videos expands to its clips."""
    import cv2

    from a3lign_dfer.data.face_crop import _resize_frames
    from a3lign_dfer.data.frame_folders import load_frames
    from a3lign_dfer.data.sampling import segment_indices
    from a3lign_dfer.inference.predict_videos import expand
    from a3lign_dfer.inference.video_input import PreprocessSpec, face_frames, input_kind
    from a3lign_dfer.model.image_spec import ImageSpec

    rng = np.random.default_rng(0)
    clip = tmp_path / "batch" / "Clip" / "00007"
    clip.mkdir(parents=True)
    for t in range(11):                                    # 40x30 frames: padded to a square, like the stage does
        cv2.imwrite(str(clip / f"{t + 1}.jpg"), rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    cfg = replace(PARAMS.face_crop, size=48)
    spec = PreprocessSpec(cfg, ImageSpec(48, (0.5,) * 3, (0.5,) * 3), frames=8, min_frames=4)
    _resize_frames(("00007", clip, tmp_path / "crops", cfg))
    stored = load_frames(tmp_path / "crops")
    got = face_frames(clip, spec)
    picked = segment_indices(11, 8, train=False)
    assert np.array_equal(got.crops, stored[picked]) and got.used.tolist() == picked.tolist()
    assert (got.stats.face_size, got.stats.detection_rate, got.stats.frames) == (40 / 30, 1.0, 11)
    (tmp_path / "batch" / "a.mp4").write_bytes(b"")
    assert expand([str(tmp_path / "batch")]) == [tmp_path / "batch/Clip/00007", tmp_path / "batch/a.mp4"]
    assert expand([str(clip)]) == [clip] and (input_kind(clip), input_kind(tmp_path / "batch/a.mp4")) == \
        ("frames", "video")
