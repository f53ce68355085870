"""Serving cost, measured side by side in one run on the same inputs (not a test).

For a CLIP at ViT-B/32 size (the default CLIPConfig, random weights: timing does
not depend on them) and at the embedded small size, batch 1 and 16 clips of 16
frames, it times:
  (a) naive PyTorch: the text branch (MAT -> text encoder -> JAS) recomputed per request,
  (b) PyTorch with the cached class matrix (inference.DeployModel),
  (c) ONNX Runtime on the exported graph,
  (d) TensorRT, only where it runs (otherwise the reason is recorded, never a number),
and the share of (b)'s time spent beyond the CLIP image encoder. Ratios against the
targets are printed, written to reports/benchmarks/serving.json and rendered into
README's `serving` block.

Example (CPU, ~5 minutes on 2 cores): python -m a3lign_research.benchmarks.serving
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from a3lign_dfer.export.onnx_graph import export_onnx
from a3lign_dfer.export.tensorrt_engine import build_engine
from a3lign_dfer.inference.backends import TensorRTRunner, onnx_session, tensorrt_unavailable
from a3lign_dfer.inference.deploy_model import DeployModel
from a3lign_dfer.markdown_table import markdown_table
from a3lign_dfer.model.clip_backbone import FrozenCLIP
from a3lign_research.benchmarks.common import FRAMES, embedded, final_model, vit_b32
from a3lign_research.blocks import publish


def timed(fn, repeats: int) -> dict:
    fn()                                                     # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return {"median_s": statistics.median(seconds), "runs": len(seconds)}


def measure(name: str, clip: FrozenCLIP, batches: tuple[int, ...], repeats: int, workdir: Path) -> dict:
    model = final_model(clip)
    deploy = DeployModel(clip, model)
    onnx_path = workdir / f"{name}.onnx"
    export_onnx(deploy, onnx_path, FRAMES, clip.image_spec.size)
    session = onnx_session(onnx_path)
    reason = tensorrt_unavailable()
    if reason is None:
        plan = workdir / f"{name}.plan"
        build_engine(onnx_path, plan, FRAMES, clip.image_spec.size, max(batches), workdir / "timing.cache")
        engine = TensorRTRunner(plan)
    out = {}
    for batch in batches:
        frames = torch.randn(batch, FRAMES, 3, clip.image_spec.size, clip.image_spec.size)
        with torch.no_grad():
            runs = {
                "a_naive_torch": timed(lambda: model(deploy.image_features(frames),
                                                     model.class_vectors(model.text_features(clip))), repeats),
                "b_cached_torch": timed(lambda: deploy(frames), repeats),
                "c_onnxruntime": timed(lambda: session.run(None, {"frames": frames.numpy()}), repeats),
                "image_encoder_only": timed(lambda: deploy.image_features(frames), repeats),
            }
        runs["d_tensorrt"] = {"skipped": reason} if reason else timed(lambda: engine(frames.numpy()), repeats)
        for r in runs.values():
            if "median_s" in r:
                r["clips_per_s"] = batch / r["median_s"]
        b, image = runs["b_cached_torch"]["median_s"], runs["image_encoder_only"]["median_s"]
        out[f"batch_{batch}"] = {
            **runs,
            "speedup_b_over_a": runs["a_naive_torch"]["median_s"] / b,
            "speedup_c_over_b": b / runs["c_onnxruntime"]["median_s"],
            "beyond_image_encoder_share": max(0.0, (b - image) / b),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args(argv)
    torch.backends.mha.set_fastpath_enabled(True)
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
              "targets": {"b_over_a_batch1": 5.0, "c_over_b": 1.3, "beyond_image_encoder_share": 0.05}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("vit_b32", vit_b32), ("embedded", embedded)):
            result[name] = measure(name, make(), tuple(args.batches), args.repeats, Path(tmp))
    print(table(result))
    publish("serving", result)
    return result


def _trt(run: dict) -> str:
    return f"{run['clips_per_s']:.2f}" if "clips_per_s" in run else "not run (no TensorRT here)"


def table(result: dict) -> str:
    rows = [[name, batch.split("_")[1], f"{r['a_naive_torch']['clips_per_s']:.2f}",
             f"{r['b_cached_torch']['clips_per_s']:.2f}", f"{r['c_onnxruntime']['clips_per_s']:.2f}",
             _trt(r["d_tensorrt"]), f"{r['speedup_b_over_a']:.1f}x", f"{r['speedup_c_over_b']:.2f}x",
             f"{100 * r['beyond_image_encoder_share']:.1f}%"]
            for name in ("vit_b32", "embedded") for batch, r in result[name].items()]
    return markdown_table(["CLIP", "batch", "(a) naive torch clips/s", "(b) cached torch clips/s",
                           "(c) ONNX Runtime clips/s", "(d) TensorRT", "b/a", "c/b", "beyond image encoder"], rows)


def _against(value: float, target: float, lower_is_better: bool = False) -> str:
    met = value <= target if lower_is_better else value >= target
    return "met" if met else f"**missed** by {100 * abs(target / value - 1):.0f}%"


def markdown(result: dict) -> str:
    """The table and its reading against the targets: README's `serving` block."""
    targets, runs = result["targets"], result["vit_b32"]
    sizes = sorted(runs, key=lambda key: int(key.split("_")[1]))          # batch_1, batch_16
    first, last = runs[sizes[0]], runs[sizes[-1]]
    n1, n2 = sizes[0].split("_")[1], sizes[-1].split("_")[1]
    share = targets["beyond_image_encoder_share"]
    return "\n".join([
        table(result), "",
        f"Against the targets (ViT-B/32 size, {result['machine']['threads']} CPU threads): (b) over (a) at batch {n1} "
        f"is {first['speedup_b_over_a']:.1f}x (target {targets['b_over_a_batch1']:.0f}x: "
        f"{_against(first['speedup_b_over_a'], targets['b_over_a_batch1'])}; the naive path runs MAT's sentences "
        f"through the text encoder on every request); the time beyond the image encoder is "
        f"{100 * first['beyond_image_encoder_share']:.1f}% at batch {n1} and {100 * last['beyond_image_encoder_share']:.1f}% "
        f"at batch {n2} (target under {100 * share:.0f}%: "
        f"{_against(max(first['beyond_image_encoder_share'], last['beyond_image_encoder_share']), share, True)}); "
        f"(c) over (b) is {first['speedup_c_over_b']:.2f}x at batch {n1} "
        f"({_against(first['speedup_c_over_b'], targets['c_over_b'])}) and {last['speedup_c_over_b']:.2f}x at batch "
        f"{n2} ({_against(last['speedup_c_over_b'], targets['c_over_b'])}) against the {targets['c_over_b']}x target."])


if __name__ == "__main__":
    main()
