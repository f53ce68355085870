"""ONNX export of the serving graph, its checks, and parity against PyTorch.

Opset 17: the first with a native LayerNormalization, so the CLIP ViT's norms stay
one fused op; decomposed into ReduceMean/Pow/Sqrt they overflow in TensorRT FP16
after attention (a known trap for CLIP exports). The graph is traced at batch 2
(attention traced at batch 1 can bake the batch size into reshapes) and checked at a
batch it was not traced with. Only the batch axis is dynamic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from a3lign_dfer.inference.deploy_model import OUTPUTS, DeployModel

OPSET = 17
INPUT = "frames"


def export_onnx(model: DeployModel, path: Path, frames: int, image_size: int) -> onnx.ModelProto:
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, frames, 3, image_size, image_size)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)   # the fused encoder-layer kernel has no ONNX form
    try:
        torch.onnx.export(model.cpu().eval(), (example,), str(path), input_names=[INPUT], output_names=list(OUTPUTS),
                          dynamic_axes={name: {0: "batch"} for name in (INPUT, *OUTPUTS)}, opset_version=OPSET,
                          dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    return graph


def graph_io(graph: onnx.ModelProto) -> dict:
    """Names and shapes (None for the dynamic batch) of the graph's inputs and outputs."""
    def shape(value) -> list:
        return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
    return {"inputs": {v.name: shape(v) for v in graph.graph.input},
            "outputs": {v.name: shape(v) for v in graph.graph.output}}


def parity(reference, candidate, frames: torch.Tensor, batch: int, logit_atol: float) -> dict:
    """Max |logit difference| and top-1 agreement of two backends on the same clips, `batch` clips at a time.

    Each backend maps float32 frames (B, F, 3, H, W) to (logits, probabilities, embedding) as numpy.
    Passes only if top-1 agrees on every clip and no logit differs by more than `logit_atol`.
    """
    worst, agree = 0.0, 0
    for start in range(0, len(frames), batch):
        chunk = np.ascontiguousarray(frames[start:start + batch].numpy(), dtype=np.float32)
        ref, cand = reference(chunk)[0], candidate(chunk)[0]
        worst = max(worst, float(np.abs(ref - cand).max()))
        agree += int((ref.argmax(1) == cand.argmax(1)).sum())
    result = {"clips": int(len(frames)), "max_abs_logit_difference": worst, "top1_agreement": agree / len(frames),
              "logit_atol": logit_atol}
    result["passed"] = agree == len(frames) and worst <= logit_atol
    return result

