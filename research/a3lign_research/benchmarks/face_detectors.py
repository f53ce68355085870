"""Face detectors side by side on synthetic and real faces, in one run (not a test).

Every video is written to mp4 and decoded by the pipeline's reader (so compression and
the phone clip's rotation metadata are part of the test) and goes through the
face_crop stage's own tracking, smoothing and cropping. Per detector and video set:
  detection rate   frames with a tracked face box / frames (and the worst video),
  IoU              of the tracked box with the true box, over frames with one,
  upright          crops that match the upright face better than any quarter turn of it,
  frames/s         detection + track selection, one thread (as in a face_crop worker),
  no-face videos   frames with a tracked box on face-free photos, and how many such
                   videos face_crop would accept (rate >= face_crop.min_detection_rate).
True boxes: the generator's (synthetic: the skin outline, head included) and the photo's
face box mapped into each frame (real: brow to chin). Boxes of different detectors follow
different conventions (Haar's is a square), so IoU compares shape too, not only hits.
Then the default detector at a bounded resolution and on fewer frames, through the
production path (data.face_track.track_face on the mp4): the real-face videos at their
own 320x240 and filmed again at 1280x720 and 1920x1080, each run with the detector on
a copy shrunk to DETECT_SIDES (and at full resolution, the reference) and on every
STRIDES-th frame. Per setting: detection rate, IoU of the kept box with the full-
resolution detector's on frames both found, IoU of the crop boxes at the 16 frames the
model samples, and CPU milliseconds per frame of the whole track (decode included).
Writes reports/face_detectors.json and reports/face_detectors.md.

Example (CPU, ~8 minutes on 2 cores): python -m a3lign_research.benchmarks.face_detectors
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.config.data import FaceCropConfig, SyntheticConfig
from a3lign_dfer.config.params import load_params
from a3lign_dfer.data.detectors import HaarDetector, YuNetDetector
from a3lign_dfer.data.face_track import FaceTrack, FaceTracker, crop_square, detection_stride, track_face
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.data.synthetic import plan, render_clip
from a3lign_dfer.data.video_io import read_video
from a3lign_dfer.inference.video_input import held_at_start
from a3lign_dfer.markdown_table import markdown_table
from a3lign_research import ROOT
from a3lign_research.blocks import provenance_text, write_report
from a3lign_research.face_videos import FPS, FaceVideo, lfw_videos, no_face_videos, photo_videos, upright

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # YuNet score thresholds swept
REQUIRED_RATE = 0.95                       # the bar for the default on real faces
REQUIRED_IOU = 0.9                         # boxes at a bounded resolution against full-resolution ones
RESOLUTIONS = {"240p (own)": None, "720p": (1280, 720), "1080p": (1920, 1080)}
DETECT_SIDES = (320, 480, 640)
STRIDES = (1, 2, 3)
FULL = 100_000                             # a detect_max_side no frame reaches: the full-resolution reference


def synthetic_videos(clips: int, synthetic: SyntheticConfig, classes: tuple[str, ...], seed: int) -> list[FaceVideo]:
    """`clips` clips of the embedded benchmark (one identity each), with the generator's boxes."""
    cfg = dataclasses.replace(synthetic, identities={"test": clips}, clips_per_identity=1)
    return [FaceVideo(f"syn{r.clip_index}", clip.frames, clip.boxes)
            for r in plan(cfg, classes, seed).itertuples()
            for clip in [render_clip(cfg, classes[r.true_label_idx], seed, r.clip_index, r.identity)]]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, :2] + a[:, 2:], b[:, :2] + b[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), 1)
    return inter / (np.prod(a[:, 2:], 1) + np.prod(b[:, 2:], 1) - inter)


def tracked(detect, frames_bgr: list[np.ndarray], cfg: FaceCropConfig) -> FaceTrack:
    """The production track (FaceTracker) of frames given whole, with `detect` on every frame at full size."""
    tracker = FaceTracker(dataclasses.replace(cfg, detect_max_side=FULL), cfg.detect_fps, frames_bgr[0].shape[:2])
    tracker.detect = detect
    for t, frame in enumerate(frames_bgr):
        tracker.add(t, frame)
    tracker.finish()
    return tracker.track()


