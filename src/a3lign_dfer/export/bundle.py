"""The `export` stage: models/deploy, the artifact a serving team takes.

model.onnx (frames -> logits, probabilities; class matrix inside as a constant), its two
halves image_encoder.onnx and head.onnx (a per-frame timeline encodes each frame once),
image_encoder.int8.onnx (export.int8; released only if it passes its gate on the test clips),
class_features.safetensors + labels.json (for a separately served image encoder),
preprocess.json (raw video -> graph input), torch/ (checkpoint + CLIP, the PyTorch
twin), a Triton model repository, model.plan where TensorRT runs, and
manifest.json with every file's sha256, versions, metrics, parity and the INT8 gate.
The stage fails when ONNX Runtime and PyTorch, or the split graphs and model.onnx,
disagree on real test clips; an INT8 graph that misses its gate is recorded, not fatal.

Example: python -m a3lign_dfer export --checkpoint models/stage3 --crops data/crops --raw data/raw \
    --features data/features --eval reports/eval/metrics.json --shuffle reports/shuffle/metrics.json \
    --out models/deploy --metrics reports/export.json
"""
from __future__ import annotations

import json
import shutil
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import CLIPImageProcessor

from a3lign_dfer.checksums import sha256
from a3lign_dfer.config.deploy import ExportParams, Int8Config
from a3lign_dfer.data import manifest
from a3lign_dfer.data.frame_folders import load_frames
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.export.int8 import gate, quantize_encoder
from a3lign_dfer.export.onnx_graph import OPSET, clip_logits, compare, export_onnx, export_split, graph_io, parity
from a3lign_dfer.export.tensorrt_engine import FP16_LOGIT_ATOL, build_engine
from a3lign_dfer.export.triton import write_triton_repository
from a3lign_dfer.inference.backends import (IMAGE_ENCODER_FILE, IMAGE_ENCODER_FILES, SplitRunner, TensorRTRunner,
                                            onnx_runner, onnx_session, tensorrt_unavailable, torch_runner)
from a3lign_dfer.inference.deploy_model import DeployModel
from a3lign_dfer.inference.video_input import PreprocessSpec
from a3lign_dfer.model.checkpoint import WEIGHTS, load_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP, normalize_frames
from a3lign_dfer.monitoring.profile import write_reference
from a3lign_dfer.report_files import DEPLOY_MANIFEST, EvaluationReport, ShuffleCheckReport, parse

PACKAGES = ("torch", "transformers", "onnx", "onnxruntime", "a3lign-dfer")


def stored_clips(crops_dir: Path, classes: tuple[str, ...], spec: PreprocessSpec, split: str,
                 clips: int) -> tuple[torch.Tensor, np.ndarray]:
    """Up to `clips` of the split's clips (spread evenly over the manifest, all of them when it has fewer), their
    stored crops sampled and normalised as serving does: frames (clips, F, 3, S, S) and label indices (clips,)."""
    crops = manifest.read(crops_dir / "manifest.parquet", classes)
    rows = crops[crops["split"] == split]
    if rows.empty:
        raise ValueError(f"{crops_dir}: no {split} clips (export checks parity on test clips and calibrates INT8 "
                         "on training clips)")
    rows = rows.iloc[np.unique(np.linspace(0, len(rows) - 1, min(clips, len(rows))).round().astype(int))]
    batch = []
    for row in rows.itertuples():
        frames = load_frames(crops_dir / row.path)
        picked = torch.from_numpy(frames[segment_indices(len(frames), spec.frames, train=False)])
        batch.append(normalize_frames(picked, spec.image))
    return torch.stack(batch), rows["label_idx"].to_numpy()


def export_int8(out_dir: Path, cfg: Int8Config, calibration: torch.Tensor | None, frames: torch.Tensor,
                labels: np.ndarray, fp32_logits: np.ndarray, classes: tuple[str, ...], batch: int) -> dict:
    """image_encoder.int8.onnx beside its FP32 twin, and the gate's verdict on the parity clips: INT8 encoder +
    FP32 head against the one-piece FP32 graph. `calibration`: training clips' frames (static only)."""
    if cfg.method == "none":
        return {"method": "none", "releasable": False, "reason": "export.int8.method is none: no INT8 graph"}
    path = out_dir / IMAGE_ENCODER_FILES["int8"]
    images = None if calibration is None else calibration.flatten(0, 1).numpy()
    quantize_encoder(out_dir / IMAGE_ENCODER_FILE, path, cfg.method, images)
    int8_logits = clip_logits(SplitRunner(out_dir, "int8"), frames, batch)
    verdict = gate(labels, fp32_logits.argmax(1), int8_logits.argmax(1), classes, cfg.min_agreement,
                   cfg.max_recall_gap)
    return {"method": cfg.method, "file": path.name, "calibration_frames": None if images is None else len(images),
            "max_abs_logit_difference": float(np.abs(int8_logits - fp32_logits).max()), **verdict}


