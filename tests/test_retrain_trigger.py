"""Drift triggers retraining: the monitor's event (name, resource, payload) built from a drift summary, and sent by
the real monitor flow for the session's dark batch only; the feedback export versioned and committed so the release
can register the build (the pipeline flow still reading dvc.yaml's stages beside its .dvc file); the retrain flow's
chain (feedback export, then the pipeline and release flows as subflow runs); and, on a real Prefect server, the
deployment trigger: the event starts one retrain run with the event's batch and summary as its parameters, a second
event during the cool-down starts none, and with the cool-down off the deployment's concurrency limit cancels a run
that would start beside a running one. The UI shows the automation and the chain of runs (headless Chromium, where
installed).

The trigger tests serve a stand-in of the retrain flow (same name, same parameters, the deployment built by the
same `retrain_deployment`) that waits for the test to let it finish; the real chain's stages are tested in
test_flows and the loop's end-to-end test."""
from __future__ import annotations

import datetime
import importlib
import inspect
import json
import os
import sys
import time
from concurrent.futures import wait
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from a3lign_research.ui_check import PrefectServer, serve_deployments
from conftest import PARAMS, ROOT, run_cmd
from prefect_runs import POLL_FAST, child_runs, deployment_runs, retrain_deployment_of, trigger_loaded, until

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.monitoring.results import ClassMixDrift, ColumnDrift, EmbeddingDrift
from a3lign_dfer.monitoring.summary import Comparison, DriftSummary
from a3lign_dfer.orchestration.dvc_runner import run_dvc

SHA = "5e" * 32
CLASSES = PARAMS.data.classes


def drift_summary(batch: str) -> DriftSummary:
    """A flagged batch's check as the drift command returns it: brightness and one embedding component moved."""
    ps = {"emb_02": 1e-9, "emb_03": 0.3, "brightness": 1e-7, "contrast": 0.4}
    comparison = Comparison(
        columns={c: ColumnDrift(p, "ks", 0.05, p < 0.05, 1.0, 0.4 if c == "brightness" else 1.0)
                 for c, p in ps.items()},
        class_mix=ClassMixDrift(0.5, "TVD", 0.05, False, {"happy": 1.0}, {"happy": 1.0}),
        confidence=ColumnDrift(0.5, "ks", 0.05, False, 0.8, 0.8),
        embedding=EmbeddingDrift(0.31, 32), thresholds=PARAMS.drift)
    folder = f"/srv/a3lign/reports/drift/{batch}"
    return DriftSummary(batch, [f"data/batches/{batch}"], 24, 24, [], "val", 240, str(DEPLOY_DIR), "onnxruntime",
                        f"{folder}/report.html", f"{folder}/report.json", comparison)


def test_drift_event_names_the_batch_and_build_and_carries_the_summary():
    from prefect.events import Resource

    from flows.deployments import retrain_trigger
    from flows.monitor import DRIFT_EVENT, drift_event

    event = drift_event(drift_summary("tuesday"), SHA)
    assert event["event"] == DRIFT_EVENT == "a3lign-dfer.drift.detected"
    assert event["resource"] == {"prefect.resource.id": f"a3lign-dfer.batch.tuesday@{SHA[:12]}",
                                 "prefect.resource.name": "tuesday", "a3lign-dfer.artifact.sha256": SHA}
    assert event["related"] == [{"prefect.resource.id": f"a3lign-dfer.artifact.{SHA}",
                                 "prefect.resource.role": "model", "prefect.resource.name": str(DEPLOY_DIR)}]
    payload = event["payload"]
    assert payload["batch"] == "tuesday" and payload["verdict"] == "DRIFT" and payload["artifact_sha256"] == SHA
    assert payload["drifted_columns"] == ["emb_02", "brightness"] and payload["embedding_score"] == 0.31
    assert "brightness" in payload["alarm_columns"] and any("brightness" in r for r in payload["reasons"])
    assert payload["report"] == "/srv/a3lign/reports/drift/tuesday/report.html"
    assert json.loads(json.dumps(payload)) == payload                 # plain JSON: what Prefect stores and renders
    trigger = retrain_trigger()                                       # the automation listens for exactly this
    assert trigger.expect == {DRIFT_EVENT}
    assert trigger.match.matches(Resource(event["resource"]))
    assert not trigger.match.matches(Resource({"prefect.resource.id": "prefect.flow-run.1234"}))


