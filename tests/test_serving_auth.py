"""The service's API key: where it comes from, when `serve` refuses to start without one, and what a request
without it gets, first on the HTTP layer alone (fast), then on the real service bound to 0.0.0.0 with the tiny
pipeline's artifact (slow)."""
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import httpx
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from a3lign_research.browser import find_chromium
from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.serving.app import create_app
from a3lign_dfer.serving.auth import AuthError, authorized, is_loopback, load_key, required_key
from a3lign_dfer.serving.metrics import ServiceMetrics
from a3lign_dfer.serving.process import running_service

KEY = "k3y-for-tests_0123456789"
NO_KEY_ENV = {k: v for k, v in os.environ.items() if k != "A3LIGN_API_KEY"}
# What the stand-in service's /metadata says (a valid serving.schemas.Metadata).
METADATA = {"model": {"version": None, "stage": None, "manifest_sha256": "ab" * 32,
                      "source_checkpoint": {"path": "models/stage3", "sha256": "cd" * 32, "stage": "stage3",
                                            "train_seed": 0},
                      "test_metrics": {"war": 0.5, "uar": 0.5, "shuffled_uar_drop": 0.25, "num_test_clips": 4}},
            "classes": ["happy"], "backend": "onnxruntime", "precision": "fp32", "preprocessing": {"frames": 16},
            "limits": {"max_upload_mb": 1, "max_frames": 900, "max_megapixel_frames": 2000, "max_cpu_seconds": 10},
            "batching": {"max_batch": 16, "max_wait_ms": 10}}


def test_loopback_hosts():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.com", "localhost.evil"]))


def test_key_from_the_environment_or_a_file(tmp_path):
    assert load_key(None, {}) is None
    assert load_key(None, {"A3LIGN_API_KEY": "  "}) is None                    # set but empty: no key
    assert load_key(None, {"A3LIGN_API_KEY": f" {KEY}\n"}) == KEY
    key_file = tmp_path / "key"
    key_file.write_text(f"\n{KEY}\n")
    assert load_key(key_file, {"A3LIGN_API_KEY": "other"}) == KEY                # the file given wins
    with pytest.raises(AuthError, match="cannot read the API key file .*missing"):
        load_key(tmp_path / "missing", {})
    key_file.write_text(" \n")
    with pytest.raises(AuthError, match="API key file .* is empty"):
        load_key(key_file, {})
    with pytest.raises(AuthError, match="printable ASCII without spaces"):
        load_key(None, {"A3LIGN_API_KEY": "two words"})


def test_only_loopback_may_run_without_a_key():
    assert required_key("127.0.0.1", None, {}) is None
    assert required_key("::1", None, {"A3LIGN_API_KEY": KEY}) == KEY           # a key set is used on loopback too
    assert required_key("0.0.0.0", None, {"A3LIGN_API_KEY": KEY}) == KEY
    for host in ("0.0.0.0", "::", "192.168.1.5"):
        with pytest.raises(AuthError, match=f"--host {host} .* needs an API key: set A3LIGN_API_KEY or pass "
                                            "--api-key-file"):
            required_key(host, None, {})


def test_both_header_forms_are_accepted_and_nothing_else():
    def ok(**headers):
        return authorized(Headers(headers), KEY)

    assert ok(authorization=f"Bearer {KEY}") and ok(authorization=f"bearer  {KEY}")
    assert authorized(Headers({"X-API-Key": KEY}), KEY)                        # header names in any case
    assert authorized(Headers({"Authorization": "Bearer wrong", "X-API-Key": KEY}), KEY)
    for refused in ({}, {"authorization": KEY}, {"authorization": f"Basic {KEY}"}, {"authorization": "Bearer "},
                    {"authorization": f"Bearer {KEY[:-1]}"}, {"authorization": f"Bearer {KEY}x"},
                    {"x-api-key": ""}, {"x-api-key": "k3y-fór-tests"}):
        assert not authorized(Headers(refused), KEY), refused


def _client(api_key: str | None, metrics_need_key: bool = False) -> TestClient:
    """The app around a stand-in service that is still loading: /predict answers 503 once past the key."""
    service = SimpleNamespace(metrics=ServiceMetrics(), ready=False, metadata=lambda: METADATA,
                              cfg=SimpleNamespace(max_upload_mb=1, metrics_need_key=metrics_need_key))
    return TestClient(create_app(service, api_key))


def test_the_key_guards_predict_and_metadata_not_health_page_or_metrics():
    client = _client(KEY)
    for path, method in (("/predict", "post"), ("/metadata", "get"), ("/docs", "get"), ("/elsewhere", "get")):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": KEY.upper()}):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"] == "unauthorized" and "Bearer" in response.json()["detail"]
            assert response.headers["www-authenticate"] == "Bearer"
            assert KEY not in response.text
    assert client.post("/predict", headers={"Authorization": f"Bearer {KEY}"}).status_code == 503   # past the key
    assert client.get("/metadata", headers={"X-API-Key": KEY}).json() == METADATA
    assert client.get("/health").status_code == 503                            # open (and still loading)
    assert "<form" in client.get("/").text
    text = client.get("/metrics").text
    assert 'a3lign_errors_total{kind="unauthorized"} 12.0' in text
    assert 'a3lign_requests_total{endpoint="/predict",status="401"} 3.0' in text
    assert KEY not in text


