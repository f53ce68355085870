"""The Prefect flows against a real Prefect backend (prefect_test_harness, started once for the session) on
the session's tiny pipeline, whose first run was the pipeline flow (conftest `built_pipeline`): that run, a
failing stage, a run with changed params, the release gate and registry, the drift monitor on a clean and a
shifted batch, and the deployments read back through the client."""
import json
import subprocess
import sys

import pytest
import yaml
from conftest import copy_repo, run_cmd

from a3lign_dfer.orchestration.dvc_runner import run_dvc


def _task_runs_and_artifacts(state):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, FlowRunFilter

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id={"any_": [flow_run_id]}))
    return {t.name: t.state.type.value for t in tasks}, {a.key: a.data for a in artifacts}


@pytest.fixture(scope="module")
def flow_repo(built_pipeline, tmp_path_factory):
    """A copy of the session's tiny pipeline as the pipeline flow's first run left it, and that run's state
    (conftest `built_pipeline`: its sharded stages ran on the session's Dask cluster)."""
    built, _, state = built_pipeline
    return copy_repo(built, tmp_path_factory.mktemp("flows") / "repo"), state


def _stage_names(repo):
    from a3lign_dfer.orchestration.dvc_stages import pipeline_stages

    return [s.name for s in pipeline_stages(repo)]


def test_pipeline_flow_runs_every_stage_as_a_task_with_its_metrics(flow_repo, scale):
    repo, state = flow_repo
    assert state.is_completed(), state.message
    tasks, artifacts = _task_runs_and_artifacts(state)
    names = _stage_names(repo)
    assert names[:5] == ["prepare", "face_crop", "validate", "pretrain_clip", "features"]
    assert names[-4:] == ["evaluate", "shuffle_check", "export", "report_page"]
    assert tasks == {name: "COMPLETED" for name in names}
    result = state.result()
    assert result["ran"] == names and result["up_to_date"] == []
    # Metrics as markdown artifacts: the stage's own numbers, readable without opening files.
    evaluation = json.loads((repo / "reports/eval/metrics.json").read_text())
    assert f"| uar | {evaluation['uar']:.4g} |" in artifacts["evaluate-metrics"]
    assert "### table4" in artifacts["evaluate-metrics"]
    shuffle = json.loads((repo / "reports/shuffle/metrics.json").read_text())
    assert f"| shuffled.uar_drop | {shuffle['shuffled']['uar_drop']:.4g} |" in artifacts["shuffle-check-metrics"]
    assert "| detection_rate |" in artifacts["face-crop-metrics"]
    # The flow's dask_scheduler reached the sharded stages: their tasks ran on that cluster.
    from distributed import Client

    with Client(scale.scheduler, timeout=10) as client:
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    assert {"face-crops", "features"} <= set(prefixes), prefixes
    assert "| parity.passed | True |" in artifacts["export-metrics"]
    assert "| val.uar |" in artifacts["train-stage3-metrics"]
    assert "train-all-at-once-joint-metrics" in artifacts and "pipeline-summary" in artifacts
    # Recorded: dvc.lock and the metrics are committed, the workspace matches it.
    assert run_cmd(["git", "status", "--porcelain", "--untracked-files=no"], repo) == ""
    assert "pipeline flow run" in run_cmd(["git", "log", "-1", "--format=%s"], repo)
    assert json.loads(run_dvc(["status", "--json"], repo).stdout) == {}


def _set_release(repo, **values):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["release"].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _tags(repo):
    return run_cmd(["git", "tag", "--list"], repo).split()


