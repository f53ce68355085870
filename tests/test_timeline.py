"""Expression timelines (`timeline`, inference.timeline) on the tiny pipeline's artifact: a one-window clip's
timeline is predict's answer, a face that changes expression half way changes label there (within one
stride), the frame cache encodes each sampled frame once and changes no number, a stream URL plays live, and
bad sources get one clear line."""
from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from conftest import FPS, expression_video, run_cli

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.config.serving import TimelineConfig
from a3lign_dfer.inference.backends import SplitRunner
from a3lign_dfer.inference.timeline import WindowPlan, file_windows, predict_windows, read_ahead
from a3lign_dfer.inference.video_input import PreprocessSpec
from a3lign_research.browser import image_spread

SHORT = TimelineConfig(window_seconds=1.0, stride_seconds=0.5, default_fps=30)


def test_windows_are_prepared_ahead_in_order_errors_reach_the_caller_and_a_stop_releases_the_source():
    assert list(read_ahead(range(10), 2)) == list(range(10)) and list(read_ahead([], 2)) == []
    produced, released = [], threading.Event()

    def source():
        try:
            for k in range(100):
                produced.append(k)
                if k == 5:
                    raise ValueError("no face found: clip.mp4")
                yield k
        finally:
            released.set()

    with pytest.raises(ValueError, match="no face found"):
        list(read_ahead(source(), 2))
    assert produced == list(range(6)) and released.is_set()
    produced.clear(), released.clear()
    first = read_ahead(source(), 2)
    assert next(first) == 0
    first.close()                                                          # the caller stops: Ctrl-C, a limit
    assert released.wait(5) and len(produced) <= 5


def test_windows_cover_the_video_and_share_sampled_frames():
    plan = WindowPlan(length=60, stride=15, frames=16)
    spans = plan.spans(200)
    assert spans[0] == (0, 60) and spans[-1] == (140, 200)                 # the last one ends at the last frame
    assert [s for s, _ in spans[:-1]] == list(range(0, 141, 15))           # a window per stride, then that one
    for start, end in spans:
        sampled = plan.sampled(start, end)
        assert len(sampled) == 16 and start <= sampled.min() and sampled.max() < end
    # A quarter-window stride: each window shares 12 of its 16 sampled frames with the one before.
    assert len(set(plan.sampled(*spans[0])) & set(plan.sampled(*spans[1]))) == 12
    assert plan.spans(40) == [(0, 40)]                                     # no longer than a window: one
    live = {int(t) for k in range(20) for t in plan.sampled(*plan.live_span(k))}    # what live windows sample
    assert all(plan.is_sampled(t) == (t in live) for t in range(15 * 19))


def _timeline_cli(repo: Path, capsys, source: str, *args: str) -> list[dict]:
    out = run_cli(["timeline", source, "--deploy", str(DEPLOY_DIR), *args], repo, capsys)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def deploy(pipeline):
    repo, _, _ = pipeline
    deploy = repo / DEPLOY_DIR
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    classes = json.loads((deploy / "labels.json").read_text())["classes"]
    return repo, deploy, spec, classes, SplitRunner(deploy)


def test_a_clip_no_longer_than_a_window_gets_predicts_answer(deploy, capsys):
    repo, _, _, _, _ = deploy
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    videos = [str(repo / "data/raw" / p) for p in raw.loc[raw["split"] == "test", "path"].head(3)]
    out = run_cli(["predict", *videos, "--deploy", str(DEPLOY_DIR), "--json"], repo, capsys)
    predicted = {row["path"]: row for row in map(json.loads, (ln for ln in out.splitlines() if ln.startswith("{")))}
    for video in videos:
        [window] = _timeline_cli(repo, capsys, video)                              # 1-1.5 s clips, 2 s windows
        assert window["start"] == 0 and window["label"] == predicted[video]["label"]
        assert window["probabilities"] == pytest.approx(predicted[video]["probabilities"], abs=1e-4)


def _still(deploy, tmp_path: Path, label: str) -> np.ndarray:
    """The class probabilities of the face holding `label` still for one window."""
    _, _, spec, classes, runner = deploy
    faces = file_windows(expression_video(tmp_path / f"still_{label}.mp4", [label], 1.0), spec, SHORT)
    [point] = predict_windows(faces, runner, classes, spec.image)
    return np.array(list(point.probabilities.values()))


def test_the_timeline_changes_where_the_expression_does_within_one_stride(deploy, tmp_path, capsys):
    """The tiny model's probabilities move little with the expression, so a window's expression is read as the
    still one its probabilities are nearest to (a trained model's label would do; this one's need not)."""
    repo, _, _, _, _ = deploy
    first, second = "happy", "surprise"
    still = {e: _still(deploy, tmp_path, e) for e in (first, second)}
    video = expression_video(tmp_path / "change.mp4", [first, second], 3.0)
    timeline = _timeline_cli(repo, capsys, str(video), "--window-seconds", "1", "--stride-seconds", "0.5",
                             "--out", str(tmp_path / "change.csv"))
    probs = np.array([list(w["probabilities"].values()) for w in timeline])
    shows = [min(still, key=lambda e: np.abs(p - still[e]).sum()) for p in probs]
    middle, stride = 3.0, 0.5
    centres = [(w["start"] + w["end"]) / 2 for w in timeline]
    assert timeline[-1]["end"] == 6.0 and len(timeline) == 11 and all(w["label"] for w in timeline)
    # Windows wholly inside one half show that half's expression, and closely: the halves differ by much more.
    apart = np.abs(still[first] - still[second]).sum()
    assert apart > 0.005
    for p, c, e in zip(probs, centres, shows):
        if abs(c - middle) >= stride:
            assert e == (first if c < middle else second) and np.abs(p - still[e]).sum() < apart / 4, (c, p, still)
    change = next(c for c, e in zip(centres, shows) if e == second)
    assert abs(change - middle) <= stride and all(e == second for c, e in zip(centres, shows) if c >= change)
    table = pd.read_csv(tmp_path / "change.csv")
    assert list(table["label"]) == [w["label"] for w in timeline]
    np.testing.assert_allclose(table[list(timeline[0]["probabilities"])].to_numpy(), probs, atol=1e-6)
    assert image_spread(tmp_path / "change.png") > 0.05


