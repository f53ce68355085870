"""Video files in and out, both through PyAV (FFmpeg).

Writing uses libx264 with one encoder thread so the same frames always give the same bytes (DVC hashes
them). Reading decodes a file once and converts only the frames a caller asks for: the detector's small
BGR copy (shrunk before it is converted) and the full-resolution RGB frames the crops are cut from
(FFmpeg's converter). At 1080p a full conversion costs about a third of the decoding, so frames that
neither detection nor cropping needs are decoded and dropped unconverted.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from a3lign_dfer.data.manifest import ClipError

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


@dataclass(frozen=True)
class VideoProbe:
    """What the container declares, read before any frame is decoded."""

    frames: int
    height: int
    width: int

    @property
    def pixel_frames(self) -> int:
        return self.frames * self.height * self.width


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame in the forms asked for (display rotation applied to both)."""

    index: int
    small: np.ndarray | None      # BGR uint8 at the reader's small size (what OpenCV's detectors take)
    full: np.ndarray | None       # RGB uint8 at full resolution


class VideoReader:
    """One video file, opened once: what its container declares, then its frames in one decoding pass.

    VideoDecodeError (missing, empty, not a video, truncated) names the file and the problem. One decoder
    thread: the pipeline runs one process per core, and CPU time per video is what is measured.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path = Path(path)
        if not path.is_file():
            raise VideoDecodeError(path, "missing_video", "file not found")
        if path.stat().st_size == 0:
            raise VideoDecodeError(path, "empty_video", "empty file (0 bytes)")
        try:
            self.container = av.open(str(path))
        except av.FFmpegError as err:
            raise _unopenable(path, err) from err
        if not self.container.streams.video:
            self.container.close()
            raise VideoDecodeError(path, "not_a_video", "not a video: FFmpeg opens it but finds no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.codec_context.thread_count = 1
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self.declared = self._declared_frames(rate)
        self.rotation = self._rotation()
        width, height = self.stream.codec_context.width, self.stream.codec_context.height
        self.frame_size = (width, height) if self.rotation % 180 else (height, width)   # (height, width) shown

    def _declared_frames(self, rate: Fraction | None) -> int:
        """The frame count the container states, else its duration times the frame rate (0: neither)."""
        if self.stream.frames:
            return int(self.stream.frames)
        if rate and self.stream.duration and self.stream.time_base:
            return int(round(self.stream.duration * self.stream.time_base * rate))
        if rate and self.container.duration:
            return int(round(self.container.duration / av.time_base * rate))
        return 0

    def _rotation(self) -> int:
        """The display rotation (degrees counter-clockwise) the first frame carries, as phones store it; that
        frame is kept for `frames` (decoding is not repeated)."""
        self._decoder = self._decode()
        self._first = next(self._decoder, None)
        return 0 if self._first is None else int(self._first.rotation) % 360

    def probe(self) -> VideoProbe:
        return VideoProbe(self.declared, *self.frame_size)

    def small_size(self, scale: float) -> tuple[int, int]:
        """(height, width) of a frame shrunk by `scale`, as the small frames come: even, as 4:2:0 chroma needs
        (the frame's own size where `scale` is 1)."""
        if scale == 1:
            return self.frame_size
        return tuple(max(2, 2 * round(side * scale / 2)) for side in self.frame_size)

    def frames(self, small_at: Callable[[int], bool] = lambda t: False, full_at: Callable[[int], bool] = lambda t: True,
               small_size: tuple[int, int] | None = None) -> Iterator[DecodedFrame]:
        """Every frame in order: `small` (BGR, (height, width) = small_size) where small_at(index), `full` (RGB)
        where full_at(index), neither converted otherwise. Ends with VideoDecodeError when no frame decodes or
        clearly fewer than the container declares (a file cut short)."""
        turns = self.rotation // 90
        coded = small_size if small_size is None or turns % 2 == 0 else small_size[::-1]
        t = 0
        for frame in self._decoded():
            small = full = None
            if small_at(t):
                small = np.rot90(_shrunk_bgr(frame, coded), turns)
            if full_at(t):
                full = np.rot90(frame.to_ndarray(format="rgb24"), turns)
            yield DecodedFrame(t, small, full)
            t += 1
        if t == 0:
            raise VideoDecodeError(self.path, "truncated_video", "no decodable frames (truncated or corrupt)")
        # Containers other than MP4 may estimate their frame count from the duration: allow 5%.
        if t < 0.95 * self.declared - 1:
            raise VideoDecodeError(self.path, "truncated_video", f"truncated: {t} of the {self.declared} frames "
                                                                 "its container declares decode")

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Frames until the end or the first undecodable packet (judged by the caller against the declared count)."""
        try:
            yield from self.container.decode(self.stream)
        except av.FFmpegError:
            return

    def _decoded(self) -> Iterator[av.VideoFrame]:
        if self._first is None:
            return
        if self._decoder is None:
            raise RuntimeError(f"{self.path}: frames() decodes the video once")
        decoder, self._decoder = self._decoder, None
        yield self._first
        yield from decoder

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _shrunk_bgr(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """The frame as BGR at `size` (height, width). A yuv420p frame is shrunk plane by plane where the decoder
    left it and converted at the small size: about a quarter of the CPU of FFmpeg's scaler converting and
    shrinking in one step (1080p to 480x270, measured side by side). Any other frame, or one kept at its size,
    goes through FFmpeg's converter, as the full-size frames do (the benchmark's clips are detected at their
    size, so their boxes and crops do not depend on this)."""
    height, width = size
    if (height, width) == (frame.height, frame.width) or frame.format.name != "yuv420p":
        return frame.reformat(width=width, height=height, format="bgr24", interpolation="BILINEAR").to_ndarray()
    planes = [cv2.resize(_plane(frame, i, frame.width >> bool(i)), (width >> bool(i), height >> bool(i)),
                         interpolation=cv2.INTER_LINEAR) for i in range(3)]
    return cv2.cvtColor(np.concatenate([p.ravel() for p in planes]).reshape(height * 3 // 2, width),
                        cv2.COLOR_YUV2BGR_I420)


def _plane(frame: av.VideoFrame, index: int, width: int) -> np.ndarray:
    """Plane `index` of a planar frame as a (height, width) view of the decoder's buffer (rows padded to
    line_size)."""
    plane = frame.planes[index]
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :width]


def _unopenable(path: Path, err: av.FFmpegError) -> VideoDecodeError:
    container = container_of(path)
    if container is None:
        return VideoDecodeError(path, "not_a_video", "not a video: FFmpeg cannot open it and its first "
                                                     "bytes are no known video container")
    return VideoDecodeError(path, "truncated_video", f"truncated or corrupt {container} file: it starts like one "
                                                     f"but FFmpeg cannot open it ({err.strerror})")


def probe_video(path: str | Path) -> VideoProbe:
    """Frame count and size the container declares (no decoding); VideoDecodeError if it cannot be opened."""
    with VideoReader(path) as video:
        return video.probe()


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


def read_video(path: str | Path) -> np.ndarray:
    """Decode every frame as RGB uint8 [N, H, W, 3] (for small clips: the whole video is held).

    Raises VideoDecodeError (missing, empty, not a video, truncated) as VideoReader does.
    """
    with VideoReader(path) as video:
        return np.stack([frame.full for frame in video.frames()])


def full_frames(path: str | Path, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """The RGB frames at `indices` (those that decode), in one more pass over the file."""
    wanted = set(indices)
    with VideoReader(path) as video:
        return {f.index: f.full for f in video.frames(full_at=wanted.__contains__) if f.full is not None}
