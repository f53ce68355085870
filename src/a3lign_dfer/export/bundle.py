"""The `export` stage: models/deploy, the artifact a serving team takes.

model.onnx (frames -> logits, probabilities; class matrix inside as a constant),
class_features.safetensors + labels.json (for a separately served image encoder),
preprocess.json (raw video -> graph input), torch/ (checkpoint + CLIP, the PyTorch
twin), a Triton model repository, model.plan where TensorRT runs, and
manifest.json with every file's sha256, versions, metrics and parity. The stage
fails when ONNX Runtime and PyTorch disagree on real test clips.

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

import torch
from safetensors.torch import save_file
from transformers import CLIPImageProcessor

from a3lign_dfer.checksums import sha256
from a3lign_dfer.config.deploy import ExportParams
from a3lign_dfer.data import manifest
from a3lign_dfer.data.frame_folders import load_frames
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.export.onnx_graph import OPSET, export_onnx, graph_io, parity
from a3lign_dfer.export.tensorrt_engine import FP16_LOGIT_ATOL, build_engine
from a3lign_dfer.export.triton import write_triton_repository
from a3lign_dfer.inference.backends import (TensorRTRunner, onnx_runner, onnx_session, tensorrt_unavailable,
                                            torch_runner)
from a3lign_dfer.inference.deploy_model import DeployModel
from a3lign_dfer.inference.video_input import PreprocessSpec
from a3lign_dfer.model.checkpoint import WEIGHTS, load_checkpoint
from a3lign_dfer.model.clip_backbone import FrozenCLIP, normalize_frames
from a3lign_dfer.monitoring.profile import write_reference
from a3lign_dfer.report_files import DEPLOY_MANIFEST, EvaluationReport, ShuffleCheckReport, parse

PACKAGES = ("torch", "transformers", "onnx", "onnxruntime", "a3lign-dfer")


def parity_inputs(crops_dir: Path, classes: tuple[str, ...], spec: PreprocessSpec, clips: int) -> torch.Tensor:
    """Up to `clips` test clips' stored crops, sampled and normalised as serving does: (clips, F, 3, S, S)."""
    crops = manifest.read(crops_dir / "manifest.parquet", classes)
    rows = crops[crops["split"] == "test"].head(clips)
    if rows.empty:
        raise ValueError(f"{crops_dir}: no test clips to check parity on")
    batch = []
    for row in rows.itertuples():
        frames = load_frames(crops_dir / row.path)
        picked = torch.from_numpy(frames[segment_indices(len(frames), spec.frames, train=False)])
        batch.append(normalize_frames(picked, spec.image))
    return torch.stack(batch)


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
    frames = parity_inputs(crops_dir, model.spec.classes, spec, cfg.parity_clips)
    onnx_run = onnx_runner(onnx_session(onnx_path))
    checked = parity(torch_runner(deploy.cpu()), onnx_run, frames, cfg.max_batch, cfg.parity_atol)
    if not checked["passed"]:
        raise RuntimeError(f"ONNX Runtime and PyTorch disagree on the test clips (top-1 must agree on every clip, "
                           f"logits within {cfg.parity_atol}): {checked}")

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
        "versions": {p: version(p) for p in PACKAGES},
    }
    record["files"] = {str(p.relative_to(out_dir)): sha256(p) for p in sorted(out_dir.rglob("*")) if p.is_file()}
    DEPLOY_MANIFEST.write(out_dir / DEPLOY_MANIFEST.path, record)
    return {"parity": checked, "tensorrt": tensorrt, "onnx_megabytes": round(onnx_path.stat().st_size / 2**20, 2),
            "opset": OPSET, "files": len(record["files"]) + 1, "drift_reference": drift | {"seconds": drift_seconds}}