def run_video(detect, video: FaceVideo, frames: np.ndarray, cfg: FaceCropConfig) -> dict:
    bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]   # what OpenCV's detectors take
    start = time.perf_counter()
    track = tracked(detect, bgr, cfg)
    seconds = time.perf_counter() - start
    boxes = track.selected
    found = ~np.isnan(boxes[:, 0])
    row = {"video": video.name, "frames": len(frames), "found": int(found.sum()), "seconds": seconds}
    if found.any() and not np.isnan(video.boxes).any():
        crops = [crop_square(f, cx, cy, side, cfg.margin, cfg.size)
                 for f, (cx, cy, side) in zip(frames, held_at_start(track.boxes))]
        row["iou"] = iou(boxes[found], video.boxes[found]).tolist()
        row["upright"] = int(upright(crops, video, cfg.margin).sum())
    return row


def summarise(rows: list[dict], min_rate: float) -> dict:
    frames = sum(r["frames"] for r in rows)
    rates = {r["video"]: r["found"] / r["frames"] for r in rows}
    worst = min(rates, key=rates.get)
    ious = [v for r in rows for v in r.get("iou", [])]
    return {
        "videos": len(rows), "frames": frames,
        "detection_rate": sum(r["found"] for r in rows) / frames,
        "worst_video": worst, "worst_rate": rates[worst],
        "videos_below_required": sorted(v for v, rate in rates.items() if rate < REQUIRED_RATE),
        "videos_accepted": sum(rate >= min_rate for rate in rates.values()),
        "iou_mean": float(np.mean(ious)) if ious else None,
        "upright_rate": sum(r.get("upright", 0) for r in rows) / frames,
        "frames_per_second": frames / sum(r["seconds"] for r in rows),
        "per_video": rates,
    }


def detectors(cfg: FaceCropConfig) -> tuple[dict[str, object], str]:
    """The detectors compared (Haar with and without its old shrink, YuNet over THRESHOLDS and
    the params' threshold) and the name of the one params.yaml picks."""
    out = {"haar, old shrink (smallest face to 20 px)": HaarDetector(cfg, scan_face=HaarDetector.WINDOW),
           "haar": HaarDetector(cfg)}
    for t in sorted({*THRESHOLDS, cfg.yunet_score_threshold}):
        out[f"yunet, score >= {t}"] = YuNetDetector(dataclasses.replace(cfg, yunet_score_threshold=t))
    return out, "haar" if cfg.detector == "haar" else f"{cfg.detector}, score >= {cfg.yunet_score_threshold}"


def _square(track: np.ndarray, margin: float) -> np.ndarray:
    """Crop boxes (x, y, w, h) of (cx, cy, side) track rows, margin included: what the model sees."""
    side = track[:, 2:3] * (1 + 2 * margin)
    return np.column_stack([track[:, :2] - side / 2, side, side])


