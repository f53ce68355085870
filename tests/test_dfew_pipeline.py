"""A real dataset layout end to end: `dvc repro` on a tiny DFEW-layout tree (real JPEG frames),
then the `folds` command (one DVC experiment per official fold) -> reports/folds."""
import io
import json
import re
import sys

import pandas as pd
import pytest
import yaml
from conftest import make_tiny_repo, run_cmd
from dataset_trees import DFEW_ORDER, make_dfew

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dfew_repo(tmp_path_factory, tiny_clip_dir):
    base = tmp_path_factory.mktemp("dfew_pipeline")
    truth = make_dfew(base / "DFEW", clips_per_class=5, frames=(8, 12), size=40)   # 7 test clips per fold
    repo = base / "repo"
    params = make_tiny_repo(repo)
    params["data"].update(dataset="dfew", root=str(base / "DFEW"), fold=1, val_fraction=0.25)
    params["clip"]["model"] = str(tiny_clip_dir)        # a real CLIP folder: pretrain_clip skips itself
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_cmd(["git", "commit", "-qam", "dfew params"], repo)
    out = run_cmd([sys.executable, "-m", "dvc", "repro"], repo)
    run_cmd(["git", "add", "-A"], repo)
    run_cmd(["git", "commit", "-qm", "pipeline outputs"], repo)
    return repo, params, truth, re.findall(r"Running stage '([^']+)'", out)


def test_dvc_repro_on_a_dfew_tree_reaches_reports(dfew_repo):
    repo, _, truth, stages = dfew_repo
    assert stages[:5] == ["prepare", "face_crop", "validate", "pretrain_clip", "features"]
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
    assert json.loads((repo / "models/deploy/labels.json").read_text())["classes"] == list(DFEW_ORDER)
    drift = json.loads((repo / "models/deploy/manifest.json").read_text())["drift_reference"]
    assert drift["status"] == "skipped" and "frame-folder" in drift["reason"]   # the monitor reads videos
    assert "No drift reports yet" in (repo / "reports/index.html").read_text()  # the page builds on real data
    assert re.findall(r"Running stage", run_cmd([sys.executable, "-m", "dvc", "repro"], repo)) == []


def test_folds_command_writes_per_fold_and_mean_std(dfew_repo):
    repo, _, _, _ = dfew_repo
    workspace = json.loads((repo / "reports/eval/metrics.json").read_text())
    workspace_test = set(pd.read_csv(repo / "reports/eval/predictions.csv")["clip_id"].astype(int))
    before = (repo / "params.yaml").read_text()
    out = run_cmd([sys.executable, "-m", "a3lign_dfer", "folds", "--folds", "1", "2"], repo)
    assert (repo / "params.yaml").read_text() == before
    assert re.findall(r"\[folds\] (fold-\d): dvc exp run", out) == ["fold-1", "fold-2"]
    summary = json.loads((repo / "reports/folds/summary.json").read_text())
    assert summary["folds"] == [1, 2] and [r["test_clips"] for r in summary["per_fold"]] == [7, 7]
    # Each fold's numbers are what that fold's own evaluate wrote (fold 1 is the workspace run).
    fold2 = summary["experiments"]["2"]
    report = json.loads(run_cmd(["git", "show", f"{fold2}:reports/eval/metrics.json"], repo))
    assert [x for r in summary["per_fold"] for x in (r["uar"], r["war"])] == \
        pytest.approx([workspace["uar"], workspace["war"], report["uar"], report["war"]])
    uar = [r["uar"] for r in summary["per_fold"]]
    assert summary["uar"]["mean"] == pytest.approx(sum(uar) / 2)
    assert summary["uar"]["std"] == pytest.approx(abs(uar[0] - uar[1]) / 2 ** 0.5)
    assert summary["war"]["mean"] == pytest.approx((workspace["war"] + report["war"]) / 2)
    # Each fold's experiment imported its own fold: fold 2 tests clips 8-14, never fold 1's.
    fold2_test = set(pd.read_csv(io.StringIO(run_cmd(["git", "show", f"{fold2}:reports/eval/predictions.csv"], repo)))
                     ["clip_id"].astype(int))
    assert report["num_test_clips"] == 7 and (workspace_test, fold2_test) == (set(range(1, 8)), set(range(8, 15)))
    lock = yaml.safe_load(run_cmd(["git", "show", f"{fold2}:dvc.lock"], repo))
    assert lock["stages"]["prepare"]["params"]["params.yaml"]["data"]["fold"] == 2
    md = (repo / "reports/folds/summary.md").read_text()
    assert "| 1 | 7 |" in md and "| 2 | 7 |" in md and "mean ± std" in md
    exps = run_cmd([sys.executable, "-m", "dvc", "exp", "show", "--no-pager", "--csv"], repo)
    assert "fold-1" in exps and "fold-2" in exps
