"""Clips stored as folders of frame images (DFEW, FERV39k, MAFW ship them face-cropped).

Frame order is the natural order of the file names (2.jpg before 10.jpg), so folders
whose names are not zero-padded keep their time order. A missing or empty folder and a
zero-byte or undecodable image raise ClipError naming the folder or the image.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.data.manifest import ClipError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: str | Path) -> list[Path]:
    """The folder's images in frame order; ClipError if it is missing, holds none or one is 0 bytes.

    Cheap (file names and sizes only): the prepare stage counts frames on disk with it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ClipError(folder, "missing_frame_folder", "frame folder not found")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                   key=_natural_key)
    if not files:
        raise ClipError(folder, "empty_frame_folder", f"no frame images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    empty = [f for f in files if f.stat().st_size == 0]
    if empty:
        raise ClipError(empty[0], "zero_byte_image", f"frame image of 0 bytes ({len(empty)} such in the folder)")
    return files


def read_frame(path: str | Path) -> np.ndarray:
    """One frame as RGB uint8 (H, W, 3); ClipError naming the image if OpenCV cannot decode it."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ClipError(path, "zero_byte_image", "frame image of 0 bytes")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ClipError(path, "unreadable_image", "OpenCV cannot decode this frame image (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_frames(frame_dir: Path) -> np.ndarray:
    """A clip's stored face crops (face_crop's frames/<clip_id>/*.jpg, zero-padded names) as RGB uint8
    (N, H, W, 3)."""
    files = sorted(frame_dir.glob("*.jpg"))
    if not files:
        raise FileNotFoundError(f"no .jpg frames in {frame_dir}")
    return np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files])
