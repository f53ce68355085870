"""MAFW's 11 classes on the synthetic benchmark, through the pipeline: `dvc repro export` with data.classes set to
MAFW's class list (a params change, docs/data.md), then `predict` on a clip of a class DFEW does not have."""
import json

import pandas as pd
import pytest
import yaml
from conftest import make_tiny_repo, run_cli, stages_run

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.data.importers.mafw import ORDER
from a3lign_dfer.orchestration.dvc_runner import run_dvc


@pytest.fixture(scope="module")
def eleven_class_repo(tmp_path_factory, tiny_clip_dir):
    repo = tmp_path_factory.mktemp("eleven") / "repo"
    params = make_tiny_repo(repo)
    params["clip"]["model"] = str(tiny_clip_dir)      # a CLIP folder: pretrain_clip skips itself
    params["data"]["classes"] = list(ORDER)
    params["synthetic"]["class_weights"] = [1.0] * len(ORDER)
    params["synthetic"]["identities"] = {"train": 8, "val": 4, "test": 4}    # 24 training clips for 11 classes
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = stages_run(run_dvc(["repro", "export"], repo).stdout)
    return repo, ran


def test_eleven_classes_train_evaluate_and_export(eleven_class_repo):
    repo, ran = eleven_class_repo
    assert ran[0] == "prepare" and ran[-1] == "export" and "evaluate" in ran and "train_stage3" in ran
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    assert set(raw.query("split == 'train'")["label_name"]) == set(ORDER)       # every class is trained on
    prompts = json.loads((repo / "data/raw/class_prompts.json").read_text())
    assert list(prompts) == list(ORDER) and len(set(prompts.values())) == 10   # fear and surprise: same apex
    metrics = json.loads((repo / "reports/eval/metrics.json").read_text())
    assert metrics["classes"] == list(ORDER) and metrics["chance_uar"] == pytest.approx(1 / 11)
    assert set(metrics["per_class_recall"]) | set(metrics["absent_classes"]) == set(ORDER)
    predictions = pd.read_csv(repo / "reports/eval/predictions.csv")
    assert len(predictions) == metrics["num_test_clips"] and set(predictions["predicted"]) <= set(ORDER)
    assert json.loads((repo / DEPLOY_DIR / "labels.json").read_text())["classes"] == list(ORDER)


def test_predict_names_one_of_the_eleven_classes(eleven_class_repo, capsys):
    repo, _ = eleven_class_repo
    clip = pd.read_parquet(repo / "data/raw/manifest.parquet").query("label_name == 'contempt'")["path"].iloc[0]
    out = run_cli(["predict", str(repo / "data/raw" / clip), "--deploy", str(repo / DEPLOY_DIR), "--json"], repo,
                  capsys)
    answer = json.loads([line for line in out.splitlines() if line.startswith("{")][0])
    assert answer["label"] in ORDER and list(answer["probabilities"]) == list(ORDER)
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