def test_metrics_need_key_puts_metrics_behind_it_too():
    client = _client(KEY, metrics_need_key=True)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/health").status_code == 503


def test_without_a_key_the_service_is_open():
    client = _client(None, metrics_need_key=True)
    assert client.post("/predict").status_code == 503 and client.get("/metadata").status_code == 200
    assert client.get("/metrics").status_code == 200


def _serve(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "a3lign_dfer", "serve", "--artifact", "no/such/deploy", *args],
                          cwd=ROOT, env=env or NO_KEY_ENV, capture_output=True, text=True, timeout=120)


def test_serve_beyond_loopback_without_a_key_refuses_to_start(tmp_path):
    done = _serve("--host", "0.0.0.0", "--port", "0")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
    assert lines[0].startswith("a3lign_dfer serve: error: --host 0.0.0.0 makes the service reachable from other machines")
    assert "A3LIGN_API_KEY" in lines[0] and "--api-key-file" in lines[0]
    empty = tmp_path / "key"
    empty.write_text("\n")
    done = _serve("--host", "127.0.0.1", "--api-key-file", str(empty))
    assert done.returncode == 2 and done.stderr.strip() == f"a3lign_dfer serve: error: the API key file {empty} is empty"
    # With a key it gets past the check, to the artifact (and never prints the key).
    done = _serve("--host", "0.0.0.0", env={**NO_KEY_ENV, "A3LIGN_API_KEY": KEY})
    assert done.returncode == 2 and "no/such/deploy is not a deployment artifact" in done.stderr
    assert KEY not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def exposed(pipeline, tmp_path_factory):
    """The tiny pipeline's artifact served on 0.0.0.0 with A3LIGN_API_KEY set, and params with
    serve.metrics_need_key true for a second service."""
    repo, params, _ = pipeline
    work = tmp_path_factory.mktemp("serving-auth")
    deploy = work / "deploy"
    shutil.copytree(repo / DEPLOY_DIR, deploy)        # the pipeline tests may re-export later
    guarded = {**params, "serve": {**params["serve"], "metrics_need_key": True}}
    (work / "metrics_need_key.yaml").write_text(yaml.safe_dump(guarded, sort_keys=False))
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    video = repo / "data/raw" / raw.loc[raw["split"] == "test", "path"].iloc[0]
    with running_service(["--artifact", str(deploy)], repo, env={"A3LIGN_API_KEY": KEY}, host="0.0.0.0") as url:
        yield SimpleNamespace(url=url, repo=repo, work=work, deploy=deploy, video=video,
                              classes=params["data"]["classes"])


def test_the_exposed_service_answers_only_with_the_key(exposed):
    url, video = exposed.url, exposed.video

    def predict(**headers):
        return httpx.post(f"{url}/predict", files={"file": (video.name, video.read_bytes())}, headers=headers,
                          timeout=60)

    for response in (predict(), predict(Authorization="Bearer wrong"), predict(**{"X-API-Key": "wrong"})):
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    classes = exposed.classes
    for headers in ({"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}):
        response = predict(**headers)
        assert response.status_code == 200, response.text
        assert response.json()["label"] in classes
    assert httpx.get(f"{url}/metadata").status_code == 401
    assert httpx.get(f"{url}/metadata", headers={"Authorization": f"Bearer {KEY}"}).json()["classes"] == classes
    assert httpx.get(f"{url}/health").json()["status"] == "ready"
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200 and 'a3lign_errors_total{kind="unauthorized"} 4.0' in metrics.text


def test_metrics_need_key_on_the_real_service_with_a_key_file(exposed):
    key_file = exposed.work / "api-key"
    key_file.write_text(f"{KEY}\n")
    with running_service(["--artifact", str(exposed.deploy), "--api-key-file", str(key_file)], exposed.repo,
                         exposed.work / "metrics_need_key.yaml", env={"A3LIGN_API_KEY": "not-this-one"},
                         host="0.0.0.0") as url:
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/metrics", headers={"X-API-Key": KEY}).status_code == 200
        assert httpx.get(f"{url}/metadata", headers={"X-API-Key": "not-this-one"}).status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium): "
                                                    "the browser check needs it")
def test_the_page_asks_for_the_key_and_then_predicts(exposed):
    from a3lign_research.page_check import check_page

    shown = check_page(exposed.url, exposed.video, api_key=KEY)
    assert shown["label"] in exposed.classes, shown["status"]
