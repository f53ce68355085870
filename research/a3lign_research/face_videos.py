"""Real-face test videos: public face photos moved through a small frame.

The synthetic faces were drawn by the code the detectors were first tuned on, so a
detector is also validated on real faces: scikit-image's astronaut and LFW crops and
matplotlib's Grace Hopper, panned, zoomed and rescaled, plus one portrait clip stored
sideways the way phones store it (a display rotation in the container, not in the
pixels). Every frame is the photo under a known scale + shift, so the face's true box
in the frame is the photo's face box under the same map.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib.cbook
import matplotlib.image
import numpy as np
import skimage.data

from a3lign_dfer.data.face_track import crop_square
from a3lign_dfer.data.video_io import write_video

WIDTH, HEIGHT, FPS = 320, 240, 12
# Face boxes (x, y, w, h) in the full-resolution stills: YuNet's box on the still (score
# 0.93 and 0.94), checked by eye: brow line to chin, cheek to cheek.
ASTRONAUT_FACE = (178.0, 63.0, 90.0, 113.0)
GRACE_HOPPER_FACE = (183.0, 120.0, 170.0, 212.0)
LFW_UPSCALE = 4  # LFW crops are 25x25 and end at the face: 100 pixels is a plausible face
LFW_FACES = tuple(range(0, 100, 4))  # lfw_subset's first 100 images are faces, the rest are not


@dataclass(frozen=True)
class FaceVideo:
    name: str
    frames: np.ndarray  # [N, H, W, 3] uint8 RGB, upright: what a viewer should see
    boxes: np.ndarray   # [N, 4] float32 true face box (x, y, w, h) in those frames; NaN: no face
    rotation: int = 0   # display rotation stored in the file, degrees counter-clockwise

    def write(self, path: str | Path, fps: int = FPS) -> Path:
        """Store as mp4; a rotated clip's pixels are stored turned the other way."""
        stored = np.rot90(self.frames, -self.rotation // 90, axes=(1, 2))
        write_video(np.ascontiguousarray(stored), path, fps, rotation=self.rotation)
        return Path(path)


def _film(name: str, photo: np.ndarray, face: tuple[float, ...], scale: np.ndarray, centre: np.ndarray,
          roll: np.ndarray | None = None, layout: tuple[int, int] = (WIDTH, HEIGHT), rotation: int = 0,
          size: tuple[int, int] | None = None) -> FaceVideo:
    """Frame t shows `photo` scaled by scale[t] and turned by roll[t] degrees (counter-clockwise)
    about the face centre, which lands at centre[t] (pixels of a `layout` frame). The true box keeps
    the face's own size around its centre (a tilted face's detector box is no wider than the face).

    A `size` other than the layout films the same shot at that resolution: the layout is scaled to
    the frame's height and centred (a 4:3 layout in a 16:9 frame shows more background at the sides),
    as a phone recording the same scene at 720p or 1080p would."""
    size = size or layout
    k = size[1] / layout[1]
    offset = (np.array(size) - k * np.array(layout)) / 2
    x, y, w, h = face
    middle = np.array([x + w / 2, y + h / 2])
    roll = np.zeros(len(scale)) if roll is None else roll
    scale, centre = k * np.asarray(scale, float), k * np.asarray(centre, float) + offset
    frames = []
    for s, angle, c in zip(scale, roll, centre):
        m = cv2.getRotationMatrix2D(tuple(middle), float(angle), float(s))
        m[:, 2] += c - middle
        frames.append(cv2.warpAffine(photo, m, size, flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE))
    sizes = scale[:, None] * np.array([w, h])
    return FaceVideo(name, np.stack(frames), np.column_stack([centre - sizes / 2, sizes]).astype(np.float32), rotation)


def _grace_hopper() -> np.ndarray:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return matplotlib.image.imread(f, format="jpg")


def _still(name: str) -> np.ndarray:
    """A scikit-image sample photo as RGB, at least twice the frame size (upscaled if needed)."""
    photo = getattr(skimage.data, name)()
    photo = cv2.cvtColor(photo, cv2.COLOR_GRAY2RGB) if photo.ndim == 2 else photo
    zoom = max(1.0, 2 * WIDTH / photo.shape[1], 2 * HEIGHT / photo.shape[0])
    return cv2.resize(photo, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC) if zoom > 1 else photo


def _lfw_photo(tile: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, tuple[float, ...]]:
    """One LFW face upscaled onto a real background (the crop alone has no context around it)."""
    tile = (tile * 255).round().astype(np.uint8)
    side = tile.shape[0] * LFW_UPSCALE
    face = cv2.cvtColor(cv2.resize(tile, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
    photo = background.copy()
    y0, x0 = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    photo[y0:y0 + side, x0:x0 + side] = face
    return photo, (float(x0), float(y0), float(side), float(side))


def photo_videos(frames: int = 30, size: tuple[int, int] = (WIDTH, HEIGHT)) -> list[FaceVideo]:
    """Pan (astronaut), zoom and roll (Grace Hopper), and a sideways phone clip (astronaut), filmed in
    landscape frames of `size` (the phone clip in the same frame turned upright)."""
    t = np.linspace(0, 1, frames)
    wobble = np.sin(2 * np.pi * t)
    astronaut, grace = skimage.data.astronaut(), _grace_hopper()
    centre = np.array([WIDTH / 2, HEIGHT / 2])
    return [
        # The whole portrait's height in frame, panned: the face (42x53 px) crosses the frame.
        _film("astronaut_pan", astronaut, ASTRONAUT_FACE, np.full(frames, HEIGHT / astronaut.shape[0]),
              np.column_stack([50 + 220 * t, HEIGHT / 2 + 25 * wobble]), size=size),
        # The camera zooms in: the face grows from 47 to 190 px tall.
        _film("grace_zoom", grace, GRACE_HOPPER_FACE, 0.22 * 4 ** t, centre + np.column_stack([20 * wobble, 10 * t]),
              size=size),
        # The camera rolls (or the head tilts) up to 25 degrees each way; face ~75x95 px.
        _film("grace_roll", grace, GRACE_HOPPER_FACE, np.full(frames, 0.45), centre + np.column_stack([10 * t, 0 * t]),
              roll=25 * wobble, size=size),
        # Portrait phone clip, 240x320 upright, stored 320x240 with a -90 degree display rotation.
        _film("phone_sideways", astronaut, ASTRONAUT_FACE, 0.8 + 0.1 * wobble,
              np.column_stack([HEIGHT / 2 + 15 * wobble, 130 + 10 * t]), layout=(HEIGHT, WIDTH), rotation=-90,
              size=size[::-1]),
    ]


def lfw_videos(frames: int = 30, faces: tuple[int, ...] = LFW_FACES,
               size: tuple[int, int] = (WIDTH, HEIGHT)) -> list[FaceVideo]:
    """LFW faces on a real background; the subject walks towards the camera (face 50 to 150 px at 240
    lines, in proportion at other sizes)."""
    t = np.linspace(0, 1, frames)
    wobble = np.sin(2 * np.pi * t)
    background, tiles = _still("coffee"), skimage.data.lfw_subset()
    centre = np.array([WIDTH / 2, HEIGHT / 2]) + np.column_stack([40 * wobble, 15 * wobble])
    return [_film(f"lfw{i}_scale", *_lfw_photo(tiles[i], background), 0.5 * 3 ** t, centre, size=size) for i in faces]


def two_shots(frames: int = 30, size: tuple[int, int] = (WIDTH, HEIGHT)) -> FaceVideo:
    """An edit: Grace Hopper on the left of the frame, then after a cut half way on the right, as
    different shots of one interview put the face at different places."""
    grace, first = _grace_hopper(), frames // 2
    shots = [_film(name, grace, GRACE_HOPPER_FACE, np.full(n, 0.3), np.tile([x, HEIGHT / 2], (n, 1)), size=size)
             for name, n, x in (("left", first, WIDTH * 0.25), ("right", frames - first, WIDTH * 0.75))]
    return FaceVideo("two_shots", np.concatenate([v.frames for v in shots]),
                     np.concatenate([v.boxes for v in shots]))


def second_face_flickering(frames: int = 30, size: tuple[int, int] = (WIDTH, HEIGHT)) -> FaceVideo:
    """Grace Hopper in the middle, and a second (LFW) face in a corner of every other frame: a face
    in a passing poster or a screen, which the track must treat as clutter. The true boxes are hers."""
    video = _film("second_face", _grace_hopper(), GRACE_HOPPER_FACE, np.full(frames, 0.3),
                  np.tile([WIDTH / 2, HEIGHT / 2], (frames, 1)), size=size)
    k = size[1] / HEIGHT
    side = int(round(0.35 * size[1]))
    tile = (skimage.data.lfw_subset()[0] * 255).round().astype(np.uint8)
    other = cv2.cvtColor(cv2.resize(tile, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
    shown = video.frames.copy()
    margin = int(round(8 * k))
    shown[1::2, margin:margin + side, margin:margin + side] = other
    return dataclasses.replace(video, frames=shown)


def no_face_videos(frames: int = 30) -> list[FaceVideo]:
    """Face-free photos (a cup, a rocket, a brick wall, a cat) zoomed into: boxes are NaN."""
    t = np.linspace(0, 1, frames)
    videos = []
    for name in ("coffee", "rocket", "brick", "chelsea"):
        photo = _still(name)
        middle = (photo.shape[1] / 2, photo.shape[0] / 2, 0.0, 0.0)
        video = _film(name, photo, middle, 0.6 + 0.6 * t, np.column_stack([WIDTH / 2 + 30 * t, HEIGHT / 2 + 20 * t]))
        videos.append(dataclasses.replace(video, boxes=np.full_like(video.boxes, np.nan)))
    return videos


def square_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the IoU of square boxes (cx, cy, side): a track's boxes against the true ones made square."""
    lo = np.maximum(a[:, :2] - a[:, 2:] / 2, b[:, :2] - b[:, 2:] / 2)
    hi = np.minimum(a[:, :2] + a[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2)
    inter = np.prod(np.clip(hi - lo, 0, None), 1)
    return inter / (a[:, 2] ** 2 + b[:, 2] ** 2 - inter)


def _grey(image: np.ndarray) -> np.ndarray:
    small = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32) - small.mean()
    return small / (np.linalg.norm(small) + 1e-6)


def upright(crops: list[np.ndarray], video: FaceVideo, margin: float) -> np.ndarray:
    """Per crop: does it match the face cut from the upright frame at the true box better
    than any quarter turn of that face? (Frames without a face are skipped.)"""
    centre, side = video.boxes[:, :2] + video.boxes[:, 2:] / 2, video.boxes[:, 2:].max(1)
    out = []
    for crop, frame, (cx, cy), s in zip(crops, video.frames, centre, side):
        if np.isnan(s):
            continue
        truth = _grey(crop_square(frame, cx, cy, s, margin, crop.shape[0]))
        match = [float((_grey(np.rot90(crop, k)) * truth).sum()) for k in range(4)]
        out.append(int(np.argmax(match)) == 0)
    return np.array(out, bool)
