"""Expression timelines: one prediction per stride over a sliding window of a video file, a camera or a stream.

Each window (params `timeline`) samples its `frames` (preprocess.json) as evaluation samples a clip: the
centres of equal segments of the window's frames. Its crops are `predict`'s: files, cameras and streams
are decoded once and tracked as they play (data.face_track.FaceTracker, as predict and training track),
each sampled frame held until the track has decided its box (at most face_crop.track_lookahead_seconds
later) and cut then; the track starts a new segment where the face jumps (a cut, a new shot), so every
shot's windows find their face. A file no longer than one window is one window over all its frames, so its
timeline is predict's answer (when the face shows within the look-ahead of its start). A folder of frame
images (a DFEW-style clip) is a file at timeline.default_fps whose frames are the face, as face_crop
stores such clips. A file in which no face is found at all is refused (no_face), as predict refuses it.

Frames shared by consecutive windows are encoded once: FrameFeatures keeps each sampled frame's image
features by frame index (SplitRunner.encode) and runs the head on each window's cached features. With the
stride a quarter of the window, a window encodes 4 new frames, not 16.

A window where the detector found the face on fewer than face_crop.min_detection_rate of the frames it ran
on gets no label (`label` null), as a clip would be refused.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from typing import TypeVar

import cv2
import numpy as np

from a3lign_dfer.config.data import FaceCropConfig
from a3lign_dfer.config.serving import TimelineConfig
from a3lign_dfer.data.face_track import FaceTracker, budgeted, decoded, square_crop, tracked_crops
from a3lign_dfer.data.frame_folders import frame_files, read_frame
from a3lign_dfer.data.manifest import ClipError
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.data.video_io import DecodedFrame
from a3lign_dfer.inference.video_input import (InputError, PreprocessSpec, RequestLimits, as_input_errors,
                                               as_stored, open_checked)
from a3lign_dfer.model.image_spec import ImageSpec

T = TypeVar("T")
OPEN_TIMEOUT_MS = 10_000           # a stream URL that answers nothing in this long is reported as unopenable
# Cameras and stream URLs open through OpenCV: a source that fails gets one line of ours (InputError), not
# FFmpeg's "Connection refused" and OpenCV's WARN lines before it. FFmpeg reads its level when the first
# capture opens; set OPENCV_FFMPEG_LOGLEVEL (e.g. 32) yourself to see its messages again.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


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


def plan_fps(fps: float, cfg: TimelineConfig) -> float:
    """The frame rate windows are counted in: the source's, else timeline.default_fps."""
    return fps if 0 < fps < 1000 else cfg.default_fps


def _sampled(plan: WindowPlan, spans: list[tuple[int, int]]) -> set[int]:
    return {int(t) for span in spans for t in plan.sampled(*span)}


def file_windows(path: Path, spec: PreprocessSpec, cfg: TimelineConfig,
                 limits: RequestLimits | None = None) -> FaceWindows:
    """A video file's (or frame folder's) windows in one decoding pass (module docstring); InputError as
    `predict` gives for a file it cannot use. Windows are planned on the frame count the container declares."""
    if path.is_dir():
        return folder_windows(path, spec, cfg, limits)
    video = open_checked(path, limits)
    fps = plan_fps(video.fps, cfg)
    plan = WindowPlan.of(cfg, fps, spec.frames)
    spans = plan.spans(max(video.declared, 1))
    needed = _sampled(plan, spans)
    tracker = FaceTracker(spec.face_crop, video.fps, video.frame_size, last=video.declared - 1)
    boxes: dict[int, np.ndarray] = {}

    def frames() -> Iterator[tuple[int, np.ndarray | None]]:
        with video:
            decoding = budgeted(decoded(video, tracker, needed.__contains__),
                                None if limits is None else limits.max_cpu_seconds, path)
            yield from _stored(tracked_crops(decoding, tracker, needed.__contains__, spec.face_crop), boxes,
                               spec.face_crop)
        if limits is not None:                              # a container that under-declares its length
            limits.check(path, tracker.seen, *video.frame_size)
        if tracker.seen < spec.min_frames:
            raise InputError(f"{path}: {tracker.seen} decodable frame(s), fewer than the {spec.min_frames} needed",
                             "too_few_frames")

    windows = _in_order(plan, iter(spans), frames(), boxes, tracker.rate, spec.face_crop)
    return FaceWindows(str(path), fps, video.declared, video.frame_size,
                       _checked(_face_found_first(windows, tracker, path), limits))


def _stored(crops, boxes: dict, cfg: FaceCropConfig) -> Iterator[tuple[int, np.ndarray | None]]:
    """(index, crop after the JPEG round trip) of tracked crops, each frame's box recorded in `boxes`."""
    for t, box, crop in crops:
        if box is not None:
            boxes[t] = box
        yield t, None if crop is None else as_stored(crop, cfg.jpeg_quality)


def _face_found_first(windows: Iterator[WindowCrops], tracker: FaceTracker, path: Path) -> Iterator[WindowCrops]:
    """The windows, those before the first face held back (they hold no crops) so that a file with no face
    at all is refused before any window is given."""
    held = []
    for window in windows:
        held.append(window)
        if tracker.found:
            yield from held
            held = []
    if not tracker.found:
        raise InputError(f"no face found: {path}: face found in 0/{len(tracker.run_frames)} detected frames",
                         "no_face")
    yield from held


