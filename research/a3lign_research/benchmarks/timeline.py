"""Timeline real-time factor with the frame cache on and off, measured side by side in one run (not a test).

A 30 fps 720p H.264 video of a real face (Grace Hopper's portrait, filmed rolling; data.face_videos) goes
through exactly what `timeline` runs: the whole-video face track, the second pass cutting the sampled frames,
the JPEG round trip and CLIP normalisation, the image encoder per frame and the head per window (the split
ONNX graphs on ONNX Runtime, 2 cores), with params timeline's window and stride. The real-time factor is
video seconds / wall-clock seconds, everything included; the cache-off run encodes all of every window's
frames. Both at ViT-B/32 size (random weights: timing does not depend on them) and at the embedded
default's size, each in FP32 and with the INT8 image encoder (dynamic quantization, as export writes it).

Targets (issue 21): ViT-B/32 real-time factor >= 1.0 and cache-on >= 4x cache-off.
JSON in reports/benchmarks/timeline.json; README block `timeline`.

Example (CPU, about 6 minutes on 2 idle cores): python -m a3lign_research.benchmarks.timeline
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import onnxruntime as ort

from a3lign_dfer.config.params import load_params
from a3lign_dfer.export.int8 import quantize_encoder
from a3lign_dfer.export.onnx_graph import export_split
from a3lign_dfer.inference.backends import IMAGE_ENCODER_FILES, SplitRunner
from a3lign_dfer.inference.deploy_model import DeployModel
from a3lign_dfer.inference.timeline import file_windows, predict_windows
from a3lign_dfer.inference.video_input import PreprocessSpec
from a3lign_dfer.markdown_table import markdown_table
from a3lign_research import ROOT
from a3lign_research.benchmarks.common import CLASSES, FRAMES, embedded, final_model, vit_b32
from a3lign_research.blocks import publish
from a3lign_research.face_videos import photo_videos

TARGETS = {"real_time_factor": 1.0, "cache_speedup": 4.0}


def split_artifact(clip, folder: Path) -> None:
    """image_encoder.onnx, its dynamic INT8 twin and head.onnx of the final architecture on this CLIP."""
    export_split(DeployModel(clip, final_model(clip)), folder, FRAMES, clip.image_spec.size)
    quantize_encoder(folder / IMAGE_ENCODER_FILES["fp32"], folder / IMAGE_ENCODER_FILES["int8"], "dynamic", None)


class Counted:
    """A SplitRunner that counts the frames put through its image encoder."""

    def __init__(self, runner: SplitRunner) -> None:
        self.runner, self.frames, self.head = runner, 0, runner.head

    def encode(self, images):
        self.frames += len(images)
        return self.runner.encode(images)


def run_once(video: Path, spec: PreprocessSpec, cfg, runner: SplitRunner, cache: bool) -> dict:
    counted = Counted(runner)
    start, cpu = time.perf_counter(), time.process_time()
    faces = file_windows(video, spec, cfg)
    points = list(predict_windows(faces, counted, list(CLASSES), spec.image, cache))
    wall = time.perf_counter() - start
    seconds = faces.frames / faces.fps
    return {"windows": len(points), "frames_encoded": counted.frames, "video_seconds": round(seconds, 3),
            "wall_seconds": round(wall, 3), "cpu_seconds": round(time.process_time() - cpu, 3),
            "real_time_factor": round(seconds / wall, 3)}


def preprocessing_seconds(video: Path, spec: PreprocessSpec, cfg) -> float:
    """Wall seconds of the windows' crops alone (face track, second pass, JPEG round trip): what the cache
    cannot save."""
    start = time.perf_counter()
    for _ in file_windows(video, spec, cfg).windows:
        pass
    return round(time.perf_counter() - start, 3)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the 30 fps 720p test video")
    args = parser.parse_args(argv)
    params = load_params(ROOT / "params.yaml")
    cfg = params.timeline
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "onnxruntime": ort.__version__},
              "video": {"fps": 30, "size": "1280x720", "seconds": args.seconds, "face": "grace_roll"},
              "window_seconds": cfg.window_seconds, "stride_seconds": cfg.stride_seconds, "targets": TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        video = [v for v in photo_videos(round(30 * args.seconds), (1280, 720)) if v.name == "grace_roll"][0]
        path = video.write(Path(tmp) / "grace_roll_720p.mp4", fps=30)
        del video
        for name, make in (("vit_b32", vit_b32), ("embedded", embedded)):
            clip = make()
            folder = Path(tmp) / name
            folder.mkdir()
            split_artifact(clip, folder)
            spec = PreprocessSpec(replace(params.face_crop, workers=1), clip.image_spec, FRAMES,
                                  params.export.min_frames)
            del clip
            result[f"{name}_preprocessing_seconds"] = preprocessing_seconds(path, spec, cfg)
            for precision in ("fp32", "int8"):
                runner = SplitRunner(folder, precision)
                on, off = (run_once(path, spec, cfg, runner, cache) for cache in (True, False))
                result[f"{name}_{precision}"] = {"cache_on": on, "cache_off": off, "cache_speedup": round(
                    on["real_time_factor"] / off["real_time_factor"], 2)}
                print(f"{name} {precision}: {result[f'{name}_{precision}']}", flush=True)
    print(markdown(result))
    publish("timeline", result)
    return result


def _verdict(value: float, target: float) -> str:
    return "met" if value >= target else f"**missed** ({value:.2f} against {target:g})"


def markdown(result: dict) -> str:
    """README's `timeline` block: real-time factor per size and precision, cache on and off."""
    video = result["video"]
    rows = []
    for key, row in result.items():
        if key.endswith(("_fp32", "_int8")):
            name, precision = key.rsplit("_", 1)
            on, off = row["cache_on"], row["cache_off"]
            rows.append([name, precision.upper(), on["windows"], f"{on['real_time_factor']:.2f}",
                         f"{off['real_time_factor']:.2f}", f"{row['cache_speedup']:.2f}x",
                         f"{on['frames_encoded']} / {off['frames_encoded']}",
                         f"{on['wall_seconds']:.1f} / {off['wall_seconds']:.1f}",
                         f"{result[name + '_preprocessing_seconds']:.1f}"])
    lines = [f"A {video['seconds']:g} s {video['fps']} fps {video['size']} video of a real face, windows of "
             f"{result['window_seconds']:g} s every {result['stride_seconds']:g} s, preprocessing included "
             f"(ONNX Runtime {result['machine']['onnxruntime']}, this machine's 2 cores):", "",
             markdown_table(["CLIP", "image encoder", "windows", "real-time factor, cache on", "cache off",
                             "cache on / off", "frames encoded, on / off", "wall s, on / off", "of which crops (both)"],
                            rows)]
    b32, targets = result["vit_b32_fp32"], result["targets"]
    on, off, crops = b32["cache_on"], b32["cache_off"], result["vit_b32_preprocessing_seconds"]
    lines += ["", f"Targets at ViT-B/32 size (FP32): real-time factor >= {targets['real_time_factor']:g}: "
                  f"{_verdict(on['real_time_factor'], targets['real_time_factor'])}; cache on >= "
                  f"{targets['cache_speedup']:g}x off: {_verdict(b32['cache_speedup'], targets['cache_speedup'])}. "
                  f"The cache saves image-encoder work only: {off['frames_encoded'] / on['frames_encoded']:.2f}x "
                  f"fewer frames encoded here (each window shares all but "
                  f"{result['stride_seconds'] / result['window_seconds']:.0%} of its sampled frames with the one "
                  f"before, so at most 4x on an endless video); beyond the {crops:.1f} s of face track and crops "
                  f"that both runs spend, the rest of the wall time is "
                  f"{max(off['wall_seconds'] - crops, 0) / max(on['wall_seconds'] - crops, 1e-9):.2f}x shorter."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
