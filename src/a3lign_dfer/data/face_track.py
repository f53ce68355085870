"""The face track of one video, streamed: one box per frame at a bounded cost per pixel and frame.

Phone videos are 720p/1080p and seconds to minutes long, so a video is decoded one frame
at a time and never held whole: the detector sees a copy of at most `detect_fps` frames per
second of video scaled so its longer side is at most `detect_max_side` (boxes mapped back to the frame), and
only the frames asked for are kept at full resolution, where the crops are cut. Per-frame
detections miss frames, jitter and fire on clutter, so one box per detected frame is chosen
by continuity, then centre and size are median-filtered over the detected frames and every
frame's box is interpolated from them. Training (`face_crop`), `predict`, `serve`, `timeline`, the
drift monitor and the export's reference profile all cut their crops through here.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.config.data import FaceCropConfig
from a3lign_dfer.data.detectors import make_detector
from a3lign_dfer.data.manifest import ClipError
from a3lign_dfer.data.video_io import VideoDecodeError, declared_frames, decoded_frames, open_video

MAX_JUMP = 1.0  # a candidate further than this (centre shift / size + |log size ratio|) is clutter


def _centre_size(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return boxes[..., :2] + boxes[..., 2:] / 2, np.sqrt(boxes[..., 2] * boxes[..., 3])


def _jump(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of boxes b from box(es) a: centre shift in units of a's size + |log size ratio|."""
    (ca, sa), (cb, sb) = _centre_size(a), _centre_size(b)
    return np.linalg.norm(cb - ca, axis=-1) / sa + np.abs(np.log(sb / sa))


def select_boxes(detections: list[np.ndarray]) -> np.ndarray:
    """One box (x, y, w, h) per detected frame, NaN where no candidate continues the track.

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


def smooth_and_fill(boxes: np.ndarray, window: int, at: np.ndarray | None = None,
                    frames: int | None = None) -> np.ndarray:
    """Per-frame (cx, cy, side) from the boxes found on the detected frames `at` (default: every frame):
    each detected frame's box is the median of the boxes found within `window` frames around it (a span of
    time, however many frames were detected in it), and every frame in between or without one in reach is
    interpolated from the nearest smoothed ones (held at the ends)."""
    at = np.arange(len(boxes)) if at is None else np.asarray(at)
    frames = len(boxes) if frames is None else frames
    centre, _ = _centre_size(boxes)
    track = np.column_stack([centre, np.maximum(boxes[:, 2], boxes[:, 3])])
    found = ~np.isnan(track[:, 0])
    if not found.any():
        raise ValueError("no face box to smooth")
    half = max(window, 1) // 2
    smooth = np.full_like(track, np.nan)
    for i, t in enumerate(at):
        near = track[(np.abs(at - t) <= half) & found]
        if len(near):
            smooth[i] = np.median(near, 0)
    ok = ~np.isnan(smooth[:, 0])
    idx = np.arange(frames)
    return np.column_stack([np.interp(idx, at[ok], smooth[ok, j]) for j in range(3)])


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


def square_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """A shipped face crop in the layout of a video's crops: padded (black) to a square, resized to size."""
    height, width = frame.shape[:2]
    return crop_square(frame, width / 2, height / 2, max(height, width), 0.0, size)


_per_thread = threading.local()


def detector_for(cfg: FaceCropConfig):
    """One per thread and config: loading a network is not free, and one OpenCV net must not run in two
    threads at once."""
    cache = _per_thread.__dict__.setdefault("detectors", {})
    if cfg not in cache:
        cache[cfg] = make_detector(cfg)
    return cache[cfg]


def warm_detector(cfg: FaceCropConfig) -> None:
    """A worker process's start: one OpenCV thread (the pool has one process per core) and its detector loaded."""
    cv2.setNumThreads(1)
    detector_for(cfg)


def detection_stride(fps: float, detect_fps: float) -> int:
    """Every how-many-th frame the detector sees so that it runs at most detect_fps times per second of video
    (1 where the container states no frame rate)."""
    return max(1, int(fps / detect_fps + 1e-6)) if fps > 0 else 1


def detection_scale(height: int, width: int, max_side: int) -> float:
    """The factor a frame is shrunk by before detection (1: detected at its own resolution)."""
    return min(1.0, max_side / max(height, width))


def detect_scaled(frame_bgr: np.ndarray, detect: Callable[[np.ndarray], np.ndarray], scale: float,
                  min_face: int) -> np.ndarray:
    """Candidate boxes (x, y, w, h) in the frame's pixels, found on a copy shrunk by `scale`;
    faces smaller than `min_face` frame pixels (longer box side) dropped. The copy is bilinear, not area-
    averaged: on the real-face videos at 720p and 1080p both found the same faces (0.978 and 0.980 of
    detected frames) with the same IoU against the true boxes (0.748), and bilinear cost 10 to 25% less
    CPU per track (measured side by side, detect_max_side 480)."""
    small = frame_bgr if scale == 1 else cv2.resize(frame_bgr, None, fx=scale, fy=scale,
                                                    interpolation=cv2.INTER_LINEAR)
    boxes = detect(small) / scale
    return boxes[boxes[:, 2:].max(1) >= min_face]


