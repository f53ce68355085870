"""The loop closed, end to end on the tiny pipeline (issue 33, "Done when", first point), in one run:

the service (its own process, `serve --follow prod`) answers v1 under a steady concurrent load; true labels arrive
for logged requests (POST /feedback); a dark batch makes the real monitor flow emit its drift event; the real retrain
deployment's automation (flows/deployments.py, served against the session's Prefect server) runs the real retrain
flow: the feedback exported and committed, the pipeline re-run with it, the release with the champion/challenger
gate, which passes and promotes to prod (`release.promote_to_prod: after_gate`); the service's poll swaps to v2 with
no failed or 5xx answer, every answer naming v1 or v2 in an order consistent with the swap; the prediction log holds
every acknowledged request with the version that answered; a rollback returns prod, and the service, to v1. Then a
deliberately worse challenger (stage 3 at a crippling learning rate, a tight margin) is refused by the gate, and
the service keeps answering with v1, still without a failed request.

The gate's verdicts are checked at each release: the first (no prod; the test split through the ONNX graph at most
a near-tie from evaluate), the pass (its Prefect artifact), the refusal (its artifact, and the `release` command's
one-line error with exit 2, nothing registered), and a rollback with nothing left to go back to.

The pieces alone are tested where they are built: the service's swap and log in test_service_loop, the verdicts on
given numbers and the rollback's choice of version in test_challenger, the trigger (with a stand-in flow) in
test_retrain_trigger, the export and the extra source in test_feedback, a params change re-running only the stages
it reaches in test_flows. This test composes them with nothing stood in."""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Self

import httpx
import pandas as pd
import pytest
import yaml
from a3lign_research.ui_check import PrefectServer, serve_deployments
from conftest import ROOT, copy_repo, run_cli, run_cmd
from prefect_runs import POLL_FAST, child_runs, deployment_runs, retrain_deployment_of, trigger_loaded, until

from a3lign_dfer.checksums import sha256
from a3lign_dfer.config.data import SCHEDULER_ENV
from a3lign_dfer.registry.versions import stages_held
from a3lign_dfer.report_files import EVALUATION, RELEASE_CHALLENGER
from a3lign_dfer.serving.feedback_dataset import split_of
from a3lign_dfer.serving.process import service_process

ARTIFACT = "a3lign-dfer"
V1, V2 = "v0.1.0", "v0.2.0"           # the first release (`release --prod`), the retrain's release
THREADS = 3                           # the load's concurrent clients
PAUSE_S = 1.0                         # each client's pause between answers: a steady load (~1.5 requests/s) that
                                      # leaves most of a 2-core machine to the retrain it runs beside
FEEDBACK = {"train": 8, "test": 3}    # labelled requests per split of the export (split fixed by the request id)
# The tiny pipeline stores 48-px face crops (conftest TINY_PIPELINE), so the face that the face crop stage finds
# again in a feedback video (the crops the model saw) is ~29 px, below the floor of face_crop.min_face (40 px; with
# the default 112-px crops it is ~68 px). The retrain's pipeline lowers the floor to train on the feedback.
TINY_MIN_FACE = 24
BATCH = "dark-tuesday"
CRIPPLED_STAGE3_LR = {"mat": 50.0, "encoder": 50.0}      # stage 3 (params: 0.01 and 0.1) at a learning rate of 50
TIGHT_UAR_DROP = 0.02
# The automation's cool-down, as served here: long enough that nothing but the one event of this test fires it.
COOLDOWN = timedelta(hours=1)
SERVE_RETRAIN = ("import sys\nfrom datetime import timedelta\nfrom prefect import serve\n"
                 "from flows.deployments import retrain_deployment\nfrom flows.retrain import retrain\n"
                 "serve(retrain_deployment(retrain, sys.argv[1], timedelta(seconds=float(sys.argv[2]))))\n")


@dataclass(frozen=True)
class Answer:
    """One /predict request of the load: when it was sent and answered (time.monotonic), and what came back."""

    filename: str
    sent: float
    received: float
    status: int | None                # None: no HTTP answer at all (a transport error)
    request_id: str | None
    label: str | None
    version: str | None
    sha: str | None
    error: str | None                 # the body of a non-200 answer, or the transport error


