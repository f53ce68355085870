"""The three ways to run models/deploy: PyTorch, ONNX Runtime, TensorRT; and its split graphs.

Each backend maps preprocessed frames (B, F, 3, H, W) float32 to (logits,
probabilities, embedding) as numpy arrays (deploy_model.OUTPUTS, the graph's output names),
reading only the deploy folder. `--precision int8` runs SplitRunner: the INT8 image
encoder, then the FP32 head, on ONNX Runtime (the only backend the INT8 graph is for).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from a3lign_dfer.config.deploy import BACKENDS, PRECISIONS
from a3lign_dfer.errors import ConfigError
from a3lign_dfer.inference.deploy_model import OUTPUTS, DeployModel
from a3lign_dfer.model.checkpoint import load_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP

Backend = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

# The split graphs in the deploy folder: the image encoder per precision, and the head they share.
IMAGE_ENCODER_FILES = {"fp32": "image_encoder.onnx", "int8": "image_encoder.int8.onnx"}
IMAGE_ENCODER_FILE, HEAD_FILE = IMAGE_ENCODER_FILES["fp32"], "head.onnx"
ENCODER_INPUT, FEATURES = "images", "features"     # image encoder: images (N, 3, H, W) -> features (N, D) -> head


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


class SplitRunner:
    """image_encoder[.int8].onnx then head.onnx on ONNX Runtime: what model.onnx computes, in two calls.

    `encode` takes frames one per row, so a caller (a per-frame timeline) can encode each frame of a
    video once and run `head` on any window of F cached features; calling the runner does both for
    whole clips, like any Backend.
    """

    def __init__(self, deploy_dir: Path, precision: str = "fp32", device: str = "cpu"):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; known: {PRECISIONS}")
        self.encoder = onnx_session(deploy_dir / IMAGE_ENCODER_FILES[precision], device)
        self.head_session = onnx_session(deploy_dir / HEAD_FILE, device)

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 preprocessed frames -> (N, D) CLIP image features."""
        return self.encoder.run([FEATURES], {ENCODER_INPUT: images})[0]

    def head(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, F, D) frame features -> (logits, probabilities, embedding)."""
        return tuple(self.head_session.run(list(OUTPUTS), {FEATURES: features}))

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b, f = frames.shape[:2]
        return self.head(self.encode(frames.reshape(b * f, *frames.shape[2:])).reshape(b, f, -1))


def load_backend(deploy_dir: Path, name: str, device: str = "cpu", precision: str = "fp32") -> Backend:
    """`precision` int8 is the INT8 image encoder on ONNX Runtime; whether this artifact may serve it is the
    manifest's call (inference.artifact.Artifact.require_precision), checked before this."""
    if precision == "int8":
        if name != "onnxruntime":
            raise ConfigError(f"--precision int8 runs the INT8 image encoder on ONNX Runtime; --backend {name} "
                              "has no INT8 graph (use --backend onnxruntime)")
        return SplitRunner(deploy_dir, precision, device)
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
