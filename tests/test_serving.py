"""The HTTP service on the tiny pipeline's deployment artifact, run as its own process on 127.0.0.1:
the same answers as `predict`, metadata and Prometheus metrics, bad uploads refused with a 4xx under
concurrent load (no 5xx, no temporary file left), micro-batching, the registry's prod version, a tampered
artifact refused, and the browser page in headless Chromium."""
import asyncio
import json
import random
import re
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import expression_video, run_cmd

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.data.video_io import write_video
from a3lign_research.browser import find_chromium, image_spread
from a3lign_dfer.inference.artifact import ArtifactError, verify
from a3lign_dfer.serving.process import running_service

LIMITS = {"max_upload_mb": 0.5, "max_frames": 120, "max_megapixel_frames": 20, "max_cpu_seconds": 30, "max_batch": 8,
          "max_wait_ms": 20, "preprocess_workers": 2}


def _predict_cli(repo, deploy, videos) -> dict:
    out = run_cmd([sys.executable, "-m", "a3lign_dfer", "predict", *map(str, videos), "--deploy", str(deploy),
                   "--json"], repo)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {row["path"]: row for row in rows}


@pytest.fixture(scope="module")
def served(pipeline, tmp_path_factory):
    """The service on a snapshot of the pipeline's models/deploy, with small limits; what predict says."""
    repo, _, _ = pipeline
    work = tmp_path_factory.mktemp("serving")
    deploy = work / "deploy"
    shutil.copytree(repo / DEPLOY_DIR, deploy)       # the pipeline tests may re-export later
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["serve"].update(LIMITS)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    videos = [repo / "data/raw" / p for p in raw.loc[raw["split"] == "test", "path"].head(6)]
    expected = _predict_cli(repo, deploy, videos)
    tmp = work / "tmp"
    tmp.mkdir()
    with running_service(["--artifact", str(deploy)], repo, work / "params.yaml", env={"TMPDIR": str(tmp)}) as url:
        yield SimpleNamespace(url=url, repo=repo, work=work, deploy=deploy, videos=videos, expected=expected,
                              tmp=tmp, classes=params["data"]["classes"])


def _same_answer(answer: dict, expected: dict) -> None:
    assert answer["label"] == expected["label"]
    assert answer["probabilities"] == pytest.approx(expected["probabilities"], abs=2e-5)


def test_predict_gives_predicts_answer_with_boxes_frames_and_version(served):
    spec = json.loads((served.deploy / "preprocess.json").read_text())
    for video in served.videos[:3]:
        with video.open("rb") as f:
            response = httpx.post(f"{served.url}/predict", files={"file": (video.name, f, "video/mp4")}, timeout=60)
        assert response.status_code == 200, response.text
        answer = response.json()
        _same_answer(answer, served.expected[str(video)])
        assert answer["filename"] == video.name and answer["backend"] == "onnxruntime" and answer["precision"] == "fp32"
        assert len(answer["face_boxes"]) == answer["frames_decoded"] > 0
        assert len(answer["frames_used"]) == spec["frames"]
        assert answer["frames_used"] == sorted(answer["frames_used"])
        assert answer["frames_used"][-1] < answer["frames_decoded"]
        height, width = answer["frame_size"]
        x, y, w, h = answer["face_boxes"][answer["frames_used"][0]]
        assert 0 < w == h <= min(height, width) and -w < x < width and -h < y < height
        assert answer["model"]["version"] is None and len(answer["model"]["manifest_sha256"]) == 64
        assert "crops" not in answer
    # The raw bytes as the body, and the crops the model saw.
    video = served.videos[3]
    answer = httpx.post(f"{served.url}/predict?crops=true", content=video.read_bytes(),
                        headers={"x-filename": video.name}, timeout=60).json()
    _same_answer(answer, served.expected[str(video)])
    assert len(answer["crops"]) == spec["frames"]
    assert all(c.startswith("data:image/jpeg;base64,") for c in answer["crops"])


