"""The INT8 image encoder: both quantization methods write a graph that runs on ONNX Runtime, the gate's verdict
follows its numbers, and predict / serve refuse INT8 that the manifest does not release."""
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from conftest import CLASSES, ROOT

from a3lign_dfer.config.deploy import Int8Config
from a3lign_dfer.config.model import EMBEDDED_CLIP
from a3lign_dfer.export.bundle import export_int8
from a3lign_dfer.export.int8 import gate
from a3lign_dfer.export.onnx_graph import clip_logits
from a3lign_dfer.inference.artifact import Artifact, ArtifactError
from a3lign_dfer.inference.backends import SplitRunner, load_backend, onnx_runner, onnx_session
from a3lign_dfer.report_files import DEPLOY_MANIFEST, DeployManifest, from_dict

QUANTIZED_OPS = {"dynamic": {"DynamicQuantizeLinear", "MatMulInteger"}, "static": {"QuantizeLinear",
                                                                                  "DequantizeLinear"}}


@pytest.fixture(scope="module")
def tiny_deploy(tiny_export, tmp_path_factory):
    """A deploy folder holding model.onnx and the split graphs of the tiny model (a copy of the session's
    export, which the INT8 graph is added to), and clips to run them on."""
    out = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(tiny_export.folder, out)
    model, size = tiny_export.model, tiny_export.clip.image_spec.size
    torch.manual_seed(1)
    return out, torch.randn(12, model.spec.frames, 3, size, size)


def _cfg(method: str) -> Int8Config:
    return Int8Config(method=method, calibration_clips=4, min_agreement=0.99, max_recall_gap=0.01)


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_int8_graph_is_written_runs_and_its_record_is_the_gates_verdict(tiny_deploy, method):
    out, frames = tiny_deploy
    fp32 = clip_logits(onnx_runner(onnx_session(out / "model.onnx")), frames, 4)
    labels = np.arange(len(frames)) % len(CLASSES)
    calibration = frames[:4] if method == "static" else None
    record = export_int8(out, _cfg(method), calibration, frames, labels, fp32, CLASSES, 4)

    graph = onnx.load(str(out / "image_encoder.int8.onnx"))
    assert record["file"] == "image_encoder.int8.onnx" and record["method"] == method
    assert QUANTIZED_OPS[method] <= {node.op_type for node in graph.graph.node}
    assert any(init.data_type == onnx.TensorProto.INT8 for init in graph.graph.initializer)   # INT8 weights
    assert record["calibration_frames"] == (4 * frames.shape[1] if method == "static" else None)
    # Nothing else left in the folder: the manifest would list (and serving check) any stray calibration file.
    assert sorted(p.name for p in out.iterdir()) == ["head.onnx", "image_encoder.int8.onnx", "image_encoder.onnx",
                                                     "model.onnx"]

    int8 = clip_logits(SplitRunner(out, "int8"), frames, 4)
    assert int8.shape == fp32.shape and np.isfinite(int8).all()
    assert record["max_abs_logit_difference"] == float(np.abs(int8 - fp32).max())
    assert record["top1_agreement"] == float(np.mean(int8.argmax(1) == fp32.argmax(1)))
    expected = gate(labels, fp32.argmax(1), int8.argmax(1), CLASSES, 0.99, 0.01)
    assert {k: record[k] for k in expected} == expected


def test_int8_backend_runs_on_onnxruntime_only(tiny_deploy):
    out, frames = tiny_deploy
    export_int8(out, _cfg("dynamic"), None, frames[:1], np.zeros(1, int), np.zeros((1, 7)), CLASSES, 1)
    probs = load_backend(out, "onnxruntime", precision="int8")(frames[:2].numpy())[1]
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="--precision int8 runs the INT8 image encoder on ONNX Runtime"):
        load_backend(out, "torch", precision="int8")


def test_no_int8_graph_when_the_method_is_none(tmp_path):
    record = export_int8(tmp_path, _cfg("none"), None, torch.zeros(1), np.zeros(1, int), np.zeros((1, 7)), CLASSES, 1)
    assert record == {"method": "none", "releasable": False, "reason": "export.int8.method is none: no INT8 graph"}
    assert list(tmp_path.iterdir()) == []


# 100 clips, 10 of each of the first 6 classes and 40 of the last; FP32 right on all but the last 10.
LABELS = np.repeat(np.arange(7), [10, 10, 10, 10, 10, 10, 40])
FP32 = np.where(np.arange(100) < 90, LABELS, (LABELS + 1) % 7)


def test_gate_passes_when_int8_agrees_and_no_recall_moves():
    int8 = FP32.copy()
    int8[95] = 2                                     # one wrong answer for another: fear's recall is unchanged
    verdict = gate(LABELS, FP32, int8, CLASSES, 0.99, 0.01)
    assert verdict["releasable"] and verdict["reason"] is None
    assert verdict["top1_agreement"] == 0.99 and verdict["worst_recall_gap"] == 0.0
    assert verdict["per_class_recall_fp32"]["fear"] == verdict["per_class_recall_int8"]["fear"] == 0.75


