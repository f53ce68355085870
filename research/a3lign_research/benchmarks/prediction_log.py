"""What the prediction log costs a request, and how long a model swap takes, measured in one run (not a test).

Two services run on the same artifact and the same code at the same time (each idle while the other is
measured): the prediction log on (params serve.prediction_log: SQLite in WAL mode, group commit by one writer
thread, each request waiting for its row's commit; `--synchronous` normal or full) and off. They get the same real videos
(the test split of data/raw) in alternating rounds, at concurrency 1 and 8, so drift in the machine's speed hits
both alike; every answer is checked (status 200, the label `predict` gives) and the median and p99 latency per
mode are recorded, with the log's own count of rows and failures and, from the service's /metrics, how long
requests waited for their row's commit (a3lign_prediction_log_wait_seconds): the log's cost without the noise of
the rest of a request. Then the swap: under a steady load (concurrency
2) on the logging service, POST /admin/reload to the other artifact, back and forth; the time from the reload
call to the first answer from the new model, and what the reload call itself took, with every answer during the
swaps checked. Results go to reports/benchmarks/prediction_log.json and docs/serving.md (block `prediction-log`).

The second artifact (`--other`) is by default the export stage's command run on the pipeline's all-at-once joint
checkpoint (models/all_at_once_joint), written to a temporary folder: a real, different model of the same size.

Example (about 3 minutes on 2 cores): python -m a3lign_research.benchmarks.prediction_log --requests 24 --rounds 6
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import yaml

from a3lign_dfer.checksums import sha256
from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.inference.backends import load_backend
from a3lign_dfer.inference.video_input import PreprocessSpec, video_input
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.serving.process import running_service
from a3lign_research import ROOT, shown_path
from a3lign_research.blocks import publish

CONCURRENCY = (1, 8)
MODES = ("off", "on")
SWAP_LOAD = 2                    # requests in flight while a swap happens


def expected_labels(deploy: Path, videos: list[Path]) -> list[str]:
    """What `predict` says for each video with this artifact (ONNX Runtime, the service's default backend)."""
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    run = load_backend(deploy, "onnxruntime")
    classes = json.loads((deploy / "labels.json").read_text())["classes"]
    return [classes[int(run(video_input(v, spec)[None])[1].argmax())] for v in videos]


def export_other(repo: Path, out: Path) -> Path:
    """The all-at-once joint checkpoint exported as a second artifact (as the export stage runs, elsewhere)."""
    cmd = [sys.executable, "-m", "a3lign_dfer.commands.export", "--checkpoint", "models/all_at_once_joint",
           "--crops", "data/crops", "--raw", "data/raw", "--features", "data/features",
           "--eval", "reports/eval/metrics.json", "--shuffle", "reports/shuffle/metrics.json",
           "--out", str(out), "--metrics", str(out.parent / "other_export.json")]
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"exporting the second artifact failed (give one with --other):\n{done.stderr[-2000:]}")
    return out


def level(url: str, uploads: list[tuple[str, bytes, str]], concurrency: int) -> list[tuple[float, bool]]:
    """Every upload at `concurrency` in flight: (latency in s, answered right) per request."""
    def send(upload):
        name, body, label = upload
        start = time.perf_counter()
        response = httpx.post(f"{url}/predict", files={"file": (name, body)}, timeout=600)
        return time.perf_counter() - start, response.status_code == 200 and response.json()["label"] == label

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(send, uploads))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q, method="higher"))


def summary(results: list[tuple[float, bool]]) -> dict:
    latencies = [t * 1000 for t, _ in results]
    return {"requests": len(results), "wrong_or_failed": sum(not ok for _, ok in results),
            "median_ms": round(statistics.median(latencies), 1), "p99_ms": round(percentile(latencies, 99), 1)}