def export_deploy(checkpoint_dir: Path, crops_dir: Path, eval_metrics: Path, shuffle_metrics: Path, params: ExportParams,
                  out_dir: Path, raw_dir: Path, features_dir: Path) -> dict:
    cfg = params.export
    model, meta = load_checkpoint(checkpoint_dir)
    clip = FrozenCLIP.load(meta["clip_model"])
    deploy = DeployModel(clip, model)
    spec = PreprocessSpec(params.face_crop, clip.image_spec, model.spec.frames, cfg.min_frames)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    onnx_path = out_dir / "model.onnx"
    io = graph_io(export_onnx(deploy, onnx_path, spec.frames, spec.image.size))
    split_io = {name: graph_io(graph) for name, graph in export_split(deploy, out_dir, spec.frames,
                                                                      spec.image.size).items()}
    frames, labels = stored_clips(crops_dir, model.spec.classes, spec, "test", cfg.parity_clips)
    onnx_run = onnx_runner(onnx_session(onnx_path))
    fp32 = clip_logits(onnx_run, frames, cfg.max_batch)
    checked = compare(clip_logits(torch_runner(deploy.cpu()), frames, cfg.max_batch), fp32, cfg.parity_atol)
    split = compare(fp32, clip_logits(SplitRunner(out_dir), frames, cfg.max_batch), cfg.parity_atol)
    for name, result in (("ONNX Runtime and PyTorch", checked), ("image_encoder.onnx + head.onnx and model.onnx",
                                                                 split)):
        if not result["passed"]:
            raise RuntimeError(f"{name} disagree on the test clips (top-1 must agree on every clip, logits within "
                               f"{cfg.parity_atol}): {result}")
    calibration = (stored_clips(crops_dir, model.spec.classes, spec, "train", cfg.int8.calibration_clips)[0]
                   if cfg.int8.method == "static" else None)
    int8 = export_int8(out_dir, cfg.int8, calibration, frames, labels, fp32, model.spec.classes, cfg.max_batch)

    save_file({"class_features": deploy.class_vectors.contiguous()}, out_dir / "class_features.safetensors")
    (out_dir / "labels.json").write_text(json.dumps({"classes": list(model.spec.classes)}, indent=2))
    (out_dir / "preprocess.json").write_text(json.dumps(spec.to_json(), indent=2))
    shutil.copytree(checkpoint_dir, out_dir / "torch" / "checkpoint", ignore=shutil.ignore_patterns("phase*"))
    clip.model.save_pretrained(out_dir / "torch" / "clip")
    clip.tokenizer.save_pretrained(out_dir / "torch" / "clip")
    CLIPImageProcessor.from_pretrained(meta["clip_model"]).save_pretrained(out_dir / "torch" / "clip")

    reason = tensorrt_unavailable()
    if reason is None:
        tensorrt = build_engine(onnx_path, out_dir / "model.plan", spec.frames, spec.image.size, cfg.max_batch,
                                out_dir / "timing.cache")
        tensorrt["parity_fp16_vs_onnxruntime"] = parity(onnx_run, TensorRTRunner(out_dir / "model.plan"), frames,
                                                        cfg.max_batch, FP16_LOGIT_ATOL)
        if not tensorrt["parity_fp16_vs_onnxruntime"]["passed"]:
            raise RuntimeError(f"TensorRT FP16 and ONNX Runtime disagree: {tensorrt['parity_fp16_vs_onnxruntime']}")
    else:
        tensorrt = {"status": "skipped", "reason": reason}
    write_triton_repository(onnx_path, io, cfg.max_batch, out_dir / "triton",
                            out_dir / "model.plan" if reason is None else None)

    # The drift monitor's reference: the validation videos through the serving path and the graph just written.
    start = time.perf_counter()
    raw = manifest.read(raw_dir / "manifest.parquet", model.spec.classes)
    drift = write_reference(out_dir, onnx_run, spec, model.spec.classes, raw, Path(params.data.root), features_dir,
                            params.drift)
    drift_seconds = round(time.perf_counter() - start, 1)

    evaluation = parse(EvaluationReport, eval_metrics.read_text(), str(eval_metrics))
    shuffled = parse(ShuffleCheckReport, shuffle_metrics.read_text(), str(shuffle_metrics)).shuffled
    record = {
        "clip_model": meta["clip_model"], "classes": list(model.spec.classes),
        "source_checkpoint": {"path": str(checkpoint_dir), "sha256": sha256(checkpoint_dir / WEIGHTS),
                              "stage": meta["stage"], "train_seed": meta.get("train_seed")},
        "opset": OPSET, "io": io, "max_batch": cfg.max_batch,
        "test_metrics": {"war": evaluation.war, "uar": evaluation.uar, "shuffled_uar_drop": shuffled.uar_drop,
                         "num_test_clips": evaluation.num_test_clips},
        "parity_onnxruntime_vs_torch": checked, "tensorrt": tensorrt, "drift_reference": drift,
        "versions": {p: version(p) for p in PACKAGES}, "split_io": split_io, "parity_split_vs_onnx": split,
        "int8": int8,
    }
    record["files"] = {str(p.relative_to(out_dir)): sha256(p) for p in sorted(out_dir.rglob("*")) if p.is_file()}
    DEPLOY_MANIFEST.write(out_dir / DEPLOY_MANIFEST.path, record)
    return {"parity": checked, "parity_split": split, "int8": int8, "tensorrt": tensorrt,
            "onnx_megabytes": round(onnx_path.stat().st_size / 2**20, 2), "opset": OPSET,
            "files": len(record["files"]) + 1, "drift_reference": drift | {"seconds": drift_seconds}}
