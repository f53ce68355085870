"""The INT8 image encoder (ONNX Runtime quantization) and the gate that decides whether it may serve.

Only the image encoder is quantized: it is nearly all of a clip's compute, and the head
(the trained video path and the class matrix) stays FP32. Two methods (export.int8.method):

* dynamic: weights of MatMul/Gemm stored as signed INT8, activations quantized per call
  from their observed range (no calibration data).
* static: QDQ graph, per-channel signed INT8 weights, unsigned INT8 activations whose
  ranges are calibrated (min/max) on training frames sampled as serving samples them.

a3lign_research.benchmarks.int8 measures both against FP32 (agreement and speed); params.yaml says
which is the default and why. Whether an INT8 graph may serve is `gate`'s verdict on the
test clips, recorded in the manifest; export itself never fails on it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                      quantize_static)

from a3lign_dfer.evaluation.metrics import recall_metrics
from a3lign_dfer.inference.backends import ENCODER_INPUT

CALIBRATION_BATCH = 32          # frames per calibration call: the min/max of each batch is merged


class FramesReader(CalibrationDataReader):
    """Preprocessed frames (N, 3, H, W) as the image encoder's input, CALIBRATION_BATCH at a time."""

    def __init__(self, images: np.ndarray):
        self.batches = iter(np.array_split(images.astype(np.float32), max(1, len(images) // CALIBRATION_BATCH)))

    def get_next(self) -> dict | None:
        batch = next(self.batches, None)
        return None if batch is None else {ENCODER_INPUT: np.ascontiguousarray(batch)}


def quantize_encoder(fp32_path: Path, int8_path: Path, method: str, calibration: np.ndarray | None = None) -> None:
    """image_encoder.onnx -> its INT8 twin at `int8_path`; `calibration` (N, 3, H, W) frames for static."""
    if method == "dynamic":
        quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    elif method == "static":
        quantize_static(fp32_path, int8_path, FramesReader(calibration), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    else:
        raise ValueError(f"no INT8 graph for method {method!r}")


def gate(labels: np.ndarray, fp32_top1: np.ndarray, int8_top1: np.ndarray, classes: tuple[str, ...],
         min_agreement: float, max_recall_gap: float) -> dict:
    """Releasable when INT8's top-1 equals FP32's on at least `min_agreement` of the clips and every class's
    recall (against the true `labels`) is within `max_recall_gap` of FP32's. A class with no clip cannot be
    compared, so it fails the gate rather than pass unexamined."""
    fp32 = recall_metrics(labels, fp32_top1, classes)
    int8 = recall_metrics(labels, int8_top1, classes)
    agreement = float(np.mean(fp32_top1 == int8_top1))
    # Rounded: 0.5 - 0.49 is 0.0100000000000000089, which must not miss a 0.01 bar.
    gaps = {c: round(abs(int8["per_class_recall"][c] - fp32["per_class_recall"][c]), 9) for c in classes}
    reasons = []
    if agreement < min_agreement:
        reasons.append(f"top-1 agrees with FP32 on {agreement:.4f} of {len(labels)} clips (< {min_agreement})")
    if moved := {c: g for c, g in gaps.items() if g > max_recall_gap}:
        reasons.append("recall moved by more than " + f"{max_recall_gap} for " +
                       ", ".join(f"{c} ({fp32['per_class_recall'][c]:.4f} -> {int8['per_class_recall'][c]:.4f})"
                                 for c in moved))
    if fp32["absent_classes"]:
        reasons.append(f"no test clip of {', '.join(fp32['absent_classes'])}: their recall cannot be compared")
    return {"releasable": not reasons, "reason": "; ".join(reasons) or None, "clips": int(len(labels)),
            "top1_agreement": agreement, "min_agreement": min_agreement,
            "per_class_recall_fp32": fp32["per_class_recall"], "per_class_recall_int8": int8["per_class_recall"],
            "max_recall_gap": max_recall_gap, "worst_recall_gap": max(gaps.values())}