def test_monitor_emits_the_drift_event_for_a_flagged_batch_only(built_pipeline, drift_batches, tmp_path):
    """The real monitor flow on the session's clean and dark batches: the clean one sends nothing, the dark one's
    failing run sends the event, naming the built model and linked to the run."""
    from prefect import get_client
    from prefect.events.worker import EventsWorker

    from a3lign_dfer.checksums import sha256
    from flows.monitor import DRIFT_EVENT, monitor

    repo, _, _ = built_pipeline
    watch, reports = tmp_path / "incoming", tmp_path / "drift"
    watch.mkdir()
    (watch / "clean-monday").symlink_to(drift_batches["clean"], target_is_directory=True)
    clean = monitor(str(watch), repo=str(repo), reports=str(reports), return_state=True)
    assert clean.is_completed(), clean.message
    (watch / "dark-tuesday").symlink_to(drift_batches["dark"], target_is_directory=True)
    later = (watch / "clean-monday").stat().st_mtime + 60
    os.utime(watch / "dark-tuesday", (later, later), follow_symlinks=False)
    dark = monitor(str(watch), repo=str(repo), reports=str(reports), return_state=True)
    assert dark.is_failed() and "DRIFT in dark-tuesday" in dark.message
    EventsWorker.drain_all()

    runs = {f"prefect.flow-run.{state.state_details.flow_run_id}" for state in (clean, dark)}

    def sent():
        """This test's runs' events only: the session's server also holds other tests' events (test_loop's batch
        has the same name)."""
        with get_client(sync_client=True) as client:
            response = client._client.post("/events/filter", json={"filter": {"event": {"name": [DRIFT_EVENT]}},
                                                                   "limit": 50})
        return [e for e in response.json()["events"]
                if runs & {r["prefect.resource.id"] for r in e["related"]}]

    events = until("the dark batch's event is stored", sent)
    time.sleep(3)
    assert [e["payload"]["batch"] for e in sent()] == ["dark-tuesday"]         # nothing for the clean batch
    event, sha = events[0], sha256(repo / "models/deploy/manifest.json")
    assert event["resource"]["prefect.resource.id"] == f"a3lign-dfer.batch.dark-tuesday@{sha[:12]}"
    assert event["payload"]["verdict"] == "DRIFT" and "brightness" in event["payload"]["alarm_columns"]
    assert event["payload"]["report"] == str(reports / "dark-tuesday/report.html")
    assert {"prefect.resource.id": f"prefect.flow-run.{dark.state_details.flow_run_id}"}.items() <= \
        next(r for r in event["related"] if r["prefect.resource.role"] == "flow-run").items()


