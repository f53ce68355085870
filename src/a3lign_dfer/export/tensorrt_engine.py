"""TensorRT FP16 engine from model.onnx (TensorRT 10 Python API).

Isolated on purpose: TensorRT's wheels need NVIDIA's package host and an NVIDIA GPU,
neither of which every machine has. `tensorrt_unavailable()` says why it cannot run
here; the export stage records that reason instead of a number, and never claims a
TensorRT result that was not measured.
"""
from __future__ import annotations

from pathlib import Path

import torch

# Logits are cosine / temperature (0.01): FP16's ~1e-3 relative precision on the cosines
# moves a logit by up to ~0.1-0.5, so the FP16 engine is held to top-1 agreement and 0.5.
FP16_LOGIT_ATOL = 0.5


def build_engine(onnx_path: Path, plan_path: Path, frames: int, image_size: int, max_batch: int,
                 timing_cache: Path) -> dict:
    """FP16 engine with an optimisation profile over batch 1..max_batch; reuses and updates the timing cache."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)          # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    shape = lambda b: (b, frames, 3, image_size, image_size)  # noqa: E731
    profile.set_shape(network.get_input(0).name, shape(1), shape(max(1, max_batch // 2)), shape(max_batch))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    plan_path.write_bytes(bytes(serialized))
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"status": "built", "precision": "fp16", "max_batch": max_batch, "device": torch.cuda.get_device_name()}
