"""On a machine with CUDA, the pipeline's stages run there by themselves, and TensorRT's FP16 engine passes
the export's parity gate (CI has no GPU: these skip there).

The stages run through the CLI as dvc.yaml runs them, with no --device flag: the CLI picks
CUDA when torch sees it. A DeviceProbe (gpu_probe.py; its own checks in test_gpu_probe.py run
anywhere) records the device of every torch module's parameters and inputs, so a stage
that silently falls back to CPU fails here instead of passing slowly. Export is the
exception by design: it traces the CPU copy of the model (onnx_graph.export_onnx) and
holds ONNX Runtime on CPU to it; its CUDA work is TensorRT's.
"""
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, TINY_PIPELINE, tiny_jas_model
from gpu_probe import DeviceProbe

from a3lign_dfer.cli import main
from a3lign_dfer.export.onnx_graph import export_onnx, parity
from a3lign_dfer.export.tensorrt_engine import FP16_LOGIT_ATOL, build_engine
from a3lign_dfer.inference.backends import TensorRTRunner, onnx_runner, onnx_session, tensorrt_unavailable
from a3lign_dfer.inference.deploy_model import DeployModel

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs an NVIDIA GPU (none visible to torch): these tests check that the "
                                        "pipeline runs on CUDA")]

TENSORRT = tensorrt_unavailable()           # None where TensorRT can build and run engines
FRAMES = 10                                 # per clip, as JPEG crops
CLIPS_PER_CLASS = {"train": 3, "val": 1, "test": 1}
# The torch modules each stage must have run (so a probe that saw only some helper cannot pass).
WORKHORSES = {"pretrain_clip": {"CLIPVisionEmbeddings", "CLIPTextEmbeddings"}, "features": {"CLIPVisionEmbeddings"},
              "train_stage1": {"A3lignDFER"}, "evaluate": {"A3lignDFER"}, "shuffle_check": {"A3lignDFER"},
              "export": {"DeployModel"}}


