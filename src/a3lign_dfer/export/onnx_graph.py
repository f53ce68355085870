"""ONNX export of the serving graph and its two halves, their checks, and parity between backends.

Opset 17: the first with a native LayerNormalization, so the CLIP ViT's norms stay
one fused op; decomposed into ReduceMean/Pow/Sqrt they overflow in TensorRT FP16
after attention (a known trap for CLIP exports). Every graph is traced at batch 2
(attention traced at batch 1 can bake the batch size into reshapes) and checked at a
batch it was not traced with. Only the batch axis is dynamic.

model.onnx is the whole DeployModel; image_encoder.onnx (frames -> features, one
frame per row) and head.onnx (a clip's frame features -> outputs) are its halves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from a3lign_dfer.inference.deploy_model import OUTPUTS, DeployModel
from a3lign_dfer.inference.backends import ENCODER_INPUT, FEATURES, HEAD_FILE, IMAGE_ENCODER_FILE

OPSET = 17
INPUT = "frames"


def export_graph(module: nn.Module, example: torch.Tensor, path: Path, input_name: str,
                 output_names: tuple[str, ...]) -> onnx.ModelProto:
    """`module` traced on `example` into `path` with a dynamic axis 0, then onnx.checker's full check."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)   # the fused encoder-layer kernel has no ONNX form
    try:
        torch.onnx.export(module.cpu().eval(), (example,), str(path), input_names=[input_name],
                          output_names=list(output_names), opset_version=OPSET, dynamo=False,
                          dynamic_axes={name: {0: "batch"} for name in (input_name, *output_names)})
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    return graph


def export_onnx(model: DeployModel, path: Path, frames: int, image_size: int) -> onnx.ModelProto:
    """The one-piece graph: frames (B, F, 3, S, S) -> OUTPUTS."""
    return export_graph(model, torch.zeros(2, frames, 3, image_size, image_size), path, INPUT, OUTPUTS)


def export_split(model: DeployModel, out_dir: Path, frames: int, image_size: int) -> dict[str, onnx.ModelProto]:
    """The two halves into out_dir: image_encoder.onnx (N, 3, S, S) -> (N, D), head.onnx (B, F, D) -> OUTPUTS."""
    width = model.encoder.projection.out_features
    return {"image_encoder": export_graph(model.encoder, torch.zeros(2, 3, image_size, image_size),
                                          out_dir / IMAGE_ENCODER_FILE, ENCODER_INPUT, (FEATURES,)),
            "head": export_graph(model.head, torch.zeros(2, frames, width), out_dir / HEAD_FILE, FEATURES, OUTPUTS)}


def graph_io(graph: onnx.ModelProto) -> dict:
    """Names and shapes (None for the dynamic batch) of the graph's inputs and outputs."""
    def shape(value) -> list:
        return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
    return {"inputs": {v.name: shape(v) for v in graph.graph.input},
            "outputs": {v.name: shape(v) for v in graph.graph.output}}


def clip_logits(backend, frames: torch.Tensor, batch: int) -> np.ndarray:
    """(N, C) logits of a backend (float32 frames (B, F, 3, H, W) -> outputs as numpy), `batch` clips at a time."""
    return np.concatenate([backend(np.ascontiguousarray(frames[start:start + batch].numpy(), dtype=np.float32))[0]
                           for start in range(0, len(frames), batch)])


def compare(reference: np.ndarray, candidate: np.ndarray, logit_atol: float) -> dict:
    """Max |logit difference| and top-1 agreement of two backends' (N, C) logits on the same clips.

    Passes only if top-1 agrees on every clip and no logit differs by more than `logit_atol`.
    """
    agree = int((reference.argmax(1) == candidate.argmax(1)).sum())
    worst = float(np.abs(reference - candidate).max())
    return {"clips": len(reference), "max_abs_logit_difference": worst, "top1_agreement": agree / len(reference),
            "logit_atol": logit_atol, "passed": agree == len(reference) and worst <= logit_atol}


def parity(reference, candidate, frames: torch.Tensor, batch: int, logit_atol: float) -> dict:
    """`compare` of two backends run on the same clips, `batch` clips at a time."""
    return compare(clip_logits(reference, frames, batch), clip_logits(candidate, frames, batch), logit_atol)
