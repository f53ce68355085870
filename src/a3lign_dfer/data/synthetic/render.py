"""Renders one synthetic clip: cluttered background, moving face, changing light, noise.

All randomness comes from two generators derived from (seed, identity) and
(seed, clip index), so a clip is the same whichever worker renders it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from a3lign_dfer.config.data import SyntheticConfig
from a3lign_dfer.data.synthetic.controls import expression_curve
from a3lign_dfer.data.synthetic.face import draw_face, sample_identity

_PAN = 6  # pixels of camera shake the background can move


@dataclass(frozen=True)
class RenderedClip:
    frames: np.ndarray    # [N, H, W, 3] uint8 RGB
    boxes: np.ndarray     # [N, 4] float32 ground-truth face box (x, y, w, h), pixels
    controls: np.ndarray  # [N, len(CONTROLS)] float32, the values each frame was drawn from


def identity_rng(seed: int, identity: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0, identity])


def clip_rng(seed: int, clip_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, 1, clip_index])


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Clutter the detector must ignore: muted colour field, grain, maybe stripes, random shapes."""
    colors = rng.uniform(20, 235, (4, 5, 3))
    colors = colors.mean(-1, keepdims=True) + (colors - colors.mean(-1, keepdims=True)) * rng.uniform(0.2, 0.7)
    low = cv2.resize(colors.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    img = np.clip(low + rng.normal(0, rng.uniform(0, 10), (height, width, 1)), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:  # stripes: wallpaper, blinds
        period, angle = rng.uniform(6, 30), rng.uniform(0, np.pi)
        yy, xx = np.mgrid[:height, :width]
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        img = np.clip(img + (rng.uniform(10, 35) * wave)[..., None], 0, 255).astype(np.uint8)
    for _ in range(rng.integers(6, 22)):
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        size = rng.uniform(8, 70)
        kind = rng.integers(4)
        if kind == 0:
            cv2.rectangle(img, (int(x), int(y)), (int(x + size), int(y + rng.uniform(8, 70))), color, -1)
        elif kind == 1:
            cv2.circle(img, (int(x), int(y)), int(size / 2), color, -1, cv2.LINE_AA)
        elif kind == 2:
            end = (int(x + rng.normal(0, 80)), int(y + rng.normal(0, 80)))
            cv2.line(img, (int(x), int(y)), end, color, int(rng.integers(1, 6)), cv2.LINE_AA)
        else:
            pts = (np.array([x, y]) + rng.normal(0, size / 2, (int(rng.integers(3, 6)), 2))).astype(np.int32)
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
    return img


def _wander(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    """Smooth zero-mean-ish drift: two random sinusoids plus a linear trend."""
    t = np.arange(n) / max(n - 1, 1)
    out = np.zeros(n)
    for _ in range(2):
        out += rng.uniform(0, amplitude / 2) * np.sin(2 * np.pi * (rng.uniform(0.2, 1.2) * t + rng.uniform()))
    return out + rng.uniform(-amplitude / 2, amplitude / 2) * (t - 0.5)


def render_clip(cfg: SyntheticConfig, label: str, seed: int, clip_index: int, identity: int) -> RenderedClip:
    """Render clip `clip_index` of `identity` showing `label`.

    cfg's camera knobs (light_gain, extra_blur, noise_gain, face_scale) scale the drawn
    values without drawing anything more, so at 1, 0, 1, 1 every clip is byte-identical
    to one rendered without them; other values make shifted batches for the drift monitor.

    fear is rendered exactly as surprise (same generator draws) and then every
    per-frame array is reversed: the two classes share the same frames and differ
    only in temporal order.
    """
    ident = sample_identity(identity_rng(seed, identity))
    rng = clip_rng(seed, clip_index)
    w, h = cfg.width, cfg.height
    n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    controls = expression_curve("surprise" if label == "fear" else label, n, rng)

    half = min(rng.uniform(35, 75), h / 2.6, w / 3.2) * cfg.face_scale  # half the head height, pixels
    scale = half * (1 + _wander(rng, n, 0.1))
    angle = np.deg2rad(rng.uniform(-4, 4) + _wander(rng, n, 8))
    reach_x, reach_y = half * 1.25 + 10, half * 1.2 + 10  # keeps the drifting head in frame
    cx = rng.uniform(reach_x, max(reach_x, w - reach_x)) + _wander(rng, n, 10)
    cy = rng.uniform(reach_y, max(reach_y, h - reach_y)) + _wander(rng, n, 10)
    gaze = rng.uniform(-0.025, 0.025)

    background = _background(rng, w + 2 * _PAN, h + 2 * _PAN)
    pan = np.clip(np.stack([_wander(rng, n, 6), _wander(rng, n, 6)], 1) + _PAN, 0, 2 * _PAN).astype(int)
    gain = rng.uniform(0.75, 1.15) * (1 + _wander(rng, n, 0.2)) * cfg.light_gain
    tilt = np.abs(rng.uniform(0, 0.3) + _wander(rng, n, 0.15))
    tilt_dir = rng.uniform(0, 2 * np.pi)
    cast = [float(c) for c in rng.uniform(0.9, 1.1, 3)]
    noise_gain = rng.uniform(1, 4) / 73.6 * cfg.noise_gain  # uniform bytes have std 73.6
    blur = rng.uniform(0.5, 1.1) if rng.random() < 0.3 else 0.0
    yy, xx = np.mgrid[-1:1:h * 1j, -1:1:w * 1j].astype(np.float32)
    ramp = (np.cos(tilt_dir) * xx + np.sin(tilt_dir) * yy).astype(np.float32)

    frames = np.empty((n, h, w, 3), np.uint8)
    boxes = np.empty((n, 4), np.float32)
    for t in range(n):
        img = background[pan[t, 1]:pan[t, 1] + h, pan[t, 0]:pan[t, 0] + w].copy()
        cos, sin = scale[t] * np.cos(angle[t]), scale[t] * np.sin(angle[t])
        m = np.array([[cos, -sin, cx[t]], [sin, cos, cy[t]]])
        boxes[t] = draw_face(img, ident, controls[t], m, gaze)
        if blur:
            img = cv2.GaussianBlur(img, (0, 0), blur)
        if cfg.extra_blur:
            img = cv2.GaussianBlur(img, (0, 0), cfg.extra_blur)
        light = cv2.multiply(ramp, float(gain[t] * tilt[t])) + float(gain[t])
        img = cv2.multiply(img, cv2.merge([light * c for c in cast]), dtype=cv2.CV_8U)
        noise = np.frombuffer(rng.bytes(h * w * 3), np.uint8).reshape(h, w, 3)  # cheap camera noise
        frames[t] = cv2.addWeighted(img, 1.0, noise, noise_gain, -127.5 * noise_gain, dtype=cv2.CV_8U)
    if label == "fear":
        return RenderedClip(frames[::-1].copy(), boxes[::-1].copy(), controls[::-1].copy())
    return RenderedClip(frames, boxes, controls)
