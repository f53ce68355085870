"""Expression timelines: one prediction per stride over a sliding window of a video file, a camera or a stream.

Each window (params `timeline`) samples its `frames` (preprocess.json) as evaluation samples a clip: the
centres of equal segments of the window's frames. Its crops are `predict`'s: a video file is tracked whole
first (data.face_track, as predict and training track), then streamed a second time to cut the sampled
frames, one held at a time. A camera or a stream cannot be read twice, so its face is tracked as it plays
(LiveTrack: the same detector, continuity rule and median, over the detections so far; a box lags a moving
face by up to half the median's span). A file no longer than one window is one window over all its frames,
so its timeline is predict's answer.

Frames shared by consecutive windows are encoded once: FrameFeatures keeps each sampled frame's image
features by frame index (SplitRunner.encode) and runs the head on each window's cached features. With the
stride a quarter of the window, a window encodes 4 new frames, not 16.

A window where the detector found the face on fewer than face_crop.min_detection_rate of the frames it ran
on gets no label (`label` null), as a clip would be refused.
"""
from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.config.data import FaceCropConfig
from a3lign_dfer.config.serving import TimelineConfig
from a3lign_dfer.data.face_track import (FaceTrack, crops_along, cut_face, detect_scaled, detection_scale,
                                         detection_stride, detector_for, select_boxes)
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.data.video_io import open_video
from a3lign_dfer.inference.video_input import (InputError, PreprocessSpec, RequestLimits, as_input_errors,
                                               as_stored, probed, tracked)
from a3lign_dfer.model.image_spec import ImageSpec

OPEN_TIMEOUT_MS = 10_000           # a stream URL that answers nothing in this long is reported as unopenable


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a video lie, in frames."""

    length: int          # frames per window
    stride: int          # frames from one window's start to the next
    frames: int          # sampled per window

    @classmethod
    def of(cls, cfg: TimelineConfig, fps: float, frames: int) -> "WindowPlan":
        return cls(max(1, round(cfg.window_seconds * fps)), max(1, round(cfg.stride_seconds * fps)), frames)

    def sampled(self, start: int, end: int) -> np.ndarray:
        """The frames the window [start, end) samples, in order (repeated where it is shorter than `frames`)."""
        return start + segment_indices(end - start, self.frames, train=False)

    def spans(self, total: int) -> list[tuple[int, int]]:
        """The windows of a video of `total` frames: one over all of them when it is no longer than a window,
        else one per stride, and a last one ending at the last frame when the strides stop short of it."""
        if total <= self.length:
            return [(0, total)]
        starts = list(range(0, total - self.length + 1, self.stride))
        if starts[-1] + self.length < total:
            starts.append(total - self.length)
        return [(s, s + self.length) for s in starts]

    def live_span(self, k: int) -> tuple[int, int]:
        return k * self.stride, k * self.stride + self.length

    def is_sampled(self, t: int) -> bool:
        """Whether some live window samples frame t."""
        offsets = self.sampled(0, self.length)
        first = max(0, math.ceil((t - self.length + 1) / self.stride))
        return any(t - k * self.stride in offsets for k in range(first, t // self.stride + 1))


@dataclass(frozen=True)
class WindowCrops:
    """One window's input: its sampled frames' stored crops (None where the face was too rarely found)."""

    start: int                                 # first frame of the window
    end: int                                   # one past its last frame
    sampled: np.ndarray                        # the frame indices it samples, in order
    crops: dict[int, np.ndarray] | None        # frame index -> uint8 RGB crop after the JPEG round trip
    box: list[int] | None                      # the face box [x, y, width, height] at its middle sampled frame
    detection_rate: float | None               # face found / detector runs within the window (None: no run)


@dataclass(frozen=True)
class FaceWindows:
    """A source opened for a timeline: what it is, and its windows as they complete."""

    source: str
    fps: float
    frames: int | None                         # decoded frames of a file; None for a camera or stream
    frame_size: tuple[int, int]                # (height, width)
    windows: Iterable[WindowCrops]


def prepared_file(path: Path, spec: PreprocessSpec, cfg: TimelineConfig, limits: RequestLimits) -> FaceWindows:
    """A video file's windows, all of them in memory (the service's worker processes send them back whole;
    its limits bound their number)."""
    faces = file_windows(path, spec, cfg, limits)
    return dataclasses.replace(faces, windows=list(faces.windows))


def _box(cx: float, cy: float, side: float) -> list[int]:
    return [round(cx - side / 2), round(cy - side / 2), round(side), round(side)]


def _window(plan: WindowPlan, start: int, end: int, crops: dict[int, np.ndarray | None], boxes: dict,
            rate: float | None, cfg: FaceCropConfig) -> WindowCrops:
    sampled = plan.sampled(start, end)
    middle = boxes.get(int(sampled[len(sampled) // 2]))
    faceless = (rate is not None and rate < cfg.min_detection_rate) or any(crops[int(t)] is None for t in sampled)
    return WindowCrops(start, end, sampled, None if faceless else {int(t): crops[int(t)] for t in sampled},
                       None if middle is None else _box(*middle), rate)


def _in_order(plan: WindowPlan, spans: Iterator[tuple[int, int]], frames: Iterator[tuple[int, np.ndarray | None]],
              boxes: dict, rate: Callable[[int, int], float | None], cfg: FaceCropConfig) -> Iterator[WindowCrops]:
    """Each window as soon as its last sampled frame has come, holding only the crops of unfinished windows."""
    crops: dict[int, np.ndarray | None] = {}
    span = next(spans, None)
    for t, crop in frames:
        crops[t] = crop
        while span is not None and int(plan.sampled(*span).max()) <= t:
            yield _window(plan, *span, crops, boxes, rate(*span), cfg)
            span = next(spans, None)
            if span is not None:
                for old in [k for k in crops if k < span[0]]:
                    del crops[old]
                    boxes.pop(old, None)


def capture_fps(cap: cv2.VideoCapture, cfg: TimelineConfig) -> float:
    fps = cap.get(cv2.CAP_PROP_FPS)
    return fps if 0 < fps < 1000 else cfg.default_fps


def file_windows(path: Path, spec: PreprocessSpec, cfg: TimelineConfig,
                 limits: RequestLimits | None = None) -> FaceWindows:
    """A video file's windows (module docstring); InputError as `predict` gives for a file it cannot use."""
    probed(path, limits)
    track, _ = tracked(path, spec, limits)
    with as_input_errors(limits):
        cap = open_video(path)
        fps = capture_fps(cap, cfg)
        cap.release()
    plan = WindowPlan.of(cfg, fps, spec.frames)
    spans = plan.spans(track.frames)
    needed = sorted({int(t) for span in spans for t in plan.sampled(*span)})
    boxes = {t: track.boxes[t] for t in needed}
    crops = ((t, as_stored(crop, spec.face_crop.jpeg_quality))
             for t, crop in crops_along(path, track, spec.face_crop, needed))
    return FaceWindows(str(path), fps, track.frames, track.frame_size,
                       _checked(_in_order(plan, iter(spans), crops, boxes, _track_rate(track), spec.face_crop),
                                limits))