class CostError(ValueError):
    """Tracking a video took more CPU time than allowed (a request budget): stopped early."""


@dataclass(frozen=True)
class FaceTrack:
    """Where the face is in every decoded frame of one video."""

    boxes: np.ndarray | None       # (frames, 3) smoothed, gap-filled (cx, cy, side) in pixels; None: no face
    found: int                     # detected frames with a tracked box
    detected: np.ndarray           # indices of the frames the detector ran on
    selected: np.ndarray           # (detected frames, 4) the box (x, y, w, h) kept on each, NaN: none
    frames: int                    # decoded frames
    frame_size: tuple[int, int]    # (height, width) as decoded (display rotation applied)
    stride: int                    # the detector ran on every stride-th frame (and the last)

    @property
    def detection_rate(self) -> float:
        return self.found / max(len(self.detected), 1)


class NoFaceError(ClipError):
    """Too few frames with a face to crop the video."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(path, "no_face", reason)


def require_face(track: FaceTrack, cfg: FaceCropConfig, source: str | Path) -> None:
    """NoFaceError (naming `source`) when the face is found too rarely to trust the track."""
    if track.boxes is None or track.detection_rate < cfg.min_detection_rate:
        raise NoFaceError(source, f"face found in {track.found}/{len(track.detected)} detected frames, below "
                                  f"face_crop.min_detection_rate={cfg.min_detection_rate}")


def track_face(path: str | Path, cfg: FaceCropConfig, keep: Iterable[int] = (),
               max_cpu_seconds: float | None = None) -> tuple[FaceTrack, dict[int, np.ndarray]]:
    """Stream `path` once: the face track and the frames of `keep` (BGR, full resolution; only those are held).
    The detector runs on every stride-th frame (detection_stride) and on the last one the container
    declares, whatever `keep` is, so training (keeping nothing) and serving (keeping the sampled frames)
    track alike. VideoDecodeError for an unreadable video; CostError once the calling thread has spent
    `max_cpu_seconds` of CPU on it (checked after every frame, decoded or only grabbed)."""
    keep, detect = set(keep), detector_for(cfg)
    start = time.thread_time()
    cap = open_video(Path(path))
    stride = detection_stride(cap.get(cv2.CAP_PROP_FPS), cfg.detect_fps)
    last = declared_frames(cap) - 1            # detected too, so the track's end is not held from stride frames back
    detected, found_at, kept = [], [], {}
    try:
        for t, frame in decoded_frames(cap, Path(path), lambda t: t % stride == 0 or t == last or t in keep):
            if t == 0:                         # always decoded (0 % stride == 0)
                size = frame.shape[:2]
                scale = detection_scale(*size, cfg.detect_max_side)
            if t in keep:
                kept[t] = frame
            if t % stride == 0 or t == last:
                detected.append(t)
                found_at.append(detect_scaled(frame, detect, scale, cfg.min_face))
            if max_cpu_seconds is not None and time.thread_time() - start > max_cpu_seconds:
                raise CostError(f"{path}: stopped after {max_cpu_seconds:g} CPU-seconds at frame {t + 1}")
        frames = t + 1
    finally:
        cap.release()
    boxes = select_boxes(found_at)
    found = int((~np.isnan(boxes[:, 0])).sum())
    track = smooth_and_fill(boxes, cfg.smooth_window, np.array(detected), frames) if found else None
    return FaceTrack(track, found, np.array(detected), boxes, frames, size, stride), kept


def crops_along(path: str | Path, track: FaceTrack, cfg: FaceCropConfig, indices: Iterable[int],
                kept: dict[int, np.ndarray] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB crop) for each frame of `indices` in order, cut from the full-resolution frame along the
    track: from `kept` where it holds the frame, else from one more streamed pass (one frame held at a time)."""
    indices, kept = sorted(set(indices)), kept or {}
    if set(indices) <= kept.keys():
        for t in indices:
            yield t, cut_face(kept[t], track.boxes[t], cfg)
        return
    wanted = set(indices)
    cap = open_video(Path(path))
    try:
        for t, frame in decoded_frames(cap, Path(path), wanted.__contains__):
            if frame is not None:
                yield t, cut_face(frame, track.boxes[t], cfg)
                wanted.discard(t)
                if not wanted:
                    return
    finally:
        cap.release()
    raise VideoDecodeError(path, "truncated_video", f"frame {min(wanted)} no longer decodes")


def cut_face(frame_bgr: np.ndarray, box: np.ndarray, cfg: FaceCropConfig) -> np.ndarray:
    """The RGB face crop of one BGR frame at its track box (cx, cy, side): what every crop of a video is."""
    cx, cy, side = box
    return cv2.cvtColor(crop_square(frame_bgr, cx, cy, side, cfg.margin, cfg.size), cv2.COLOR_BGR2RGB)
