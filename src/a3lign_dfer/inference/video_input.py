"""A raw video file (or a dataset's frame folder) -> the serving graph's input, exactly as training saw its clips.

Stream the video once, tracking the face with the training detector and params
(data.face_track) and keeping only the full-resolution frames at the segment centres
(short clips repeat frames in order); crop those as the face_crop stage does, store-and-
reload each crop as JPEG at the training quality (the feature cache was computed from
JPEG crops) and normalise for CLIP. Everything comes from preprocess.json, so serving
needs no params.yaml. Nothing here imports torch (the service prepares uploads in worker
processes); only `video_input` does, when called (ImageSpec.graph_input).

A folder of frame images (DFEW, FERV39k and MAFW ship aligned face crops) takes the
face_crop stage's path for such clips: no detection, each sampled frame padded to a
square and resized, then the same JPEG round trip. Its face box is the whole frame,
so its face_size is 1 and its detection_rate 1 by construction.

The drift monitor reads the same path: `face_frames` also returns what the crops
looked like (CropStats), computed on exactly the frames the graph gets.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.config.data import FaceCropConfig
from a3lign_dfer.data.face_track import (CostError, FaceTrack, NoFaceError, cut_face, require_face, square_crop,
                                         track_face)
from a3lign_dfer.data.frame_folders import frame_files, read_frame
from a3lign_dfer.data.manifest import ClipError
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.data.video_io import VideoDecodeError, VideoReader, full_frames
from a3lign_dfer.model.image_spec import ImageSpec


class InputError(ValueError):
    """A video that cannot be predicted; the message names the file and why, `kind` which problem it is
    (a manifest.PROBLEMS key for decode and face problems, else too_few_frames, bad_list, or a limit's kind:
    too_many_frames, too_many_pixels, too_costly)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):                      # crosses from the service's preprocessing processes
        return type(self), (str(self), self.kind)


# An artifact exported before the track had segments (its preprocess.json lacks these keys) is served with
# one segment per video, as its crops were cut, and the look-ahead of the params that introduced them.
TRACK_BEFORE_SEGMENTS = {"track_lookahead_seconds": 2.0, "reacquire_runs": 10**9}


@dataclass(frozen=True)
class PreprocessSpec:
    face_crop: FaceCropConfig
    image: ImageSpec
    frames: int
    min_frames: int

    def to_json(self) -> dict:
        return {"face_crop": dataclasses.asdict(self.face_crop), "image": dataclasses.asdict(self.image),
                "frames": self.frames, "min_frames": self.min_frames,
                "face_track": "one decoding pass (PyAV); the detector on a copy of at most detect_fps frames per "
                              "second (and the last) shrunk to detect_max_side (a 4:2:0 frame plane by plane, "
                              "bilinear, then converted to BGR), boxes mapped back; "
                              "segments started on the face recurring most within track_lookahead_seconds and ended "
                              "after reacquire_runs runs with faces none continuing; median over smooth_window "
                              "frames within a segment, interpolated between detected frames; crops cut from the "
                              "full-resolution RGB frame",
                "sampling": "segment centres: the clip cut into `frames` equal segments, the centre frame of each",
                "padding": "clips shorter than `frames` repeat frames in order (index i*n//frames), never loop",
                "crop_storage": f"each crop JPEG-encoded at quality {self.face_crop.jpeg_quality} and decoded, "
                                "as the training crops were stored",
                "layout": "float32 (batch, frames, 3, size, size), RGB, (x/255 - mean) / std"}

    @classmethod
    def from_json(cls, raw: dict) -> "PreprocessSpec":
        image = raw["image"]
        face_crop = FaceCropConfig(**{**TRACK_BEFORE_SEGMENTS, **raw["face_crop"]})
        return cls(face_crop, ImageSpec(image["size"], tuple(image["mean"]), tuple(image["std"])), raw["frames"],
                   raw["min_frames"])

    @classmethod
    def load(cls, path: Path) -> "PreprocessSpec":
        return cls.from_json(json.loads(path.read_text()))