class Load:
    """THREADS clients POSTing the benchmark's test videos to /predict in turn, each pausing PAUSE_S between
    answers, until stopped; every request is recorded."""

    def __init__(self, url: str, uploads: list[tuple[str, bytes]]):
        self.url, self.uploads = url, uploads
        self._answers: list[Answer] = []
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(THREADS)]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=180)
        assert not any(t.is_alive() for t in self._threads), "a load client did not stop within 180 s"

    def answers(self) -> list[Answer]:
        with self._lock:
            return list(self._answers)

    def _client(self, offset: int) -> None:
        with httpx.Client(timeout=120) as client:
            i = offset
            while not self._stop.is_set():
                name, body = self.uploads[i % len(self.uploads)]
                i += THREADS
                sent = time.monotonic()
                try:
                    response = client.post(f"{self.url}/predict", files={"file": (name, body)})
                except httpx.HTTPError as error:
                    answer = Answer(name, sent, time.monotonic(), None, None, None, None, None, repr(error))
                else:
                    answer = _answer(name, sent, time.monotonic(), response)
                with self._lock:
                    self._answers.append(answer)
                self._stop.wait(PAUSE_S)

    def wait_for(self, what: str, count: int, where=lambda a: True, timeout: float = 300) -> list[Answer]:
        """At least `count` answers `where` says yes to, within `timeout` s."""
        def found():
            matching = [a for a in self.answers() if where(a)]
            return matching if len(matching) >= count else None

        return until(f"{count} answer(s) {what}", found, timeout,
                      lambda: f"answers so far: {len(self.answers())}, failed: {_failed(self.answers())[:3]}")


def _answer(name: str, sent: float, received: float, response: httpx.Response) -> Answer:
    if response.status_code != 200:
        return Answer(name, sent, received, response.status_code, None, None, None, None, response.text[:500])
    body = response.json()
    assert response.headers["x-request-id"] == body["request_id"]
    return Answer(name, sent, received, 200, body["request_id"], body["label"], body["model"]["version"],
                  body["model"]["manifest_sha256"], None)


def _failed(answers: list[Answer]) -> list[Answer]:
    return [a for a in answers if a.status != 200]


def _serving(url: str) -> dict:
    return httpx.get(f"{url}/metadata", timeout=30).json()["model"]


def _until_serving(service, version: str, timeout: float = 300) -> float:
    """When (time.monotonic) the service was first seen answering /metadata with `version`."""
    return until(f"the service serves {version}",
                  lambda: time.monotonic() if _serving(service.url)["version"] == version else None, timeout,
                  lambda: f"it serves {_serving(service.url)}; its output:\n{service.output()[-3000:]}")