def test_health_metadata_and_the_page(served):
    assert httpx.get(f"{served.url}/health").json()["status"] == "ready"
    meta = httpx.get(f"{served.url}/metadata").json()
    manifest = json.loads((served.deploy / "manifest.json").read_text())
    assert meta["classes"] == served.classes and meta["backend"] == "onnxruntime"
    assert meta["model"]["stage"] is None and meta["model"]["test_metrics"] == manifest["test_metrics"]
    assert meta["preprocessing"] == json.loads((served.deploy / "preprocess.json").read_text())
    assert meta["limits"] == {"max_upload_mb": 0.5, "max_frames": 120, "max_megapixel_frames": 20,
                              "max_cpu_seconds": 30}
    page = httpx.get(f"{served.url}/").text
    assert "<form" in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)   # nothing external


def test_timeline_gives_the_cli_timeline_and_one_window_is_predicts_answer(served, tmp_path):
    video = expression_video(tmp_path / "change.mp4", ["happy", "surprise"], 3.0)
    out = run_cmd([sys.executable, "-m", "a3lign_dfer", "timeline", str(video), "--deploy", str(served.deploy)],
                  served.repo)
    expected = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    with video.open("rb") as f:
        response = httpx.post(f"{served.url}/timeline", files={"file": (video.name, f, "video/mp4")}, timeout=120)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["filename"], answer["fps"], answer["frames_decoded"]) == ("change.mp4", 12, 72)
    assert (answer["window_seconds"], answer["stride_seconds"], answer["precision"]) == (2.0, 0.5, "fp32")
    assert len(answer["windows"]) == len(expected) == 9                 # 6 s: windows at 0, 0.5, ... 4 s
    for got, want in zip(answer["windows"], expected):
        assert {k: got[k] for k in ("start", "end", "label", "face_box")} == \
            {k: want[k] for k in ("start", "end", "label", "face_box")}
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=2e-5)
    short = served.videos[0]                                            # 1-1.5 s: one window, predict's answer
    [window] = httpx.post(f"{served.url}/timeline", content=short.read_bytes(), headers={"x-filename": short.name},
                          timeout=60).json()["windows"]
    _same_answer(window, served.expected[str(short)])
    wall = _clip_file(tmp_path / "wall.mp4", np.full((30, 96, 96, 3), 128, np.uint8))
    refused = httpx.post(f"{served.url}/timeline", content=wall.read_bytes(), timeout=60)
    assert (refused.status_code, refused.json()["error"]) == (422, "no_face")       # the kinds /predict gives


def _clip_file(path, frames):
    write_video(frames, path, fps=25)
    return path