def _git_dvc_repo(repo: Path) -> Path:
    repo.mkdir(parents=True)
    run_cmd(["git", "init", "-q"], repo)
    run_cmd(["git", "config", "user.name", "test"], repo)
    run_cmd(["git", "config", "user.email", "test@example.com"], repo)
    run_dvc(["init", "-q"], repo)
    (repo / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (repo / "notes.txt").write_text("v1\n")
    run_cmd(["git", "add", "-A"], repo)
    run_cmd(["git", "commit", "-qm", "init"], repo)
    return repo


def _export(dataset: Path, rows: list[str], videos: dict[str, bytes]) -> None:
    """What `feedback export` leaves: labels.csv, videos/, the .gitignore that keeps the videos out of git."""
    (dataset / "videos").mkdir(parents=True, exist_ok=True)
    (dataset / ".gitignore").write_text("/videos\n")
    (dataset / "labels.csv").write_text("\n".join(["path,label,split,clip_id", *rows]) + "\n")
    for name, data in videos.items():
        (dataset / "videos" / name).write_bytes(data)


def test_feedback_export_is_versioned_and_only_its_files_are_committed(tmp_path):
    from a3lign_dfer.orchestration.dvc_stages import pipeline_stages
    from a3lign_dfer.orchestration.experiments import uncommitted
    from flows.retrain import commit_feedback

    repo = _git_dvc_repo(tmp_path / "repo")
    (repo / "notes.txt").write_text("someone's edit\n")               # not the flow's to commit
    _export(repo / "data/feedback", ["videos/r1.mp4,happy,train,r1"], {"r1.mp4": b"crops of r1"})
    commit = commit_feedback(repo, "data/feedback", "retrain flow run x: feedback export")
    assert commit == run_cmd(["git", "rev-parse", "HEAD"], repo).strip()
    committed = set(run_cmd(["git", "show", "--name-only", "--format=", "HEAD"], repo).split())
    assert committed == {"data/feedback/labels.csv", "data/feedback/videos.dvc", "data/feedback/.gitignore"}
    assert run_cmd(["git", "log", "-1", "--format=%s"], repo).strip() == "retrain flow run x: feedback export"
    assert uncommitted(repo) == ["notes.txt"]                          # the edit is still the user's, uncommitted
    assert "videos/r1.mp4" not in run_cmd(["git", "ls-files"], repo)    # faces never in git: DVC holds them
    assert json.loads(run_dvc(["status", "--json"], repo).stdout or "{}") == {}
    assert commit_feedback(repo, "data/feedback", "again") is None      # nothing new: no commit

    _export(repo / "data/feedback", ["videos/r1.mp4,happy,train,r1", "videos/r2.mp4,sad,test,r2"],
            {"r2.mp4": b"crops of r2"})
    later = commit_feedback(repo, "data/feedback", "retrain flow run y: feedback export")
    assert later not in (None, commit)
    dvc_file = yaml.safe_load((repo / "data/feedback/videos.dvc").read_text())
    assert dvc_file["outs"][0]["nfiles"] == 2
    # The pipeline flow still reads dvc.yaml's stages beside the .dvc file (a stage with no name, nothing to run).
    (repo / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    names = [s.name for s in pipeline_stages(repo)]
    assert {n.split("@")[0] for n in names} == set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    run_cmd(["git", "checkout", "-q", commit, "--", "data/feedback"], repo)   # the first export comes back
    run_dvc(["checkout", "--force", "-q", "data/feedback/videos.dvc"], repo)
    assert sorted(p.name for p in (repo / "data/feedback/videos").iterdir()) == ["r1.mp4"]


def _write_log(path: Path, labels: dict[str, str]) -> None:
    """Requests answered with kept crops (through the service's log writer), each then labelled."""
    from a3lign_dfer.serving.log_writer import LogRow, LogWriter
    from a3lign_dfer.serving.prediction_log import open_log

    rng = np.random.default_rng(0)
    rows = [LogRow(request_id=rid, time=datetime.datetime.now(datetime.UTC).isoformat(), endpoint="/predict",
                   status=200, error_kind=None, model_version="v1", artifact_sha256=SHA, filename=f"{rid}.mp4",
                   input_sha256="cd" * 32, input_bytes=10, label=CLASSES[0],
                   probabilities={c: 1 / len(CLASSES) for c in CLASSES}, margin=0.0, windows=None, duration_ms=5.0,
                   crops=[rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]) for rid in labels]
    failures = []
    writer = LogWriter(lambda: open_log(path), lambda reason, err: failures.append(reason), True, 30)
    writer.start()
    try:
        wait([writer.submit(r) for r in rows], timeout=60)
    finally:
        writer.stop()
    log = open_log(path)
    for rid, label in labels.items():
        log.add_feedback(rid, label, "api")
    log.close()
    assert failures == []


def test_retrain_commits_the_feedback_then_runs_pipeline_and_release_as_subflows(prefect_backend, tmp_path,
                                                                                  monkeypatch):
    from prefect import flow, get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterId,
        FlowRunFilter,
        FlowRunFilterId,
    )

    import flows.retrain
    from a3lign_dfer.orchestration.experiments import uncommitted

    repo = _git_dvc_repo(tmp_path / "repo")
    _write_log(repo / "logs/predictions.sqlite", {"r1": "happy", "r2": "sad", "r3": "happy"})
    seen = []

    @flow(name="a3lign-dfer-pipeline")
    def pipeline(repo: str = ".", commit: bool = True) -> dict:
        """Stand-in: what the pipeline would train on, as committed when it starts."""
        seen.append(("pipeline", commit, uncommitted(Path(repo)),
                     run_cmd(["git", "show", "HEAD:data/feedback/labels.csv"], Path(repo))))
        return {"ran": ["prepare"], "recorded": "commit 0123456789"}

    @flow(name="a3lign-dfer-release")
    def release(repo: str = ".") -> dict:
        seen.append(("release",))
        return {"artifact": "a3lign-dfer", "version": "v0.2.0", "stages": {"staging": "v0.2.0"}}

    monkeypatch.setattr(flows.retrain, "pipeline", pipeline)
    monkeypatch.setattr(flows.retrain, "release", release)
    payload = {"batch": "tuesday", "verdict": "DRIFT", "reasons": ["brightness moved"], "drifted_columns": ["x"],
               "embedding_score": 0.31, "report": "/r/report.html", "artifact_sha256": SHA}
    state = flows.retrain.retrain(str(repo), batch="tuesday", drift=payload, event_id="e-1", return_state=True)
    assert state.is_completed(), state.message
    result = state.result()

    labels = (repo / "data/feedback/labels.csv").read_text().splitlines()
    assert labels[0] == "path,label,split,clip_id" and sorted(r.split(",")[3] for r in labels[1:]) == ["r1", "r2", "r3"]
    assert result["feedback"]["exported"]["exported"] == 3 and result["feedback"]["commit"]
    assert seen[0] == ("pipeline", True, [], (repo / "data/feedback/labels.csv").read_text())  # committed first
    assert seen[1:] == [("release",)]
    assert result["release"]["version"] == "v0.2.0" and result["batch"] == "tuesday"

    with get_client(sync_client=True) as client:
        children = child_runs(client, state.state_details.flow_run_id)
        flows_ = client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(any_=[c.flow_id for c in children])))
        names = {f.id: f.name for f in flows_}
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(
            any_=[state.state_details.flow_run_id])))
    assert [names[c.flow_id] for c in children] == ["a3lign-dfer-pipeline", "a3lign-dfer-release"]
    assert all(c.state_type.value == "COMPLETED" for c in children)
    assert "feedback_export" in [t.name for t in tasks]
    cause = next(a.data for a in artifacts if a.key == "retrain-cause")
    assert "Retrain on drift in batch `tuesday`" in cause and "brightness moved" in cause and "`e-1`" in cause


