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
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import CLIPImageProcessor

from a3lign_dfer.checksums import sha256
from a3lign_dfer.config.deploy import ExportConfig, ExportParams, Int8Config
from a3lign_dfer.data import manifest
from a3lign_dfer.data.frame_folders import load_frames
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.export.int8 import gate, quantize_encoder
from a3lign_dfer.export.onnx_graph import OPSET, clip_logits, compare, export_onnx, export_split, graph_io, parity
from a3lign_dfer.export.tensorrt_engine import FP16_LOGIT_ATOL, build_engine
from a3lign_dfer.export.triton import write_triton_repository
from a3lign_dfer.inference.backends import (IMAGE_ENCODER_FILE, IMAGE_ENCODER_FILES, Backend, SplitRunner,
                                            TensorRTRunner, onnx_runner, onnx_session, tensorrt_unavailable,
                                            torch_runner)
from a3lign_dfer.inference.deploy_model import DeployModel
from a3lign_dfer.inference.video_input import PreprocessSpec
from a3lign_dfer.model.checkpoint import WEIGHTS, load_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP
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
        picked = frames[segment_indices(len(frames), spec.frames, train=False)]
        batch.append(torch.from_numpy(spec.image.graph_input(picked)))
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


@dataclass(frozen=True)
class Build:
    """What the export steps share: the model rebuilt from its checkpoint alone, and the folder it goes to."""

    checkpoint_dir: Path
    meta: dict                              # the checkpoint's meta.json
    clip: FrozenCLIP
    deploy: DeployModel
    classes: tuple[str, ...]
    spec: PreprocessSpec
    out: Path

    @property
    def onnx_path(self) -> Path:
        return self.out / "model.onnx"


@dataclass(frozen=True)
class ParityClips:
    """The test clips every backend is checked on, and what model.onnx on ONNX Runtime (the reference) says."""

    frames: torch.Tensor                    # (clips, F, 3, S, S) graph input
    labels: np.ndarray
    onnx_run: Backend
    fp32: np.ndarray                        # its logits on `frames`
    torch: dict                             # ONNX Runtime against PyTorch (compare)
    split: dict                             # image_encoder.onnx + head.onnx against model.onnx


def load_build(checkpoint_dir: Path, params: ExportParams, out_dir: Path) -> Build:
    """The final model and the CLIP its checkpoint names, and an empty out_dir."""
    model, meta = load_checkpoint(checkpoint_dir)
    clip = FrozenCLIP.load(meta["clip_model"])
    spec = PreprocessSpec(params.face_crop, clip.image_spec, model.spec.frames, params.export.min_frames)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    return Build(checkpoint_dir, meta, clip, DeployModel(clip, model), model.spec.classes, spec, out_dir)


def write_onnx(build: Build) -> dict:
    """model.onnx; its inputs and outputs."""
    return graph_io(export_onnx(build.deploy, build.onnx_path, build.spec.frames, build.spec.image.size))


def write_split_graphs(build: Build) -> dict:
    """image_encoder.onnx and head.onnx; their inputs and outputs."""
    graphs = export_split(build.deploy, build.out, build.spec.frames, build.spec.image.size)
    return {name: graph_io(graph) for name, graph in graphs.items()}


def check_parity(build: Build, crops_dir: Path, cfg: ExportConfig) -> ParityClips:
    """model.onnx against PyTorch, and the split graphs against model.onnx, on the test clips; RuntimeError
    when either pair disagrees."""
    frames, labels = stored_clips(crops_dir, build.classes, build.spec, "test", cfg.parity_clips)
    onnx_run = onnx_runner(onnx_session(build.onnx_path))
    fp32 = clip_logits(onnx_run, frames, cfg.max_batch)
    checked = compare(clip_logits(torch_runner(build.deploy.cpu()), frames, cfg.max_batch), fp32, cfg.parity_atol)
    split = compare(fp32, clip_logits(SplitRunner(build.out), frames, cfg.max_batch), cfg.parity_atol)
    for name, result in (("ONNX Runtime and PyTorch", checked), ("image_encoder.onnx + head.onnx and model.onnx",
                                                                 split)):
        if not result["passed"]:
            raise RuntimeError(f"{name} disagree on the test clips (top-1 must agree on every clip, logits within "
                               f"{cfg.parity_atol}): {result}")
    return ParityClips(frames, labels, onnx_run, fp32, checked, split)


def write_int8(build: Build, crops_dir: Path, cfg: ExportConfig, clips: ParityClips) -> dict:
    """The INT8 image encoder and its gate (export_int8), calibrated on training clips where static."""
    calibration = (stored_clips(crops_dir, build.classes, build.spec, "train", cfg.int8.calibration_clips)[0]
                   if cfg.int8.method == "static" else None)
    return export_int8(build.out, cfg.int8, calibration, clips.frames, clips.labels, clips.fp32, build.classes,
                       cfg.max_batch)


