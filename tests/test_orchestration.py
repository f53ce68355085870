"""The orchestration layer on a two-stage DVC repo the test writes (seconds, no ML): stage order,
one stage run alone, the lock-only retry, failures with the stage's own message, metrics markdown,
params applied only to a clean workspace, results committed."""
import json

import pytest
import yaml
from conftest import PARAMS, ROOT, run_cmd

from a3lign_dfer.orchestration import experiments
from a3lign_dfer.orchestration.dvc_runner import run_dvc
from a3lign_dfer.orchestration.dvc_stages import DvcLocked, StageFailed, changed_stages, metrics_markdown, \
    pipeline_stages, repro_stage

DVC_YAML = {"stages": {
    "make": {"cmd": "python make.py", "deps": ["make.py"], "params": ["n"], "outs": ["data.txt"]},
    "score": {"foreach": ["a", "b"], "do": {
        "cmd": "python score.py ${item}", "deps": ["data.txt", "score.py"],
        "metrics": [{"scores/${item}.json": {"cache": False}}]}},
}}
MAKE = "import yaml\nn = yaml.safe_load(open('params.yaml'))['n']\nopen('data.txt', 'w').write('x' * n)\n"
SCORE = ("import json, os, sys\nos.makedirs('scores', exist_ok=True)\nn = len(open('data.txt').read())\n"
         "assert n > 0, 'data.txt is empty: n must be positive'\n"
         "json.dump({'n': n, 'val': {'uar': n / 10}, 'rows': [{'k': sys.argv[1], 'v': 1.5}]}, "
         "open(f'scores/{sys.argv[1]}.json', 'w'))\n")


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (tmp_path / "params.yaml").write_text("n: 3\n")
    (tmp_path / "make.py").write_text(MAKE)
    (tmp_path / "score.py").write_text(SCORE)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.name", "t"], ["git", "config", "user.email", "t@x"]):
        run_cmd(cmd, tmp_path)
    run_dvc(["init", "-q"], tmp_path)
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run_cmd(cmd, tmp_path)
    return tmp_path


def test_stages_in_file_order_run_alone_and_report_up_to_date(repo):
    stages = pipeline_stages(repo)
    assert [s.name for s in stages] == ["make", "score@a", "score@b"]
    assert stages[1].metrics == ("scores/a.json",) and stages[1].git_outputs == ("scores/a.json",)
    assert [s.upstream for s in stages] == [(), ("make",), ("make",)]
    assert changed_stages(repo) == {"make", "score@a", "score@b"}            # nothing ran yet
    lines = []
    first = repro_stage("make", repo, on_line=lines.append)
    assert first.ran and "Running stage 'make'" in lines[0] and not (repo / "scores").exists()   # this stage only
    assert changed_stages(repo) == {"score@a", "score@b"}
    assert not repro_stage("make", repo, on_line=lambda line: None).ran
    run = repro_stage("score@a", repo, on_line=lambda line: None)
    markdown = metrics_markdown(stages[1], run, repo)
    assert "| n | 3 |" in markdown and "| val.uar | 0.3 |" in markdown and "| k | v |" in markdown
    assert "| a | 1.5 |" in markdown


def test_a_stage_listed_before_its_input_is_refused(repo):
    stages = DVC_YAML["stages"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"score": stages["score"], "make": stages["make"]}}, sort_keys=False))
    with pytest.raises(ValueError, match="lists score@a before make, which makes its input data.txt"):
        pipeline_stages(repo)


def test_failure_carries_the_stage_output_and_only_a_held_lock_is_retried(repo):
    from dvc.repo import Repo
    from prefect.states import Failed

    from flows.pipeline import _lock_held

    (repo / "params.yaml").write_text("n: 0\n")
    repro_stage("make", repo, on_line=lambda line: None)
    with pytest.raises(StageFailed, match=r"(?s)stage 'score@a' failed.*n must be positive"):
        repro_stage("score@a", repo, on_line=lambda line: None)
    with Repo(str(repo)) as dvc, dvc.lock:
        with pytest.raises(DvcLocked, match="Unable to acquire lock"):
            repro_stage("make", repo, on_line=lambda line: None)
    assert _lock_held(None, None, Failed(data=DvcLocked("locked")))
    assert not _lock_held(None, None, Failed(data=StageFailed("broken")))


def test_params_apply_only_to_a_clean_workspace_and_results_commit(repo):
    (repo / "make.py").write_text(MAKE + "# edited\n")
    with pytest.raises(RuntimeError, match="clean committed workspace.*make.py"):
        experiments.apply_params(repo, ["n=5"])
    run_cmd(["git", "checkout", "--", "make.py"], repo)
    experiments.apply_params(repo, ["n=5"])
    assert yaml.safe_load((repo / "params.yaml").read_text()) == {"n": 5}
    experiments.restore_committed(repo)
    assert yaml.safe_load((repo / "params.yaml").read_text()) == {"n": 3}

    stages = pipeline_stages(repo)
    for stage in stages:
        repro_stage(stage.name, repo, on_line=lambda line: None)
    rev = experiments.commit_results(repo, stages, "results")
    assert rev and experiments.uncommitted(repo) == []
    assert json.loads(run_cmd(["git", "show", f"{rev}:scores/b.json"], repo))["n"] == 3
    assert experiments.commit_results(repo, stages, "again") is None      # nothing changed, nothing committed


def test_gate_holds_tensorrt_to_parity_only_where_an_engine_was_built():
    from dataclasses import replace

    from a3lign_dfer.registry.release import built_metrics, quality_gate

    gate = replace(PARAMS.release, min_test_uar=0.7, min_shuffled_uar_drop=0.05)
    built = built_metrics(ROOT)                                        # the committed reports, read as the gate reads
    metrics = replace(built, evaluation=replace(built.evaluation, uar=0.8),
                      shuffle=replace(built.shuffle, shuffled=replace(built.shuffle.shuffled, uar_drop=0.1)),
                      export=replace(built.export, parity=replace(built.export.parity, passed=True),
                                     tensorrt={"status": "skipped", "reason": "not installed"}))
    assert [(c.name, c.passed) for c in quality_gate(metrics, gate)] == [
        ("test UAR", True), ("shuffled-frame UAR drop", True), ("ONNX Runtime vs PyTorch parity", True)]
    metrics = replace(metrics, export=replace(metrics.export, tensorrt={"parity_fp16_vs_onnxruntime": {"passed": False}}),
                      shuffle=replace(metrics.shuffle, shuffled=replace(metrics.shuffle.shuffled, uar_drop=0.0)))
    failed = [c.name for c in quality_gate(metrics, gate) if not c.passed]   # an order-blind model, a failed engine
    assert failed == ["shuffled-frame UAR drop", "TensorRT FP16 vs ONNX Runtime parity"]