# The stand-in retrain: the real flow's name and parameters, its deployment from flows.deployments; a run waits
# (its subflows named as the real ones) until the test writes release-<batch> beside the script.
STAND_IN = '''from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

from prefect import flow, serve

HERE = Path(__file__).resolve().parent


@flow(name="a3lign-dfer-pipeline")
def pipeline(repo: str = ".", commit: bool = True) -> dict:
    return {"ran": []}


@flow(name="a3lign-dfer-release")
def release(repo: str = ".") -> dict:
    return {"version": "v0.2.0"}


@flow(name="a3lign-dfer-retrain")
def retrain(repo: str = ".", batch: str | None = None, drift: dict | None = None, event_id: str | None = None) -> dict:
    while not (HERE / f"release-{batch}").exists():
        time.sleep(0.2)
    pipeline(repo)
    release(repo)
    return {"batch": batch}


if __name__ == "__main__":
    from flows.deployments import retrain_deployment

    serve(retrain_deployment(flow=retrain, repo=HERE, cooldown=timedelta(seconds=float(sys.argv[1]))))
'''


def _stand_in(folder: Path, monkeypatch):
    """The stand-in script in `folder`, and its module imported from there (deployments are built from a flow in a
    file that its module name finds)."""
    script = folder / "stand_in_retrain.py"
    script.write_text(STAND_IN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delitem(sys.modules, script.stem, raising=False)
    return script, importlib.import_module(script.stem)


def _emit(batch: str):
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    from flows.monitor import drift_event

    event = emit_event(**drift_event(drift_summary(batch), SHA))
    EventsWorker.drain_all()
    return event


def _stored(client, event_id) -> bool:
    """The server has the event (the event persister and the triggers read the same stream)."""
    from flows.monitor import DRIFT_EVENT

    response = client._client.post("/events/filter", json={"filter": {"event": {"name": [DRIFT_EVENT]}}, "limit": 50})
    return any(e["id"] == str(event_id) for e in response.json()["events"])


def test_drift_event_runs_the_retrain_once_with_its_batch_then_cools_down(prefect_backend, tmp_path, monkeypatch):
    from prefect import get_client
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy
    from prefect.events.schemas.automations import Posture
    from prefect.settings import PREFECT_API_URL

    import flows.retrain
    from flows.deployments import (
        RETRAIN_COOLDOWN,
        RETRAIN_PARAMETERS,
        retrain_deployment,
    )
    from flows.monitor import DRIFT_EVENT, drift_event

    script, stand_in = _stand_in(tmp_path, monkeypatch)
    assert inspect.signature(stand_in.retrain.fn) == inspect.signature(flows.retrain.retrain.fn)  # same parameters
    with get_client(sync_client=True) as client:            # another test's retrain deployment and its runs
        if (stale := retrain_deployment_of(client)) is not None:
            client.delete_deployment(stale.id)
    server = PrefectServer("", PREFECT_API_URL.value(), {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
                                                         "PYTHONPATH": str(ROOT)}, tmp_path)
    command = [sys.executable, str(script), str(RETRAIN_COOLDOWN.total_seconds())]
    with serve_deployments(server, command, {"on-drift"}, cwd=tmp_path, env=POLL_FAST), \
            get_client(sync_client=True) as client:
        deployment = retrain_deployment_of(client)
        automation = trigger_loaded(client, deployment.id)
        assert automation.enabled
        trigger, action = automation.trigger, automation.actions[0]
        assert trigger.expect == {DRIFT_EVENT} and trigger.posture == Posture.Reactive and trigger.threshold == 1
        assert trigger.within == RETRAIN_COOLDOWN and trigger.for_each == set()
        assert action.type == "run-deployment" and action.deployment_id == deployment.id
        assert action.parameters == RETRAIN_PARAMETERS
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW

        first = _emit("tuesday")
        run = until("a retrain run for tuesday is running", lambda: _run_in(client, deployment.id, "tuesday", "RUNNING"))
        assert run.parameters == {"repo": str(tmp_path), "batch": "tuesday", "event_id": str(first.id),
                                  "drift": drift_event(drift_summary("tuesday"), SHA)["payload"]}
        second = _emit("wednesday")                                   # while tuesday's retrain runs
        until("the second event is stored", lambda: _stored(client, second.id))
        time.sleep(5)
        assert list(deployment_runs(client, deployment.id)) == ["tuesday"]     # the cool-down ignored it
        (tmp_path / "release-tuesday").touch()
        until("tuesday's retrain completes", lambda: client.read_flow_run(run.id).state.is_completed())
        children = child_runs(client, run.id)
        assert len(children) == 2 and all(c.state.is_completed() for c in children)

        # The cool-down off: every event fires, and the concurrency limit is what keeps one retrain at a time.
        monkeypatch.chdir(tmp_path)
        retrain_deployment(flow=stand_in.retrain, repo=tmp_path, cooldown=timedelta(0)).apply()
        assert trigger_loaded(client, deployment.id).trigger.within == timedelta(0)
        _emit("thursday")
        thursday = until("thursday's retrain is running", lambda: _run_in(client, deployment.id, "thursday", "RUNNING"))
        _emit("friday")
        friday = until("friday's retrain is cancelled", lambda: _run_in(client, deployment.id, "friday", "CANCELLED"))
        assert "concurrency limit" in friday.state.message
        assert client.read_flow_run(thursday.id).state.is_running()
        (tmp_path / "release-thursday").touch()
        until("thursday's retrain completes", lambda: client.read_flow_run(thursday.id).state.is_completed())


def _run_in(client, deployment_id, batch: str, state: str):
    run = deployment_runs(client, deployment_id).get(batch)
    return run if run is not None and run.state_type.value == state else None


def test_prefect_ui_shows_the_automation_and_the_chain_of_runs_it_caused(tmp_path, monkeypatch):
    """A real server with its UI (running_prefect_server), the stand-in served, one drift event: the Automations
    page lists the trigger, and the retrain run's page names the automation that caused it, with its subflow runs
    (pipeline, release) in its graph. Screenshots in <tmp>/prefect_ui."""
    import asyncio

    import matplotlib.image
    from a3lign_research.browser import find_chromium
    from a3lign_research.ui_check import (
        automations_page,
        run_page,
        running_prefect_server,
    )
    from prefect import get_client
    from prefect.events import Event
    from prefect.events.clients import PrefectEventsClient
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deployments import RETRAIN_AUTOMATION, RETRAIN_COOLDOWN
    from flows.monitor import drift_event

    if find_chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the browser check needs it")
    script, _ = _stand_in(tmp_path, monkeypatch)
    (tmp_path / "release-tuesday").touch()                            # the run goes straight through
    shots = tmp_path / "prefect_ui"
    with running_prefect_server() as server, temporary_settings({PREFECT_API_URL: server.api}), \
            serve_deployments(server, [sys.executable, str(script), str(RETRAIN_COOLDOWN.total_seconds())],
                              {"on-drift"}, cwd=tmp_path, env=POLL_FAST), get_client(sync_client=True) as client:
        deployment = retrain_deployment_of(client)

        async def send():                 # this server's events endpoint (the session's worker sends elsewhere)
            async with PrefectEventsClient(api_url=server.api) as events:
                await events.emit(Event(**drift_event(drift_summary("tuesday"), SHA)))

        trigger_loaded(client, deployment.id)
        asyncio.run(send())
        run = until("the retrain run completes", lambda: _run_in(client, deployment.id, "tuesday", "COMPLETED"))
        assert len(child_runs(client, run.id)) == 2                    # pipeline and release, as subflow runs
        automations = automations_page(server, shots)
        page = run_page(server, str(run.id), shots, (run.name, "a3lign-dfer-retrain", "on-drift", RETRAIN_AUTOMATION))
    assert automations["missing"] == [] and page["missing"] == []
    for result in (automations, page):
        image = matplotlib.image.imread(result["screenshot"])
        assert image.shape[:2] == (900, 1440) and image[..., :3].std() > 0.02    # a rendered page, not a blank one