class Counting:
    """The artifact's split graphs, counting the frames put through the image encoder."""

    def __init__(self, runner: SplitRunner) -> None:
        self.runner, self.frames, self.head = runner, 0, runner.head

    def encode(self, images: np.ndarray) -> np.ndarray:
        self.frames += len(images)
        return self.runner.encode(images)


def test_the_frame_cache_encodes_each_sampled_frame_once_and_changes_nothing(deploy, tmp_path):
    _, _, spec, classes, runner = deploy
    video = expression_video(tmp_path / "three.mp4", ["happy", "sad", "surprise"], 2.0)
    cfg = TimelineConfig(window_seconds=2.0, stride_seconds=0.5, default_fps=30)
    counted = {}
    for cache in (True, False):
        counting = Counting(runner)
        counted[cache] = (list(predict_windows(file_windows(video, spec, cfg), counting, classes, spec.image, cache)),
                          counting.frames)
    (cached, encoded), (uncached, every) = counted[True], counted[False]
    plan = WindowPlan.of(cfg, FPS, spec.frames)
    spans = plan.spans(6 * FPS)
    assert len(cached) == len(spans) and every == spec.frames * len(spans)
    assert encoded == len({int(t) for s in spans for t in plan.sampled(*s)}) < every / 2
    for a, b in zip(cached, uncached):
        assert a.label == b.label and a.probabilities == pytest.approx(b.probabilities, abs=1e-5)


def test_a_stream_url_is_followed_live_and_agrees_where_the_expression_holds(deploy, tmp_path, capsys):
    repo, _, _, _, _ = deploy
    video = expression_video(tmp_path / "stream.mp4", ["happy", "surprise"], 3.0)
    offline = _timeline_cli(repo, capsys, str(video), "--window-seconds", "1", "--stride-seconds", "0.5")
    with av.open(str(video)) as src, av.open(str(tmp_path / "stream.ts"), "w", format="mpegts") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])      # MPEG-TS: playable without seeking
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        live = _timeline_cli(repo, capsys, f"http://127.0.0.1:{server.server_port}/stream.ts", "--window-seconds", "1",
                             "--stride-seconds", "0.5", "--max-seconds", "4")
    finally:
        server.shutdown()
    assert [(w["start"], w["end"]) for w in live] == [(k * 0.5, k * 0.5 + 1) for k in range(7)]
    # The live track's causal median differs from the whole-video track only where the face moves: it does not.
    for a, b in zip(live, offline):
        assert a["label"] == b["label"] and a["probabilities"] == pytest.approx(b["probabilities"], abs=0.02)


def test_windows_where_the_face_is_gone_get_no_label(deploy, tmp_path, capsys):
    repo, _, _, _, _ = deploy
    video = expression_video(tmp_path / "leaves.mp4", ["happy", None], 3.0)
    timeline = _timeline_cli(repo, capsys, str(video), "--window-seconds", "1", "--stride-seconds", "0.5",
                             "--out", str(tmp_path / "leaves.csv"))
    for window in timeline:
        if window["end"] <= 3.0:
            assert window["label"] and window["detection_rate"] == 1.0
        if window["start"] >= 3.0:
            assert window["label"] is None and window["probabilities"] is None and window["detection_rate"] == 0.0
    assert pd.read_csv(tmp_path / "leaves.csv")["label"].isna().sum() == sum(w["label"] is None for w in timeline)


@pytest.mark.parametrize("source, says", [
    ("missing.mp4", "missing.mp4: file not found"),
    ("http://127.0.0.1:9/clip.mp4", "cannot open stream http://127.0.0.1:9/clip.mp4"),
    ("7", "cannot open camera 7")])
def test_a_bad_source_gets_one_clear_line(deploy, source, says):
    repo, _, _, _, _ = deploy
    done = subprocess.run([sys.executable, "-m", "a3lign_dfer", "timeline", source, "--deploy", str(DEPLOY_DIR)],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and says in lines[0], done.stderr


def test_int8_runs_only_where_the_manifest_releases_it(deploy):
    repo, deploy_dir, _, _, _ = deploy
    video = str(next((repo / "data/raw/videos").glob("*.mp4")))
    done = subprocess.run([sys.executable, "-m", "a3lign_dfer", "timeline", video, "--deploy", str(DEPLOY_DIR),
                           "--precision", "int8"], cwd=repo, capture_output=True, text=True, timeout=120)
    if json.loads((deploy_dir / "manifest.json").read_text())["int8"]["releasable"]:
        assert done.returncode == 0 and json.loads(done.stdout.splitlines()[0])["label"], done.stderr
    else:
        assert done.returncode == 2 and "refusing --precision int8" in done.stderr and not done.stdout, done.stderr