def _checked(windows: Iterator[WindowCrops], limits: RequestLimits | None) -> Iterator[WindowCrops]:
    with as_input_errors(limits):
        yield from windows


def _track_rate(track: FaceTrack) -> Callable[[int, int], float | None]:
    found = ~np.isnan(track.selected[:, 0])

    def rate(start: int, end: int) -> float | None:
        inside = (track.detected >= start) & (track.detected < end)
        return float(found[inside].mean()) if inside.any() else None
    return rate


class LiveTrack:
    """The face track of a camera or stream as it plays: a box for every frame from the first found face on.

    The detector runs on every stride-th frame (detection_stride), on a copy shrunk as for files; each run keeps
    the candidate that continues the track (select_boxes' rule on the last box and this run's candidates), or
    the largest one while there is no track. A frame's box is the median of the boxes found within the last
    smooth_window frames, held when none is that recent; a track lost for longer starts again.
    """

    def __init__(self, cfg: FaceCropConfig, fps: float, frame_size: tuple[int, int]) -> None:
        self.cfg, self.detect = cfg, detector_for(cfg)
        self.stride = detection_stride(fps, cfg.detect_fps)
        self.scale = detection_scale(*frame_size, cfg.detect_max_side)
        self.last: np.ndarray | None = None                 # the last kept box (x, y, w, h)
        self.found: deque[tuple[int, np.ndarray]] = deque()  # (frame, (cx, cy, side)) of recent kept boxes
        self.held: np.ndarray | None = None
        self.runs: deque[tuple[int, bool]] = deque()         # (frame, face found) of each detector run

    def update(self, t: int, frame_bgr: np.ndarray) -> np.ndarray | None:
        """Frame t's box (cx, cy, side), None before the face was first found."""
        if t % self.stride == 0:
            box = self._continued(detect_scaled(frame_bgr, self.detect, self.scale, self.cfg.min_face))
            self.runs.append((t, box is not None))
            if box is not None:
                self.last = box
                self.found.append((t, np.array([box[0] + box[2] / 2, box[1] + box[3] / 2, max(box[2], box[3])])))
        while self.found and t - self.found[0][0] > self.cfg.smooth_window:
            self.found.popleft()
        if self.found:
            self.held = np.median([b for _, b in self.found], axis=0)
        else:
            self.last = None                                  # lost for a whole median span: acquire anew
        return self.held

    def _continued(self, candidates: np.ndarray) -> np.ndarray | None:
        if not len(candidates):
            return None
        if self.last is None:
            return candidates[int(np.argmax(candidates[:, 2] * candidates[:, 3]))]
        box = select_boxes([self.last[None], candidates])[1]
        return None if np.isnan(box[0]) else box

    def rate(self, start: int, end: int) -> float | None:
        while self.runs and self.runs[0][0] < start:
            self.runs.popleft()
        inside = [found for t, found in self.runs if t < end]
        return sum(inside) / len(inside) if inside else None