def bounded_resolution(cfg: FaceCropConfig, tmp: Path) -> dict:
    """Per resolution, per (detect_max_side, stride): the production track against the full-resolution,
    every-frame one on the same mp4."""
    videos = {res: photo_videos(size=size) + lfw_videos(size=size) if size else photo_videos() + lfw_videos()
              for res, size in RESOLUTIONS.items()}
    out = {}
    for res, vs in videos.items():
        rows = {}
        for v in vs:
            path = v.write(tmp / f"{v.name}_{res.split()[0]}.mp4")
            for side, stride in [(FULL, 1), *((side, stride) for side in DETECT_SIDES for stride in STRIDES)]:
                setting = dataclasses.replace(cfg, detect_max_side=side, detect_fps=FPS / stride)
                start = time.thread_time()
                track, _ = track_face(path, setting)
                seconds = time.thread_time() - start
                if side == FULL:                  # the first setting is the reference
                    ref = track
                both = ~np.isnan(track.selected[:, 0]) & ~np.isnan(ref.selected[track.detected, 0])
                picked = segment_indices(track.frames, 16, train=False)
                row = rows.setdefault(f"{side}/{stride}", {"found": 0, "detected": 0, "iou": [], "crop_iou": [],
                                                           "truth_iou": [], "seconds": 0.0, "frames": 0,
                                                           "per_video": {}})
                row["found"] += track.found
                row["detected"] += len(track.detected)
                row["iou"] += iou(track.selected[both], ref.selected[track.detected][both]).tolist()
                found = ~np.isnan(track.selected[:, 0])
                row["truth_iou"] += iou(track.selected[found], v.boxes[track.detected][found]).tolist()
                if track.boxes is not None and ref.boxes is not None:
                    row["crop_iou"] += iou(_square(track.boxes[picked], cfg.margin),
                                           _square(ref.boxes[picked], cfg.margin)).tolist()
                row["seconds"] += seconds
                row["frames"] += track.frames
                row["per_video"][v.name] = track.detection_rate
        size = vs[0].frames.shape[1:3]
        out[res] = {"frame_size": [int(size[1]), int(size[0])], "videos": len(vs), "settings": {
            key: {"detection_rate": r["found"] / r["detected"], "iou_mean": float(np.mean(r["iou"])),
                  "iou_p10": float(np.percentile(r["iou"], 10)), "crop_iou_mean": float(np.mean(r["crop_iou"])),
                  "truth_iou_mean": float(np.mean(r["truth_iou"])),
                  "crop_iou_min_video_frames": float(np.min(r["crop_iou"])),
                  "cpu_ms_per_frame": 1000 * r["seconds"] / r["frames"],
                  "worst_video": min(r["per_video"], key=r["per_video"].get),
                  "worst_rate": min(r["per_video"].values())}
            for key, r in rows.items()}}
        print(res, {k: (round(v["detection_rate"], 3), round(v["iou_mean"], 3), round(v["crop_iou_mean"], 3),
                        round(v["cpu_ms_per_frame"], 1)) for k, v in out[res]["settings"].items()}, flush=True)
    return out


def bounded_markdown(report: dict) -> list[str]:
    cfg, res = report["face_crop"], report["bounded_resolution"]
    default = f"{cfg['detect_max_side']}/{detection_stride(FPS, cfg['detect_fps'])}"
    lines = ["", "## Detection at a bounded resolution and on fewer frames", "",
             "The default detector through the production path (`track_face` on the mp4, the one that `face_crop`, "
             "`predict`, `serve` and the drift monitor use) on the real-face videos above (photos + LFW) at their own "
             "320x240 and filmed again at 1280x720 and 1920x1080. A setting `side/stride`: the detector sees a copy "
             "of every stride-th frame with its longer side shrunk to `side` (full: not shrunk). Against the "
             "full-resolution detector on every frame: detection = detected frames with a tracked face; box IoU = "
             "kept box vs the reference's on frames both found (mean, 10th percentile); vs truth = kept box vs the "
             "photo's face box mapped into the frame (as in the table above: a fixed convention gap, compare down "
             "a column); crop IoU = the crop boxes "
             "(margin included) at the 16 frames the model samples; ms/frame: CPU of the whole track per decoded "
             "frame, decode included, one thread. "
             f"These clips are {FPS} fps: stride 2 is {FPS / 2:g} detections a second, stride 3 {FPS / 3:g}; the "
             f"default `detect_fps` {cfg['detect_fps']:g} detects on 1 frame in "
             f"{detection_stride(30, cfg['detect_fps'])} of a 30 fps phone clip "
             f"({30 / detection_stride(30, cfg['detect_fps']):g} a second). "
             f"Default in params.yaml: **{default}** at {FPS} fps.", ""]
    def cells(s: dict) -> list[str]:
        return [f"{s['detection_rate']:.3f}", f"{s['iou_mean']:.3f} ({s['iou_p10']:.2f})", f"{s['truth_iou_mean']:.3f}",
                f"{s['crop_iou_mean']:.3f}", f"{s['cpu_ms_per_frame']:.1f}"]

    rows = []
    for key in next(iter(res.values()))["settings"]:
        label = key.replace(str(FULL), "full")
        label = f"**{label}** (default)" if key == default else label
        rows.append([label, *(c for r in res.values() for c in cells(r["settings"][key]))])
    header = ["setting", *(c for r in res for c in (f"{r}: detection", "box IoU (p10)", "vs truth", "crop IoU",
                                                     "ms/frame"))]
    lines.append(markdown_table(header, rows))
    met = {name: r["settings"][default] for name, r in res.items()}
    lines += ["", f"Default ({default}) at every resolution: detection "
              + ", ".join(f"{n} {m['detection_rate']:.3f}" for n, m in met.items())
              + f" (at least {REQUIRED_RATE} required: "
              f"{'met' if all(m['detection_rate'] >= REQUIRED_RATE for m in met.values()) else 'NOT met'}); box IoU "
              + ", ".join(f"{n} {m['iou_mean']:.3f}" for n, m in met.items())
              + f" (at least {REQUIRED_IOU} required: "
              f"{'met' if all(m['iou_mean'] >= REQUIRED_IOU for m in met.values()) else 'NOT met'}); crop IoU "
              + ", ".join(f"{n} {m['crop_iou_mean']:.3f}" for n, m in met.items()) + "."]
    return lines


