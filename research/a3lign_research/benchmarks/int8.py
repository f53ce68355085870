"""INT8 against FP32 image encoder, measured side by side in one run (not a test).

Speed: at the embedded default's CLIP size (image 64, patch 8, width 64, 3 layers) and at
ViT-B/32 size (random weights: timing does not depend on them), the image encoder is
exported as the export stage exports it (image_encoder.onnx) and quantized both ways the
stage can (export.int8.method dynamic and static; static calibrated on random frames here,
which changes its numbers, not its cost), then timed on ONNX Runtime with 2 threads at
batch 1 and 16 clips of 16 frames: clips/s from the median of --repeats (--vit-b32-repeats) runs
after a warm-up.

Agreement: where a trained artifact and its face crops exist (--deploy, --crops), its
image encoder is split out of the PyTorch twin, quantized both ways (static calibrated on
export.int8.calibration_clips training clips, as export does), and INT8 encoder + FP32 head is
compared with the artifact's FP32 model.onnx on the validation clips (at most export.parity_clips)
through the export stage's own gate (params export.int8): top-1 agreement and per-class recall.
The method is chosen on validation clips; the test clips are read once, by the export stage's
release gate.

The measured pick is the method with the highest agreement, then the most clips/s at the
trained model's size, batch 16. JSON in reports/benchmarks/int8.json; README block `int8`.

Example (CPU, about a minute on 2 cores): python -m a3lign_research.benchmarks.int8
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from a3lign_dfer.config.deploy import DEPLOY_DIR, ExportConfig
from a3lign_dfer.config.params import load_params
from a3lign_dfer.export.bundle import export_int8, stored_clips
from a3lign_dfer.export.int8 import quantize_encoder
from a3lign_dfer.export.onnx_graph import clip_logits, export_split
from a3lign_dfer.inference.backends import (
    ENCODER_INPUT,
    IMAGE_ENCODER_FILE,
    onnx_runner,
    onnx_session,
    torch_deploy_model,
)
from a3lign_dfer.inference.deploy_model import DeployModel
from a3lign_dfer.inference.video_input import PreprocessSpec
from a3lign_dfer.markdown_table import markdown_table
from a3lign_research import ROOT
from a3lign_research.benchmarks.common import embedded, final_model, vit_b32
from a3lign_research.blocks import publish

FRAMES, THREADS, METHODS = 16, 2, ("dynamic", "static")


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def clips_per_s(path: Path, clips: int, size: int, repeats: int) -> float:
    run = session(path)
    images = np.random.default_rng(0).standard_normal((clips * FRAMES, 3, size, size), dtype=np.float32)
    run.run(None, {ENCODER_INPUT: images})                              # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run.run(None, {ENCODER_INPUT: images})
        seconds.append(time.perf_counter() - start)
    return clips / statistics.median(seconds)


def speed(clip, batches: tuple[int, ...], repeats: int, workdir: Path) -> dict:
    """FP32 and both INT8 image encoders of this CLIP: clips/s per batch, and file sizes."""
    size = clip.image_spec.size
    export_split(DeployModel(clip, final_model(clip)), workdir, FRAMES, size)
    paths = {"fp32": workdir / IMAGE_ENCODER_FILE}
    calibration = np.random.default_rng(1).standard_normal((2 * FRAMES, 3, size, size), dtype=np.float32)
    for method in METHODS:
        paths[method] = workdir / f"image_encoder.{method}.onnx"
        quantize_encoder(paths["fp32"], paths[method], method, calibration)
    out = {"megabytes": {name: round(path.stat().st_size / 2**20, 2) for name, path in paths.items()}}
    for batch in batches:
        row = {name: clips_per_s(path, batch, size, repeats) for name, path in paths.items()}
        out[f"batch_{batch}"] = row | {f"{m}_over_fp32": row[m] / row["fp32"] for m in METHODS}
        print(f"  batch {batch}: " + ", ".join(f"{k} {v:.2f}" for k, v in out[f"batch_{batch}"].items()), flush=True)
    return out


def agreement(deploy_dir: Path, crops_dir: Path, cfg: ExportConfig, workdir: Path) -> dict:
    """Each method's gate record on the trained artifact's parity clips (export_int8, as the export stage runs it)."""
    deploy = torch_deploy_model(deploy_dir)
    spec = PreprocessSpec.load(deploy_dir / "preprocess.json")
    classes = deploy.head.model.spec.classes
    export_split(deploy, workdir, spec.frames, spec.image.size)
    frames, labels = stored_clips(crops_dir, classes, spec, "val", cfg.parity_clips)
    calibration = stored_clips(crops_dir, classes, spec, "train", cfg.int8.calibration_clips)[0]
    fp32 = clip_logits(onnx_runner(onnx_session(deploy_dir / "model.onnx")), frames, cfg.max_batch)
    return {method: export_int8(workdir, replace(cfg.int8, method=method), calibration if method == "static" else None,
                                frames, labels, fp32, classes, cfg.max_batch) for method in METHODS}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement at the embedded size "
                                                                "(the median is kept)")
    parser.add_argument("--vit-b32-repeats", type=int, default=1, help="the same at ViT-B/32 size (about 10 s a "
                                                                       "run at batch 16 on 2 cores)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16], help="clips of 16 frames per call")
    parser.add_argument("--deploy", default=str(ROOT / DEPLOY_DIR), help="a trained artifact (agreement)")
    parser.add_argument("--crops", default=str(ROOT / "data/crops"), help="its face crops (val and train clips)")
    args = parser.parse_args(argv)
    cfg = load_params(ROOT / "params.yaml").export
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "onnxruntime_threads": THREADS,
                          "onnxruntime": ort.__version__},
              "repeats": {"embedded": args.repeats, "vit_b32": args.vit_b32_repeats},
              "params_method": cfg.int8.method,
              "gate": {"min_agreement": cfg.int8.min_agreement, "max_recall_gap": cfg.int8.max_recall_gap}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("embedded", embedded), ("vit_b32", vit_b32)):
            print(f"{name}:", flush=True)
            (Path(tmp) / name).mkdir()
            result[name] = speed(make(), tuple(args.batches), result["repeats"][name], Path(tmp) / name)
        deploy, crops = Path(args.deploy), Path(args.crops)
        if (deploy / "torch").is_dir() and (crops / "manifest.parquet").is_file():
            (Path(tmp) / "trained").mkdir()
            result["trained"] = {"deploy": str(deploy), "gate": agreement(deploy, crops, cfg, Path(tmp) / "trained")}
        else:
            result["trained"] = {"skipped": f"no trained artifact at {deploy} with crops at {crops}"}
    result["pick"] = pick(result)
    print(markdown(result))
    publish("int8", result)
    return result


def pick(result: dict) -> str | None:
    """Agreement on the trained model first, then clips/s at its size (the embedded one) at the largest batch."""
    gate = result["trained"].get("gate")
    if gate is None:
        return None
    largest = max((k for k in result["embedded"] if k.startswith("batch_")), key=lambda k: int(k.split("_")[1]))
    return max(METHODS, key=lambda m: (gate[m]["top1_agreement"], result["embedded"][largest][m]))


def markdown(result: dict) -> str:
    """The speed table, the agreement table and the pick: README's `int8` block."""
    speed = [[name, key.split("_")[1], f"{r['fp32']:.2f}", f"{r['dynamic']:.2f}", f"{r['static']:.2f}",
              f"{r['dynamic_over_fp32']:.2f}x", f"{r['static_over_fp32']:.2f}x"]
             for name in ("embedded", "vit_b32") for key, r in result[name].items() if key.startswith("batch_")]
    lines = [markdown_table(["CLIP", "batch", "FP32 clips/s", "dynamic INT8 clips/s", "static INT8 clips/s",
                             "dynamic / FP32", "static / FP32"], speed)]
    sizes = "; ".join(f"{name}: " + ", ".join(f"{k} {v} MB" for k, v in result[name]["megabytes"].items())
                      for name in ("embedded", "vit_b32"))
    repeats = result["repeats"]
    lines += ["", f"Image encoder file sizes: {sizes}. ONNX Runtime {result['machine']['onnxruntime']}, "
                  f"{result['machine']['onnxruntime_threads']} threads; median of {repeats['embedded']} runs "
                  f"(embedded) and {repeats['vit_b32']} (vit_b32) after a warm-up.", ""]
    trained = result["trained"]
    if "gate" not in trained:
        return "\n".join(lines + [f"Agreement not measured: {trained['skipped']}."])
    gate = result["gate"]
    lines += ["On the trained artifact (the workspace's models/deploy), INT8 image encoder + FP32 head against FP32 "
              f"model.onnx on the validation clips (the method is chosen here; the test clips are the export "
              f"stage's release gate); the gate wants agreement >= {gate['min_agreement']} and every class's "
              f"recall within {gate['max_recall_gap']}:", "",
              markdown_table(["method", "val clips", "top-1 agreement", "max abs logit difference", "worst recall gap",
                              "within the bars"],
                             ([method, g["clips"], f"{g['top1_agreement']:.4f}", f"{g['max_abs_logit_difference']:.2f}",
                               f"{g['worst_recall_gap']:.4f}", "yes" if g["releasable"] else f"no: {g['reason']}"]
                              for method, g in trained["gate"].items()))]
    lines += ["", f"Measured pick (agreement first, then embedded clips/s at the largest batch): {result['pick']}; "
                  f"params.yaml export.int8.method: {result['params_method']}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
