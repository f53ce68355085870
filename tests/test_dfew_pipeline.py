"""A real dataset layout end to end: `dvc repro` on a tiny DFEW-layout tree (real JPEG frames), first with
the default clip.model (one line saying what to set), then with a CLIP folder; the drift monitor on frame
folders and on videos against its frame-folder reference; the `folds` command -> reports/folds."""
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import make_tiny_repo, run_cmd
from dataset_trees import DFEW_ORDER, make_dfew

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.orchestration.dvc_runner import run_dvc


@pytest.fixture(scope="module")
def dfew_repo(tmp_path_factory, tiny_clip_dir):
    base = tmp_path_factory.mktemp("dfew_pipeline")
    truth = make_dfew(base / "DFEW", clips_per_class=5, frames=(8, 12), size=40)   # 7 test clips per fold
    repo = base / "repo"
    params = make_tiny_repo(repo)
    params["data"].update(dataset="dfew", root=str(base / "DFEW"), fold=1, val_fraction=0.25)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The default clip.model is the small CLIP only the synthetic benchmark can pretrain: one line says so.
    first = run_dvc(["repro"], repo, check=False)
    ours = [line for line in first.stderr.splitlines() if line.startswith("a3lign_dfer ")]
    assert first.returncode != 0 and "Traceback" not in first.stdout + first.stderr, first.stderr
    assert len(ours) == 1 and ours[0].startswith("a3lign_dfer pretrain-clip: error: ") and \
        "set clip.model to a pretrained CLIP" in ours[0], first.stderr
    params["clip"]["model"] = str(tiny_clip_dir)        # a real CLIP folder: pretrain_clip skips itself
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_cmd(["git", "commit", "-qam", "dfew params"], repo)
    out = run_dvc(["repro"], repo).stdout
    run_cmd(["git", "add", "-A"], repo)
    run_cmd(["git", "commit", "-qm", "pipeline outputs"], repo)
    return repo, params, truth, re.findall(r"Running stage '([^']+)'", out)


def test_dvc_repro_on_a_dfew_tree_reaches_reports(dfew_repo):
    repo, _, truth, stages = dfew_repo
    assert stages[:2] == ["pretrain_clip", "features"]          # the first run imported, cropped and validated
    assert stages[-4:] == ["evaluate", "shuffle_check", "export", "report_page"]
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    assert set(raw["dataset"]) == {"dfew"} and sorted(raw["clip_id"]) == sorted(truth)
    assert dict(zip(raw["clip_id"], raw["label_name"])) == {c: name for c, (name, _) in truth.items()}
    assert raw.groupby("split").size().to_dict() == {"train": 21, "val": 7, "test": 7}
    crop = json.loads((repo / "reports/face_crop.json").read_text())
    assert (crop["accepted"], crop["frame_folders"], crop["detection_rate"]) == (35, 35, None)
    assert json.loads((repo / "models/clip_small/SKIPPED.json").read_text())["skipped"]
    features = json.loads((repo / "reports/features.json").read_text())
    assert (features["train_clips"], features["val_clips"], features["test_clips"]) == (21, 7, 7)
    metrics = json.loads((repo / "reports/eval/metrics.json").read_text())
    assert metrics["classes"] == list(DFEW_ORDER) and metrics["num_test_clips"] == 7
    assert json.loads((repo / DEPLOY_DIR / "labels.json").read_text())["classes"] == list(DFEW_ORDER)
    drift = json.loads((repo / DEPLOY_DIR / "manifest.json").read_text())["drift_reference"]
    assert drift["status"] == "written" and drift["reference_kinds"] == {"frames": 7}
    assert "No drift reports yet" in (repo / "reports/index.html").read_text()  # the page builds on real data
    assert re.findall(r"Running stage", run_dvc(["repro"], repo).stdout) == []