def markdown(report: dict) -> str:
    cfg, n, frames = report["face_crop"], report["sets"], report["frames"]
    lines = [
        "# Face detectors on synthetic and real faces", "",
        "Written by `python -m a3lign_research.benchmarks.face_detectors`, every detector on the same decoded videos, "
        f"through face_crop's tracking (min_face {cfg['min_face']}). Default in params.yaml: "
        f"**{report['default']}**.", "",
        f"- synthetic: {n['synthetic']} clips of the embedded generator ({frames['synthetic']} frames); true box: "
        "the generator's (skin outline, whole head).",
        f"- photos: {n['photos']} clips ({frames['photos']} frames): astronaut panned with the whole portrait in "
        "frame (face 42x53 px), Grace Hopper zoomed (face 47 to 190 px) and rolled ±25 degrees, a portrait phone "
        "clip stored sideways with rotation metadata; true box: YuNet's box on the full-resolution still, mapped "
        "(so IoU here favours YuNet's box shape).",
        f"- LFW: {n['lfw']} faces of skimage's lfw_subset (25x25 crops, upscaled) growing from 50 to 150 px on a "
        f"real background ({frames['lfw']} frames); true box: the crop. real = photos + LFW.",
        f"- no-face: {n['no_face']} face-free photos zoomed into (cup, rocket, brick wall, cat); accepted: videos "
        f"face_crop would crop (tracked in >= {cfg['min_detection_rate']} of frames).", "",
        "Detection: frames with a tracked face box. IoU: tracked box vs true box where found. Upright: crops that "
        "match the upright face better than any quarter turn of it (a video with no face found has no crops). Frames/s: detection + track selection, one "
        "thread, over all face videos; the machine's 2 cores are shared, so compare within a run only.", ""]
    rows = []
    for name, r in report["results"].items():
        syn, real, none = r["synthetic"], r["real"], r["no_face"]
        upright = (syn["upright_rate"] * syn["frames"] + real["upright_rate"] * real["frames"]) / (syn["frames"] + real["frames"])
        fps = (syn["frames"] + real["frames"]) / (syn["frames"] / syn["frames_per_second"]
                                                  + real["frames"] / real["frames_per_second"])
        label = f"**{name}** (default)" if name == report["default"] else name
        rows.append([label, f"{syn['detection_rate']:.3f}", f"{syn['iou_mean']:.3f}",
                     f"{r['photos']['detection_rate']:.3f}", f"{r['lfw']['detection_rate']:.3f}",
                     f"{real['detection_rate']:.3f}", f"{real['worst_video']} {real['worst_rate']:.2f}",
                     f"{real['iou_mean']:.3f}", f"{upright:.3f}", f"{none['videos_accepted']}/{none['videos']}",
                     f"{fps:.0f}"])
    lines.append(markdown_table(["detector", "synthetic: detection", "IoU", "photos: detection", "LFW: detection",
                                 "real: detection", "worst real video", "real IoU", "upright (all)", "no-face accepted",
                                 "frames/s"], rows))
    chosen, haar = report["results"][report["default"]], report["results"]["haar"]
    real, syn = chosen["real"]["detection_rate"], chosen["synthetic"]["detection_rate"]
    lines += ["", f"Default on real faces: {real:.3f} of frames (at least {REQUIRED_RATE} required: "
              f"{'met' if real >= REQUIRED_RATE else 'NOT met'}); on synthetic {syn:.3f} against haar's "
              f"{haar['synthetic']['detection_rate']:.3f} ({'no worse' if syn >= haar['synthetic']['detection_rate'] else 'WORSE'}).",
              "", f"Videos below {REQUIRED_RATE:.0%} detection:", ""]
    lines += [f"- {name}: real {', '.join(r['real']['videos_below_required']) or 'none'}; synthetic "
              f"{len(r['synthetic']['videos_below_required'])}/{r['synthetic']['videos']}"
              for name, r in report["results"].items()]
    lines += bounded_markdown(report)
    lines += ["", f"Measured on {provenance_text(report.get('provenance'))}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--synthetic-clips", type=int, default=40)
    ap.add_argument("--out", default=str(ROOT / "reports/face_detectors"))
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the .json (after a params "
                    "change that measures nothing new)")
    args = ap.parse_args(argv)
    if args.markdown_only:
        out = Path(args.out)
        report = json.loads(out.with_suffix(".json").read_text()) | {
            "face_crop": dataclasses.asdict(load_params(args.params).face_crop)}
        out.with_suffix(".md").write_text(markdown(report))
        return report
    params = load_params(args.params)
    cfg = params.face_crop
    cv2.setNumThreads(1)
    sets = {"synthetic": synthetic_videos(args.synthetic_clips, params.synthetic, params.data.classes,
                                              params.data.seed),
            "photos": photo_videos(), "lfw": lfw_videos(), "no_face": no_face_videos()}
    with tempfile.TemporaryDirectory() as tmp:
        decoded = {v.name: read_video(v.write(Path(tmp) / f"{v.name}.mp4")) for vs in sets.values() for v in vs}
        bounded = bounded_resolution(cfg, Path(tmp))
    for v in sets["photos"]:
        if decoded[v.name].shape != v.frames.shape:
            raise RuntimeError(f"{v.name}: decoded {decoded[v.name].shape}, stored upright {v.frames.shape}")
    # Video by video, every detector in turn: load on the shared machine drifts, and this
    # way it drifts for all of them alike.
    compared, default = detectors(cfg)
    found = {name: {key: [] for key in sets} for name in compared}
    for key, videos in sets.items():
        for v in videos:
            for name, detect in compared.items():
                found[name][key].append(run_video(detect, v, decoded[v.name], cfg))
    results = {}
    for name, rows in found.items():
        rows["real"] = rows["photos"] + rows["lfw"]
        results[name] = {key: summarise(r, cfg.min_detection_rate) for key, r in rows.items()}
        s, r = results[name]["synthetic"], results[name]["real"]
        print(f"{name:45s} synthetic {s['detection_rate']:.3f} IoU {s['iou_mean']:.3f} | real {r['detection_rate']:.3f} "
              f"(worst {r['worst_rate']:.2f}) IoU {r['iou_mean']:.3f} | no-face {results[name]['no_face']['detection_rate']:.3f} "
              f"| {s['frames_per_second']:.0f}/{r['frames_per_second']:.0f} frames/s", flush=True)
    report = {"face_crop": dataclasses.asdict(cfg), "default": default, "sets": {k: len(v) for k, v in sets.items()},
              "frames": {k: sum(len(v.frames) for v in vs) for k, vs in sets.items()}, "results": results,
              "bounded_resolution": bounded}
    out = Path(args.out)
    report = write_report(out.with_suffix(".json"), report)          # stamped with its provenance
    out.with_suffix(".md").write_text(markdown(report))
    return report


if __name__ == "__main__":
    main()
