"""The service's side of the loop, end to end on the tiny pipeline (the service as its own process): feedback on
logged requests; a swap to a second, different model under concurrent load with no failed or 5xx answer, each
answer naming the model that gave it consistently with the swap's time; a tampered artifact and one that fails its
warm-up refused while the old model serves on; a SIGKILL in the middle of a load losing no acknowledged request
from the log; and `serve --follow prod` swapping when the registry's prod moves.

The second model ("v2") is real and cheap: the export stage's command run on the pipeline's all-at-once joint
checkpoint (trained beside the BAP ladder, a different model with other answers), written outside the repo."""
import json
import shutil
import sqlite3
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pandas as pd
import psutil
import pytest
import yaml
from conftest import copy_repo, run_cmd

from a3lign_dfer.checksums import sha256
from a3lign_research.browser import DevToolsTab, find_chromium, image_spread
from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.serving.prediction_log import open_log
from a3lign_dfer.serving.process import service_process

CONCURRENCY = 6


def _predict_cli(repo: Path, deploy: Path, videos: list[Path]) -> dict:
    out = run_cmd([sys.executable, "-m", "a3lign_dfer", "predict", *map(str, videos), "--deploy", str(deploy),
                   "--json"], repo)
    return {Path(row["path"]).name: row for row in map(json.loads, filter(lambda x: x.startswith("{"),
                                                                         out.splitlines()))}


