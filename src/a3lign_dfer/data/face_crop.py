"""Face crops: decode, detect per frame, track, smooth, crop a square, store JPEGs.

Per-frame detections miss frames, jitter and fire on clutter, so one box per frame is
chosen by continuity, then centre and size are median-filtered over time and misses
are interpolated from neighbours. A video whose face is found too rarely is rejected
rather than cropped blindly; an unreadable one is rejected too, never fatal.

Clips of kind "frames" (datasets that ship face-cropped frame folders) skip detection:
each frame is padded to a square and resized into the same layout as the crops.
"""
from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from a3lign_dfer.config import FaceCropConfig
from a3lign_dfer.data.manifest import ClipError, kinds, reject, validate
from a3lign_dfer.data.detectors import make_detector
from a3lign_dfer.data.frame_folders import frame_files, read_frame
from a3lign_dfer.data.parallel import run_parallel
from a3lign_dfer.data.video_io import VideoDecodeError, read_video

MAX_JUMP = 1.0  # a candidate further than this (centre shift / size + |log size ratio|) is clutter


def _centre_size(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return boxes[..., :2] + boxes[..., 2:] / 2, np.sqrt(boxes[..., 2] * boxes[..., 3])


def _jump(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of boxes b from box(es) a: centre shift in units of a's size + |log size ratio|."""
    (ca, sa), (cb, sb) = _centre_size(a), _centre_size(b)
    return np.linalg.norm(cb - ca, axis=-1) / sa + np.abs(np.log(sb / sa))


def select_boxes(detections: list[np.ndarray]) -> np.ndarray:
    """One box (x, y, w, h) per frame, NaN where no candidate continues the track.

    The track starts at the candidate that recurs (within MAX_JUMP) in the most frames,
    the larger on ties: a face persists, clutter flickers. It is then followed
    forwards and backwards, always to the nearest candidate.
    """
    out = np.full((len(detections), 4), np.nan, np.float32)
    frame_of = np.concatenate([np.full(len(d), t) for t, d in enumerate(detections)]).astype(int)
    if not len(frame_of):
        return out
    boxes = np.concatenate([d for d in detections if len(d)])
    near = _jump(boxes[:, None], boxes[None]) <= MAX_JUMP
    support = (near @ np.eye(len(detections), dtype=bool)[frame_of]).sum(1)  # frames it recurs in
    best = int(np.lexsort((boxes[:, 2] * boxes[:, 3], support))[-1])
    start = frame_of[best]
    out[start] = boxes[best]
    for order in (range(start + 1, len(detections)), range(start - 1, -1, -1)):
        prev = boxes[best]
        for t in order:
            if len(detections[t]):
                cost = _jump(prev, detections[t])
                k = int(np.argmin(cost))
                if cost[k] <= MAX_JUMP:
                    out[t] = prev = detections[t][k]
    return out


def smooth_and_fill(boxes: np.ndarray, window: int) -> np.ndarray:
    """Per-frame (cx, cy, side): running median over `window` frames of the found boxes,
    frames with none in reach interpolated from the nearest ones (held at the ends)."""
    centre, _ = _centre_size(boxes)
    track = np.column_stack([centre, np.maximum(boxes[:, 2], boxes[:, 3])])
    found = ~np.isnan(track[:, 0])
    if not found.any():
        raise ValueError("no face box to smooth")
    half = max(window, 1) // 2
    smooth = np.full_like(track, np.nan)
    for t in range(len(track)):
        lo, hi = max(0, t - half), t + half + 1
        near = track[lo:hi][found[lo:hi]]
        if len(near):
            smooth[t] = np.median(near, 0)
    ok = ~np.isnan(smooth[:, 0])
    idx = np.arange(len(track))
    return np.column_stack([np.interp(idx, idx[ok], smooth[ok, j]) for j in range(3)])


def crop_square(frame: np.ndarray, cx: float, cy: float, side: float, margin: float, size: int) -> np.ndarray:
    """Square of side*(1 + 2*margin) around (cx, cy), black where it leaves the frame, resized to size."""
    half = side * (0.5 + margin)
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    span = max(1, int(round(2 * half)))
    h, w = frame.shape[:2]
    pad = max(0, -x0, -y0, x0 + span - w, y0 + span - h)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        x0, y0 = x0 + pad, y0 + pad
    patch = frame[y0:y0 + span, x0:x0 + span]
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if span > size else cv2.INTER_LINEAR)


_per_thread = threading.local()


def _detector(cfg: FaceCropConfig):
    """One per thread and config: loading a network is not free, and one OpenCV net must not run in two
    threads at once (the HTTP service crops uploads in a thread pool)."""
    cache = _per_thread.__dict__.setdefault("detectors", {})
    if cfg not in cache:
        cache[cfg] = make_detector(cfg)
    return cache[cfg]


def tracked_boxes(frames: np.ndarray, detect: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The face box (x, y, w, h) per frame that `detect` finds and select_boxes keeps (NaN: none)."""
    return select_boxes([detect(f) for f in frames])


def face_track(frames: np.ndarray, cfg: FaceCropConfig) -> tuple[np.ndarray | None, int]:
    """Smoothed, gap-filled (cx, cy, side) per frame (None if no face at all) and the
    number of frames with a tracked detection."""
    boxes = tracked_boxes(frames, _detector(cfg))
    found = int((~np.isnan(boxes[:, 0])).sum())
    return (smooth_and_fill(boxes, cfg.smooth_window) if found else None), found


class NoFaceError(ClipError):
    """Too few frames with a face to crop the video."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(path, "no_face", reason)


@dataclass(frozen=True)
class FaceCrops:
    crops: list[np.ndarray]   # RGB face crop of every frame
    found: int                # frames with a tracked detection
    track: np.ndarray         # (frames, 3) smoothed, gap-filled (cx, cy, side), pixels


def face_crops(frames: np.ndarray, cfg: FaceCropConfig, source: str | Path) -> FaceCrops:
    """The face crop of every frame, with the track it was cut along.

    Raises NoFaceError (naming `source`) when the face is found too rarely to trust the track.
    Training (`face_crop` stage), serving (`predict`) and the drift monitor all crop through here.
    """
    track, found = face_track(frames, cfg)
    if track is None or found / len(frames) < cfg.min_detection_rate:
        raise NoFaceError(source, f"face found in {found}/{len(frames)} frames, below "
                                  f"face_crop.min_detection_rate={cfg.min_detection_rate}")
    crops = [crop_square(frame, cx, cy, side, cfg.margin, cfg.size) for frame, (cx, cy, side) in zip(frames, track)]
    return FaceCrops(crops, found, track)


def crop_faces(frames: np.ndarray, cfg: FaceCropConfig, source: str | Path) -> tuple[list[np.ndarray], int]:
    """RGB face crops of every frame and the number of frames with a tracked detection (see face_crops)."""
    result = face_crops(frames, cfg, source)
    return result.crops, result.found


def _rejected(clip_id: str, err: ClipError, decoded: int) -> dict:
    """A worker's reject as plain data (it crosses a process boundary)."""
    return {"clip_id": clip_id, "reject": {"path": err.path, "problem": err.problem, "reason": str(err)},
            "decoded": decoded}


def _write_jpegs(crops: list[np.ndarray], dst: Path, quality: int) -> int:
    dst.mkdir(parents=True)
    for t, crop in enumerate(crops):
        cv2.imwrite(str(dst / f"{t:05d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return len(list(dst.glob("*.jpg")))


def _crop_video(task: tuple) -> dict:
    """Worker: one video -> JPEG crops, or a reject (problem, reason). Never raises on bad input."""
    clip_id, src, dst, cfg = task
    shutil.rmtree(dst, ignore_errors=True)  # no stale frames from an earlier run
    try:
        frames = read_video(src)
    except VideoDecodeError as err:
        return _rejected(clip_id, err, 0)
    try:
        crops, found = crop_faces(frames, cfg, src)
    except NoFaceError as err:
        return _rejected(clip_id, err, len(frames))
    return {"clip_id": clip_id, "num_frames": _write_jpegs(crops, dst, cfg.jpeg_quality), "found": found,
            "decoded": len(frames)}


def _resize_frames(task: tuple) -> dict:
    """Worker: one folder of face-cropped frames -> the same square JPEG layout, no detection.
    Every frame is read before anything is written, so a bad image rejects the clip whole."""
    clip_id, src, dst, cfg = task
    shutil.rmtree(dst, ignore_errors=True)
    try:
        frames = [read_frame(f) for f in frame_files(src)]
    except ClipError as err:
        return _rejected(clip_id, err, 0)
    crops = [crop_square(f, f.shape[1] / 2, f.shape[0] / 2, max(f.shape[:2]), 0.0, cfg.size) for f in frames]
    return {"clip_id": clip_id, "num_frames": _write_jpegs(crops, dst, cfg.jpeg_quality), "decoded": len(frames)}


def _crop_clip(task: tuple) -> dict:
    kind, *rest = task
    return (_resize_frames if kind == "frames" else _crop_video)(tuple(rest))


def crop_dataset(manifest: pd.DataFrame, root: Path, out_dir: Path, cfg: FaceCropConfig,
                 classes: tuple[str, ...]) -> tuple[pd.DataFrame, list[dict], dict]:
    """Crop every clip of `manifest` (paths relative to `root`) into out_dir/frames/<clip_id>/.

    Videos are decoded, detected and cropped; frame folders (kind "frames") are only
    resized. Returns the crops manifest (input rows and extra columns, path
    "frames/<clip_id>", num_frames counted on disk, detection_rate: the clip's fraction
    of frames with a tracked detection, NaN for frame folders; the caller writes it),
    reject rows (clip_id, path, problem, reason) and metrics. The metrics' detection_rate
    is the fraction over all frames of accepted videos (None without videos);
    frames_per_second counts every decoded frame.
    """
    start = time.time()
    root, out_dir = Path(root), Path(out_dir)
    tasks = [(kind, r.clip_id, root / r.path, out_dir / "frames" / r.clip_id, cfg)
             for kind, r in zip(kinds(manifest), manifest.itertuples())]
    results = {r["clip_id"]: r for r in run_parallel(_crop_clip, tasks, cfg.workers, desc="face crops")}

    accepted = manifest["clip_id"].map(lambda c: "reject" not in results[c]).astype(bool)
    kept = manifest.loc[accepted].copy()
    kept["path"] = "frames/" + kept["clip_id"]
    kept["num_frames"] = [results[c]["num_frames"] for c in kept["clip_id"]]
    # Per clip: the validate stage gates training on it (validate.min_clip_detection_rate).
    kept["detection_rate"] = [results[c]["found"] / results[c]["decoded"] if "found" in results[c] else float("nan")
                              for c in kept["clip_id"]]
    rejects = []
    for r in manifest.itertuples():
        err = results[r.clip_id].get("reject")
        if err is not None:
            path = Path(err["path"])
            rejects.append(reject(r.clip_id, path.relative_to(root) if path.is_relative_to(root) else path,
                                  err["problem"], err["reason"]))
    frames = int(kept["num_frames"].sum())
    detected = [c for c in kept["clip_id"] if "found" in results[c]]
    detected_frames = int(kept.loc[kept["clip_id"].isin(detected), "num_frames"].sum())
    seconds = time.time() - start
    metrics = {
        "videos": len(manifest),
        "accepted": len(kept),
        "rejected": len(rejects),
        "frames": frames,
        "frame_folders": int((kinds(manifest) == "frames").sum()),
        "detection_rate": (sum(results[c]["found"] for c in detected) / detected_frames) if detected_frames else None,
        "frames_per_second": sum(r["decoded"] for r in results.values()) / max(seconds, 1e-9),
        "seconds": round(seconds, 2),
        "rejected_by_problem": pd.Series([r["problem"] for r in rejects], dtype=object).value_counts().to_dict(),
    }
    return validate(kept.reset_index(drop=True), classes, where="crops manifest"), rejects, metrics
