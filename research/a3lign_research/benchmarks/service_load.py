"""The HTTP service under load, micro-batching on and off, side by side in one run (not a test).

Two services run on the same artifact at the same time (each idle while the other
is measured): micro-batching on (params serve.max_batch and max_wait_ms) and off
(max_batch 1: one backend call per request, one at a time). Each gets the same real
videos (the test split of data/raw) at concurrency 1, 4 and 16, in alternating
rounds so drift in the machine's speed hits both alike; every answer is checked
(status 200 and the label `predict` gives) and p50/p95 latency (over all rounds)
and clips/s (all requests over all rounds' time) are recorded. The backend
alone is also timed at batch 1 and at max_batch on the same clips, which says how
much micro-batching could at most gain on this machine: the rest of a request is
decoding and face cropping, which batching does not touch. Results go to
reports/benchmarks/service_load.json and a markdown table is printed.

Example (about 2 minutes on 2 cores): python -m a3lign_research.benchmarks.service_load --requests 48 --rounds 2
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.config.params import load_params
from a3lign_dfer.inference.backends import load_backend
from a3lign_dfer.inference.video_input import PreprocessSpec, video_input
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.serving.process import running_service
from a3lign_research import ROOT
from a3lign_research.benchmarks.common import load_level, summarize
from a3lign_research.blocks import publish

CONCURRENCY = (1, 4, 16)


def clips_per_call(metrics: str) -> float:
    """Mean clips per backend call over the service's life, from its /metrics."""
    found = re.finditer(r"^a3lign_batch_clips_(sum|count) (\S+)$", metrics, re.M)
    total = {m.group(1): float(m.group(2)) for m in found}
    return round(total["sum"] / total["count"], 2)


def backend_alone(deploy: Path, videos: list[Path], batch: int, repeats: int = 5) -> dict:
    """Seconds per clip of the backend call alone at batch 1 and at `batch`, on the same clips."""
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    run = load_backend(deploy, "onnxruntime")
    clips = np.stack([video_input(v, spec) for v in (videos * batch)[:batch]])
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
    parser.add_argument("--deploy", default=str(ROOT / DEPLOY_DIR))
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--requests", type=int, default=48, help="requests per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per concurrency level and mode")
    args = parser.parse_args()
    params = load_params(args.params)
    deploy = Path(args.deploy).resolve()
    raw = pd.read_parquet(ROOT / "data/raw/manifest.parquet")
    videos = [ROOT / "data/raw" / p for p in raw.loc[raw["split"] == "test", "path"].head(args.requests)]
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    run = load_backend(deploy, "onnxruntime")
    classes = json.loads((deploy / "labels.json").read_text())["classes"]
    labels = [classes[int(run(video_input(v, spec)[None])[1].argmax())] for v in videos]
    uploads = [(v.name, v.read_bytes(), label) for v, label in zip(videos, labels)]

    modes = {"micro-batching": (params.serve.max_batch, params.serve.max_wait_ms), "one at a time": (1, 0)}
    rounds: dict = {mode: {c: [] for c in CONCURRENCY} for mode in modes}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as services:
        urls = {}
        for mode, (max_batch, wait) in modes.items():
            raw_params = yaml.safe_load(Path(args.params).read_text())
            raw_params["serve"].update({"max_batch": max_batch, "max_wait_ms": wait})
            mode_params = Path(tmp) / f"params-{max_batch}.yaml"
            mode_params.write_text(yaml.safe_dump(raw_params, sort_keys=False))
            urls[mode] = services.enter_context(running_service(["--artifact", str(deploy)], ROOT, mode_params))
            load_level(urls[mode], uploads[:4], 4)                          # warm every worker thread
        for c in CONCURRENCY:
            for _ in range(args.rounds):
                for mode, url in urls.items():
                    rounds[mode][c].append(load_level(url, uploads, c))
            print(f"concurrency {c}: " + ", ".join(f"{mode} {summarize(rounds[mode][c])['clips_per_s']} clips/s"
                                                   for mode in modes), flush=True)
        calls = {mode: clips_per_call(httpx.get(f"{url}/metrics").text) for mode, url in urls.items()}
    results = {mode: {"max_batch": max_batch, "max_wait_ms": wait, "mean_clips_per_backend_call": calls[mode],
                      **{f"concurrency_{c}": summarize(rounds[mode][c]) for c in CONCURRENCY}}
               for mode, (max_batch, wait) in modes.items()}
    ratio = {f"concurrency_{c}": round(results["micro-batching"][f"concurrency_{c}"]["clips_per_s"]
                                       / results["one at a time"][f"concurrency_{c}"]["clips_per_s"], 2)
             for c in CONCURRENCY}
    report = {"machine": {"cpu": platform.machine(), "threads": os.cpu_count(), "backend": "onnxruntime"},
              "artifact": str(args.deploy), "preprocess_workers": params.serve.preprocess_workers,
              "modes": results, "throughput_ratio_batching_over_one_at_a_time": ratio,
              "target_ratio_at_16": 1.5,
              "backend_alone": backend_alone(deploy, videos, params.serve.max_batch)}
    publish("service-load", report)
    print(markdown(report))
    print(f"backend alone: {report['backend_alone']}; mean clips per backend call: {calls}")


def markdown(report: dict) -> str:
    rows = []
    for mode, levels in report["modes"].items():
        for c in CONCURRENCY:
            level = levels[f"concurrency_{c}"]
            rows.append([mode, c, level["p50_s"], level["p95_s"], level["clips_per_s"],
                         f"{level['wrong_or_failed']} of {level['requests']}"])
    lines = [markdown_table(["mode", "concurrency", "p50 latency (s)", "p95 latency (s)", "clips/s", "wrong or failed"],
                            rows)]
    ratio = report["throughput_ratio_batching_over_one_at_a_time"]
    lines += ["", "Micro-batching over one at a time: " + ", ".join(
        f"{ratio[f'concurrency_{c}']:.2f}x at concurrency {c}" for c in CONCURRENCY)
        + f" (target at 16: {report['target_ratio_at_16']}x); clips per backend call: "
        + ", ".join(f"{mode} {m['mean_clips_per_backend_call']}" for mode, m in report["modes"].items())
        + f"; {report['preprocess_workers']} preprocessing workers, {report['machine']['threads']} cores."]
    return "\n".join(lines)

if __name__ == "__main__":
    main()
