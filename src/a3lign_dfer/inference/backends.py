"""The three ways to run models/deploy: PyTorch, ONNX Runtime, TensorRT.

Each backend maps preprocessed frames (B, F, 3, H, W) float32 to (logits,
probabilities, embedding) as numpy arrays (deploy_model.OUTPUTS, the graph's output names),
reading only the deploy folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from a3lign_dfer.config.deploy import BACKENDS
from a3lign_dfer.inference.deploy_model import OUTPUTS, DeployModel
from a3lign_dfer.model.checkpoint import load_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP

Backend = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def tensorrt_unavailable() -> str | None:
    """None when TensorRT can build and run engines here, else the reason it cannot."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as err:
        return f"TensorRT is not installed (import tensorrt: {err})"
    if not torch.cuda.is_available():
        return "no CUDA device: TensorRT builds and runs engines on an NVIDIA GPU only"
    return None


def onnx_session(path: Path, device: str = "cpu"):
    import onnxruntime as ort

    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    return ort.InferenceSession(str(path), providers=[p for p in wanted if p in available])


def torch_deploy_model(deploy_dir: Path, device: str = "cpu") -> DeployModel:
    """The PyTorch twin of model.onnx, rebuilt from the checkpoint and CLIP copied into the deploy folder."""
    model, _ = load_checkpoint(deploy_dir / "torch" / "checkpoint", device)
    clip = FrozenCLIP.load(str(deploy_dir / "torch" / "clip"), device)
    return DeployModel(clip, model).to(device)


def torch_runner(model: DeployModel) -> Backend:
    device = model.class_vectors.device

    def run(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.no_grad():
            outputs = model(torch.from_numpy(frames).to(device))
        return tuple(o.cpu().numpy() for o in outputs)
    return run


def onnx_runner(session) -> Backend:
    return lambda frames: tuple(session.run(list(OUTPUTS), {"frames": frames}))


def load_backend(deploy_dir: Path, name: str, device: str = "cpu") -> Backend:
    if name == "torch":
        return torch_runner(torch_deploy_model(deploy_dir, device))
    if name == "onnxruntime":
        return onnx_runner(onnx_session(deploy_dir / "model.onnx", device))
    if name == "tensorrt":
        reason = tensorrt_unavailable()
        if reason is not None:
            raise RuntimeError(f"backend tensorrt cannot run here: {reason}")
        plan = deploy_dir / "model.plan"
        if not plan.exists():
            raise FileNotFoundError(f"{plan} missing: the export ran where TensorRT was unavailable "
                                    "(see manifest.json 'tensorrt')")
        return TensorRTRunner(plan)
    raise ValueError(f"unknown backend {name!r}; known: {BACKENDS}")


class TensorRTRunner:
    """Runs model.plan (TensorRT 10: named I/O tensors, execute_async_v3) on CUDA buffers."""

    def __init__(self, plan_path: Path):
        import tensorrt as trt

        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(plan_path.read_bytes())
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).cuda()
        self.context.set_input_shape(self.input, tuple(x.shape))
        self.context.set_tensor_address(self.input, x.data_ptr())
        outputs = {}
        for name in self.names:
            if name != self.input:
                outputs[name] = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=torch.float32,
                                            device="cuda")
                self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        return tuple(outputs[name].cpu().numpy() for name in OUTPUTS)