def test_folds_command_trains_each_fold_on_one_feature_pass(dfew_repo, scale):
    repo, params, truth, _ = dfew_repo
    before = (repo / "params.yaml").read_text()
    run_cmd([sys.executable, "-m", "a3lign_research", "folds", "--folds", "1", "2"], repo)
    assert (repo / "params.yaml").read_text() == before
    summary = json.loads((repo / "reports/folds/summary.json").read_text())
    assert summary["folds"] == [1, 2] and summary["dataset"] == "dfew"
    assert [(r["train_clips"] + r["val_clips"], r["test_clips"]) for r in summary["per_fold"]] == [(28, 7), (28, 7)]
    # Each fold is its own split of one pass: fold 1 tests the workspace's test clips, fold 2 clips 8-14.
    workspace_test = set(pd.read_csv(repo / "reports/eval/predictions.csv", dtype={"clip_id": str})["clip_id"])
    test = {f: set(pd.read_parquet(repo / f"data/folds/fold-{f}/test.parquet")["clip_id"]) for f in (1, 2)}
    assert test[1] == workspace_test == {f"{i:05d}" for i in range(1, 8)} and test[2] == {f"{i:05d}" for i in
                                                                                            range(8, 15)}
    pool = pd.read_parquet(repo / "data/folds/features/train.parquet")
    assert sorted(pool["clip_id"]) == sorted(truth)                      # every clip encoded once, all views
    assert json.loads((repo / "data/folds/fold-2/meta.json").read_text())["views"]["test"] == \
        1 + params["features"]["augmented_views"]
    uar = [r["uar"] for r in summary["per_fold"]]
    assert summary["uar"]["mean"] == pytest.approx(sum(uar) / 2)
    assert summary["uar"]["std"] == pytest.approx(abs(uar[0] - uar[1]) / 2 ** 0.5)
    assert [r["stage"] for r in summary["ladder"]] == ["stage1", "stage2", "stage2_text", "stage3"]
    assert summary["ladder"][-1]["test_uar"]["values"] == pytest.approx(uar)
    cost = summary["cost"]
    assert set(cost["training_s"]) == {"1", "2"} and cost["feature_shards_reused"] == 0
    md = (repo / "reports/folds/summary.md").read_text()
    assert "| 1 | 21 / 7 / 7 |" in md and "| 2 | 21 / 7 / 7 |" in md and "mean ± std" in md and "Cost: " in md
    # A second run computes no feature again: its feature pass (what `folds` runs before training) reuses
    # every shard.
    from a3lign_dfer.config.params import load_params
    from a3lign_dfer.data import manifest
    from a3lign_research.folds import feature_pass

    loaded = load_params(repo / "params.yaml")
    loaded = replace(loaded, scale=replace(loaded.scale, scheduler=scale.scheduler))
    crops = manifest.read(repo / "data/crops/manifest.parquet", tuple(loaded.data.classes))
    again = feature_pass(crops, repo / "data/crops", loaded, repo / "data/folds/features", "cpu")
    assert again["shards_reused"] == again["shards"] == cost["feature_shards"]



def _drift(repo: Path, batch: list[Path], out: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "a3lign_dfer", "drift", *map(str, batch), "--out", str(out)],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 3), done.stdout + done.stderr        # no drift, or drift flagged
    assert (out / "report.html").stat().st_size > 10_000 and (out / "report.json").exists()
    return json.loads((out / "summary.json").read_text())


def test_drift_on_frame_folders_and_on_videos_against_the_frame_folder_reference(dfew_repo, tmp_path):
    """The reference is the val clips' frame folders; a batch of frame folders compares like with like, a batch
    of raw videos (faces found by the face track) is compared too, with the caveat in its summary and report."""
    from a3lign_dfer.data.synthetic import render_clip
    from a3lign_dfer.data.video_io import write_video
    from conftest import PARAMS

    repo, params, truth, _ = dfew_repo
    folders = [Path(params["data"]["root"]) / "Clip/clip_224x224" / c for c in sorted(truth)[:10]]
    frames = _drift(repo, folders, tmp_path / "frames")
    assert (frames["kinds"], frames["readable"], frames["caveat"]) == ({"frames": 10}, 10, None)
    assert frames["reference"] == {"split": "val", "clips": 7, "kinds": {"frames": 7}}
    (tmp_path / "videos").mkdir()
    for i, label in enumerate(("happy", "sad", "angry")):
        write_video(render_clip(PARAMS.synthetic, label, 0, i, i).frames, tmp_path / "videos" / f"{label}.mp4", 12)
    videos = _drift(repo, [tmp_path / "videos"], tmp_path / "videos_report")
    assert (videos["kinds"], videos["readable"]) == ({"video": 3}, 3)
    assert videos["caveat"].startswith("the reference is a dataset's aligned face crops (frame folders) and this "
                                       "batch holds raw videos through the face track")
    assert "<b>Caveat</b>: the reference is" in (tmp_path / "videos_report/report.html").read_text()
