"""The real pipeline: `dvc repro` in a fresh DVC repo on a tiny params override."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
TINY = {
    "synthetic": {"num_identities": 10, "clips_per_identity": 3, "min_frames": 12, "max_frames": 18,
                  "workers": 1},
    "face_crop": {"size": 48, "workers": 1},
    "pretrain_clip": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 1, "heads": 2,
                      "projection_dim": 16, "epochs": 1, "batch_size": 64},
    "features": {"num_frames": 8, "augmented_views": 1},
    "model": {"sentences": 4, "tokens": 6, "heads": 2},
    "stage1": {"epochs": 2},
    "stage2": {"layers": [1, 2], "epochs": [1, 1]},
    "stage3": {"init_layers": 1, "layers": [1, 2], "epochs": [1, 1]},
    "evaluate": {"shuffle_seeds": [0, 1]},
}


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

    first = _run([sys.executable, "-m", "dvc", "repro"], repo)
    assert _stages_run(first) == ["prepare", "face_crop", "pretrain_clip", "features", "train_stage1",
                                  "train_stage2", "train_stage3", "evaluate"]

    crop = json.loads((repo / "reports/face_crop.json").read_text())
    assert crop["accepted"] > 0 and crop["detection_rate"] > 0.5
    metrics = json.loads((repo / "reports/eval/metrics.json").read_text())
    assert 0.0 <= metrics["uar"] <= 1.0 and set(metrics["per_class_recall"]) == set(params["data"]["classes"])
    assert len(metrics["shuffled"]["runs"]) == 2 and set(metrics["stages"]) == {"stage1", "stage2", "stage3"}
    assert (repo / "reports/eval/confusion.png").stat().st_size > 1000
    for stage in (1, 2, 3):
        meta = json.loads((repo / f"models/stage{stage}/meta.json").read_text())
        assert meta["stage"] == stage and (repo / f"models/stage{stage}/model.safetensors").exists()
        assert (repo / f"reports/train/stage{stage}/plots/metrics/val/uar.tsv").exists()

    assert _stages_run(_run([sys.executable, "-m", "dvc", "repro"], repo)) == []

    params["stage3"]["lr"] = params["stage3"]["lr"] / 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _stages_run(_run([sys.executable, "-m", "dvc", "repro"], repo)) == ["train_stage3", "evaluate"]
