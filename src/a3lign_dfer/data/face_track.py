"""The face track of one video, streamed: one box per frame at a bounded cost per pixel and frame.

Phone videos are 720p/1080p and seconds to minutes long, so a video is decoded once, one frame at a time,
and never held whole (data.video_io): the detector sees a small copy (longer side at most `detect_max_side`,
scaled by FFmpeg while it converts) of at most `detect_fps` frames per second of video, boxes mapped back,
and only the frames a caller wants are converted at full resolution, where the crops are cut.

Per-frame detections miss frames, jitter and fire on clutter, so FaceTracker picks one box per detector run
by continuity: a segment starts at the candidate that recurs in the most runs of the next
`track_lookahead_seconds` (a face persists, clutter flickers) and follows the nearest candidate; where
`reacquire_runs` runs in a row have faces but none continues the track (a cut, a jump), the segment ends and
a new one starts the same way after it. Centre and size are median-filtered within a segment and every
frame's box is interpolated from the runs around it. A frame's box is decided once the runs up to the
look-ahead past it are in, so files and live sources are tracked alike with a bounded delay, and a caller
holds at most that many frames. Training (`face_crop`), `predict`, `serve`, `timeline`, the drift monitor
and the export's reference profile all cut their crops through here.
"""
from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.config.data import FaceCropConfig
from a3lign_dfer.data.detectors import make_detector
from a3lign_dfer.data.manifest import ClipError
from a3lign_dfer.data.video_io import DecodedFrame, VideoReader

MAX_JUMP = 1.0  # a candidate further than this (centre shift / size + |log size ratio|) is clutter


