"""A raw video file -> the serving graph's input, exactly as training saw its clips.

Decode, crop the face with the training detector and params, store-and-reload each
crop as JPEG at the training quality (the feature cache was computed from JPEG
crops), take the segment centres (short clips repeat frames in order) and normalise
for CLIP. Everything comes from preprocess.json, so serving needs no params.yaml.

The drift monitor reads the same path: `face_frames` also returns what the crops
looked like (CropStats), computed on exactly the frames the graph gets.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from a3lign_dfer.config import FaceCropConfig
from a3lign_dfer.data.face_crop import NoFaceError, face_crops
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.data.video_io import VideoDecodeError, read_video
from a3lign_dfer.model.clip_backbone import ImageSpec, normalize_frames


class InputError(ValueError):
    """A video that cannot be predicted; the message names the file and why."""


@dataclass(frozen=True)
class PreprocessSpec:
    face_crop: FaceCropConfig
    image: ImageSpec
    frames: int
    min_frames: int

    def to_json(self) -> dict:
        return {"face_crop": dataclasses.asdict(self.face_crop), "image": dataclasses.asdict(self.image),
                "frames": self.frames, "min_frames": self.min_frames,
                "sampling": "segment centres: the clip cut into `frames` equal segments, the centre frame of each",
                "padding": "clips shorter than `frames` repeat frames in order (index i*n//frames), never loop",
                "crop_storage": f"each crop JPEG-encoded at quality {self.face_crop.jpeg_quality} and decoded, "
                                "as the training crops were stored",
                "layout": "float32 (batch, frames, 3, size, size), RGB, (x/255 - mean) / std"}

    @classmethod
    def from_json(cls, raw: dict) -> "PreprocessSpec":
        image = raw["image"]
        return cls(FaceCropConfig(**raw["face_crop"]), ImageSpec(image["size"], tuple(image["mean"]),
                                                                 tuple(image["std"])), raw["frames"], raw["min_frames"])

    @classmethod
    def load(cls, path: Path) -> "PreprocessSpec":
        return cls.from_json(json.loads(path.read_text()))


def _jpeg_roundtrip(crop_rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class CropStats:
    """What one video's face crops look like, on the sampled frames the graph gets (after the JPEG round trip)."""

    brightness: float       # mean grey level, 0-255
    contrast: float         # standard deviation of the grey levels within a crop, mean over frames
    sharpness: float        # variance of the Laplacian of the grey crop, mean over frames
    face_size: float        # tracked face side over the frame's shorter side, mean over frames
    detection_rate: float   # frames with a tracked detection / decoded frames
    frames: int             # decoded frames

    @classmethod
    def of(cls, stored: np.ndarray, track: np.ndarray, found: int, frame_shape: tuple[int, ...]) -> "CropStats":
        grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in stored]).astype(np.float64)
        laplacian = [cv2.Laplacian(g, cv2.CV_64F).var() for g in grey]
        return cls(brightness=float(grey.mean()), contrast=float(grey.std(axis=(1, 2)).mean()),
                   sharpness=float(np.mean(laplacian)), face_size=float(track[:, 2].mean() / min(frame_shape[:2])),
                   detection_rate=found / len(track), frames=len(track))


def face_frames(path: str | Path, spec: PreprocessSpec) -> tuple[np.ndarray, CropStats]:
    """The sampled face crops the graph gets, uint8 (frames, size, size, 3) after the JPEG round trip, and
    their CropStats; InputError naming the file when the video cannot be used."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    try:
        frames = read_video(path)
    except VideoDecodeError as err:
        raise InputError(str(err)) from err
    if len(frames) < spec.min_frames:
        raise InputError(f"{path}: {len(frames)} decodable frame(s), fewer than the {spec.min_frames} needed")
    try:
        faces = face_crops(frames, spec.face_crop, path)
    except NoFaceError as err:
        raise InputError(f"no face found: {err}") from err
    picked = segment_indices(len(faces.crops), spec.frames, train=False)
    stored = np.stack([_jpeg_roundtrip(faces.crops[i], spec.face_crop.jpeg_quality) for i in picked])
    return stored, CropStats.of(stored, faces.track, faces.found, frames.shape[1:])


def video_input(path: str | Path, spec: PreprocessSpec) -> torch.Tensor:
    """(frames, 3, size, size) float32 for one video; InputError naming the file otherwise."""
    return normalize_frames(torch.from_numpy(face_frames(path, spec)[0]), spec.image)