def write_torch_twin(build: Build) -> None:
    """The class matrix, labels and preprocessing as files, and torch/: the checkpoint and CLIP that rebuild
    model.onnx in PyTorch."""
    out, clip_model = build.out, build.meta["clip_model"]
    save_file({"class_features": build.deploy.class_vectors.contiguous()}, out / "class_features.safetensors")
    (out / "labels.json").write_text(json.dumps({"classes": list(build.classes)}, indent=2))
    (out / "preprocess.json").write_text(json.dumps(build.spec.to_json(), indent=2))
    shutil.copytree(build.checkpoint_dir, out / "torch" / "checkpoint", ignore=shutil.ignore_patterns("phase*"))
    build.clip.model.save_pretrained(out / "torch" / "clip")
    build.clip.tokenizer.save_pretrained(out / "torch" / "clip")
    CLIPImageProcessor.from_pretrained(clip_model).save_pretrained(out / "torch" / "clip")


def write_tensorrt(build: Build, cfg: ExportConfig, clips: ParityClips) -> dict:
    """model.plan (FP16) and its parity against ONNX Runtime where TensorRT runs; else the reason it does not."""
    reason = tensorrt_unavailable()
    if reason is not None:
        return {"status": "skipped", "reason": reason}
    plan = build.out / "model.plan"
    tensorrt = build_engine(build.onnx_path, plan, build.spec.frames, build.spec.image.size, cfg.max_batch,
                            build.out / "timing.cache")
    tensorrt["parity_fp16_vs_onnxruntime"] = parity(clips.onnx_run, TensorRTRunner(plan), clips.frames,
                                                    cfg.max_batch, FP16_LOGIT_ATOL)
    if not tensorrt["parity_fp16_vs_onnxruntime"]["passed"]:
        raise RuntimeError(f"TensorRT FP16 and ONNX Runtime disagree: {tensorrt['parity_fp16_vs_onnxruntime']}")
    return tensorrt


def write_triton(build: Build, io: dict, cfg: ExportConfig) -> None:
    """The Triton model repository, with the TensorRT plan where one was built."""
    write_triton_repository(build.onnx_path, io, cfg.max_batch, build.out / "triton", build.out / "model.plan")


def write_drift_reference(build: Build, clips: ParityClips, params: ExportParams, raw_dir: Path,
                          features_dir: Path) -> dict:
    """The drift monitor's reference: the validation videos through the serving path and the graph just written."""
    raw = manifest.read(raw_dir / "manifest.parquet", build.classes)
    return write_reference(build.out, clips.onnx_run, build.spec, build.classes, raw, Path(params.data.root),
                           features_dir, params.drift)


def write_manifest(build: Build, cfg: ExportConfig, eval_metrics: Path, shuffle_metrics: Path, io: dict,
                   split_io: dict, clips: ParityClips, int8: dict, tensorrt: dict, drift: dict) -> dict:
    """manifest.json: what the artifact is, and every other file's sha256; the record written."""
    evaluation = parse(EvaluationReport, eval_metrics.read_text(), str(eval_metrics))
    shuffled = parse(ShuffleCheckReport, shuffle_metrics.read_text(), str(shuffle_metrics)).shuffled
    meta = build.meta
    record = {
        "clip_model": meta["clip_model"], "classes": list(build.classes),
        "source_checkpoint": {"path": str(build.checkpoint_dir), "sha256": sha256(build.checkpoint_dir / WEIGHTS),
                              "stage": meta["stage"], "train_seed": meta.get("train_seed")},
        "opset": OPSET, "io": io, "max_batch": cfg.max_batch,
        "test_metrics": {"war": evaluation.war, "uar": evaluation.uar, "shuffled_uar_drop": shuffled.uar_drop,
                         "num_test_clips": evaluation.num_test_clips},
        "parity_onnxruntime_vs_torch": clips.torch, "tensorrt": tensorrt, "drift_reference": drift,
        "versions": {p: version(p) for p in PACKAGES}, "split_io": split_io, "parity_split_vs_onnx": clips.split,
        "int8": int8,
    }
    out = build.out
    record["files"] = {str(p.relative_to(out)): sha256(p) for p in sorted(out.rglob("*")) if p.is_file()}
    DEPLOY_MANIFEST.write(out / DEPLOY_MANIFEST.path, record)
    return record


def export_deploy(checkpoint_dir: Path, crops_dir: Path, eval_metrics: Path, shuffle_metrics: Path, params: ExportParams,
                  out_dir: Path, raw_dir: Path, features_dir: Path) -> dict:
    """models/deploy, step by step (module docstring); the stage's metrics."""
    cfg = params.export
    build = load_build(checkpoint_dir, params, out_dir)
    io = write_onnx(build)
    split_io = write_split_graphs(build)
    clips = check_parity(build, crops_dir, cfg)
    int8 = write_int8(build, crops_dir, cfg, clips)
    write_torch_twin(build)
    tensorrt = write_tensorrt(build, cfg, clips)
    write_triton(build, io, cfg)
    start = time.perf_counter()
    drift = write_drift_reference(build, clips, params, raw_dir, features_dir)
    drift_seconds = round(time.perf_counter() - start, 1)
    record = write_manifest(build, cfg, eval_metrics, shuffle_metrics, io, split_io, clips, int8, tensorrt, drift)
    return {"parity": clips.torch, "parity_split": clips.split, "int8": int8, "tensorrt": tensorrt,
            "onnx_megabytes": round(build.onnx_path.stat().st_size / 2**20, 2), "opset": OPSET,
            "files": len(record["files"]) + 1, "drift_reference": drift | {"seconds": drift_seconds}}
