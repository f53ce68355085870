"""Video files in and out.

Writing goes through PyAV/libx264 with one encoder thread so the same frames always
give the same bytes (DVC hashes them); reading goes through OpenCV, the fastest
decoder available here.
"""
from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np


class VideoDecodeError(RuntimeError):
    """A video that cannot be read; carries the path so rejects name the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot decode video {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def write_video(frames_rgb: np.ndarray, path: str | Path, fps: int,
                crf: int = 23, preset: str = "superfast", rotation: int = 0) -> int:
    """Encode RGB uint8 frames [N, H, W, 3] as H.264 (yuv420p) mp4; return frames written.

    `rotation` (degrees counter-clockwise) is stored as the display rotation, as phones do.
    """
    frames_rgb = np.asarray(frames_rgb)
    if frames_rgb.ndim != 4 or frames_rgb.shape[-1] != 3 or frames_rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [N, H, W, 3], got {frames_rgb.dtype} {frames_rgb.shape}")
    n, height, width, _ = frames_rgb.shape
    if n == 0 or height % 2 or width % 2:
        raise ValueError(f"need >= 1 frame of even width and height for yuv420p, got {frames_rgb.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1  # multi-threaded x264 is not bit-exact
        stream.options = {"crf": str(crf), "preset": preset}
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames_rgb:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return n


def read_video(path: str | Path) -> np.ndarray:
    """Decode every frame as RGB uint8 [N, H, W, 3]; raise VideoDecodeError if none can be read."""
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(path, "file not found")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
    try:
        if not cap.isOpened():
            raise VideoDecodeError(path, "OpenCV/FFmpeg cannot open it (corrupt file or unknown format)")
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise VideoDecodeError(path, "no decodable frames")
    return np.stack(frames)