def test_release_gate_refuses_a_model_below_threshold_and_registers_one_above(flow_repo):
    from flows.release import release

    repo, _ = flow_repo
    uar = json.loads((repo / "reports/eval/metrics.json").read_text())["uar"]
    drop = json.loads((repo / "reports/shuffle/metrics.json").read_text())["shuffled"]["uar_drop"]

    _set_release(repo, min_test_uar=uar + 0.01, min_shuffled_uar_drop=drop - 0.01)
    state = release(str(repo), return_state=True)
    assert state.is_failed()
    assert "quality gate failed" in state.message and "test UAR" in state.message and "shuffled" not in \
        state.message.split("\n")[0]
    _, artifacts = _task_runs_and_artifacts(state)
    assert "| test UAR |" in artifacts["release-gate"] and "FAIL" in artifacts["release-gate"]
    _set_release(repo, min_test_uar=uar - 0.01, min_shuffled_uar_drop=drop + 0.01)   # an order-blind model
    state = release(str(repo), return_state=True)
    assert state.is_failed() and "shuffled-frame UAR drop" in state.message
    assert _tags(repo) == []

    # Passing gate, but params.yaml is not committed: the registry would tag a commit without this build.
    _set_release(repo, min_test_uar=uar - 0.01, min_shuffled_uar_drop=drop - 0.01)
    state = release(str(repo), return_state=True)
    assert state.is_failed() and "not the committed one" in state.message and _tags(repo) == []

    run_cmd(["git", "commit", "-qam", "release thresholds"], repo)
    state = release(str(repo), return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["version"] == "v0.1.0"
    shown = json.loads(run_cmd([str(__import__("pathlib").Path(sys.executable).parent / "gto"), "show", "--json"],
                               repo))["a3lign-dfer"]
    assert shown["stage"] == {"staging": "v0.1.0"}                   # prod only when asked
    state = release(str(repo), promote_to_prod=True, return_state=True)
    assert state.is_completed() and state.result()["stages"] == {"staging": "v0.1.0", "prod": "v0.1.0"}
    _, artifacts = _task_runs_and_artifacts(state)
    assert "**v0.1.0**" in artifacts["release-registry"]


def test_changed_params_rerun_only_the_stages_they_reach_as_a_dvc_experiment_and_params_restored(flow_repo):
    """One `dvc status` finds train_stage3 changed; what reads its outputs is re-run after it; no other stage
    calls DVC (the plain `dvc repro` of the same change re-runs the same stages: DVC's own tracking)."""
    from flows.pipeline import pipeline

    repo, _ = flow_repo
    before = (repo / "params.yaml").read_text()
    lr = yaml.safe_load(before)["stage3"]["lr"]["encoder"] / 2
    state = pipeline(str(repo), set_params=[f"stage3.lr.encoder={lr}"], return_state=True)
    assert state.is_completed(), state.message
    assert state.result()["ran"] == ["train_stage3", "evaluate", "shuffle_check", "export", "report_page"]
    tasks, artifacts = _task_runs_and_artifacts(state)
    assert set(tasks.values()) == {"COMPLETED"} and len(tasks) == len(_stage_names(repo))   # every stage a task
    assert "Up to date (not recomputed)" in artifacts["train-stage1-metrics"]
    assert (repo / "params.yaml").read_text() == before
    assert run_cmd(["git", "status", "--porcelain", "--untracked-files=no"], repo) == ""
    exp = state.result()["recorded"].split("`")[1]
    assert exp in run_dvc(["exp", "show", "--no-pager", "--csv"], repo).stdout
    rev = _exp_rev(repo, exp)
    assert yaml.safe_load(run_cmd(["git", "show", f"{rev}:params.yaml"], repo))["stage3"]["lr"]["encoder"] == lr
    lock = yaml.safe_load(run_cmd(["git", "show", f"{rev}:dvc.lock"], repo))
    assert lock["stages"]["train_stage3"]["params"]["params.yaml"]["stage3"]["lr"]["encoder"] == lr
    # The workspace is the commit again: its own dvc.lock, not the experiment's.
    assert json.loads(run_dvc(["status", "--json"], repo).stdout) == {}


def _exp_rev(repo, name):
    refs = [r for r in run_cmd(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo).split()
            if r.endswith(f"/{name}")]
    assert len(refs) == 1, refs
    return refs[0]


def test_a_failing_stage_fails_the_flow_with_its_message_and_stops_the_pipeline(flow_repo):
    from flows.pipeline import pipeline

    repo, _ = flow_repo
    state = pipeline(str(repo), set_params=["stage3.lr.mat=abc"], return_state=True)
    assert state.is_failed()
    assert "stage 'train_stage3' failed" in state.message and "stage3.lr.mat must be float" in state.message
    tasks, _ = _task_runs_and_artifacts(state)
    names = _stage_names(repo)
    before = names[:names.index("train_stage3")]
    assert tasks["train_stage3"] == "FAILED" and all(tasks[n] == "COMPLETED" for n in before)
    assert not {"evaluate", "shuffle_check", "export", "report_page"} & set(tasks)   # later stages never ran
    assert "lr:\n    mat: abc" not in (repo / "params.yaml").read_text()
    assert run_cmd(["git", "status", "--porcelain", "--untracked-files=no"], repo) == ""


def test_monitor_flow_passes_a_clean_batch_and_fails_red_on_a_shifted_one(flow_repo, drift_batches, tmp_path):
    """The session's clean and dark drift batches arrive in a watched folder on Monday and Tuesday (the drift
    command's own tests in test_pipeline take the other two)."""
    import os

    from flows.monitor import monitor

    from a3lign_dfer.monitoring.summary import DriftSummary

    repo, _ = flow_repo
    watch, reports = tmp_path / "incoming", tmp_path / "drift"
    watch.mkdir()
    (watch / "monday").symlink_to(drift_batches["clean"], target_is_directory=True)
    state = monitor(str(watch), repo=str(repo), reports=str(reports), return_state=True)
    assert state.is_completed(), state.message
    tasks, artifacts = _task_runs_and_artifacts(state)
    assert tasks == {"newest_batch": "COMPLETED", "drift_check": "COMPLETED"}
    assert "# No drift: batch `monday`" in artifacts["drift-summary"]
    assert (reports / "monday/report.html").as_uri() in artifacts["drift-summary"]
    assert artifacts["drift-report"].endswith(f"({(reports / 'monday/report.html').as_uri()})")
    clean = state.result()
    assert clean["drift"] is False and clean["readable"] == clean["videos"] == 24 and clean["bad_files"] == []
    assert clean == DriftSummary.load(reports / "monday/summary.json").to_dict()   # what it wrote, read back
    assert json.loads((reports / "monday/report.json").read_text())["metrics"]     # Evidently's results

    (watch / "tuesday").symlink_to(drift_batches["dark"], target_is_directory=True)
    later = (watch / "monday").stat().st_mtime + 60
    os.utime(watch / "tuesday", (later, later))                      # the newest batch is the one checked
    state = monitor(str(watch), repo=str(repo), reports=str(reports), return_state=True)
    assert state.is_failed() and "DRIFT in tuesday: " in state.message and "brightness" in state.message
    tasks, artifacts = _task_runs_and_artifacts(state)
    assert tasks == {"newest_batch": "COMPLETED", "drift_check": "COMPLETED"}   # the check ran; the run is red
    assert "# DRIFT: batch `tuesday`" in artifacts["drift-summary"] and "brightness" in artifacts["drift-summary"]
    dark = json.loads((reports / "tuesday/summary.json").read_text())
    assert dark["drift"] and "brightness" in dark["alarm_columns"]
    assert dark["columns"]["brightness"]["current_mean"] < 0.6 * dark["columns"]["brightness"]["reference_mean"]


def test_deployments_register_with_their_schedules(prefect_backend):
    from prefect import get_client

    from flows.deployments import MONITOR_WATCH, ROOT, deployments

    for deployment in deployments():
        deployment.apply()
    with get_client(sync_client=True) as client:
        weekly = client.read_deployment_by_name("a3lign-dfer-pipeline/weekly")
        on_demand = client.read_deployment_by_name("a3lign-dfer-release/on-demand")
        daily = client.read_deployment_by_name("a3lign-dfer-monitor/daily")
    # As README "Orchestration" states them: Mondays 03:00, daily 06:00, one run at a time each.
    assert [s.schedule.cron for s in weekly.schedules] == ["0 3 * * 1"] and weekly.schedules[0].active
    assert on_demand.schedules == []
    assert weekly.parameters == {"repo": str(ROOT)} and "training" in weekly.tags and weekly.description
    assert "registry" in on_demand.tags and "staging" in on_demand.description
    assert weekly.global_concurrency_limit.limit == 1               # one pipeline run at a time
    assert [s.schedule.cron for s in daily.schedules] == ["0 6 * * *"] and daily.schedules[0].active
    assert daily.global_concurrency_limit.limit == 1                # one monitor run at a time
    assert daily.parameters == {"repo": str(ROOT), "watch": MONITOR_WATCH} and "monitoring" in daily.tags
    assert "drift" in daily.description


def test_flow_modules_import_without_running_anything():
    done = subprocess.run([sys.executable, "-c", "import flows.deployments"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