def as_stored(crop_rgb: np.ndarray, quality: int) -> np.ndarray:
    """A crop after the JPEG round trip the training crops went through (face_crop stores JPEG)."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class CropStats:
    """What one video's face crops look like, on the sampled frames the graph gets (after the JPEG round trip)."""

    brightness: float       # mean grey level, 0-255
    contrast: float         # standard deviation of the grey levels within a crop, mean over frames
    sharpness: float        # variance of the Laplacian of the grey crop, mean over frames
    face_size: float        # tracked face side over the frame's shorter side, mean over frames
    detection_rate: float   # detected frames with a tracked face / detected frames
    frames: int             # decoded frames

    @classmethod
    def of(cls, stored: np.ndarray, track: FaceTrack) -> "CropStats":
        face_size = float(np.nanmean(track.boxes[:, 2]) / min(track.frame_size))
        return cls.measure(stored, face_size, track.detection_rate, track.frames)

    @classmethod
    def measure(cls, stored: np.ndarray, face_size: float, detection_rate: float, frames: int) -> "CropStats":
        grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in stored]).astype(np.float64)
        laplacian = [cv2.Laplacian(g, cv2.CV_64F).var() for g in grey]
        return cls(brightness=float(grey.mean()), contrast=float(grey.std(axis=(1, 2)).mean()),
                   sharpness=float(np.mean(laplacian)), face_size=face_size, detection_rate=detection_rate,
                   frames=frames)


@dataclass(frozen=True)
class FaceFrames:
    """What one video gives the graph, and where it came from (the service shows it, the drift monitor
    measures it)."""

    crops: np.ndarray       # uint8 (frames, size, size, 3) after the JPEG round trip: the graph's frames
    stats: CropStats
    track: np.ndarray       # (decoded frames, 3) smoothed, gap-filled face box (cx, cy, side) in pixels
    used: np.ndarray        # indices of the decoded frames the crops were cut from, in order
    frame_size: tuple[int, int]   # decoded (height, width)

    def boxes(self) -> list[list[int]]:
        """Per decoded frame, the square face box before the crop margin: [x, y, width, height] in pixels."""
        return [[round(cx - side / 2), round(cy - side / 2), round(side), round(side)] for cx, cy, side in self.track]


@dataclass(frozen=True)
class RequestLimits:
    """What one video may cost (the service's limits): checked on what the container declares before
    anything is decoded, and on the CPU time spent while it streams."""

    max_frames: int
    max_megapixel_frames: float      # frames x width x height / 1e6
    max_cpu_seconds: float

    def check(self, path: Path, frames: int, height: int, width: int) -> None:
        if frames > self.max_frames:
            raise InputError(f"{path}: {frames} frames, more than the {self.max_frames} accepted", "too_many_frames")
        if (megapixel_frames := frames * height * width / 1e6) > self.max_megapixel_frames:
            raise InputError(f"{path}: {frames} frames of {width}x{height} are {megapixel_frames:.0f} megapixel-frames, "
                             f"more than the {self.max_megapixel_frames:g} accepted (a shorter or smaller video)",
                             "too_many_pixels")


def input_kind(path: str | Path) -> str:
    """The manifest's kind of a clip given by its path: "frames" for a folder of frame images, else "video"."""
    return "frames" if Path(path).is_dir() else "video"


def folder_frames(folder: Path, spec: PreprocessSpec) -> FaceFrames:
    """A frame folder's sampled frames as the face_crop stage stores such clips (module docstring)."""
    try:
        files = frame_files(folder)
        if len(files) < spec.min_frames:
            raise InputError(f"{folder}: {len(files)} frame image(s), fewer than the {spec.min_frames} needed",
                             "too_few_frames")
        picked = segment_indices(len(files), spec.frames, train=False)
        frames = {int(i): read_frame(files[i]) for i in np.unique(picked)}
    except ClipError as err:
        raise InputError(str(err), err.problem) from err
    cfg = spec.face_crop
    stored = np.stack([as_stored(square_crop(frames[int(i)], cfg.size), cfg.jpeg_quality) for i in picked])
    height, width = frames[int(picked[0])].shape[:2]
    box = (width / 2, height / 2, max(height, width))
    return FaceFrames(stored, CropStats.measure(stored, max(height, width) / min(height, width), 1.0, len(files)),
                      np.tile(np.asarray(box, np.float64), (len(files), 1)), np.asarray(picked), (height, width))