def open_stream(source: str) -> cv2.VideoCapture:
    """A camera (its index) or a stream URL that OpenCV opens; InputError in one line otherwise."""
    if source.isdigit():
        cap, what = cv2.VideoCapture(int(source)), f"camera {source}"
    else:
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                        cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS])
        what = f"stream {source}"
    if not cap.isOpened():
        cap.release()
        raise InputError(f"cannot open {what}: OpenCV/FFmpeg could not open it (no such device, or the URL is "
                         f"unreachable, refused or not a video within {OPEN_TIMEOUT_MS / 1000:g} s)", "bad_source")
    return cap


def stream_windows(source: str, spec: PreprocessSpec, cfg: TimelineConfig,
                   max_seconds: float | None = None) -> FaceWindows:
    """A camera's or stream's windows as they complete, until it ends or after `max_seconds` of its video."""
    cap = open_stream(source)
    ok, first = cap.read()
    if not ok:
        cap.release()
        raise InputError(f"cannot read {source}: it opened but gave no frame", "bad_source")
    fps = capture_fps(cap, cfg)
    plan = WindowPlan.of(cfg, fps, spec.frames)
    track = LiveTrack(spec.face_crop, fps, first.shape[:2])
    boxes: dict[int, np.ndarray] = {}
    last = None if max_seconds is None else round(max_seconds * fps)

    def frames() -> Iterator[tuple[int, np.ndarray | None]]:
        t, frame = 0, first
        try:
            while frame is not None and (last is None or t < last):
                box = track.update(t, frame)
                if plan.is_sampled(t):
                    if box is not None:
                        boxes[t] = box
                    yield t, None if box is None else as_stored(cut_face(frame, box, spec.face_crop),
                                                                spec.face_crop.jpeg_quality)
                ok, frame = cap.read()
                frame, t = frame if ok else None, t + 1
        finally:
            cap.release()

    spans = (plan.live_span(k) for k in range(10**12))
    return FaceWindows(source, fps, None, first.shape[:2], _in_order(plan, spans, frames(), boxes, track.rate,
                                                                     spec.face_crop))


def open_source(source: str, spec: PreprocessSpec, cfg: TimelineConfig, limits: RequestLimits | None = None,
                max_seconds: float | None = None) -> FaceWindows:
    """A camera index or a URL (with ://) plays live; anything else is a video file."""
    if source.isdigit() or "://" in source:
        return stream_windows(source, spec, cfg, max_seconds)
    return file_windows(Path(source), spec, cfg, limits)


@dataclass(frozen=True)
class TimelinePoint:
    """One window's prediction: the timeline's row."""

    start: float                               # seconds
    end: float
    label: str | None                          # None: too few frames with a face
    probabilities: dict[str, float] | None
    face_box: list[int] | None                 # [x, y, width, height] at the window's middle sampled frame
    detection_rate: float | None

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "label": self.label, "probabilities": self.probabilities,
                "face_box": self.face_box, "detection_rate": self.detection_rate}


class FrameFeatures:
    """Image features of sampled frames keyed by frame index: each frame encoded once while windows need it
    (`cache` False: every window encodes all its frames, the baseline the cache is measured against)."""

    def __init__(self, encode: Callable[[np.ndarray], np.ndarray], image: ImageSpec, cache: bool = True) -> None:
        self.encode, self.image, self.cache = encode, image, cache
        self.features: dict[int, np.ndarray] = {}
        self.encoded = 0                                    # frames put through the image encoder

    def of(self, window: WindowCrops) -> np.ndarray:
        """(frames, D) features of the window's sampled frames, in order."""
        order = [int(t) for t in window.sampled]
        new = sorted(set(order) - (self.features.keys() if self.cache else set()))
        if new:
            images = self.image.graph_input(np.stack([window.crops[t] for t in new]))
            self.features.update(zip(new, self.encode(images)))
            self.encoded += len(new)
        out = np.stack([self.features[t] for t in order])
        for old in [t for t in self.features if t < window.start or not self.cache]:
            del self.features[old]
        return out


def predict_windows(faces: FaceWindows, runner, classes: list[str], image: ImageSpec,
                    cache: bool = True) -> Iterator[TimelinePoint]:
    """The timeline of opened windows through a SplitRunner (encode per frame, head per window)."""
    features = FrameFeatures(runner.encode, image, cache)
    for window in faces.windows:
        start, end = round(window.start / faces.fps, 3), round(window.end / faces.fps, 3)
        rate = None if window.detection_rate is None else round(window.detection_rate, 4)
        if window.crops is None:
            yield TimelinePoint(start, end, None, None, window.box, rate)
            continue
        _, probs, _ = runner.head(features.of(window)[None])
        yield TimelinePoint(start, end, classes[int(probs[0].argmax())],
                            {c: round(float(p), 6) for c, p in zip(classes, probs[0])}, window.box, rate)