def write_workspace(ws: Path) -> Path:
    """Face crops (random JPEG frame folders, a frame-folder dataset), their captions and class prompts, and
    params.yaml: the project's params with the tiny pipeline's sizes, the small CLIP pretrained into ws/clip."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, values in TINY_PIPELINE.items():
        params[section].update(values)
    params["clip"]["model"] = str(ws / "clip")
    params["data"]["root"] = str(ws / "crops")
    classes = params["data"]["classes"]
    prompts = {c: f"a face showing {c}" for c in classes}
    rng = np.random.default_rng(0)
    rows, captions = [], []
    for split, per_class in CLIPS_PER_CLASS.items():
        for label_idx, label in enumerate(classes):
            for k in range(per_class):
                clip_id = f"{split}_{label}_{k}"
                folder = ws / "crops/frames" / clip_id
                folder.mkdir(parents=True)
                for t in range(FRAMES):
                    cv2.imwrite(str(folder / f"{t:05d}.jpg"), rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
                    captions.append((clip_id, t, prompts[label] if t >= FRAMES // 2 else "a face at rest"))
                rows.append({"dataset": "synthetic", "fold": 0, "split": split, "clip_id": clip_id,
                             "path": f"frames/{clip_id}", "num_frames": FRAMES, "label_idx": label_idx,
                             "label_name": label, "kind": "frames"})
    manifest = pd.DataFrame(rows)
    manifest.to_parquet(ws / "crops/manifest.parquet", index=False)
    (ws / "raw").mkdir()
    manifest.to_parquet(ws / "raw/manifest.parquet", index=False)   # frame folders: export skips the drift reference
    pd.DataFrame(captions, columns=["clip_id", "frame_idx", "caption"]).to_parquet(ws / "raw/captions.parquet")
    (ws / "raw/class_prompts.json").write_text(json.dumps(prompts))
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return ws / "params.yaml"


def run_stages(ws: Path) -> dict[str, DeviceProbe]:
    """pretrain_clip -> features -> train stage1 -> evaluate -> shuffle_check -> export, each through the CLI
    with no --device, each under its own probe."""
    params = write_workspace(ws)
    crops, raw, features, ladder = str(ws / "crops"), str(ws / "raw"), str(ws / "features"), str(ws / "stage1")
    commands = {
        "pretrain_clip": ["pretrain-clip", "--crops", crops, "--raw", raw, "--out", str(ws / "clip"),
                          "--metrics", str(ws / "reports/pretrain_clip.json")],
        "features": ["features", "--crops", crops, "--out", features, "--metrics", str(ws / "reports/features.json")],
        "train_stage1": ["train", "--stage", "stage1", "--features", features, "--out", ladder,
                         "--live", str(ws / "reports/train/stage1")],
        "evaluate": ["evaluate", "--features", features, "--ladder", ladder, "--out", str(ws / "reports/eval")],
        "shuffle_check": ["shuffle-check", "--features", features, "--ladder", ladder,
                          "--out", str(ws / "reports/shuffle")],
        "export": ["export", "--checkpoint", ladder, "--crops", crops, "--eval", str(ws / "reports/eval/metrics.json"),
                   "--shuffle", str(ws / "reports/shuffle/metrics.json"), "--raw", raw, "--features", features,
                   "--out", str(ws / "deploy"), "--metrics", str(ws / "reports/export.json")],
    }
    probes = {}
    for stage, argv in commands.items():
        with DeviceProbe() as probe:
            assert main(["--params", str(params), *argv]) == 0, stage
        probes[stage] = probe
    return probes


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    ws = tmp_path_factory.mktemp("gpu_stages")
    return ws, run_stages(ws)


@pytest.mark.parametrize("stage", ["pretrain_clip", "features", "train_stage1", "evaluate", "shuffle_check"])
def test_stage_runs_on_cuda_without_being_told(stages, stage):
    _, probes = stages
    probe = probes[stage]
    assert WORKHORSES[stage] <= {name for name, _ in probe.calls}, sorted(probe.calls)
    probe.assert_ran_on("cuda")
    assert probe.cuda_peak_growth > 0, f"{stage} allocated nothing on CUDA"


def test_pretrain_clip_records_the_device_it_chose(stages):
    ws, _ = stages
    assert json.loads((ws / "reports/pretrain_clip.json").read_text())["device"] == "cuda"


def test_export_traces_on_cpu_and_runs_tensorrt_on_cuda(stages):
    ws, probes = stages
    probe = probes["export"]
    assert WORKHORSES["export"] <= {name for name, _ in probe.calls}, sorted(probe.calls)
    probe.assert_ran_on("cpu")       # the ONNX trace and the PyTorch side of its parity check, by design
    manifest = json.loads((ws / "deploy/manifest.json").read_text())
    assert manifest["parity_onnxruntime_vs_torch"]["passed"]
    if TENSORRT is None:
        trt = manifest["tensorrt"]
        assert trt["status"] == "built" and trt["device"] == torch.cuda.get_device_name()
        assert trt["parity_fp16_vs_onnxruntime"]["passed"] and (ws / "deploy/model.plan").stat().st_size > 0
        assert probe.cuda_peak_growth > 0           # the engine ran on CUDA buffers
    else:
        assert manifest["tensorrt"] == {"status": "skipped", "reason": TENSORRT}
        assert not (ws / "deploy/model.plan").exists()


@pytest.mark.skipif(TENSORRT is not None, reason=f"the TensorRT engine test needs TensorRT on a GPU: {TENSORRT}")
def test_tensorrt_fp16_engine_passes_the_export_parity_gate(tiny_clip_dir, tmp_path):
    """The engine export builds (FP16, batch profile 1..max_batch) from the exported ONNX graph, held to the
    gate export holds it to: top-1 agrees with ONNX Runtime on every clip, logits within FP16_LOGIT_ATOL."""
    clip, model = tiny_jas_model(tiny_clip_dir)
    frames, size, max_batch = model.spec.frames, clip.image_spec.size, 4
    onnx_path = tmp_path / "model.onnx"
    export_onnx(DeployModel(clip, model), onnx_path, frames, size)
    # 9 clips, max_batch at a time: batches 4, 4 and 1 (the profile's ends; the graph was traced at 2).
    clips = torch.randn(9, frames, 3, size, size, generator=torch.Generator().manual_seed(0))
    with DeviceProbe() as probe:
        built = build_engine(onnx_path, tmp_path / "model.plan", frames, size, max_batch, tmp_path / "timing.cache")
        checked = parity(onnx_runner(onnx_session(onnx_path)), TensorRTRunner(tmp_path / "model.plan"), clips,
                         max_batch, FP16_LOGIT_ATOL)
    assert built == {"status": "built", "precision": "fp16", "max_batch": max_batch,
                     "device": torch.cuda.get_device_name()}
    assert checked["passed"] and checked["clips"] == 9 and checked["logit_atol"] == FP16_LOGIT_ATOL, checked
    assert checked["max_abs_logit_difference"] > 0            # FP16 really ran: not a copy of the FP32 outputs
    assert probe.cuda_peak_growth > 0 and (tmp_path / "timing.cache").stat().st_size > 0