def swap_once(url: str, target: Path, target_sha: str, uploads: list[tuple[str, bytes]], labels: dict) -> dict:
    """A reload to `target` under a steady load: seconds from the call to the first answer from the new model."""
    stop, answers = threading.Event(), []

    def load():
        i = 0
        while not stop.is_set():
            name, body = uploads[i % len(uploads)]
            i += 1
            response = httpx.post(f"{url}/predict", files={"file": (name, body)}, timeout=600)
            sha = response.json()["model"]["manifest_sha256"] if response.status_code == 200 else None
            answers.append((time.perf_counter(), response.status_code, sha,
                            response.status_code == 200 and response.json()["label"] == labels[sha][name]))

    with ThreadPoolExecutor(SWAP_LOAD) as pool:
        workers = [pool.submit(load) for _ in range(SWAP_LOAD)]
        time.sleep(1.0)                                       # the load is steady
        called = time.perf_counter()
        reload = httpx.post(f"{url}/admin/reload", json={"artifact": str(target)}, timeout=600)
        returned = time.perf_counter()
        deadline = returned + 120
        while not any(sha == target_sha for _, _, sha, _ in list(answers)) and time.perf_counter() < deadline:
            time.sleep(0.01)
        stop.set()
        for worker in workers:
            worker.result()
    if reload.status_code != 200 or reload.json()["result"] != "swapped":
        raise SystemExit(f"the reload to {target} failed: {reload.text}")
    first = min(t for t, _, sha, _ in answers if sha == target_sha)
    return {"call_s": round(returned - called, 3), "to_first_new_answer_s": round(first - called, 3),
            "reported_s": reload.json()["seconds"], "answers": len(answers),
            "wrong_or_failed": sum(not ok for *_, ok in answers)}


def log_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM predictions").fetchone()[0]


def metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def commit_wait(text: str) -> dict:
    """From a3lign_prediction_log_wait_seconds: the mean wait for a row's commit, and the bucket bounds holding
    the median and the 99th percentile."""
    name = "a3lign_prediction_log_wait_seconds"
    count, total = metric(text, f"{name}_count"), metric(text, f"{name}_sum")
    buckets = [(float(line.split('le="')[1].split('"')[0]), float(line.split()[-1]))
               for line in text.splitlines() if line.startswith(f"{name}_bucket")]

    def bound(q: float) -> float:
        return next(le for le, n in buckets if n >= q * count) * 1000

    return {"requests": int(count), "mean_ms": round(total / count * 1000, 3), "median_at_most_ms": bound(0.5),
            "p99_at_most_ms": bound(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploy", default=str(ROOT / DEPLOY_DIR))
    parser.add_argument("--other", help="a second artifact to swap to (default: the joint checkpoint exported)")
    parser.add_argument("--repo", default=str(ROOT), help="where the pipeline's outputs are (data/raw, models/)")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--requests", type=int, default=24, help="requests per round (test videos in turn)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per concurrency level and mode")
    parser.add_argument("--swaps", type=int, default=4)
    parser.add_argument("--synchronous", choices=("normal", "full"), help="default params serve.prediction_log")
    parser.add_argument("--artifact-note", help="what the artifact is, for the block (default: its path)")
    args = parser.parse_args()
    repo, deploy = Path(args.repo).resolve(), Path(args.deploy).resolve()
    raw = pd.read_parquet(repo / "data/raw/manifest.parquet")
    videos = [repo / "data/raw" / p for p in raw.loc[raw["split"] == "test", "path"].head(args.requests)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        other = Path(args.other).resolve() if args.other else export_other(repo, tmp / "other")
        sha = {name: sha256(folder / "manifest.json") for name, folder in (("deploy", deploy), ("other", other))}
        labels = {sha[name]: dict(zip((v.name for v in videos), expected_labels(folder, videos)))
                  for name, folder in (("deploy", deploy), ("other", other))}
        # As many requests per round as asked for, the test videos in turn (the tiny pipeline has only a few).
        uploads = [(v.name, v.read_bytes(), labels[sha["deploy"]][v.name])
                   for v in (videos * args.requests)[:args.requests]]
        log_path = tmp / "logs/predictions.sqlite"
        rounds: dict = {mode: {c: [] for c in CONCURRENCY} for mode in MODES}
        synchronous = args.synchronous or yaml.safe_load(Path(args.params).read_text())["serve"]["prediction_log"][
            "synchronous"]
        with running_service(["--artifact", str(deploy)], tmp, _params(args.params, tmp, False)) as off, \
                running_service(["--artifact", str(deploy)], tmp,
                                _params(args.params, tmp, True, log_path, synchronous)) as on:
            urls = {"off": off, "on": on}
            for url in urls.values():
                level(url, uploads[:4], 4)                                   # every worker warm
            for c in CONCURRENCY:
                for i in range(args.rounds):
                    for mode in (MODES if i % 2 == 0 else MODES[::-1]):        # each mode first in turn
                        rounds[mode][c] += level(urls[mode], uploads, c)
                print(f"concurrency {c}: " + ", ".join(f"log {m} median {summary(rounds[m][c])['median_ms']} ms"
                                                       for m in MODES), flush=True)
            sent_on = sum(len(r) for r in rounds["on"].values()) + 4
            on_metrics = httpx.get(f"{on}/metrics").text
            rows, failures = log_rows(log_path), metric(on_metrics, "a3lign_prediction_log_failures_total")
            wait = commit_wait(on_metrics)
            swaps, targets = [], [("other", other), ("deploy", deploy)]
            for i in range(args.swaps):
                name, folder = targets[i % 2]
                swaps.append(swap_once(on, folder, sha[name], [(n, b) for n, b, _ in uploads], labels))
                print(f"swap {i + 1}: {swaps[-1]}", flush=True)
    spec = PreprocessSpec.load(deploy / "preprocess.json")
    report = {"artifact": args.artifact_note or f"`{shown_path(args.deploy)}`", "image_size": spec.image.size,
              "frames": spec.frames,
              "videos": len(videos), "requests_per_round": args.requests, "rounds": args.rounds,
              "latency": {mode: {f"concurrency_{c}": summary(rounds[mode][c]) for c in CONCURRENCY} for mode in MODES},
              "log": {"synchronous": synchronous, "requests_sent": sent_on, "rows": rows, "failures": failures,
                      "commit_wait": wait},
              "swaps": swaps}
    publish("prediction-log", report)
    print(markdown(report))


def _params(path: str, tmp: Path, enabled: bool, log_path: Path | None = None, synchronous: str = "normal") -> Path:
    raw = yaml.safe_load(Path(path).read_text())
    raw["serve"]["prediction_log"].update(enabled=enabled, path=str(log_path or tmp / "unused.sqlite"),
                                          synchronous=synchronous)
    out = tmp / f"params-log-{'on' if enabled else 'off'}.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


def markdown(report: dict) -> str:
    rows = []
    for c in CONCURRENCY:
        off, on = (report["latency"][m][f"concurrency_{c}"] for m in MODES)
        rows.append([c, off["median_ms"], on["median_ms"], f"{on['median_ms'] - off['median_ms']:+.1f}",
                     off["p99_ms"], on["p99_ms"], f"{on['p99_ms'] - off['p99_ms']:+.1f}",
                     f"{off['wrong_or_failed'] + on['wrong_or_failed']} of {off['requests'] + on['requests']}"])
    lines = [markdown_table(["concurrency", "median, log off (ms)", "median, log on (ms)", "difference",
                             "p99, log off (ms)", "p99, log on (ms)", "difference", "wrong or failed"], rows)]
    log = report["log"]
    wait = log["commit_wait"]
    lines += ["", (f"What the log itself adds to a request (SQLite WAL, synchronous {log['synchronous']}), the "
                   f"wait for its row's commit "
                   f"(`a3lign_prediction_log_wait_seconds`, {wait['requests']} requests): {wait['mean_ms']:.2f} ms on "
                   f"average, at most {wait['median_at_most_ms']:g} ms at the median and {wait['p99_at_most_ms']:g} ms "
                   f"at the 99th percentile (histogram bounds). The differences in the table are that plus the "
                   f"machine's noise between rounds. The log-on service wrote {log['rows']} rows for the "
                   f"{log['requests_sent']} requests sent to it, with {log['failures']:g} failures "
                   "(`a3lign_prediction_log_failures_total`).")]
    swaps = report["swaps"]
    rows = [[i + 1, s["call_s"], s["to_first_new_answer_s"], s["answers"], s["wrong_or_failed"]]
            for i, s in enumerate(swaps)]
    lines += ["", markdown_table(["swap", "reload call (s)", "reload call to first answer from the new model (s)",
                                  "answers during it", "wrong or failed"], rows)]
    lines += ["", (f"Median swap time (reload call to first answer from the new model): "
                   f"{statistics.median(s['to_first_new_answer_s'] for s in swaps):.2f} s over {len(swaps)} swaps, "
                   f"under {SWAP_LOAD} requests in flight. Artifact: {report['artifact']} (CLIP input "
                   f"{report['image_size']} px, {report['frames']} frames); {report['requests_per_round']} requests "
                   f"per round ({report['videos']} test videos in turn), {report['rounds']} rounds per mode and "
                   "concurrency, "
                   "alternating between the modes, each first in turn.")]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
