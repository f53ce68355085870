"""A Triton Inference Server model repository for the ONNX graph.

Names and shapes come from the exported graph itself, so the config cannot drift
from it; Triton's dynamic batcher groups concurrent requests up to `max_batch`.
"""
from __future__ import annotations

import shutil
from pathlib import Path

MODEL_NAME = "a3lign_dfer"


def _tensor(name: str, dims: list[int]) -> str:
    return f'  {{\n    name: "{name}"\n    data_type: TYPE_FP32\n    dims: [ {", ".join(map(str, dims))} ]\n  }}'


def write_triton_repository(onnx_path: Path, io: dict, max_batch: int, out_dir: Path,
                            plan_path: Path | None = None) -> Path:
    """out_dir/a3lign_dfer/{config.pbtxt, 1/model.onnx}; a TensorRT plan goes beside as 1/model.plan."""
    model_dir = out_dir / MODEL_NAME
    (model_dir / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, model_dir / "1" / "model.onnx")
    if plan_path is not None and plan_path.exists():
        shutil.copyfile(plan_path, model_dir / "1" / "model.plan")
    inputs = ",\n".join(_tensor(n, shape[1:]) for n, shape in io["inputs"].items())
    outputs = ",\n".join(_tensor(n, shape[1:]) for n, shape in io["outputs"].items())
    config = (f'name: "{MODEL_NAME}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {max_batch}\n'
              f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
              f"dynamic_batching {{\n  preferred_batch_size: [ {max_batch} ]\n  max_queue_delay_microseconds: 2000\n}}\n"
              'instance_group [\n  {\n    count: 1\n    kind: KIND_AUTO\n  }\n]\n')
    (model_dir / "config.pbtxt").write_text(config)
    return model_dir
