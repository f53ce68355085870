"""The serving graph: ONNX export, its shape and ops, parity with PyTorch, the split graphs, Triton config,
TensorRT gating."""
import numpy as np
import onnx
import pytest
import torch
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from a3lign_dfer.export.onnx_graph import OPSET, graph_io, parity
from a3lign_dfer.export.triton import write_triton_repository
from a3lign_dfer.inference.backends import (SplitRunner, load_backend, onnx_runner, onnx_session, tensorrt_unavailable,
                                            torch_runner)
from a3lign_dfer.inference.predict import class_matrix


@pytest.fixture(scope="module")
def exported(tiny_export):
    t = tiny_export
    return t.clip, t.model, t.deploy, t.folder / "model.onnx", t.graphs["model"]


def test_graph_is_opset17_with_native_layernorm_and_only_a_dynamic_batch(exported):
    clip, model, deploy, path, graph = exported
    assert graph.opset_import[0].version == OPSET
    ops = [n.op_type for n in graph.graph.node]
    layer_norms = sum(isinstance(m, torch.nn.LayerNorm) for m in deploy.modules())
    assert ops.count("LayerNormalization") == layer_norms     # no norm decomposed into ReduceMean/Pow/Sqrt
    io = graph_io(graph)
    size = clip.image_spec.size
    assert io["inputs"] == {"frames": [None, model.spec.frames, 3, size, size]}
    assert io["outputs"] == {"logits": [None, 7], "probabilities": [None, 7], "embedding": [None, clip.embed_dim]}
    assert not any(init.name.startswith("head.model.mat") for init in graph.graph.initializer)   # no text branch


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_onnxruntime_matches_pytorch_at_batches_it_was_not_traced_with(exported, batch):
    clip, model, deploy, path, _ = exported
    frames = torch.randn(batch, model.spec.frames, 3, clip.image_spec.size, clip.image_spec.size)
    result = parity(torch_runner(deploy), onnx_runner(onnx_session(path)), frames, batch=2, logit_atol=1e-3)
    assert result["passed"] and result["clips"] == batch and result["top1_agreement"] == 1.0, result


def test_parity_fails_on_a_graph_that_computes_something_else(exported):
    clip, model, deploy, path, _ = exported
    frames = torch.randn(4, model.spec.frames, 3, clip.image_spec.size, clip.image_spec.size)
    reference = torch_runner(deploy)
    shifted = lambda x: tuple(a + 0.01 for a in reference(x))            # noqa: E731  a tiny, uniform drift
    result = parity(reference, shifted, frames, batch=2, logit_atol=1e-3)
    assert not result["passed"] and result["top1_agreement"] == 1.0 and result["max_abs_logit_difference"] > 1e-3


@pytest.fixture(scope="module")
def split(tiny_export):
    return tiny_export.folder, {name: tiny_export.graphs[name] for name in ("image_encoder", "head")}


def test_split_graphs_are_per_frame_features_then_the_head(exported, split):
    clip, model, _, path, graph = exported
    _, graphs = split
    size, width = clip.image_spec.size, clip.embed_dim
    assert graph_io(graphs["image_encoder"]) == {"inputs": {"images": [None, 3, size, size]},
                                                 "outputs": {"features": [None, width]}}
    assert graph_io(graphs["head"]) == {"inputs": {"features": [None, model.spec.frames, width]},
                                        "outputs": graph_io(graph)["outputs"]}
    assert not any(init.name.startswith("head.") for init in graphs["image_encoder"].graph.initializer)
    assert not any(init.name.startswith("encoder.") for init in graphs["head"].graph.initializer)


@pytest.mark.parametrize("batch", [1, 3])
def test_split_graphs_equal_the_one_piece_graph(exported, split, batch):
    """image_encoder.onnx then head.onnx on ONNX Runtime give model.onnx's outputs, and the encoder alone gives
    PyTorch's per-frame features, at batches none of the graphs was traced with."""
    clip, model, deploy, path, _ = exported
    runner = SplitRunner(split[0])
    frames = torch.randn(batch, model.spec.frames, 3, clip.image_spec.size, clip.image_spec.size)
    result = parity(onnx_runner(onnx_session(path)), runner, frames, batch=2, logit_atol=1e-3)
    assert result["passed"] and result["clips"] == batch, result
    one_piece, two_piece = onnx_runner(onnx_session(path))(frames.numpy()), runner(frames.numpy())
    for a, b in zip(one_piece[1:], two_piece[1:]):                      # probabilities, embedding
        np.testing.assert_allclose(a, b, atol=1e-5)
    features = runner.encode(frames.flatten(0, 1).numpy())
    np.testing.assert_allclose(features, deploy.image_features(frames).flatten(0, 1).numpy(), atol=1e-4)
    np.testing.assert_allclose(runner.head(features.reshape(batch, model.spec.frames, -1))[0], one_piece[0],
                               atol=1e-3)


def test_class_matrix_is_a_constant_of_the_graph(exported):
    _, model, deploy, path, graph = exported
    vectors = class_matrix(model, exported[0]).numpy()
    constants = [onnx.numpy_helper.to_array(i) for i in graph.graph.initializer]
    assert any(c.shape == vectors.shape and np.allclose(c, vectors) for c in constants)
    torch.testing.assert_close(deploy.class_vectors, torch.from_numpy(vectors))


def test_triton_config_parses_with_tritons_schema_and_matches_the_graph(exported, tmp_path):
    _, _, _, path, graph = exported
    io = graph_io(graph)
    model_dir = write_triton_repository(path, io, 16, tmp_path / "triton")
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "a3lign_dfer" and config.max_batch_size == 16
    assert [(t.name, list(t.dims)) for t in config.input] == [("frames", io["inputs"]["frames"][1:])]
    assert [(t.name, list(t.dims)) for t in config.output] == [(n, s[1:]) for n, s in io["outputs"].items()]
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert (model_dir / "1" / "model.onnx").read_bytes() == path.read_bytes()


def test_tensorrt_backend_says_why_it_cannot_run(tmp_path):
    reason = tensorrt_unavailable()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present: the engine itself is checked by "
                    "tests/test_gpu.py::test_tensorrt_fp16_engine_passes_the_export_parity_gate")
    assert "TensorRT" in reason or "CUDA" in reason
    with pytest.raises(RuntimeError, match="tensorrt cannot run here"):
        load_backend(tmp_path, "tensorrt")