def _bad_uploads(served) -> list[tuple[str, dict, int, str]]:
    """(name, httpx request kwargs, expected status, expected error kind) for every kind of bad upload."""
    work, good = served.work, served.videos[0].read_bytes()
    rng = np.random.default_rng(0)
    grey = np.full((30, 96, 96, 3), 128, np.uint8)
    long = np.clip(rng.normal(128, 4, (1, 64, 64, 3)) + np.arange(150)[:, None, None, None] % 50, 0, 255)
    no_face = _clip_file(work / "wall.mp4", grey).read_bytes()
    too_long = _clip_file(work / "long.mp4", long.astype(np.uint8)).read_bytes()
    # 1080p: 12 frames are 25 megapixel-frames (limit 20), 75 MB once decoded, 40 kB as sent.
    hd = _clip_file(work / "hd.mp4", (np.full((1080, 1920, 3), 90, np.uint8) for _ in range(12))).read_bytes()
    assert len(too_long) < 0.5 * 2**20 and len(hd) < 0.5 * 2**20
    return [
        ("no file field", {"files": {"video": ("clip.mp4", good)}}, 400, "no_file"),
        ("empty body", {"content": b""}, 400, "no_file"),
        ("empty file", {"files": {"file": ("empty.mp4", b"")}}, 400, "empty_video"),
        ("not a video", {"files": {"file": ("notes.mp4", b"these are my notes\n" * 50)}}, 415, "not_a_video"),
        ("truncated", {"files": {"file": ("cut.mp4", good[:len(good) // 3])}}, 422, "truncated_video"),
        ("no face", {"files": {"file": ("wall.mp4", no_face)}}, 422, "no_face"),
        ("too many frames", {"files": {"file": ("long.mp4", too_long)}}, 413, "too_many_frames"),
        ("too many pixels", {"files": {"file": ("hd.mp4", hd)}}, 413, "too_many_pixels"),
        ("too large", {"files": {"file": ("big.mp4", rng.bytes(int(0.6 * 2**20)))}}, 413, "upload_too_large"),
    ]


def test_mixed_concurrent_load_good_answers_4xx_for_bad_no_5xx_no_temp_files(served):
    jobs = [("good", {"files": {"file": (v.name, v.read_bytes())}}, 200, str(v)) for v in served.videos] * 2
    jobs += _bad_uploads(served)
    random.Random(0).shuffle(jobs)
    before = httpx.get(f"{served.url}/metrics").text
    present = set(served.tmp.rglob("*"))              # what the service made at start-up (its upload folder)
    uploads = [p for p in present if p.is_dir() and p.name.startswith("a3lign-serve-")]
    assert len(uploads) == 1

    def send(job):
        return job, httpx.post(f"{served.url}/predict", timeout=120, **job[1])

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, jobs))
    for (name, _, status, expected), response in results:
        assert response.status_code == status, (name, response.text)
        if status == 200:
            _same_answer(response.json(), served.expected[expected])
        else:
            error = response.json()
            assert error["error"] == expected and error["detail"], name
            assert str(served.tmp) not in error["detail"]                 # the server's paths stay private
    assert httpx.get(f"{served.url}/health").status_code == 200           # still up
    # Every upload's temporary file is gone: nothing new in the temporary folder, the upload folder empty.
    assert set(served.tmp.rglob("*")) == present and list(uploads[0].iterdir()) == []
    # Prometheus counters moved by exactly what was sent.
    after = httpx.get(f"{served.url}/metrics").text
    sent = Counter(kind for _, _, status, kind in jobs if status != 200)
    for kind, count in sent.items():
        assert _counter(after, "a3lign_errors_total", f'kind="{kind}"') - \
            _counter(before, "a3lign_errors_total", f'kind="{kind}"') == count, kind
    good = sum(1 for job in jobs if job[2] == 200)
    assert _counter(after, "a3lign_requests_total", 'endpoint="/predict",status="200"') - \
        _counter(before, "a3lign_requests_total", 'endpoint="/predict",status="200"') == good
    assert _counter(after, "a3lign_request_latency_seconds_count", 'endpoint="/predict"') >= len(jobs)
    assert not re.search(r'a3lign_requests_total\{endpoint="[^"]+",status="5\d\d"\}', after)


def _counter(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_micro_batching_joins_concurrent_clips_into_one_backend_call(served):
    from a3lign_dfer.inference.backends import load_backend
    from a3lign_dfer.serving.batcher import MicroBatcher

    run = load_backend(served.deploy, "onnxruntime")
    calls = []

    def recorded(frames):
        calls.append(len(frames))
        return run(frames)

    spec = json.loads((served.deploy / "preprocess.json").read_text())
    clips = np.random.default_rng(0).normal(size=(5, spec["frames"], 3, spec["image"]["size"],
                                                  spec["image"]["size"])).astype(np.float32)

    async def serve_together(max_batch):
        batcher = MicroBatcher(recorded, max_batch, 0.2, lambda: 0, lambda n: None)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher(clip) for clip in clips))
        finally:
            await batcher.stop()

    together = asyncio.run(serve_together(8))
    assert calls == [5]                                                   # one call for five requests
    # A clip arriving 50 ms after the first joins its batch only while the service says one is on its way.
    for preparing, expected in ((lambda: 1, [2]), (lambda: 0, [1, 1])):
        calls.clear()
        asyncio.run(_staggered(MicroBatcher(recorded, 8, 0.2, preparing, lambda n: None), clips[:2]))
        assert calls == expected
    calls.clear()
    alone = asyncio.run(serve_together(1))
    assert calls == [1] * 5                                               # batching off: one at a time
    for a, b, single in zip(together, alone, (run(clip[None]) for clip in clips)):
        np.testing.assert_allclose(a[1], single[1][0], atol=1e-5)        # same probabilities either way
        np.testing.assert_allclose(b[1], single[1][0], atol=1e-5)


async def _staggered(batcher, clips):
    async def late():
        await asyncio.sleep(0.05)
        return await batcher(clips[1])

    await batcher.start()
    try:
        return await asyncio.gather(batcher(clips[0]), late())
    finally:
        await batcher.stop()


def test_a_tampered_artifact_stops_the_service_from_starting(served, tmp_path):
    tampered = tmp_path / "deploy"
    shutil.copytree(served.deploy, tampered)
    labels = json.loads((tampered / "labels.json").read_text())
    labels["classes"] = labels["classes"][::-1]                         # a silent relabelling
    (tampered / "labels.json").write_text(json.dumps(labels))
    done = subprocess.run([sys.executable, "-m", "a3lign_dfer", "serve", "--artifact", str(tampered), "--port",
                           "0"], cwd=served.repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "labels.json: sha256" in done.stderr and "refusing to serve" in done.stderr
    (tampered / "labels.json").write_bytes((served.deploy / "labels.json").read_bytes())
    assert verify(tampered).manifest_sha256                               # restored: accepted again
    (tampered / "model.plan").write_bytes(b"an engine nobody exported")
    with pytest.raises(ArtifactError, match="model.plan: not in the manifest"):
        verify(tampered)
    (tampered / "model.plan").unlink()
    (tampered / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match="model.onnx: missing"):
        verify(tampered)


def test_serve_stage_prod_fetches_the_registered_version(served):
    repo = served.repo
    gto = [str(Path(sys.executable).parent / "gto")]
    held = json.loads(run_cmd([*gto, "show", "--json"], repo)).get("a3lign-dfer", {}).get("stage", {})
    if "prod" not in held:                                                # this module run on its own
        run_cmd([*gto, "register", "a3lign-dfer", "--version", "v0.1.0", "HEAD"], repo)
        run_cmd([*gto, "assign", "a3lign-dfer", "--version", "v0.1.0", "--stage", "prod"], repo)
        held = {"prod": "v0.1.0"}
    with running_service(["--stage", "prod"], repo, served.work / "params.yaml") as url:
        meta = httpx.get(f"{url}/metadata").json()
        video = served.videos[0]
        answer = httpx.post(f"{url}/predict", files={"file": (video.name, video.read_bytes())}, timeout=60).json()
    assert meta["model"]["version"] == held["prod"] and meta["model"]["stage"] == "prod"
    assert answer["model"]["version"] == held["prod"] and answer["label"] in served.classes


def test_serve_stage_without_that_stage_says_so(served):
    held = json.loads(run_cmd([str(Path(sys.executable).parent / "gto"), "show", "--json"], served.repo))
    assert "staging" not in held.get("a3lign-dfer", {}).get("stage", {})
    done = subprocess.run([sys.executable, "-m", "a3lign_dfer", "--params", str(served.work / "params.yaml"),
                           "serve", "--stage", "staging", "--port", "0"], cwd=served.repo, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "no version of a3lign-dfer holds stage 'staging'" in done.stderr


@pytest.mark.skipif(find_chromium() is None, reason="Chromium is not installed (apt-get install chromium): "
                                                    "the browser check needs it")
def test_the_page_predicts_an_uploaded_video_in_chromium(served, tmp_path):
    from a3lign_research.page_check import check_page

    video = served.videos[1]
    shown = check_page(served.url, video, tmp_path / "page.png")
    assert shown["label"] == served.expected[str(video)]["label"], shown["status"]
    assert sorted(shown["bars"]) == sorted(served.classes) and len(shown["widths"]) == len(served.classes)
    spec = json.loads((served.deploy / "preprocess.json").read_text())
    assert shown["crops"] == spec["frames"] and shown["external"] == []
    assert image_spread(tmp_path / "page.png") > 0.05
    assert not shown["timeline"] and shown["status"] == f"Done: {video.name}"     # one window: no chart
    # A video longer than one window: its timeline drawn under the label, one line per class.
    longer = check_page(served.url, expression_video(tmp_path / "change.mp4", ["happy", "surprise"], 3.0))
    assert longer["timeline"] and sorted(longer["timeline_lines"]) == sorted(served.classes), longer["status"]
