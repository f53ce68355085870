"""The real pipeline: `dvc repro` in a fresh DVC repo on a tiny params override."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).parents[1]
TINY = {
    "synthetic": {"identities": {"train": 6, "val": 3, "test": 3}, "clips_per_identity": 3, "min_frames": 12,
                  "max_frames": 18, "workers": 1},
    "face_crop": {"size": 48, "workers": 1},
    "pretrain_clip": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "heads": 2,
                      "projection_dim": 16, "epochs": 1, "batch_size": 64},
    "features": {"num_frames": 8, "augmented_views": 1},
    "model": {"sentences": 4, "tokens": 6, "heads": 2, "de_text_layers": 1},
    "stage1": {"epochs": 2},
    "stage2": {"layers": [1, 2], "epochs": [1, 1]},
    "stage2_text": {"layers": [2], "epochs": [1]},
    "stage3": {"init_layers": 1, "layers": [1, 2], "epochs": [1, 1]},
    "all_at_once": {"epochs": 1, "layers": 2},
    "evaluate": {"shuffle_seeds": [0, 1]},
}
TRAINING = ["train_stage1", "train_stage2", "train_stage2_text", "train_stage3"]
ABLATIONS = ["train_all_at_once@separate", "train_all_at_once@joint"]


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.mark.slow
def test_dvc_repro_end_to_end_and_incremental(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], repo)
    _run([sys.executable, "-m", "dvc", "init", "-q"], repo)
    # DVCLive needs a commit to exist (it reads HEAD), as in any real clone.
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "init"], repo)

    first = _stages_run(_run([sys.executable, "-m", "dvc", "repro"], repo))
    assert first[:4] == ["prepare", "face_crop", "pretrain_clip", "features"] and first[-1] == "evaluate"
    assert sorted(first[4:-1]) == sorted(TRAINING + ABLATIONS)
    assert [s for s in first if s in TRAINING] == TRAINING

    crop = json.loads((repo / "reports/face_crop.json").read_text())
    assert crop["accepted"] > 0 and crop["detection_rate"] > 0.5
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
    assert metrics["table4"][0]["shuffled_uar_drop"] == 0            # the frame-mean model ignores order
    assert metrics["table4"][-3]["uar"] == metrics["uar"]            # the last BAP row is the final model
    assert set(metrics["shuffled"]["per_class_recall"]) == set(classes)
    assert (repo / "reports/eval/confusion.png").stat().st_size > 1000
    for stage in ("stage1", "stage2", "stage2_text", "stage3"):
        meta = json.loads((repo / f"models/{stage}/meta.json").read_text())
        assert meta["stage"] == stage and (repo / f"models/{stage}/model.safetensors").exists()
        live = json.loads((repo / f"reports/train/{stage}/metrics.json").read_text())
        assert live["val"]["num_samples"] == features["val_clips"] and "uar_drop" in live["val"]["shuffled"]
        assert (repo / f"reports/train/{stage}/plots/metrics/val/uar.tsv").exists()

    assert _stages_run(_run([sys.executable, "-m", "dvc", "repro"], repo)) == []

    params["stage3"]["lr"]["encoder"] = params["stage3"]["lr"]["encoder"] / 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _stages_run(_run([sys.executable, "-m", "dvc", "repro"], repo)) == ["train_stage3", "evaluate"]

    # The multi-seed command: one DVC experiment per training seed, workspace untouched.
    before = (repo / "params.yaml").read_text()
    out = _run([sys.executable, "-m", "a3lign_dfer", "seeds", "--seeds", "0", "1"], repo)
    assert (repo / "params.yaml").read_text() == before
    assert re.findall(r"\[seeds\] (seed-\d):", out)[::2] == ["seed-0", "seed-1"]
    summary = json.loads((repo / "reports/seeds/summary.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["table4"]) == len(metrics["table4"])
    assert summary["final"]["uar"]["values"][0] == pytest.approx(metrics["uar"])   # seed 0 is the workspace run
    uar = summary["final"]["uar"]
    assert uar["mean"] == pytest.approx(sum(uar["values"]) / 2)
    assert uar["std"] == pytest.approx(abs(uar["values"][0] - uar["values"][1]) / 2 ** 0.5)
    exps = _run([sys.executable, "-m", "dvc", "exp", "show", "--no-pager", "--csv"], repo)
    assert "seed-0" in exps and "seed-1" in exps
    assert "±" in (repo / "reports/seeds/summary.md").read_text()