def _configure(repo: Path, log: Path) -> dict:
    """The loop's params on the tiny build: the fixed gate open (its thresholds are test_flows'), margins that let
    a retrained tiny model pass (refusing is the worse challenger's part), every pass promoted to prod; the service's
    log with its crops outside the repo (the release checks the repo is clean), following prod every second."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["release"].update(min_test_uar=0.0, min_shuffled_uar_drop=-1.0, promote_to_prod="after_gate")
    params["release"]["challenger"].update(max_uar_drop=1.0, max_class_recall_drop=1.0)
    params["serve"]["prediction_log"].update(path=str(log), keep_crops=True)
    params["serve"]["follow"] = {"stage": "prod", "poll_seconds": 1}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_cmd(["git", "commit", "-qam", "the loop: gate open, margins, promote after the gate, follow prod"], repo)
    return params


def _set(repo: Path, section: str, **values) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _label(url: str, load: Load, truth: dict[str, str], test_fraction: float) -> dict[str, str]:
    """POST /feedback with the true label for the first acknowledged requests, FEEDBACK[split] of each split of
    the export: request id -> the true label."""
    def enough():
        picked, count = {}, {"train": 0, "test": 0}
        for a in load.answers():
            split = split_of(a.request_id, test_fraction) if a.status == 200 else None
            if split is not None and count[split] < FEEDBACK[split]:
                picked[a.request_id], count[split] = a, count[split] + 1
        return picked if count == FEEDBACK else None

    picked = until(f"acknowledged requests for {FEEDBACK} labels", enough, 300)
    for request_id, answer in picked.items():
        stored = httpx.post(f"{url}/feedback", json={"request_id": request_id, "label": truth[answer.filename]},
                            timeout=30)
        assert stored.status_code == 200, stored.text
        assert (stored.json()["label"], stored.json()["predicted"]) == (truth[answer.filename], answer.label)
    return {request_id: truth[a.filename] for request_id, a in picked.items()}


def _drift_event(client, monitor_run_id) -> dict:
    """The drift event the monitor run sent, once the server has it."""
    from flows.monitor import DRIFT_EVENT

    def stored():
        response = client._client.post("/events/filter", json={"filter": {"event": {"name": [DRIFT_EVENT]}},
                                                               "limit": 50})
        return next((e for e in response.json()["events"] if e["payload"]["batch"] == BATCH and any(
            r["prefect.resource.id"] == f"prefect.flow-run.{monitor_run_id}" for r in e["related"])), None)

    return until(f"the monitor's {DRIFT_EVENT} event for {BATCH} is stored", stored, 120)


def _out_of_order(answers: list[Answer], rollback_at: float) -> list[tuple[Answer, Answer]]:
    """Pairs (a, b) where a was received before b was sent yet names a later model than b: v1, then v2, then v1
    again after the rollback (a v1 answer sent before the rollback began is the first v1)."""
    def epoch(a: Answer) -> int:
        return 1 if a.version == V2 else 0 if a.sent < rollback_at else 2

    by_received, i, latest, bad = sorted(answers, key=lambda a: a.received), 0, None, []
    for b in sorted(answers, key=lambda a: a.sent):
        while i < len(by_received) and by_received[i].received < b.sent:
            if latest is None or epoch(by_received[i]) > epoch(latest):
                latest = by_received[i]
            i += 1
        if latest is not None and epoch(b) < epoch(latest):
            bad.append((latest, b))
    return bad


def _logged(log: Path) -> dict[str, tuple]:
    """request id -> (status, model version, artifact sha256) of every logged request."""
    db = sqlite3.connect(log)
    try:
        rows = db.execute("SELECT request_id, status, model_version, artifact_sha256 FROM predictions").fetchall()
    finally:
        db.close()
    return {r[0]: r[1:] for r in rows}


def _release_artifact(client, parent_id) -> str:
    """The champion/challenger table that the release subflow of a flow run published (its Prefect artifact)."""
    from prefect.client.schemas.filters import ArtifactFilter

    flows_ = {f.id: f.name for f in client.read_flows()}
    [release_run] = [c for c in child_runs(client, parent_id) if flows_[c.flow_id] == "a3lign-dfer-release"]
    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id={"any_": [release_run.id]}))
    return {a.key: a.data for a in artifacts}["release-challenger"]


def _release_exit(repo: Path, capsys, *argv: str) -> tuple[int, str]:
    """`release ARGV` in this process: its exit code and stderr (run_cli wants 0)."""
    from a3lign_dfer.cli import main

    capsys.readouterr()
    with contextlib.chdir(repo):
        code = main(["release", *argv])
    return code, capsys.readouterr().err


def _counter(metrics: str, line_start: str) -> float:
    return next((float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(line_start + " ")), 0.0)


@pytest.mark.timeout(3600)    # the session's pipeline build (when this test builds it) and two retrains, on 2 cores
def test_drift_retrains_the_challenger_passes_the_service_swaps_and_rolls_back_and_a_worse_one_is_refused(
        built_pipeline, drift_batches, prefect_backend, scale, tmp_path, capsys, monkeypatch):
    from prefect import get_client
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL

    from flows.monitor import monitor
    from flows.retrain import retrain

    built, _, _ = built_pipeline
    repo = copy_repo(built, tmp_path / "repo")
    log = tmp_path / "service/predictions.sqlite"
    params = _configure(repo, log)
    assert run_cmd(["git", "tag", "--list"], repo).split() == []        # the registry's versions are this test's

    # 1. v1: the first release, straight to prod: no prod to compare with, only the fixed gate; the candidate is
    # still scored. The test split from the stored crops is evaluate's test split, through the ONNX graph instead
    # of PyTorch on cached (fp16) features: at most a near-tie apart.
    assert "Champion/challenger: no_prod" in run_cli(["release", "--prod"], repo, capsys)
    assert stages_held(str(repo), ARTIFACT) == {"staging": V1, "prod": V1}
    first, evaluation = RELEASE_CHALLENGER.read(repo / "reports"), EVALUATION.read(repo / "reports")
    v1_test = first.sets[0]
    assert (first.verdict, first.prod_version, v1_test.name, v1_test.gated, v1_test.prod) == \
        ("no_prod", None, "test", False, None)
    assert v1_test.clips == evaluation.num_test_clips and v1_test.skipped == 0
    assert abs(v1_test.candidate.war - evaluation.war) <= 1 / evaluation.num_test_clips + 1e-9
    assert "first release" in (repo / "reports/release/challenger.md").read_text()
    v1_sha = sha256(repo / "models/deploy/manifest.json")
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    test = raw[raw["split"] == "test"]
    truth = {Path(p).name: label for p, label in zip(test["path"], test["label_name"])}
    assert len(truth) == len(test) >= 6, "the load's videos need distinct names"
    uploads = [(Path(p).name, (repo / "data/raw" / p).read_bytes()) for p in test["path"]]
    _set(repo, "face_crop", min_face=TINY_MIN_FACE)                  # for the retrain: v1 is built and released
    run_cmd(["git", "commit", "-qam", f"face_crop.min_face {TINY_MIN_FACE}: the tiny crops' faces"], repo)

    # 2-3. The service follows prod; the load starts.
    with service_process(["--follow", "prod"], repo, timeout=300) as service, Load(service.url, uploads) as load:
        first = _serving(service.url)
        assert (first["version"], first["stage"], first["manifest_sha256"]) == (V1, "prod", v1_sha), first
        load.wait_for("from v1", 2 * THREADS)

        # 4. True labels for logged requests, enough of them in each split of the export.
        labels = _label(service.url, load, truth, params["feedback"]["test_fraction"])

        # 5. A dark batch: the monitor emits its event; the real retrain deployment's automation runs the retrain.
        before_retrain = time.monotonic()
        with get_client(sync_client=True) as client:                  # another test's retrain deployment
            if (stale := retrain_deployment_of(client)) is not None:
                client.delete_deployment(stale.id)
        server = PrefectServer("", PREFECT_API_URL.value(), {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
                                                             "PYTHONPATH": str(ROOT)}, tmp_path)
        command = [sys.executable, "-c", SERVE_RETRAIN, str(repo), str(COOLDOWN.total_seconds())]
        # The sharded stages of the retrain's pipeline run on the session's Dask cluster, as the first build did.
        with serve_deployments(server, command, {"on-drift"}, cwd=ROOT,
                               env={**POLL_FAST, SCHEDULER_ENV: scale.scheduler}), \
                get_client(sync_client=True) as client:
            deployment = retrain_deployment_of(client)
            trigger_loaded(client, deployment.id)
            watch = tmp_path / "incoming"
            watch.mkdir()
            (watch / BATCH).symlink_to(drift_batches["dark"], target_is_directory=True)
            flagged = monitor(str(watch), repo=str(repo), reports=str(tmp_path / "drift"), return_state=True)
            assert flagged.is_failed() and f"DRIFT in {BATCH}" in flagged.message, flagged.message
            EventsWorker.drain_all()
            event = _drift_event(client, flagged.state_details.flow_run_id)

            def processes_log():
                return (tmp_path / "processes.log").read_text(errors="replace")[-4000:]

            run = until("the automation starts a retrain run for the batch",
                         lambda: deployment_runs(client, deployment.id).get(BATCH), 300, processes_log)
            assert run.parameters == {"repo": str(repo), "batch": BATCH, "drift": event["payload"],
                                      "event_id": event["id"]}
            run = until("the retrain run ends", lambda: (r if (r := client.read_flow_run(run.id)).state.is_final()
                                                          else None), 2400, processes_log)
            assert run.state.is_completed(), f"{run.state.message}\n{processes_log()}"
            children = child_runs(client, run.id)
            flows_ = {f.id: f.name for f in client.read_flows()}
            assert [(flows_[c.flow_id], c.state_type.value) for c in children] == [
                ("a3lign-dfer-pipeline", "COMPLETED"), ("a3lign-dfer-release", "COMPLETED")]
            passed_table = _release_artifact(client, run.id)
        swapped_at = _until_serving(service, V2)

        # What the retrain did: the feedback exported (split by request id) and committed, prepare training on its
        # train rows (its test rows held out), the challenger passing against v1 and promoted.
        exported = pd.read_csv(repo / "data/feedback/labels.csv")
        assert dict(zip(exported["clip_id"], exported["label"])) == labels
        assert all(exported["split"] == [split_of(r, params["feedback"]["test_fraction"]) for r in exported["clip_id"]])
        assert "data/feedback/labels.csv" in run_cmd(["git", "ls-files", "data/feedback"], repo)
        assert run_cmd(["git", "status", "--porcelain", "--untracked-files=no"], repo).strip() == ""
        [source] = json.loads((repo / "data/raw/extra_sources.json").read_text())["sources"]
        assert (source["name"], source["clips_added"], source["held_out_test_clips"]) == \
            ("feedback", FEEDBACK["train"], FEEDBACK["test"]), source
        manifest = pd.read_parquet(repo / "data/raw/manifest.parquet")
        trained = {f"feedback-{r}" for r, s in zip(exported["clip_id"], exported["split"]) if s == "train"}
        assert set(manifest.loc[manifest["clip_id"].str.startswith("feedback-"), "clip_id"]) == trained
        # ... and the face crop stage found the face again in most of them: the retrained model saw the feedback.
        features = set(pd.read_parquet(repo / "data/features/train.parquet")["clip_id"])
        assert len(trained & features) >= len(trained) // 2, \
            f"{sorted(trained - features)} not trained on:\n{(repo / 'data/crops/rejects.csv').read_text()}"
        v2_sha = sha256(repo / "models/deploy/manifest.json")
        assert v2_sha != v1_sha and _serving(service.url)["manifest_sha256"] == v2_sha
        assert stages_held(str(repo), ARTIFACT) == {"staging": V2, "prod": V2}
        passed = RELEASE_CHALLENGER.read(repo / "reports")
        assert (passed.verdict, passed.prod_version, passed.prod_sha256, passed.candidate_sha256) == \
            ("passed", V1, v1_sha, v2_sha)
        # Prod and the candidate on the same clips; the feedback's held-out rows are scored, its training rows not.
        scored, feedback = passed.sets
        assert scored.gated and scored.failures == []
        assert (feedback.name, feedback.clips + feedback.skipped) == ("feedback", FEEDBACK["test"])
        assert "# Champion/challenger: passed" in passed_table
        assert f"| UAR | {scored.prod.uar:.4f} | {scored.candidate.uar:.4f} | " \
               f"{scored.candidate.uar - scored.prod.uar:+.4f} | drop <= 1 | pass |" in passed_table
        load.wait_for("sent after the swap to v2", 2 * THREADS, lambda a: a.sent > swapped_at)

        # 7. Rollback: prod back to v1, and the service with it.
        rollback_at = time.monotonic()
        assert run_cli(["release", "--rollback"], repo, capsys).strip() == f"{ARTIFACT} prod: {V2} -> {V1}"
        assert stages_held(str(repo), ARTIFACT)["prod"] == V1
        back_at = _until_serving(service, V1)
        assert _serving(service.url)["manifest_sha256"] == v1_sha
        code, err = _release_exit(repo, capsys, "--rollback")             # v2 withdrawn: nothing before v1
        assert code == 2 and "no previous prod version of a3lign-dfer" in err
        assert stages_held(str(repo), ARTIFACT)["prod"] == V1
        load.wait_for("sent after the rollback", 2 * THREADS, lambda a: a.sent > back_at)

        # 8. A worse challenger: stage 3 crippled, the margin tight, committed. The retrain flow is run directly: a
        # second drift event would rightly be ignored by the trigger's cool-down (the same drift, not news).
        crippled = yaml.safe_load((repo / "params.yaml").read_text())
        crippled["stage3"]["lr"] = CRIPPLED_STAGE3_LR
        crippled["release"]["challenger"]["max_uar_drop"] = TIGHT_UAR_DROP
        (repo / "params.yaml").write_text(yaml.safe_dump(crippled, sort_keys=False))
        run_cmd(["git", "commit", "-qam", "stage3 at a crippling learning rate; a tight margin"], repo)
        tags = run_cmd(["git", "tag", "--list"], repo).split()
        monkeypatch.setenv(SCHEDULER_ENV, scale.scheduler)
        refused = retrain(str(repo), batch=BATCH, return_state=True)
        assert refused.is_failed(), refused.message
        assert f"champion/challenger gate refused the candidate against prod {V1}" in refused.message, \
            refused.message
        worse = RELEASE_CHALLENGER.read(repo / "reports")
        measured = worse.sets[0]
        assert (worse.verdict, worse.prod_version, worse.prod_sha256) == ("refused", V1, v1_sha)
        assert measured.candidate.uar < measured.prod.uar - TIGHT_UAR_DROP, measured     # really worse, measured
        # v1 on the same crops (stage 3 alone changed) scores as it did against v2: the same model, the same numbers.
        assert measured.prod == scored.prod and measured.failures[0].startswith(
            f"UAR {measured.candidate.uar:.4f} is ")
        with get_client(sync_client=True) as client:
            refused_table = _release_artifact(client, refused.state_details.flow_run_id)
        assert "# Champion/challenger: REFUSED" in refused_table and "| FAIL |" in refused_table
        assert "Refused: UAR" in (repo / "reports/release/challenger.md").read_text()
        # The command refuses it alike, in one line with exit 2.
        code, err = _release_exit(repo, capsys)
        assert code == 2 and err.startswith("a3lign_dfer release: error: champion/challenger gate refused")
        assert "test split: UAR" in err and "reports/release/challenger.md" in err
        assert run_cmd(["git", "tag", "--list"], repo).split() == tags                   # nothing registered
        assert stages_held(str(repo), ARTIFACT) == {"staging": V2, "prod": V1}
        refused_at = time.monotonic()
        load.wait_for("sent after the refusal", 2 * THREADS, lambda a: a.sent > refused_at)
        assert _serving(service.url)["version"] == V1

        # 9. The load stops; the log holds every acknowledged request as its answer named it.
        load.stop()
        answers = load.answers()
        acknowledged = [a for a in answers if a.status == 200]
        until("the log holds every acknowledged request",
               lambda: {a.request_id for a in acknowledged} <= set(_logged(log)), 60)
        metrics = httpx.get(f"{service.url}/metrics", timeout=30).text

    # Zero failed or 5xx answers, at any point.
    assert _failed(answers) == [], f"{len(_failed(answers))} of {len(answers)} failed: {_failed(answers)[:5]}"
    assert 'status="5' not in metrics
    assert _counter(metrics, 'a3lign_model_swaps_total{result="swapped"}') == 2      # to v2, back to v1
    # Every answer names v1 or v2, its manifest the version's; in an order consistent with the swaps.
    assert {(a.version, a.sha) for a in answers} == {(V1, v1_sha), (V2, v2_sha)}
    assert [a for a in answers if a.received < before_retrain and a.version != V1] == []
    assert [a for a in answers if swapped_at < a.sent and a.received < rollback_at and a.version != V2] == []
    assert [a for a in answers if a.sent > back_at and a.version != V1] == []
    assert _out_of_order(answers, rollback_at) == []
    # The prediction log: every acknowledged request, with the version that answered it.
    logged = _logged(log)
    assert {a.request_id: (200, a.version, a.sha) for a in acknowledged} == \
        {r: logged[r] for r in (a.request_id for a in acknowledged)}
