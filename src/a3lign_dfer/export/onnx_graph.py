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

from a3lign_dfer.inference.deploy_model import DeployModel

OPSET = 17
INPUT, OUTPUTS = "frames", ("logits", "probabilities")


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


def parity(model: DeployModel, session, frames: torch.Tensor, atol: float) -> dict:
    """Max abs difference of ONNX Runtime vs PyTorch on real frames, and whether the labels agree."""
    with torch.no_grad():
        logits, probs = (t.numpy() for t in model.cpu()(frames))
    onnx_logits, onnx_probs = session.run(list(OUTPUTS), {INPUT: frames.numpy()})
    result = {"batch": int(frames.shape[0]), "max_abs_logits": float(np.abs(onnx_logits - logits).max()),
              "max_abs_probabilities": float(np.abs(onnx_probs - probs).max()),
              "labels_agree": bool((onnx_logits.argmax(1) == logits.argmax(1)).all()), "atol_probabilities": atol}
    result["passed"] = result["labels_agree"] and result["max_abs_probabilities"] <= atol
    return result