def folder_windows(folder: Path, spec: PreprocessSpec, cfg: TimelineConfig,
                   limits: RequestLimits | None = None) -> FaceWindows:
    """A frame folder's windows at timeline.default_fps: each sampled frame padded to a square and resized, as
    face_crop stores such clips; the face box is the whole frame and every window's detection rate 1."""
    try:
        files = frame_files(folder)
        if len(files) < spec.min_frames:
            raise InputError(f"{folder}: {len(files)} frame image(s), fewer than the {spec.min_frames} needed",
                             "too_few_frames")
        height, width = read_frame(files[0]).shape[:2]
    except ClipError as err:
        raise InputError(str(err), err.problem) from err
    if limits is not None:
        limits.check(folder, len(files), height, width)
    plan = WindowPlan.of(cfg, cfg.default_fps, spec.frames)
    spans = plan.spans(len(files))
    needed = sorted(_sampled(plan, spans))
    boxes = dict.fromkeys(needed, np.array([width / 2, height / 2, max(height, width)]))

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        try:
            for t in needed:
                yield t, as_stored(square_crop(read_frame(files[t]), spec.face_crop.size), spec.face_crop.jpeg_quality)
        except ClipError as err:
            raise InputError(str(err), err.problem) from err

    windows = _in_order(plan, iter(spans), frames(), boxes, lambda start, end: 1.0, spec.face_crop)
    return FaceWindows(str(folder), cfg.default_fps, len(files), (height, width), windows)


def _checked(windows: Iterator[WindowCrops], limits: RequestLimits | None) -> Iterator[WindowCrops]:
    with as_input_errors(limits):
        yield from windows


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
    """A camera's or stream's windows as they complete (the track's look-ahead later), until it ends or after
    `max_seconds` of its video."""
    cap = open_stream(source)
    ok, first = cap.read()
    if not ok:
        cap.release()
        raise InputError(f"cannot read {source}: it opened but gave no frame", "bad_source")
    fps = plan_fps(cap.get(cv2.CAP_PROP_FPS), cfg)
    plan = WindowPlan.of(cfg, fps, spec.frames)
    tracker = FaceTracker(spec.face_crop, fps, first.shape[:2])
    small = (max(1, round(first.shape[1] * tracker.scale)), max(1, round(first.shape[0] * tracker.scale)))
    boxes: dict[int, np.ndarray] = {}
    last = None if max_seconds is None else round(max_seconds * fps)

    def played() -> Iterator[DecodedFrame]:
        """OpenCV's BGR frames as the decoder gives them: a small copy where the tracker detects, RGB where
        a window samples."""
        t, frame = 0, first
        try:
            while frame is not None and (last is None or t < last):
                yield DecodedFrame(t, cv2.resize(frame, small, interpolation=cv2.INTER_LINEAR)
                                   if tracker.detects(t) else None,
                                   cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if plan.is_sampled(t) else None)
                ok, frame = cap.read()
                frame, t = frame if ok else None, t + 1
        finally:
            cap.release()

    frames = _stored(tracked_crops(played(), tracker, plan.is_sampled, spec.face_crop), boxes, spec.face_crop)
    spans = (plan.live_span(k) for k in range(10**12))
    return FaceWindows(source, fps, None, first.shape[:2], _in_order(plan, spans, frames, boxes, tracker.rate,
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


READ_AHEAD = 2                     # windows prepared while the model runs on the current one
STOP_WAIT_SECONDS = 10             # a stopped timeline waits this long for its source to give one more window


def read_ahead(items: Iterable[T], depth: int) -> Iterator[T]:
    """The items, produced by a thread up to `depth` ahead of the caller: decoding, tracking and cropping the
    next windows overlaps the model on this one (FFmpeg, OpenCV and ONNX Runtime release the GIL). An
    error of the producer is raised here; a caller that stops early stops the producer after its next item."""
    queue: Queue = Queue(depth)
    stopped, end = threading.Event(), object()

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                queue.put((item, None))
                if stopped.is_set():
                    return
            queue.put((end, None))
        except BaseException as err:  # noqa: BLE001 - handed to the caller, who raises it
            queue.put((end, err))
        finally:
            getattr(source, "close", lambda: None)()           # a generator's cleanup: the camera released

    producer = threading.Thread(target=produce, name="timeline-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            item, err = queue.get()
            if item is end:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stopped.set()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while producer.is_alive() and time.monotonic() < deadline:    # unblock a producer waiting to put
            with contextlib.suppress(Empty):
                queue.get(timeout=0.1)


def predict_windows(faces: FaceWindows, runner, classes: list[str], image: ImageSpec,
                    cache: bool = True) -> Iterator[TimelinePoint]:
    """The timeline of opened windows through a SplitRunner (encode per frame, head per window)."""
    features = FrameFeatures(runner.encode, image, cache)
    for window in read_ahead(faces.windows, READ_AHEAD):
        start, end = round(window.start / faces.fps, 3), round(window.end / faces.fps, 3)
        rate = None if window.detection_rate is None else round(window.detection_rate, 4)
        if window.crops is None:
            yield TimelinePoint(start, end, None, None, window.box, rate)
            continue
        _, probs, _ = runner.head(features.of(window)[None])
        yield TimelinePoint(start, end, classes[int(probs[0].argmax())],
                            {c: round(float(p), 6) for c, p in zip(classes, probs[0])}, window.box, rate)
