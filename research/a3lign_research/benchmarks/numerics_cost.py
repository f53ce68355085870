"""What pinning the numerical code paths costs (not a test): a small-CLIP training step, pinned vs this CPU's own.

Importing the package pins MKL, oneDNN and ATen to AVX2 and 2 threads, so this step gives the same bytes on an
x86 CPU with or without AVX-512 (docs "Reproducibility"; tests/test_numerics.py checks the bytes with this
module's STEP; the whole pipeline is not claimed to match across CPUs). This script times the same step in fresh processes, alternating pinned and unpinned (this CPU's own
best path, the thread count kept at 2), and writes the median seconds per step of each and their ratio to
reports/benchmarks/numerics_cost.json and README's `numerics-cost` block.

Example (about a minute on 2 cores): python -m a3lign_research.benchmarks.numerics_cost
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from a3lign_research import ROOT
from a3lign_research.blocks import cpu_name, publish

# A pretrain_clip step (patch convolution, attention, matmuls; forward and backward), `steps` times after one
# untimed step: the sha256 of the weights it leaves, the seconds per timed step, and the paths torch took.
STEP = """
import hashlib, json, sys, time
import a3lign_dfer
import torch
from a3lign_dfer.config.params import load_params
from a3lign_dfer.model.small_clip import build_small_clip
model, _, _ = build_small_clip(load_params(sys.argv[1]).pretrain_clip)
torch.manual_seed(0)
images, opt = torch.randn(64, 3, 64, 64), torch.optim.SGD(model.parameters(), lr=0.01)
def step():
    model.get_image_features(pixel_values=images).pooler_output.pow(2).mean().backward()
    opt.step()
    opt.zero_grad()
steps = int(sys.argv[2])
step()
start = time.perf_counter()
for _ in range(steps - 1):
    step()
seconds = (time.perf_counter() - start) / max(steps - 1, 1)
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
print(json.dumps({"sha256": digest, "seconds_per_step": seconds, "aten": torch.backends.cpu.get_cpu_capability(),
                  "threads": torch.get_num_threads()}))
"""
PINS = ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# A CPU without AVX-512 running this package: MKL limited to AVX2 instructions, under the package's pins (which
# importing it sets). On AMD EPYC this equals MKL's own AVX2 path (MKL_CBWR AUTO); on an Intel Xeon with AVX-512
# and AMX it does not, so the pins, not the instruction set, decide the bytes there.
AVX2_MACHINE = {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}
# What this CPU computes on its own (the pins overridden; ATen's best is AVX-512 where the CPU has it).
OWN_BEST = {"MKL_CBWR": "AUTO", "ONEDNN_MAX_CPU_ISA": "ALL",
            "ATEN_CPU_CAPABILITY": "avx512" if "avx512" in Path("/proc/cpuinfo").read_text() else "avx2"}


def run_step(env: dict, steps: int, params: Path = ROOT / "params.yaml") -> dict:
    """STEP in a fresh process under `env` (on top of the environment without the pins)."""
    base = {k: v for k, v in os.environ.items() if k not in PINS}
    out = subprocess.run([sys.executable, "-c", STEP, str(params), str(steps)], env={**base, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(result: dict) -> str:
    pinned, own = result["pinned"], result["own_best"]
    span = lambda r: f"{1000 * min(r['seconds']):.0f}-{1000 * max(r['seconds']):.0f} ms"  # noqa: E731
    change = (f"the pins cost {100 * (result['ratio'] - 1):.0f}%" if result["ratio"] >= 1
              else f"the pinned path was {100 * (1 - result['ratio']):.0f}% faster")
    return (f"A small-CLIP training step (batch 64, forward and backward), {result['runs']} fresh processes each, "
            f"alternating, on this machine ({result['cpu']}): pinned (ATen {pinned['aten']}) median "
            f"{1000 * pinned['median_s']:.0f} ms ({span(pinned)}), this CPU's own path (ATen {own['aten']}) "
            f"{1000 * own['median_s']:.0f} ms ({span(own)}): {change} on this step, "
            f"{'the same' if pinned['sha256'] == own['sha256'] else 'with different'} bytes.")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    times: dict[str, list] = {"pinned": [], "own_best": []}
    last = {}
    for i in range(args.runs):
        for name, env in (("pinned", {}), ("own_best", {**OWN_BEST, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"})):
            last[name] = run_step(env, args.steps)
            times[name].append(last[name]["seconds_per_step"])
            print(f"run {i + 1}/{args.runs} {name}: {1000 * last[name]['seconds_per_step']:.0f} ms/step", flush=True)
    result = {"cpu": cpu_name(), "runs": args.runs, "steps": args.steps,
              **{name: {"median_s": statistics.median(t), "seconds": t, "aten": last[name]["aten"],
                        "sha256": last[name]["sha256"]} for name, t in times.items()}}
    result["ratio"] = result["pinned"]["median_s"] / result["own_best"]["median_s"]
    publish("numerics-cost", result)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