@contextlib.contextmanager
def as_input_errors(limits: RequestLimits | None) -> Iterator[None]:
    """The decode and cost errors of a video as InputError (what predict, timeline and the service report)."""
    try:
        yield
    except VideoDecodeError as err:
        raise InputError(str(err), err.problem) from err
    except CostError as err:
        raise InputError(f"{err}; the limit is {limits.max_cpu_seconds:g} (a shorter or smaller video)",
                         "too_costly") from err


def open_checked(path: Path, limits: RequestLimits | None = None) -> VideoReader:
    """The video file opened (once), what its container declares within `limits`; InputError otherwise."""
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path}: empty file", "empty_video")
    with as_input_errors(limits):
        video = VideoReader(path)
    if limits is not None:
        try:
            limits.check(path, video.declared, *video.frame_size)
        except InputError:
            video.close()
            raise
    return video


def tracked(video: VideoReader, spec: PreprocessSpec, limits: RequestLimits | None = None,
            keep: list[int] = ()) -> tuple[FaceTrack, dict[int, np.ndarray]]:
    """The face track of a whole video and its frames in `keep` (track_face), refused as InputError when it
    costs more than `limits`, has too few frames, or too rarely shows a face."""
    path = video.path
    with as_input_errors(limits):
        track, kept = track_face(video, spec.face_crop, keep, None if limits is None else limits.max_cpu_seconds)
    if limits is not None:                                  # a container that under-declares its length
        limits.check(path, track.frames, *track.frame_size)
    if track.frames < spec.min_frames:
        raise InputError(f"{path}: {track.frames} decodable frame(s), fewer than the {spec.min_frames} needed",
                         "too_few_frames")
    try:
        require_face(track, spec.face_crop, path)
    except NoFaceError as err:
        raise InputError(f"no face found: {err}", err.problem) from err
    return track, kept


def held_at_start(boxes: np.ndarray) -> np.ndarray:
    """The track's boxes with the frames before the first found face (NaN beyond the look-ahead) given the
    first box, as the frames just before it are."""
    first = int(np.argmax(~np.isnan(boxes[:, 0])))
    out = boxes.copy()
    out[:first] = boxes[first]
    return out


def face_frames(path: str | Path, spec: PreprocessSpec, limits: RequestLimits | None = None) -> FaceFrames:
    """The sampled face crops the graph gets and where they came from; InputError naming the file when the
    video cannot be used or (with `limits`) costs more than they allow. A folder is a clip of frame images.
    The video is decoded once; only a container that misdeclares its frame count costs a second pass for
    the frames sampled from the count that decoded."""
    path = Path(path)
    if path.is_dir():
        return folder_frames(path, spec)
    with open_checked(path, limits) as video:
        picked = segment_indices(max(video.declared, 1), spec.frames, train=False)
        track, kept = tracked(video, spec, limits, picked.tolist())
    if track.frames != video.declared:
        picked = segment_indices(track.frames, spec.frames, train=False)
        with as_input_errors(limits):
            kept.update(full_frames(path, set(picked.tolist()) - kept.keys()))
    boxes = held_at_start(track.boxes)
    cfg = spec.face_crop
    stored = np.stack([as_stored(cut_face(kept[int(i)], boxes[i], cfg), cfg.jpeg_quality) for i in picked])
    return FaceFrames(stored, CropStats.of(stored, track), boxes, np.asarray(picked), track.frame_size)


def video_input(path: str | Path, spec: PreprocessSpec) -> np.ndarray:
    """(frames, 3, size, size) float32 graph input for one video; InputError naming the file otherwise."""
    return spec.image.graph_input(face_frames(path, spec).crops)
