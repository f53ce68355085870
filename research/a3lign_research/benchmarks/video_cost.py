"""What one video costs to prepare for the model, old path vs new, side by side in one run (not a test).

The old path is the one before the streamed face track (commit BASELINE_REV): every frame
decoded, converted and kept, the detector at full resolution on every frame, every frame
cropped. The new one is `inference.video_input.face_frames` with the params' face_crop
(detection on a shrunk copy of at most detect_fps frames a second, only the sampled frames kept). Both run on:
  real   real-face clips (data.face_videos: photos and LFW faces) filmed at 640x360, 1280x720
         and 1920x1080, 3 s at 30 fps (90 frames), as a phone records;
  test   the benchmark's first test clips (data/raw) scaled to 480x360, 960x720 and 1440x1080;
  long   one 30 s 1080p clip (900 frames) of a real face.
Each (clip, path) runs in a fresh process on one thread: CPU seconds (process time) and peak
extra memory (the kernel's peak-RSS mark, reset after imports and the detector are loaded, minus the
RSS then). The crops
of both paths go through the default artifact (ONNX Runtime): the same predicted label, and
the crop boxes' IoU at the sampled frames, say whether the model sees the same thing.

Then the HTTP service at concurrency 1, 4 and 16 on 720p clips: today's service (the code of
BASELINE_REV, thread pool, old path) and the new one (worker processes, new path), started side
by side on the same model and measured in alternating rounds.

Writes reports/benchmarks/video_cost.json and the README block `video-cost`.
Example (about 15 minutes on 2 cores): python -m a3lign_research.benchmarks.video_cost
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import httpx
import numpy as np
import pandas as pd
import torch

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.data.face_track import (
    crop_square,
    detect_scaled,
    detector_for,
    select_boxes,
    smooth_and_fill,
    warm_detector,
)
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.data.video_io import read_video, write_video
from a3lign_dfer.inference.backends import load_backend
from a3lign_dfer.inference.video_input import PreprocessSpec, face_frames
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.serving.process import running_service
from a3lign_research import ROOT
from a3lign_research.benchmarks.common import load_level, summarize
from a3lign_research.blocks import publish
from a3lign_research.face_videos import lfw_videos, photo_videos

BASELINE_REV = "fc2636c"            # the last commit with the old path
REAL = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
TEST = {"360p": (480, 360), "720p": (960, 720), "1080p": (1440, 1080)}
FPS, SECONDS, LONG_SECONDS = 30, 3, 30
CONCURRENCY = (1, 4, 16)
TARGETS = {"cpu_s_3s_1080p": 1.0, "extra_mb": 300, "cpu_s_30s_1080p": 10.0, "detection_rate": 0.95,
           "box_iou": 0.9, "label_agreement": 0.95, "service_speedup_c16": 5.0}


def _jpeg(crop: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def old_path(path: Path, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """The path before the streamed track: (sampled crops, sampled crop boxes cx, cy, side)."""
    cfg = spec.face_crop
    frames = read_video(path)                                       # every frame, RGB, held
    detect = detector_for(cfg)
    boxes = select_boxes([detect_scaled(cv2.cvtColor(f, cv2.COLOR_RGB2BGR), detect, 1.0, cfg.min_face)
                          for f in frames])                         # full resolution, every frame
    track = smooth_and_fill(boxes, cfg.smooth_window)
    crops = [crop_square(f, cx, cy, side, cfg.margin, cfg.size) for f, (cx, cy, side) in zip(frames, track)]
    picked = segment_indices(len(frames), spec.frames, train=False)
    return np.stack([_jpeg(crops[i], cfg.jpeg_quality) for i in picked]), track[picked]


def new_path(path: Path, spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    faces = face_frames(path, spec)
    return faces.crops, faces.track[faces.used]


def _measure(task: tuple[str, str, dict]) -> dict:
    """In a fresh process: one clip through one path; CPU seconds, peak extra MB, crops, boxes."""
    variant, path, raw = task
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    spec = PreprocessSpec.from_json(raw)
    warm_detector(spec.face_crop)
    Path("/proc/self/clear_refs").write_text("5")          # the peak RSS (VmHWM) starts again from now
    before = _status_kb("VmRSS")
    start = time.process_time()
    crops, boxes = (old_path if variant == "old" else new_path)(Path(path), spec)
    cpu = time.process_time() - start
    return {"cpu_s": cpu, "extra_mb": (_status_kb("VmHWM") - before) / 1024, "crops": crops, "boxes": boxes}


def _status_kb(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def measure(variant: str, path: Path, spec: PreprocessSpec) -> dict:
    with ProcessPoolExecutor(1, get_context("spawn")) as pool:
        return pool.submit(_measure, (variant, str(path), spec.to_json())).result()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of square boxes given as (cx, cy, side)."""
    lo = np.maximum(a[:, :2] - a[:, 2:] / 2, b[:, :2] - b[:, 2:] / 2)
    hi = np.minimum(a[:, :2] + a[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2)
    inter = np.prod(np.clip(hi - lo, 0, None), 1)
    return inter / (a[:, 2] ** 2 + b[:, 2] ** 2 - inter)


def clips(tmp: Path, raw_root: Path, test_clips: int) -> dict[str, dict[str, list[Path]]]:
    """{set: {resolution: [mp4]}} for the real-face and test sets, and the long clip."""
    out: dict[str, dict[str, list[Path]]] = {"real": {}, "test": {}}
    for res, size in REAL.items():
        videos = photo_videos(FPS * SECONDS, size) + lfw_videos(FPS * SECONDS, (0, 24, 48, 72), size)
        out["real"][res] = [v.write(tmp / f"{v.name}_{res}.mp4", fps=FPS) for v in videos]
    manifest = pd.read_parquet(raw_root / "manifest.parquet")
    test = manifest[manifest["split"] == "test"].head(test_clips)
    for res, size in TEST.items():
        out["test"][res] = []
        for row in test.itertuples():
            frames = read_video(raw_root / row.path)
            fps = cv2.VideoCapture(str(raw_root / row.path)).get(cv2.CAP_PROP_FPS)
            path = tmp / f"{row.clip_id}_{res}.mp4"
            write_video(np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames]), path,
                        int(round(fps)))
            out["test"][res].append(path)
    pan = photo_videos(FPS * SECONDS, REAL["1080p"])[0].frames       # the astronaut crossing the frame
    there_and_back = np.concatenate([pan, pan[::-1]])
    long = tmp / "astronaut_pan_30s_1080p.mp4"
    write_video((there_and_back[t % len(there_and_back)] for t in range(FPS * LONG_SECONDS)), long, FPS)
    out["long"] = {"1080p": [long]}
    return out


