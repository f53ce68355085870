"""Pinned kernels: a pretrain_clip step (the small CLIP's patch convolution, attention and matmuls, forward
and backward) gives on this machine, whatever it offers, the weights its AVX2 path computes, because
importing the package pins MKL, oneDNN, ATen and the thread count. The control run without the pins shows
this CPU's own best path gives other bytes (where it has AVX-512). Other CPUs may still differ in the last
bits: the pins remove the choices this machine makes, not every difference between machines."""
from __future__ import annotations

from pathlib import Path

import pytest

from a3lign_research.benchmarks.numerics_cost import AVX2_MACHINE, OWN_BEST, run_step   # the step it times


def _step(env: dict) -> dict:
    return run_step(env, steps=2)


def test_a_training_step_gives_an_avx2_machines_bytes_on_any_cpu():
    pinned = _step({})                       # this machine, whatever it offers, with the package's pins
    assert pinned["aten"] == "AVX2" and pinned["threads"] == 2
    assert pinned["sha256"] == _step(AVX2_MACHINE)["sha256"]
    if "avx512" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this CPU has no AVX-512: its own best path is the pinned one, nothing to contrast")
    own = _step(OWN_BEST)                    # the control: without the pins this CPU computes other bytes
    assert own["aten"] == "AVX512" and own["sha256"] != pinned["sha256"]
