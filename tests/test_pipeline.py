"""The real pipeline on a tiny params override: its first run in a fresh DVC repo (conftest `built_pipeline`:
each stage a `dvc repro` of the pipeline flow), after which `dvc repro` finds nothing to do; then what uses its
outputs: export, predict, the drift command, the multi-seed command, incremental re-runs (the model registry's
round trip is test_remote's, from an S3 remote)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import DRIFT_SHIFTS, ROOT, run_cli, run_cmd as _run, stages_run as _stages_run

from a3lign_dfer.commands.predict import SYNTHETIC
from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_research.browser import image_spread

TRAINING = ["train_stage1", "train_stage2", "train_stage2_text", "train_stage3"]
ABLATIONS = ["train_all_at_once@separate", "train_all_at_once@joint"]

def test_dvc_repro_runs_every_stage_and_writes_consistent_metrics(pipeline):
    repo, params, first = pipeline
    assert first[:5] == ["prepare", "face_crop", "validate", "pretrain_clip", "features"]
    assert first[-4:] == ["evaluate", "shuffle_check", "export", "report_page"]
    assert sorted(first[5:-4]) == sorted(TRAINING + ABLATIONS)
    assert [s for s in first if s in TRAINING] == TRAINING

    crop = json.loads((repo / "reports/face_crop.json").read_text())
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    crops = pd.read_parquet(repo / "data/crops/manifest.parquet")
    assert crop["videos"] == len(raw) and crop["accepted"] == len(crops) == len(raw) - crop["rejected"] > 0
    assert crop["frames"] == crops["num_frames"].sum()
    # The overall rate is the per-clip rates weighted by frames (the synthetic fps is detect_fps: every frame
    # is detected), so it says what the crops manifest says.
    assert crop["detection_rate"] == pytest.approx((crops["detection_rate"] * crops["num_frames"]).sum()
                                                   / crops["num_frames"].sum())
    assert crop["detection_rate"] > 0.5
    validation = json.loads((repo / "reports/validation.json").read_text())
    assert validation["success"] and validation["clips"] == crop["accepted"]
    assert (repo / "reports/validation/index.html").exists()
    metrics = json.loads((repo / "reports/eval/metrics.json").read_text())
    classes = params["data"]["classes"]
    # The numbers agree with the predictions written beside them.
    predictions = pd.read_csv(repo / "reports/eval/predictions.csv")
    features = json.loads((repo / "reports/features.json").read_text())
    assert len(predictions) == metrics["num_test_clips"] == features["test_clips"] > 0
    recall = {c: (predictions.loc[predictions["actual"] == c, "predicted"] == c).mean() for c in classes}
    expected_uar = sum(0.0 if pd.isna(r) else r for r in recall.values()) / len(classes)
    assert metrics["uar"] == pytest.approx(expected_uar)
    assert metrics["war"] == pytest.approx((predictions["actual"] == predictions["predicted"]).mean())
    # Table 4: the BAP ladder and both all-at-once rows, labelled from each checkpoint's architecture.
    rows = [(r["paradigm"], r["image_layers"], r["text_layers"]) for r in metrics["table4"]]
    assert rows == [("BAP", "Average", "1"), ("BAP", "1", "1"), ("BAP", "2", "1"), ("BAP", "2", "2"),
                    ("BAP", "2 (JAS)", "2"), ("All at once", "2", "2"), ("All at once", "2 (Joint)", "")]
    assert metrics["table4"][-3]["uar"] == metrics["uar"]            # the last BAP row is the final model
    # The shuffled-frame check: the same rows, the same unshuffled numbers, its own metrics file.
    shuffle = json.loads((repo / "reports/shuffle/metrics.json").read_text())
    assert [(r["paradigm"], r["image_layers"], r["uar"]) for r in shuffle["table5"]] == \
        [(r["paradigm"], r["image_layers"], r["uar"]) for r in metrics["table4"]]
    assert shuffle["table5"][0]["shuffled_uar_drop"] == 0            # the frame-mean model ignores order
    assert shuffle["uar"] == metrics["uar"] and shuffle["seeds"] == params["shuffle_check"]["seeds"]
    assert set(shuffle["shuffled"]["per_class_recall"]) == set(classes)
    assert shuffle["shuffled"]["uar_drop"] == pytest.approx(shuffle["uar"] - shuffle["shuffled"]["uar"])
    for figure in ("shuffle/per_class_recall.png", "eval/confusion.png"):       # drawn, not a blank canvas
        assert image_spread(repo / "reports" / figure) > 0.05, figure
    for stage in ("stage1", "stage2", "stage2_text", "stage3"):
        meta = json.loads((repo / f"models/{stage}/meta.json").read_text())
        assert meta["stage"] == stage and (repo / f"models/{stage}/model.safetensors").exists()
        live = json.loads((repo / f"reports/train/{stage}/metrics.json").read_text())
        assert live["val"]["num_samples"] == features["val_clips"]
        # The val report is the kept epoch's model: the UAR logged at that epoch (DVCLive counts steps from 0).
        logged = pd.read_csv(repo / f"reports/train/{stage}/plots/metrics/val/uar.tsv", sep="\t")
        assert live["val"]["uar"] == pytest.approx(logged.loc[logged["step"] == live["selected"]["epoch"] - 1,
                                                              "uar"].item())
        assert live["val"]["shuffled"]["uar_drop"] == pytest.approx(live["val"]["uar"] - live["val"]["shuffled"]["uar"])
    # The reports page: every link resolves, a curve figure per training stage.
    from test_report_page import assert_links_resolve

    linked = assert_links_resolve(repo / "reports/index.html")
    assert (repo / "reports/validation/index.html").resolve() in linked
    assert {p.stem for p in (repo / "reports/curves").glob("*.png")} == \
        {"stage1", "stage2", "stage2_text", "stage3", "all_at_once_separate", "all_at_once_joint", "bap_ladder"}

    assert _stages_run(run_dvc(["repro"], repo).stdout) == []


def test_export_bundle_matches_its_manifest_graph_and_triton_config(pipeline):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from a3lign_dfer.checksums import sha256
    from a3lign_dfer.inference.backends import tensorrt_unavailable
    from a3lign_dfer.report_files import DEPLOY_MANIFEST, to_json

    repo, params, _ = pipeline
    deploy = repo / DEPLOY_DIR
    manifest = json.loads((deploy / "manifest.json").read_text())
    assert to_json(DEPLOY_MANIFEST.read(deploy)) == manifest            # written and read through its contract
    on_disk = {str(p.relative_to(deploy)) for p in deploy.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    assert all(sha256(deploy / name) == digest for name, digest in manifest["files"].items())
    # The parity verdict is what its numbers say, on the test clips it was asked for.
    parity = manifest["parity_onnxruntime_vs_torch"]
    test_clips = json.loads((repo / "reports/features.json").read_text())["test_clips"]
    assert parity["passed"] and parity["top1_agreement"] == 1.0 and manifest["opset"] == 17
    assert parity["max_abs_logit_difference"] <= parity["logit_atol"] == params["export"]["parity_atol"]
    assert parity["clips"] == min(params["export"]["parity_clips"], test_clips)
    metrics = json.loads((repo / "reports/export.json").read_text())
    assert metrics["parity"] == parity
    # The split graphs passed the same bar against model.onnx; the INT8 verdict is recorded whichever way it went.
    split, int8 = manifest["parity_split_vs_onnx"], manifest["int8"]
    assert split["passed"] and split["clips"] == parity["clips"] and metrics["parity_split"] == split
    assert manifest["split_io"]["head"]["outputs"] == manifest["io"]["outputs"]
    assert int8["method"] == params["export"]["int8"]["method"] and metrics["int8"] == int8
    assert (deploy / int8["file"]).is_file() and int8["clips"] == parity["clips"]
    reason = tensorrt_unavailable()
    if reason is not None:                     # the reason this machine gives, and no engine claimed
        assert metrics["tensorrt"] == {"status": "skipped", "reason": reason}
        assert not (deploy / "model.plan").exists()
    else:
        assert metrics["tensorrt"]["status"] == "built" and (deploy / "model.plan").exists()
        assert metrics["tensorrt"]["parity_fp16_vs_onnxruntime"]["passed"]
    assert json.loads((deploy / "labels.json").read_text())["classes"] == params["data"]["classes"]

    config = text_format.Parse((deploy / "triton/a3lign_dfer/config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    io = manifest["io"]
    assert config.max_batch_size == params["export"]["max_batch"] and config.platform == "onnxruntime_onnx"
    assert {t.name: list(t.dims) for t in config.input} == {n: s[1:] for n, s in io["inputs"].items()}
    assert {t.name: list(t.dims) for t in config.output} == {n: s[1:] for n, s in io["outputs"].items()}
    assert io["inputs"]["frames"][0] is None and None not in io["inputs"]["frames"][1:]   # only batch is dynamic
    assert (deploy / "triton/a3lign_dfer/1/model.onnx").read_bytes() == (deploy / "model.onnx").read_bytes()


def test_predict_same_label_with_torch_and_onnxruntime_and_clear_errors(pipeline, tmp_path, capsys):
    import numpy as np

    from a3lign_dfer.data.video_io import write_video

    repo, _, _ = pipeline
    test_video = pd.read_parquet(repo / "data/raw/manifest.parquet").query("split == 'test'")["path"].iloc[0]
    video = str(repo / "data/raw" / test_video)
    answers = {}
    for backend in ("torch", "onnxruntime"):
        out = run_cli(["predict", video, "--deploy", str(repo / DEPLOY_DIR), "--backend", backend, "--json"],
                      repo, capsys)
        answers[backend] = json.loads([line for line in out.splitlines() if line.startswith("{")][0])
    assert answers["torch"]["label"] == answers["onnxruntime"]["label"]
    for c, p in answers["torch"]["probabilities"].items():
        assert abs(p - answers["onnxruntime"]["probabilities"][c]) < 1e-4

    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "truncated.mp4").write_bytes(Path(video).read_bytes()[:2000])
    write_video(np.full((20, 96, 128, 3), 90, np.uint8), tmp_path / "noface.mp4", 12)
    write_video(np.full((2, 96, 128, 3), 90, np.uint8), tmp_path / "short.mp4", 12)
    bad = {"missing.mp4": "file not found", "empty.mp4": "empty file", "text.mp4": "cannot open",
           "truncated.mp4": "cannot open", "noface.mp4": "no face found", "short.mp4": "fewer than the 4 needed"}
    cmd = [sys.executable, "-m", "a3lign_dfer", "predict", *[str(tmp_path / n) for n in bad], video,
           "--deploy", str(repo / DEPLOY_DIR), "--out", str(tmp_path / "table.csv")]
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    assert done.returncode == 1
    # The pipeline's default model learned the synthetic benchmark's faces: one line says so, and where to go.
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [SYNTHETIC.format(deploy=repo / DEPLOY_DIR)]
    section = re.search(r'README "([^"]+)"', warnings[0]).group(1)          # the recipe it points to exists
    assert f"\n## {section}\n" in (ROOT / "README.md").read_text()
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == len(bad)
    for (name, reason), line in zip(bad.items(), errors):
        assert name in line and reason in line, line
    table = pd.read_csv(tmp_path / "table.csv")                  # the good video is still predicted
    assert table["path"].tolist() == [video] and table["label"].iloc[0] == answers["onnxruntime"]["label"]


def test_export_writes_the_drift_reference_profile_through_the_serving_path(pipeline):
    import numpy as np

    from a3lign_dfer.inference.backends import load_backend
    from a3lign_dfer.inference.video_input import PreprocessSpec, video_input
    from a3lign_dfer.monitoring.columns import PREDICTIONS, STATS, embedding_columns
    from a3lign_dfer.monitoring.profile import DriftProfile

    repo, params, _ = pipeline
    deploy = repo / DEPLOY_DIR
    manifest = json.loads((deploy / "manifest.json").read_text())
    assert {"drift/pca.safetensors", "drift/reference.parquet", "drift/profile.json"} <= set(manifest["files"])
    dim = json.loads((repo / "data/features/meta.json").read_text())["embed_dim"]
    assert manifest["io"]["outputs"]["embedding"] == [None, dim]
    profile = DriftProfile.load(deploy)
    k = min(params["drift"]["pca_components"], dim)
    assert profile.pca.components.shape == (k, dim) and profile.embedding == embedding_columns(k)
    assert list(profile.reference.columns) == ["clip_id", "path", *embedding_columns(k), *STATS, *PREDICTIONS]
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    val = raw[raw["split"] == "val"]
    assert len(profile.reference) + len(profile.meta["reference"]["unreadable"]) == len(val)
    assert set(profile.reference["clip_id"]) <= set(val["clip_id"])
    train_clips = json.loads((repo / "reports/features.json").read_text())["train_clips"]
    assert profile.meta["thresholds"] == params["drift"] and profile.meta["pca"]["clips"] == train_clips
    # The reference rows are what predict computes for those videos.
    row = profile.reference.iloc[0]
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    frames = video_input(repo / "data/raw" / row["path"], spec)[None]
    _, probs, embedding = load_backend(deploy, "onnxruntime")(frames)
    assert params["data"]["classes"][int(probs.argmax())] == row["predicted"]
    assert float(probs.max()) == pytest.approx(row["confidence"], abs=1e-5)
    np.testing.assert_allclose(profile.pca.transform(embedding)[0], row[profile.embedding].to_numpy(float), atol=1e-5)


def _drift(repo, batch, out):
    done = subprocess.run([sys.executable, "-m", "a3lign_dfer", "drift", str(batch), "--deploy",
                           str(repo / DEPLOY_DIR), "--out", str(out)], cwd=repo, capture_output=True, text=True)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    return done.returncode, summary, done.stdout + done.stderr


def test_drift_flags_shifted_batches_naming_what_moved(pipeline, drift_batches, tmp_path):
    """The drift command on two of the session's drift batches (the clean and the dark one go through the monitor
    flow in test_flows, on the same artifact). The class-mix shift needs a model that tells classes apart: the
    tiny one does not, so it is measured on the default artifact (a3lign_research.benchmarks.drift, README "Monitoring")."""
    from a3lign_dfer.monitoring.drift import EXIT_DRIFT, run_drift

    repo, _, _ = pipeline
    code, blur, out = _drift(repo, drift_batches["blur_noise"], tmp_path / "r_blur")
    assert code == EXIT_DRIFT and blur["drift"] and "DRIFT in blur_noise" in out, out
    assert DRIFT_SHIFTS["blur_noise"][1] in blur["alarm_columns"], blur["reasons"]
    assert blur["readable"] == 24 and [b["path"] for b in blur["bad_files"]] == \
        [str(drift_batches["blur_noise"] / "videos/broken.mp4")]
    assert json.loads((tmp_path / "r_blur/report.json").read_text())["metrics"]     # Evidently's results
    page = (tmp_path / "r_blur/report.html").read_text()
    assert "broken.mp4" in page and "DRIFT" in page and "sharpness" in page and "Drift in embeddings" in page

    assert run_drift([str(drift_batches["small_faces"])], repo / DEPLOY_DIR, tmp_path / "r_small") == EXIT_DRIFT
    summary = json.loads((tmp_path / "r_small/summary.json").read_text())
    assert DRIFT_SHIFTS["small_faces"][1] in summary["alarm_columns"], summary["reasons"]


def test_drift_without_a_readable_video_exits_1_and_still_writes_its_report(pipeline, tmp_path):
    repo, _, _ = pipeline
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video")
    pd.DataFrame({"path": ["empty.mp4", "text.mp4", "missing.mp4"]}).to_csv(tmp_path / "batch.csv", index=False)
    code, summary, out = _drift(repo, tmp_path / "batch.csv", tmp_path / "report")
    assert code == 1 and not summary["drift"] and summary["readable"] == 0, out
    assert [Path(b["path"]).name for b in summary["bad_files"]] == ["empty.mp4", "text.mp4", "missing.mp4"]
    assert "missing.mp4" in (tmp_path / "report/report.html").read_text()
    (tmp_path / "no_videos").mkdir()
    code, _, out = _drift(repo, tmp_path / "no_videos", tmp_path / "none")
    assert code == 2 and "no videos" in out


def test_multi_seed_command(pipeline):
    repo, params, _ = pipeline
    metrics = json.loads((repo / "reports/eval/metrics.json").read_text())
    before = (repo / "params.yaml").read_text()
    out = _run([sys.executable, "-m", "a3lign_research", "seeds", "--seeds", "0", "1"], repo)
    assert (repo / "params.yaml").read_text() == before
    assert re.findall(r"\[seeds\] (seed-\d):", out)[::2] == ["seed-0", "seed-1"]
    summary = json.loads((repo / "reports/seeds/summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["table4"]) == len(metrics["table4"])
    assert summary["final"]["uar"]["values"][0] == pytest.approx(metrics["uar"])   # seed 0 is the workspace run
    uar = summary["final"]["uar"]
    assert uar["mean"] == pytest.approx(sum(uar["values"]) / 2)
    assert uar["std"] == pytest.approx(abs(uar["values"][0] - uar["values"][1]) / 2 ** 0.5)
    exps = run_dvc(["exp", "show", "--no-pager", "--csv"], repo).stdout
    assert "seed-0" in exps and "seed-1" in exps
    assert "±" in (repo / "reports/seeds/summary.md").read_text()