def labels(backend, crops: np.ndarray, spec: PreprocessSpec) -> int:
    frames = spec.image.graph_input(crops)[None]
    return int(backend(frames)[1].argmax())


def old_service_tree(tmp: Path, deploy: Path) -> tuple[Path, Path]:
    """The code and params of BASELINE_REV, and a copy of the artifact whose preprocess.json that code reads
    (the face_crop keys it does not know removed; the manifest's hash of that file updated)."""
    tree = tmp / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", BASELINE_REV, "src", "params.yaml"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(tree)
    old_deploy = tmp / "deploy_baseline"
    shutil.copytree(deploy, old_deploy)
    spec = json.loads((old_deploy / "preprocess.json").read_text())
    for key in ("detect_max_side", "detect_fps"):
        spec["face_crop"].pop(key)
    (old_deploy / "preprocess.json").write_text(json.dumps(spec, indent=2) + "\n")
    manifest = json.loads((old_deploy / "manifest.json").read_text())
    digest = hashlib.sha256((old_deploy / "preprocess.json").read_bytes()).hexdigest()
    manifest["files"]["preprocess.json"] = digest
    (old_deploy / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return tree, old_deploy


def service_levels(deploy: Path, videos: list[Path], long_clip: Path, rounds: int, tmp: Path) -> dict:
    """Clips/s and latency of today's and the new service on the same uploads, alternating rounds."""
    tree, old_deploy = old_service_tree(tmp, deploy)
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    backend = load_backend(deploy, "onnxruntime")
    expected = {p.name: labels(backend, new_path(p, spec)[0], spec) for p in videos}
    classes = json.loads((deploy / "labels.json").read_text())["classes"]
    uploads = [(p.name, p.read_bytes(), classes[expected[p.name]]) for p in videos]
    old_uploads = [(n, b, None) for n, b, _ in uploads]       # today's path may pick another label: not checked
    results: dict[str, dict] = {"old": {}, "new": {}}   # old: wrong_or_failed counts every answer (not checked)
    with contextlib.ExitStack() as services:
        urls = {"old": services.enter_context(running_service(
                    ["--artifact", str(old_deploy)], tree, tree / "params.yaml",
                    env={"PYTHONPATH": str(tree / "src")})),
                "new": services.enter_context(running_service(["--artifact", str(deploy)], ROOT))}
        for level in CONCURRENCY:
            runs = {"old": [], "new": []}
            for _ in range(rounds):
                for name in ("old", "new"):
                    runs[name].append(load_level(urls[name], old_uploads if name == "old" else uploads, level))
            for name in runs:
                results[name][str(level)] = summarize(runs[name])
            print(f"concurrency {level}: old {results['old'][str(level)]['clips_per_s']:.2f} clips/s, "
                  f"new {results['new'][str(level)]['clips_per_s']:.2f}", flush=True)
        results["responsiveness"] = responsiveness(urls["new"], long_clip, uploads[0])
    return results


def responsiveness(url: str, long_clip: Path, small: tuple) -> dict:
    """The new service while it prepares a 30 s 1080p upload: that request's answer and time, and the latency
    of small requests sent one after another meanwhile, against the same requests on the idle service."""
    def small_latencies(count: int) -> list[float]:
        return [load_level(url, [small], 1)[1] for _ in range(count)]

    idle = small_latencies(5)
    with ThreadPoolExecutor(1) as pool:
        start = time.perf_counter()
        pending = pool.submit(httpx.post, f"{url}/predict", files={"file": (long_clip.name, long_clip.read_bytes())},
                              timeout=600)
        busy = []
        while not pending.done():
            busy += small_latencies(1)
        response = pending.result()
        seconds = time.perf_counter() - start
    body = response.json()
    return {"long_status": response.status_code, "long_answer": body.get("label") or body.get("error"),
            "long_seconds": round(seconds, 2), "small_idle_p50_s": round(statistics.median(idle), 3),
            "small_during_p50_s": round(statistics.median(busy), 3), "small_during_max_s": round(max(busy), 3),
            "small_during": len(busy)}


def markdown(report: dict) -> str:
    table = []
    for key, r in report["clips"].items():
        old, new = r["old"], r["new"]
        old_cpu = "not run" if old is None else f"{old['cpu_s_mean']:.2f}"
        ratio = "" if old is None else f"{old['cpu_s_mean'] / new['cpu_s_mean']:.1f}x"
        old_mb = "not run" if old is None else f"{old['extra_mb_max']:.0f}"
        same = "" if old is None else f"{r['same_label']}/{r['clips']}"
        iou = "" if old is None else f"{r['crop_iou_mean']:.3f}"
        table.append([f"{key.split('/')[0]} ({r['clips']})", key.split("/")[1], old_cpu, f"{new['cpu_s_mean']:.2f}",
                      ratio, old_mb, f"{new['extra_mb_max']:.0f}", same, iou])
    rows = [markdown_table(["clips", "resolution", "old: CPU s/clip", "new: CPU s/clip", "ratio", "old: peak extra MB",
                            "new: peak extra MB", "same label", "crop IoU (mean)"], table)]
    svc = report.get("service")
    if svc:
        per_s = {name: [svc[name][str(c)]["clips_per_s"] for c in CONCURRENCY] for name in ("old", "new")}
        rows += ["", markdown_table(["service on 720p clips", *(f"concurrency {c}" for c in CONCURRENCY)], [
            ["today's (threads, old path): clips/s", *(f"{x:.2f}" for x in per_s["old"])],
            ["new (processes, new path): clips/s", *(f"{x:.2f}" for x in per_s["new"])],
            ["ratio", *(f"{b / a:.1f}x" for a, b in zip(per_s["old"], per_s["new"]))]])]
        r = svc["responsiveness"]
        rows += ["", f"While the new service prepared the 30 s 1080p upload ({r['long_status']} "
                 f"`{r['long_answer']}` after {r['long_seconds']} s), {r['small_during']} small requests sent one "
                 f"after another took {r['small_during_p50_s']} s at the median (at most {r['small_during_max_s']} s), "
                 f"against {r['small_idle_p50_s']} s on the idle service."]
    rows += ["", f"Label agreement over every clip: {report['label_agreement']:.3f}; face_crop "
             f"detect_max_side {report['face_crop']['detect_max_side']}, detect_fps "
             f"{report['face_crop']['detect_fps']:g}; {report['machine']}."]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deploy", default=str(ROOT / DEPLOY_DIR))
    ap.add_argument("--raw", default=str(ROOT / "data/raw"))
    ap.add_argument("--test-clips", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--skip-old-long", action="store_true", help="the old path on the 30 s 1080p clip takes "
                    "minutes and ~10 GB")
    ap.add_argument("--skip-service", action="store_true")
    args = ap.parse_args(argv)
    deploy = Path(args.deploy)
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    backend = load_backend(deploy, "onnxruntime")
    report: dict = {"face_crop": dataclasses.asdict(spec.face_crop), "baseline_rev": BASELINE_REV,
                    "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                    "deploy": str(deploy), "targets": TARGETS, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        sets = clips(Path(tmp), Path(args.raw), args.test_clips)
        agree = []
        for name, by_res in sets.items():
            for res, paths in by_res.items():
                runs = {"old": [], "new": []}
                for path in paths:
                    runs["new"].append(measure("new", path, spec))
                    if not (name == "long" and args.skip_old_long):
                        runs["old"].append(measure("old", path, spec))
                row = {"clips": len(paths), "new": _cost(runs["new"]), "old": _cost(runs["old"]) if runs["old"] else None}
                if runs["old"]:
                    same = [labels(backend, o["crops"], spec) == labels(backend, n["crops"], spec)
                            for o, n in zip(runs["old"], runs["new"])]
                    agree += same
                    row["same_label"] = int(sum(same))
                    row["crop_iou_mean"] = float(np.mean([_iou(o["boxes"], n["boxes"]).mean()
                                                          for o, n in zip(runs["old"], runs["new"])]))
                report["clips"][f"{name}/{res}"] = row
                print(name, res, json.dumps({k: v for k, v in row.items()}), flush=True)
        report["label_agreement"] = float(np.mean(agree))
        if not args.skip_service:
            report["service"] = service_levels(deploy, sets["real"]["720p"] + sets["test"]["720p"],
                                               sets["long"]["1080p"][0], args.rounds, Path(tmp))
    publish("video-cost", report)
    print(markdown(report))
    return report


def _cost(runs: list[dict]) -> dict:
    cpu, mb = [r["cpu_s"] for r in runs], [r["extra_mb"] for r in runs]
    return {"cpu_s_mean": float(np.mean(cpu)), "cpu_s_max": float(np.max(cpu)), "extra_mb_mean": float(np.mean(mb)),
            "extra_mb_max": float(np.max(mb))}


if __name__ == "__main__":
    main()
