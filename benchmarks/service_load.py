"""The HTTP service under load, micro-batching on and off, side by side in one run (not a test).

Two services run on the same artifact, one after the other: micro-batching on
(params serve.max_batch and max_wait_ms) and off (max_batch 1: one backend call per
request, one at a time). Each gets the same real videos (the test split of
data/raw) at concurrency 1, 4 and 16; every answer is checked (status 200 and the
label `predict` gives) and p50/p95 latency and clips/s are recorded. The backend
alone is also timed at batch 1 and at max_batch on the same clips, which says how
much micro-batching could at most gain on this machine: the rest of a request is
decoding and face cropping, which batching does not touch. Results go to
reports/benchmarks/service_load.json and a markdown table is printed.

Example (about 6 minutes on 2 cores): python benchmarks/service_load.py --requests 48
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

from a3lign_dfer.config import load_params
from a3lign_dfer.inference.backends import load_backend
from a3lign_dfer.inference.video_input import PreprocessSpec, video_input
from a3lign_dfer.serving.process import running_service

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 4, 16)


def load_level(url: str, uploads: list[tuple[str, bytes, str]], concurrency: int) -> dict:
    """All uploads at `concurrency` in flight; latency percentiles, throughput, and wrong or failed answers."""
    def send(upload):
        name, body, label = upload
        start = time.perf_counter()
        response = httpx.post(f"{url}/predict", files={"file": (name, body)}, timeout=600)
        ok = response.status_code == 200 and response.json()["label"] == label
        return time.perf_counter() - start, ok

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(send, uploads))
    wall = time.perf_counter() - start
    latencies = sorted(t for t, _ in results)
    return {"requests": len(uploads), "wrong_or_failed": sum(not ok for _, ok in results),
            "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
            "clips_per_s": round(len(uploads) / wall, 2)}


def backend_alone(deploy: Path, videos: list[Path], batch: int, repeats: int = 5) -> dict:
    """Seconds per clip of the backend call alone at batch 1 and at `batch`, on the same clips."""
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    run = load_backend(deploy, "onnxruntime")
    clips = np.stack([video_input(v, spec).numpy() for v in (videos * batch)[:batch]])
    run(clips[:1])
    run(clips)

    def per_clip(x):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(0, len(clips), len(x)):
                run(clips[i:i + len(x)])
            times.append((time.perf_counter() - start) / len(clips))
        return statistics.median(times)

    one, many = per_clip(clips[:1]), per_clip(clips)
    return {"batch": batch, "s_per_clip_batch_1": round(one, 5), f"s_per_clip_batch_{batch}": round(many, 5),
            "speedup": round(one / many, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploy", default="models/deploy")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--requests", type=int, default=48, help="requests per concurrency level")
    parser.add_argument("--out", default="reports/benchmarks/service_load.json")
    args = parser.parse_args()
    params = load_params(args.params)
    deploy = Path(args.deploy).resolve()
    raw = pd.read_parquet(ROOT / "data/raw/manifest.parquet")
    videos = [ROOT / "data/raw" / p for p in raw.loc[raw["split"] == "test", "path"].head(args.requests)]
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    run = load_backend(deploy, "onnxruntime")
    classes = json.loads((deploy / "labels.json").read_text())["classes"]
    labels = [classes[int(run(video_input(v, spec).numpy()[None])[1].argmax())] for v in videos]
    uploads = [(v.name, v.read_bytes(), label) for v, label in zip(videos, labels)]

    modes = {"micro-batching": (params.serve.max_batch, params.serve.max_wait_ms), "one at a time": (1, 0)}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, (max_batch, wait) in modes.items():
            raw_params = yaml.safe_load(Path(args.params).read_text())
            raw_params["serve"].update({"max_batch": max_batch, "max_wait_ms": wait})
            mode_params = Path(tmp) / f"params-{max_batch}.yaml"
            mode_params.write_text(yaml.safe_dump(raw_params, sort_keys=False))
            with running_service(["--artifact", str(deploy)], ROOT, mode_params) as url:
                load_level(url, uploads[:4], 4)                             # warm every worker thread
                results[mode] = {"max_batch": max_batch, "max_wait_ms": wait,
                                 **{f"concurrency_{c}": load_level(url, uploads, c) for c in CONCURRENCY}}
                print(mode, json.dumps(results[mode]), flush=True)
    ratio = {f"concurrency_{c}": round(results["micro-batching"][f"concurrency_{c}"]["clips_per_s"]
                                       / results["one at a time"][f"concurrency_{c}"]["clips_per_s"], 2)
             for c in CONCURRENCY}
    report = {"machine": {"cpu": platform.machine(), "threads": os.cpu_count(), "backend": "onnxruntime"},
              "artifact": str(args.deploy), "preprocess_workers": params.serve.preprocess_workers,
              "modes": results, "throughput_ratio_batching_over_one_at_a_time": ratio,
              "target_ratio_at_16": 1.5,
              "backend_alone": backend_alone(deploy, videos, params.serve.max_batch)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print("\n| mode | concurrency | p50 latency (s) | p95 latency (s) | clips/s | wrong or failed |")
    print("|---|---|---|---|---|---|")
    for mode, levels in results.items():
        for c in CONCURRENCY:
            level = levels[f"concurrency_{c}"]
            print(f"| {mode} | {c} | {level['p50_s']} | {level['p95_s']} | {level['clips_per_s']} | "
                  f"{level['wrong_or_failed']} |")
    print(f"\nthroughput ratio, micro-batching / one at a time: {ratio} (target at 16: >= 1.5)")
    print(f"backend alone: {report['backend_alone']}")


if __name__ == "__main__":
    main()