def _params(repo: Path, work: Path, name: str, **serve) -> Path:
    """The pipeline's params with the service's log under `work` (and `serve` keys merged in)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["serve"]["prediction_log"].update(path=str(work / name / "predictions.sqlite"), keep_crops=True)
    for key, value in serve.items():
        params["serve"][key] = {**params["serve"][key], **value} if isinstance(value, dict) else value
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def loop(pipeline, tmp_path_factory):
    """v1 (the pipeline's models/deploy) and v2 (the joint model, exported) beside it; what `predict` says with
    each; the service on v1, its log keeping crops, shared by the tests here (each sets the model it needs)."""
    repo, _, _ = pipeline
    work = tmp_path_factory.mktemp("service_loop")
    v1 = work / "v1"
    shutil.copytree(repo / DEPLOY_DIR, v1)
    run_cmd([sys.executable, "-m", "a3lign_dfer.commands.export", "--checkpoint", "models/all_at_once_joint",
             "--crops", "data/crops", "--raw", "data/raw", "--features", "data/features",
             "--eval", "reports/eval/metrics.json", "--shuffle", "reports/shuffle/metrics.json",
             "--out", str(work / "v2"), "--metrics", str(work / "v2.json")], repo)
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    videos = [repo / "data/raw" / p for p in raw.loc[raw["split"] == "test", "path"].head(6)]
    assert _manifest_sha(v1) != _manifest_sha(work / "v2")
    expected = {name: _predict_cli(repo, work / name, videos) for name in ("v1", "v2")}
    assert any(expected["v1"][v.name]["probabilities"] != expected["v2"][v.name]["probabilities"] for v in videos)
    with service_process(["--artifact", str(v1)], repo, _params(repo, work, "shared")) as service:
        yield SimpleNamespace(repo=repo, work=work, service=service, url=service.url, videos=videos,
                              uploads=[(v.name, v.read_bytes()) for v in videos], expected=expected,
                              folder={"v1": v1, "v2": work / "v2"},
                              sha={name: _manifest_sha(work / name) for name in ("v1", "v2")},
                              log=work / "shared/predictions.sqlite")


def _manifest_sha(folder: Path) -> str:
    return sha256(folder / "manifest.json")


def _serve(loop, name: str) -> None:
    answer = httpx.post(f"{loop.url}/admin/reload", json={"artifact": str(loop.folder[name])}, timeout=120)
    assert answer.status_code == 200 and answer.json()["model"]["manifest_sha256"] == loop.sha[name], answer.text


def _counter(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} " if labels else f"{name} "):
            return float(line.split()[-1])
    return 0.0


def test_feedback_labels_a_logged_request_and_refuses_by_kind(loop):
    _serve(loop, "v1")
    name, body = loop.uploads[0]
    answer = httpx.post(f"{loop.url}/predict", files={"file": (name, body)}, timeout=60)
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]
    assert answer.json()["request_id"] == request_id
    classes = list(answer.json()["probabilities"])
    truth = next(c for c in classes if c != answer.json()["label"])
    stored = httpx.post(f"{loop.url}/feedback", json={"request_id": request_id, "label": truth})
    assert stored.status_code == 200, stored.text
    assert (stored.json()["label"], stored.json()["predicted"]) == (truth, answer.json()["label"])
    unknown = httpx.post(f"{loop.url}/feedback", json={"request_id": "f" * 32, "label": truth})
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_request")
    outside = httpx.post(f"{loop.url}/feedback", json={"request_id": request_id, "label": "bored"})
    assert (outside.status_code, outside.json()["error"]) == (422, "unknown_label")
    # What the readers get: the true label, the answer, and the face crops the model saw (kept here).
    [labelled] = [r for r in open_log(loop.log, create=False).labelled() if r.request_id == request_id]
    assert (labelled.label, labelled.predicted) == (truth, answer.json()["label"])
    assert labelled.probabilities == answer.json()["probabilities"]
    frames = json.loads((loop.folder["v1"] / "preprocess.json").read_text())["frames"]
    assert sorted(p.name for p in labelled.crops_dir.iterdir()) == [f"frame_{i:02d}.jpg" for i in range(frames)]


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium): "
                                                    "the browser check needs it")
def test_the_page_corrects_a_prediction_in_chromium(loop, tmp_path):
    _serve(loop, "v1")
    video = loop.videos[2]
    with DevToolsTab() as tab:
        tab.open(f"{loop.url}/")
        tab.wait_for("!document.getElementById('submit').disabled")
        tab.choose_files("#video", [video])
        tab.evaluate("document.getElementById('submit').click()")
        tab.wait_for("!document.getElementById('feedback').classList.contains('hidden')")
        options = tab.evaluate("[...document.querySelectorAll('#true-label option')].map(o => o.value)")
        predicted = tab.evaluate("document.getElementById('true-label').value")
        truth = next(c for c in options if c != predicted)
        tab.evaluate(f"document.getElementById('true-label').value = {json.dumps(truth)}; "
                     "document.getElementById('feedback-submit').click()")
        tab.wait_for("document.getElementById('feedback-status').textContent.startsWith('Saved')")
        saved = tab.evaluate("document.getElementById('feedback-status').textContent")   # Saved: sad (request 1a2b...)
        tab.screenshot(tmp_path / "page.png")
    assert predicted == loop.expected["v1"][video.name]["label"]
    assert sorted(options) == sorted(loop.expected["v1"][video.name]["probabilities"])
    prefix = saved.split("request ")[1].rstrip(")")
    [labelled] = [r for r in open_log(loop.log, create=False).labelled() if r.request_id.startswith(prefix)]
    assert (labelled.label, labelled.predicted) == (truth, predicted)
    assert image_spread(tmp_path / "page.png") > 0.05


def test_a_swap_under_load_drops_nothing_and_every_answer_names_its_model(loop):
    _serve(loop, "v1")
    before = httpx.get(f"{loop.url}/metrics").text
    jobs = loop.uploads * 8                                                   # 48 requests
    done, swapped = [], {}
    started_enough = threading.Event()

    def send(upload):
        name, body = upload
        sent = time.monotonic()
        response = httpx.post(f"{loop.url}/predict", files={"file": (name, body)}, timeout=120)
        done.append(sent)
        if len(done) >= len(jobs) // 3:
            started_enough.set()
        return name, sent, time.monotonic(), response

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = pool.map(send, jobs)
        assert started_enough.wait(300)
        swapped["sent"] = time.monotonic()
        reload = httpx.post(f"{loop.url}/admin/reload", json={"artifact": str(loop.folder["v2"])}, timeout=120)
        swapped["returned"] = time.monotonic()
        results = list(results)
    assert reload.status_code == 200 and reload.json()["result"] == "swapped", reload.text
    assert reload.json()["previous"]["manifest_sha256"] == loop.sha["v1"]
    by_sha = {sha: name for name, sha in loop.sha.items()}
    answered = {}
    for name, sent, received, response in results:
        assert response.status_code == 200, response.text                   # no failed, no 5xx
        body = response.json()
        model = by_sha[body["model"]["manifest_sha256"]]
        # The answer is the named model's (predict's numbers with that artifact).
        assert body["label"] == loop.expected[model][name]["label"]
        assert body["probabilities"] == pytest.approx(loop.expected[model][name]["probabilities"], abs=2e-5)
        if received < swapped["sent"]:
            assert model == "v1", (name, sent, received, swapped)            # answered before the swap began
        if sent > swapped["returned"]:
            assert model == "v2", (name, sent, received, swapped)            # sent after it was done
        answered[body["request_id"]] = body["model"]["manifest_sha256"]
    assert set(answered.values()) == set(loop.sha.values())                  # both answered during the load
    # The log names the same model for every request as its answer did.
    db = sqlite3.connect(loop.log)
    logged = dict(db.execute(f"SELECT request_id, artifact_sha256 FROM predictions WHERE request_id IN "
                             f"({','.join('?' * len(answered))})", list(answered)).fetchall())
    assert logged == answered
    after = httpx.get(f"{loop.url}/metrics").text
    assert _counter(after, "a3lign_model_swaps_total", 'result="swapped"') - \
        _counter(before, "a3lign_model_swaps_total", 'result="swapped"') == 1
    assert _counter(after, "a3lign_models_loaded") == 1                       # v1 released after its last request
    assert "status=\"5" not in after
    meta = httpx.get(f"{loop.url}/metadata").json()
    assert meta["model"]["manifest_sha256"] == loop.sha["v2"]
    assert meta["model"]["test_metrics"] == json.loads((loop.folder["v2"] / "manifest.json").read_text())[
        "test_metrics"]


def test_a_tampered_artifact_or_a_failed_warm_up_keeps_the_old_model(loop, tmp_path):
    _serve(loop, "v1")
    tampered = tmp_path / "tampered"
    shutil.copytree(loop.folder["v2"], tampered)
    labels = json.loads((tampered / "labels.json").read_text())
    (tampered / "labels.json").write_text(json.dumps({**labels, "classes": labels["classes"][::-1]}))
    # A graph that cannot load, though the manifest lists its sha256: verification passes, warm-up does not.
    broken = tmp_path / "broken"
    shutil.copytree(loop.folder["v2"], broken)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["files"]["model.onnx"] = sha256(broken / "model.onnx")
    (broken / "manifest.json").write_text(json.dumps(manifest, indent=2))
    before = httpx.get(f"{loop.url}/metrics").text
    refused = httpx.post(f"{loop.url}/admin/reload", json={"artifact": str(tampered)}, timeout=120)
    assert (refused.status_code, refused.json()["error"]) == (422, "artifact_refused")
    assert "labels.json: sha256" in refused.json()["detail"]
    failed = httpx.post(f"{loop.url}/admin/reload", json={"artifact": str(broken)}, timeout=120)
    assert (failed.status_code, failed.json()["error"]) == (500, "warmup_failed")
    name, body = loop.uploads[1]
    answer = httpx.post(f"{loop.url}/predict", files={"file": (name, body)}, timeout=60).json()
    assert answer["model"]["manifest_sha256"] == loop.sha["v1"]
    assert answer["label"] == loop.expected["v1"][name]["label"]
    after = httpx.get(f"{loop.url}/metrics").text
    for result in ("refused", "warmup_failed"):
        assert _counter(after, "a3lign_model_swaps_total", f'result="{result}"') - \
            _counter(before, "a3lign_model_swaps_total", f'result="{result}"') == 1, result
    assert _counter(after, "a3lign_models_loaded") == 1
    output = loop.service.output()
    assert f"not swapping to {tampered} (refused)" in output and "labels.json: sha256" in output
    assert f"not swapping to {broken} (warmup_failed)" in output


def test_sigkill_in_the_middle_of_a_load_loses_no_acknowledged_request(loop):
    work = loop.work
    acknowledged, stop = [], threading.Event()
    with service_process(["--artifact", str(loop.folder["v1"])], loop.repo, _params(loop.repo, work, "killed")) as s:
        def send(upload):
            if stop.is_set():
                return
            try:
                response = httpx.post(f"{s.url}/predict", files={"file": upload}, timeout=120)
            except httpx.TransportError:                       # in flight when the service died: not acknowledged
                return
            if response.status_code == 200:
                acknowledged.append(response.headers["x-request-id"])

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            futures = [pool.submit(send, upload) for upload in loop.uploads * 10]
            deadline = time.monotonic() + 300
            while len(acknowledged) < 15 and time.monotonic() < deadline:
                time.sleep(0.05)
            workers = psutil.Process(s.process.pid).children(recursive=True)
            s.process.kill()                                   # SIGKILL, mid-load
            s.process.wait()
            stop.set()
            for future in futures:
                future.result()
    assert len(acknowledged) >= 15
    _, alive = psutil.wait_procs(workers, timeout=30)          # its preprocessing workers leave with it
    assert alive == []
    db = sqlite3.connect(work / "killed/predictions.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    logged = {r for (r,) in db.execute("SELECT request_id FROM predictions")}
    assert set(acknowledged) <= logged


def test_follow_prod_swaps_when_the_registry_moves(loop, tmp_path):
    repo = copy_repo(loop.repo, tmp_path / "repo")             # its own registry tags
    gto = [str(Path(sys.executable).parent / "gto")]
    held = json.loads(run_cmd([*gto, "show", "--json"], repo)).get("a3lign-dfer", {}).get("stage", {})
    first = held.get("prod")
    if first is None:                                          # this module run on its own
        first = "v0.1.0"
        run_cmd([*gto, "register", "a3lign-dfer", "--version", first, "HEAD"], repo)
        run_cmd([*gto, "assign", "a3lign-dfer", "--version", first, "--stage", "prod"], repo)
    params = _params(repo, tmp_path, "follow", follow={"stage": "prod", "poll_seconds": 1})
    with service_process([], repo, params) as service:                  # serve.follow.stage from params
        meta = httpx.get(f"{service.url}/metadata").json()
        assert (meta["model"]["version"], meta["model"]["stage"], meta["follows"]) == (first, "prod", "prod")
        # A new version (a commit of its own: GTO gives a commit one version) takes prod.
        run_cmd(["git", "commit", "-q", "--allow-empty", "-m", "the next release"], repo)
        run_cmd([*gto, "register", "a3lign-dfer", "--version", "v9.0.0", "HEAD"], repo)
        run_cmd([*gto, "assign", "a3lign-dfer", "--version", "v9.0.0", "--stage", "prod"], repo)
        deadline = time.monotonic() + 120
        while httpx.get(f"{service.url}/metadata").json()["model"]["version"] != "v9.0.0":
            assert time.monotonic() < deadline, service.output()[-3000:]
            time.sleep(0.5)
        name, body = loop.uploads[0]
        answer = httpx.post(f"{service.url}/predict", files={"file": (name, body)}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == {"version": "v9.0.0", "stage": "prod",
                                          "manifest_sha256": meta["model"]["manifest_sha256"]}
        metrics = httpx.get(f"{service.url}/metrics").text
    assert _counter(metrics, "a3lign_model_swaps_total", 'result="swapped"') == 1
    assert open_log(tmp_path / "follow/predictions.sqlite").get(answer.headers["x-request-id"])["model_version"] == \
        "v9.0.0"