def test_gate_fails_on_agreement():
    int8 = FP32.copy()
    int8[94:96] = 3                                  # two clips moved, both already wrong: recalls unchanged
    verdict = gate(LABELS, FP32, int8, CLASSES, 0.99, 0.01)
    assert not verdict["releasable"] and verdict["top1_agreement"] == 0.98 and verdict["worst_recall_gap"] == 0.0
    assert verdict["reason"] == "top-1 agrees with FP32 on 0.9800 of 100 clips (< 0.99)"


def test_gate_fails_when_one_class_recall_moves():
    int8 = FP32.copy()
    int8[0] = 1                                      # one happy clip of ten now wrong: agreement 0.99, recall -0.1
    verdict = gate(LABELS, FP32, int8, CLASSES, 0.99, 0.01)
    assert not verdict["releasable"] and verdict["top1_agreement"] == 0.99
    assert verdict["worst_recall_gap"] == pytest.approx(0.1)
    assert verdict["reason"] == "recall moved by more than 0.01 for happy (1.0000 -> 0.9000)"


def test_gate_fails_on_a_class_without_clips():
    labels, preds = np.array([0, 1, 2]), np.array([0, 1, 2])
    verdict = gate(labels, preds, preds, CLASSES, 0.99, 0.01)
    assert not verdict["releasable"]
    assert verdict["reason"] == "no test clip of angry, surprise, disgust, fear: their recall cannot be compared"


def _manifest(int8: dict | None, clip_model: str = "clip") -> DeployManifest:
    """A manifest as export writes it, with this INT8 record (None: an artifact from before INT8)."""
    parity = {"clips": 3, "max_abs_logit_difference": 0.0, "top1_agreement": 1.0, "logit_atol": 0.001, "passed": True}
    raw = {"clip_model": clip_model, "classes": list(CLASSES),
           "source_checkpoint": {"path": "models/stage3", "sha256": "0" * 64, "stage": "stage3", "train_seed": 0},
           "opset": 17, "io": {"inputs": {}, "outputs": {}}, "max_batch": 16,
           "test_metrics": {"war": 0.5, "uar": 0.5, "shuffled_uar_drop": 0.1, "num_test_clips": 3},
           "parity_onnxruntime_vs_torch": parity, "tensorrt": {}, "drift_reference": {}, "versions": {}, "files": {}}
    return from_dict(DeployManifest, raw | ({"int8": int8} if int8 else {}), "test manifest")


RELEASED = {"method": "dynamic", "releasable": True, "file": "image_encoder.int8.onnx"}
MISSED = {"method": "dynamic", "releasable": False, "file": "image_encoder.int8.onnx",
          "reason": "top-1 agrees with FP32 on 0.9800 of 100 clips (< 0.99)"}


@pytest.mark.parametrize("int8, refusal", [
    (RELEASED, None),
    (MISSED, r"missed its release gate \(top-1 agrees with FP32 on 0.9800 of 100 clips \(< 0.99\)\)"),
    ({"method": "none", "releasable": False, "reason": "export.int8.method is none: no INT8 graph"},
     "has no INT8 image encoder"),
    (None, "has no INT8 image encoder"),
])
def test_int8_runs_only_where_the_manifest_releases_it(tmp_path, int8, refusal):
    artifact = Artifact(tmp_path, _manifest(int8), "0" * 64, None, None)
    artifact.require_precision("fp32")                  # FP32 is always allowed
    if refusal is None:
        artifact.require_precision("int8")
    else:
        with pytest.raises(ArtifactError, match=refusal):
            artifact.require_precision("int8")


@pytest.mark.parametrize("clip_model, synthetic", [(str(EMBEDDED_CLIP), True), (f"./{EMBEDDED_CLIP}/", True),
                                                   ("openai/clip-vit-base-patch32", False), ("/data/clip_small", False)])
def test_only_a_model_on_the_embedded_small_clip_counts_as_trained_on_synthetic_faces(tmp_path, clip_model,
                                                                                      synthetic):
    """predict warns for these (tests/test_pipeline.py): the small CLIP learns only the synthetic benchmark."""
    assert Artifact(tmp_path, _manifest(None, clip_model), "0" * 64, None, None).learned_synthetic_faces is synthetic


@pytest.mark.parametrize("command", [["predict", "clip.mp4", "--deploy"], ["serve", "--artifact"]])
def test_predict_and_serve_refuse_int8_the_manifest_does_not_release_in_one_line(tmp_path, command):
    DEPLOY_MANIFEST.write(tmp_path / "deploy" / DEPLOY_MANIFEST.path, _manifest(MISSED))
    done = subprocess.run([sys.executable, "-m", "a3lign_dfer", *command, str(tmp_path / "deploy"), "--precision",
                           "int8"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"a3lign_dfer {command[0]}: error: refusing --precision int8: the INT8 "
                                                f"image encoder of {tmp_path / 'deploy'} missed its release gate "
                                                f"({MISSED['reason']}); use --precision fp32"]