def _centre_size(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return boxes[..., :2] + boxes[..., 2:] / 2, np.sqrt(boxes[..., 2] * boxes[..., 3])


def _jump(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of boxes b from box(es) a: centre shift in units of a's size + |log size ratio|."""
    (ca, sa), (cb, sb) = _centre_size(a), _centre_size(b)
    return np.linalg.norm(cb - ca, axis=-1) / sa + np.abs(np.log(sb / sa))


def _nearest(box: np.ndarray, candidates: np.ndarray) -> int | None:
    """The candidate that continues `box` (the nearest within MAX_JUMP), None if none does."""
    if not len(candidates):
        return None
    cost = _jump(box, candidates)
    k = int(np.argmin(cost))
    return k if cost[k] <= MAX_JUMP else None


def best_supported(detections: list[np.ndarray]) -> tuple[int, np.ndarray] | None:
    """(run, box) of the candidate that recurs (within MAX_JUMP) in the most runs, the larger on ties; None
    without candidates."""
    frame_of = np.concatenate([np.full(len(d), t) for t, d in enumerate(detections)]).astype(int)
    if not len(frame_of):
        return None
    boxes = np.concatenate([d for d in detections if len(d)])
    near = _jump(boxes[:, None], boxes[None]) <= MAX_JUMP
    support = (near @ np.eye(len(detections), dtype=bool)[frame_of]).sum(1)  # runs it recurs in
    best = int(np.lexsort((boxes[:, 2] * boxes[:, 3], support))[-1])
    return int(frame_of[best]), boxes[best]


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


def detect_small(small_bgr: np.ndarray, detect, frame_size: tuple[int, int], min_face: int) -> np.ndarray:
    """Candidate boxes (x, y, w, h) in the pixels of a frame of `frame_size` (height, width), found on its
    small copy; faces smaller than `min_face` frame pixels (longer box side) dropped."""
    fy, fx = frame_size[0] / small_bgr.shape[0], frame_size[1] / small_bgr.shape[1]
    boxes = detect(small_bgr) * np.array([fx, fy, fx, fy], np.float32)
    return boxes[boxes[:, 2:].max(1) >= min_face]


class CostError(ValueError):
    """Tracking a video took more CPU time than allowed (a request budget): stopped early."""


ASSUMED_FPS = 30.0   # for a source that states no frame rate: what the look-ahead in seconds is counted in


class FaceTracker:
    """The face box of each frame of a video as it plays (module docstring): feed every frame in order with
    `add` (its small copy where `detects(t)`), then `finish`; each returns the frames whose boxes are now
    decided, in order, as (index, (cx, cy, side) or None). None: no face within the look-ahead of a frame
    before the first one found."""

    def __init__(self, cfg: FaceCropConfig, fps: float, frame_size: tuple[int, int], last: int | None = None) -> None:
        self.cfg, self.frame_size, self.last = cfg, frame_size, last
        self.detect = detector_for(cfg)
        self.stride = detection_stride(fps, cfg.detect_fps)
        self.scale = detection_scale(*frame_size, cfg.detect_max_side)
        self.horizon = max(1, round(cfg.track_lookahead_seconds * (fps if fps > 0 else ASSUMED_FPS) / self.stride))
        self.lookahead = self.horizon * self.stride          # frames a box may wait for
        self.half = max(cfg.smooth_window, 1) // 2
        self.run_frames: list[int] = []                      # per detector run: its frame,
        self.candidates: list[np.ndarray] = []               # the boxes found,
        self.selected: list[np.ndarray] = []                 # the one kept (x, y, w, h), NaN: none,
        self.segment: list[int] = []                         # and the track segment it belongs to
        self.open_from = 0               # first run no segment has claimed
        self.prev: np.ndarray | None = None                  # the open segment's last box, None: none open
        self.followed = self.continued = -1                  # last run looked at / continued by the open segment
        self.first_miss: int | None = None                   # first run since then with faces but none continuing
        self.segments = 0
        self.found: list[int] = []                           # decided runs with a box, in order
        self.scanned = 0                                     # runs looked at for `found`
        self.found_frames: list[int] = []
        self.smoothed: dict[int, np.ndarray] = {}            # run -> median (cx, cy, side)
        self.seen = self.emitted = 0                         # frames fed / frames whose box was given
        self.boxes: list[np.ndarray | None] = []             # the boxes given, by frame

    def detects(self, t: int) -> bool:
        """Whether frame t goes to the detector: every stride-th frame and the last the container declares."""
        return t % self.stride == 0 or t == self.last

    def add(self, t: int, small_bgr: np.ndarray | None) -> list[tuple[int, np.ndarray | None]]:
        if small_bgr is not None:
            self.run_frames.append(t)
            self.candidates.append(detect_small(small_bgr, self.detect, self.frame_size, self.cfg.min_face))
            self.selected.append(np.full(4, np.nan, np.float32))
            self.segment.append(0)
            self._advance(final=False)
        self.seen = t + 1
        return self._emit(final=False)

    def finish(self) -> list[tuple[int, np.ndarray | None]]:
        self._advance(final=True)
        return self._emit(final=True)

    def _advance(self, final: bool) -> None:
        runs = len(self.run_frames)
        while True:
            if self.prev is None:
                waiting = runs - self.open_from
                if waiting == 0 or (waiting < self.horizon and not final):
                    return
                self._acquire(min(runs, self.open_from + self.horizon))
            elif self.followed + 1 < runs:
                self._follow(self.followed + 1)
            else:
                return

    def _acquire(self, end: int) -> None:
        """Open a segment at the best-supported candidate of runs [open_from, end), followed back to open_from."""
        best = best_supported(self.candidates[self.open_from:end])
        if best is None:
            self.open_from = end
            return
        run, box = self.open_from + best[0], best[1]
        self.segments += 1
        self._keep(run, box)
        back = box
        for r in range(run - 1, self.open_from - 1, -1):
            k = _nearest(back, self.candidates[r])
            if k is not None:
                back = self.candidates[r][k]
                self._keep(r, back)
        self.prev, self.followed, self.continued, self.first_miss = box, run, run, None

    def _follow(self, r: int) -> None:
        self.followed = r
        k = _nearest(self.prev, self.candidates[r])
        if k is not None:
            self.prev, self.continued, self.first_miss = self.candidates[r][k], r, None
            self._keep(r, self.prev)
        elif len(self.candidates[r]):
            self.first_miss = r if self.first_miss is None else self.first_miss
            misses = sum(len(self.candidates[q]) > 0 for q in range(self.first_miss, r + 1))
            if misses >= self.cfg.reacquire_runs:           # a cut or a jump: claim these runs anew
                self.open_from, self.prev = self.continued + 1, None

    def _keep(self, r: int, box: np.ndarray) -> None:
        self.selected[r], self.segment[r] = box, self.segments

    def _decided_runs(self) -> int:
        """Runs before this one are decided (a run with faces after the open segment's last box may still
        start the next segment)."""
        if self.prev is None:
            return self.open_from
        return self.first_miss if self.first_miss is not None else self.followed + 1

    def _emit(self, final: bool) -> list[tuple[int, np.ndarray | None]]:
        decided = len(self.run_frames) if final else self._decided_runs()
        for r in range(self.scanned, decided):
            if not np.isnan(self.selected[r][0]):
                self.found.append(r)
                self.found_frames.append(self.run_frames[r])
        self.scanned = max(self.scanned, decided)
        ready = self.seen if final else min(
            self.seen, (self.run_frames[decided] if decided < len(self.run_frames) else self.seen)
            - self.lookahead - self.half)
        out = [(t, self._box(t)) for t in range(self.emitted, max(ready, self.emitted))]
        self.emitted = max(ready, self.emitted)
        self.boxes += [box for _, box in out]
        return out

    def _box(self, t: int) -> np.ndarray | None:
        """Frame t's box: interpolated between the smoothed runs around it in one segment, else held from the
        nearer one (the earlier on ties); a run after t counts only within the look-ahead."""
        i = bisect.bisect_right(self.found_frames, t)
        prev = self.found[i - 1] if i else None
        nxt = self.found[i] if i < len(self.found) and self.found_frames[i] <= t + self.lookahead else None
        if prev is None and nxt is None:
            return None
        if prev is None or nxt is None or self.segment[prev] != self.segment[nxt]:
            if nxt is None or (prev is not None and t - self.run_frames[prev] <= self.run_frames[nxt] - t):
                return self._smooth(prev)
            return self._smooth(nxt)
        a, b = self.run_frames[prev], self.run_frames[nxt]
        w = 0.0 if b == a else (t - a) / (b - a)
        return (1 - w) * self._smooth(prev) + w * self._smooth(nxt)

    def _smooth(self, r: int) -> np.ndarray:
        """Run r's box as (cx, cy, side): the median of its segment's boxes found within half the median's span."""
        if r not in self.smoothed:
            f = self.run_frames[r]
            lo = bisect.bisect_left(self.found_frames, f - self.half)
            hi = bisect.bisect_right(self.found_frames, f + self.half)
            near = np.array([self.selected[q] for q in self.found[lo:hi] if self.segment[q] == self.segment[r]])
            centre, _ = _centre_size(near)
            self.smoothed[r] = np.median(np.column_stack([centre, near[:, 2:].max(1)]), 0)
        return self.smoothed[r]

    def rate(self, start: int, end: int) -> float | None:
        """Decided runs in frames [start, end) with a face / decided runs there (None: no run there)."""
        decided = self._decided_runs()
        lo = bisect.bisect_left(self.run_frames, start, 0, decided)
        hi = bisect.bisect_left(self.run_frames, end, 0, decided)
        if lo == hi:
            return None
        return sum(not np.isnan(self.selected[r][0]) for r in range(lo, hi)) / (hi - lo)

    def track(self) -> "FaceTrack":
        """The FaceTrack of the frames given so far (after `finish`: the whole video)."""
        selected = np.array(self.selected, np.float32).reshape(-1, 4)
        found = int((~np.isnan(selected[:, 0])).sum())
        boxes = np.array([np.full(3, np.nan) if b is None else b for b in self.boxes], np.float64).reshape(-1, 3)
        return FaceTrack(boxes if found else None, found, np.array(self.run_frames, int), selected, len(boxes),
                         self.frame_size, self.stride)


@dataclass(frozen=True)
class FaceTrack:
    """Where the face is in every decoded frame of one video."""

    boxes: np.ndarray | None       # (frames, 3) smoothed, gap-filled (cx, cy, side) in pixels, NaN before the
                                   # face is first found (beyond the look-ahead); None: no face
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


def track_face(path: str | Path | VideoReader, cfg: FaceCropConfig, keep: Iterable[int] = (),
               max_cpu_seconds: float | None = None) -> tuple[FaceTrack, dict[int, np.ndarray]]:
    """Decode a video once: its face track and the frames of `keep` (RGB, full resolution; only those are
    held). The detector runs on the same frames whatever `keep` is (FaceTracker.detects), so training
    (keeping nothing) and serving (keeping the sampled frames) track alike. VideoDecodeError for an
    unreadable video; CostError once the calling thread has spent `max_cpu_seconds` of CPU on it."""
    keep, kept = set(keep), {}
    with _opened(path) as video:
        tracker = tracker_for(video, cfg)
        for frame in budgeted(decoded(video, tracker, keep.__contains__), max_cpu_seconds, video.path):
            if frame.full is not None:
                kept[frame.index] = frame.full
            tracker.add(frame.index, frame.small)
        tracker.finish()
    return tracker.track(), kept


def _opened(path: str | Path | VideoReader) -> VideoReader:
    return path if isinstance(path, VideoReader) else VideoReader(path)


def tracker_for(video: VideoReader, cfg: FaceCropConfig) -> FaceTracker:
    return FaceTracker(cfg, video.fps, video.frame_size, last=video.declared - 1)


def decoded(video: VideoReader, tracker: FaceTracker, full_at) -> Iterator[DecodedFrame]:
    """The video's frames with the small copy where the tracker detects and the full frame where `full_at`."""
    return video.frames(tracker.detects, full_at, video.small_size(tracker.scale))


def budgeted(frames: Iterable[DecodedFrame], max_cpu_seconds: float | None, path) -> Iterator[DecodedFrame]:
    """The frames, until the calling thread has spent `max_cpu_seconds` of CPU (CostError)."""
    start = time.thread_time()
    for frame in frames:
        yield frame
        if max_cpu_seconds is not None and time.thread_time() - start > max_cpu_seconds:
            raise CostError(f"{path}: stopped after {max_cpu_seconds:g} CPU-seconds at frame {frame.index + 1}")


def tracked_crops(frames: Iterable[DecodedFrame], tracker: FaceTracker, wanted,
                  cfg: FaceCropConfig) -> Iterator[tuple[int, np.ndarray | None, np.ndarray | None]]:
    """(index, box, RGB crop) of each `wanted` frame in order, as soon as its box is decided (box and crop None
    where the frame has none); only the wanted frames not yet decided are held."""
    held: dict[int, np.ndarray] = {}

    def ready(decided):
        for t, box in decided:
            if t in held:
                frame = held.pop(t)
                yield t, box, None if box is None else cut_face(frame, box, cfg)

    for frame in frames:
        if frame.full is not None and wanted(frame.index):
            held[frame.index] = frame.full
        yield from ready(tracker.add(frame.index, frame.small))
    yield from ready(tracker.finish())


def video_crops(video: VideoReader, cfg: FaceCropConfig) -> tuple[FaceTracker, Iterator[tuple[int, np.ndarray]]]:
    """The tracker and (index, RGB crop) of every frame with a box as its box is decided, in one decoding
    pass (the face_crop stage's crops); the tracker's `track()` is the video's once the crops are consumed."""
    tracker = tracker_for(video, cfg)
    every = lambda t: True  # noqa: E731
    crops = tracked_crops(decoded(video, tracker, every), tracker, every, cfg)
    return tracker, ((t, crop) for t, _, crop in crops if crop is not None)


def cut_face(frame_rgb: np.ndarray, box: np.ndarray, cfg: FaceCropConfig) -> np.ndarray:
    """The face crop of one frame at its track box (cx, cy, side): what every crop of a video is."""
    cx, cy, side = box
    return crop_square(frame_rgb, cx, cy, side, cfg.margin, cfg.size)
