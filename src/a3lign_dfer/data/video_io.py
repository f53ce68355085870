"""Video files in and out.

Writing goes through PyAV/libx264 with one encoder thread so the same frames always
give the same bytes (DVC hashes them); reading goes through OpenCV, the fastest
decoder available here.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from a3lign_dfer.data.manifest import ClipError

# A bad file gets one clear line of ours (VideoDecodeError), not FFmpeg's "moov atom not found" and
# OpenCV's WARN lines before it; FFmpeg reads its level when the first capture opens. Set
# OPENCV_FFMPEG_LOGLEVEL (e.g. 32) yourself to see FFmpeg's messages again.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class VideoDecodeError(ClipError):
    """A video that cannot be read; names the file and which problem it is (manifest.PROBLEMS)."""

    def __init__(self, path: str | Path, problem: str, reason: str) -> None:
        super().__init__(path, problem, reason, prefix="cannot decode video ")


# First bytes of the containers FFmpeg reads for video: a file that starts like one of these
# but cannot be opened or decoded to its end is truncated (or corrupt), anything else is not a video.
_SIGNATURES = {"MP4/MOV": lambda b: b[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"),
               "AVI": lambda b: b[:4] == b"RIFF" and b[8:12] == b"AVI ",
               "Matroska/WebM": lambda b: b[:4] == b"\x1a\x45\xdf\xa3",
               "FLV": lambda b: b[:3] == b"FLV",
               "ASF/WMV": lambda b: b[:4] == b"\x30\x26\xb2\x75",
               "MPEG-PS": lambda b: b[:4] == b"\x00\x00\x01\xba",
               "MPEG-TS": lambda b: len(b) > 188 and b[0] == 0x47 and b[188] == 0x47}


def container_of(path: Path) -> str | None:
    """The video container the file's first bytes announce, None if none."""
    with open(path, "rb") as f:
        head = f.read(192)
    return next((name for name, match in _SIGNATURES.items() if match(head)), None)


def open_video(path: Path) -> cv2.VideoCapture:
    """An opened capture, or VideoDecodeError saying whether the file is missing, empty, not a video or truncated."""
    if not path.is_file():
        raise VideoDecodeError(path, "missing_video", "file not found")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "empty_video", "empty file (0 bytes)")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    if cap.isOpened():
        return cap
    cap.release()
    container = container_of(path)
    if container is None:
        raise VideoDecodeError(path, "not_a_video", "not a video: OpenCV/FFmpeg cannot open it and its first "
                                                    "bytes are no known video container")
    raise VideoDecodeError(path, "truncated_video", f"truncated or corrupt {container} file: it starts like one "
                                                    "but OpenCV/FFmpeg cannot open it")


@dataclass(frozen=True)
class VideoProbe:
    """What the container declares, read before any frame is decoded."""

    frames: int
    height: int
    width: int

    @property
    def pixel_frames(self) -> int:
        return self.frames * self.height * self.width


def probe_video(path: str | Path) -> VideoProbe:
    """Frame count and size the container declares (no decoding); VideoDecodeError if it cannot be opened."""
    cap = open_video(Path(path))
    try:
        return VideoProbe(declared_frames(cap), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                          int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)))
    finally:
        cap.release()


def write_video(frames_rgb: np.ndarray | Iterable[np.ndarray], path: str | Path, fps: int,
                crf: int = 23, preset: str = "superfast", rotation: int = 0) -> int:
    """Encode RGB uint8 frames (an [N, H, W, 3] array, or any iterable of [H, W, 3] frames, encoded as they
    come so a long video is never held whole) as H.264 (yuv420p) mp4; return frames written.

    `rotation` (degrees counter-clockwise) is stored as the display rotation, as phones do.
    """
    frames = iter(frames_rgb)
    first = next(frames, None)
    first = None if first is None else np.asarray(first)
    if first is None or first.ndim != 3 or first.shape[-1] != 3 or first.dtype != np.uint8:
        shape = "no frame" if first is None else f"{first.dtype} {first.shape}"
        raise ValueError(f"expected uint8 frames [N, H, W, 3], got {shape}")
    height, width, _ = first.shape
    if height % 2 or width % 2:
        raise ValueError(f"need >= 1 frame of even width and height for yuv420p, got {first.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1  # multi-threaded x264 is not bit-exact
        stream.options = {"crf": str(crf), "preset": preset}
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in itertools.chain([first], frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            n += 1
        container.mux(stream.encode())
    return n


def declared_frames(cap: cv2.VideoCapture) -> int:
    return max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)


def decoded_frames(cap: cv2.VideoCapture, path: Path,
                   wanted: Callable[[int], bool]) -> Iterator[tuple[int, np.ndarray | None]]:
    """(index, BGR frame) for every frame in order, the frame only where `wanted(index)` (the others are
    decoded but never converted: at 1080p the conversion costs more than the decoding). Ends with
    VideoDecodeError when no frame decodes or clearly fewer than the container declares (a file cut short)."""
    declared, t = declared_frames(cap), 0
    while cap.grab():
        if wanted(t):
            ok, frame = cap.retrieve()
            if not ok:
                break
            yield t, frame
        else:
            yield t, None
        t += 1
    if t == 0:
        raise VideoDecodeError(path, "truncated_video", "no decodable frames (truncated or corrupt)")
    # Containers other than MP4 may estimate their frame count from the duration: allow 5%.
    if t < 0.95 * declared - 1:
        raise VideoDecodeError(path, "truncated_video", f"truncated: {t} of the {declared} frames "
                                                        "its container declares decode")


def read_video(path: str | Path) -> np.ndarray:
    """Decode every frame as RGB uint8 [N, H, W, 3] (for small clips: the whole video is held).

    Raises VideoDecodeError (missing, empty, not a video, truncated) as decoded_frames does.
    """
    path = Path(path)
    cap = open_video(path)
    try:
        return np.stack([cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                         for _, frame in decoded_frames(cap, path, lambda t: True)])
    finally:
        cap.release()
