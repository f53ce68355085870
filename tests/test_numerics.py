"""Same bytes on any x86 CPU with AVX2: a pretrain_clip step (the small CLIP's patch convolution, attention
and matmuls, forward and backward) gives on this machine, whatever it offers, the weights a CPU without
AVX-512 computes on its own, because importing the package pins MKL, oneDNN, ATen and the thread count.
The control run without the pins shows this CPU's own best path gives other bytes (where it has AVX-512)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STEP = """
import hashlib, json, sys
import a3lign_dfer
import torch
from a3lign_dfer.config.params import load_params
from a3lign_dfer.model.small_clip import build_small_clip
model, _, _ = build_small_clip(load_params(sys.argv[1]).pretrain_clip)
torch.manual_seed(0)
images, opt = torch.randn(64, 3, 64, 64), torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(2):
    model.get_image_features(pixel_values=images).pooler_output.pow(2).mean().backward()
    opt.step()
    opt.zero_grad()
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()
print(json.dumps({"sha256": digest, "aten": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}))
"""
# What a CPU without AVX-512 computes on its own: MKL, oneDNN and ATen limited to AVX2, MKL's default CBWR.
AVX2_MACHINE = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                "MKL_CBWR": "AUTO"}
# What this CPU computes on its own when it has AVX-512 (the pins overridden).
OWN_BEST = {"MKL_CBWR": "AUTO", "ONEDNN_MAX_CPU_ISA": "ALL", "ATEN_CPU_CAPABILITY": "avx512"}
PINS = ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _step(env: dict) -> dict:
    from conftest import ROOT

    base = {k: v for k, v in os.environ.items() if k not in PINS}
    out = subprocess.run([sys.executable, "-c", STEP, str(ROOT / "params.yaml")], env={**base, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_training_step_gives_an_avx2_machines_bytes_on_any_cpu():
    pinned = _step({})                       # this machine, whatever it offers, with the package's pins
    assert pinned["aten"] == "AVX2" and pinned["threads"] == 2
    assert pinned["sha256"] == _step(AVX2_MACHINE)["sha256"]
    if "avx512" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this CPU has no AVX-512: its own best path is the pinned one, nothing to contrast")
    own = _step(OWN_BEST)                    # the control: without the pins this CPU computes other bytes
    assert own["aten"] == "AVX512" and own["sha256"] != pinned["sha256"]
