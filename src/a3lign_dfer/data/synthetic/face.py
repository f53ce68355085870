"""A procedural cartoon face drawn with OpenCV from an identity and a control vector.

Geometry lives in face units (origin at the head centre, y down, 1 = half the head
height) and is mapped to pixels by one 2x3 affine per frame, so head motion is exact.
The face is built the way the Haar cascade expects one: dark eye sockets and brows
on a lighter skin ellipse, a shaded nose and a dark mouth line.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from a3lign_dfer.data.synthetic.controls import CONTROLS

_C = {name: i for i, name in enumerate(CONTROLS)}
_LIGHT_SKIN, _DARK_SKIN = np.array([238, 204, 178.0]), np.array([110, 72, 50.0])
_HAIR = np.array([[25, 20, 18], [60, 40, 25], [110, 75, 45], [200, 168, 110],
                  [150, 148, 145], [140, 62, 30]], np.float64)
_IRIS = np.array([[70, 45, 25], [40, 30, 20], [60, 100, 150], [70, 110, 70]], np.float64)
_T9 = np.linspace(0, 1, 9)
_ARC12_COS, _ARC12_SIN = np.cos(np.linspace(0, np.pi, 12)), np.sin(np.linspace(0, np.pi, 12))
_SPAN17 = np.linspace(-1, 1, 17)
_SPAN17_PROFILE = np.sqrt(1 - _SPAN17 ** 2)  # lip thickness along the mouth, 0 at the corners


@dataclass(frozen=True)
class Identity:
    skin: np.ndarray
    hair: np.ndarray
    hair_style: int  # 0 bald, 1 short, 2 long
    hairline: float
    head_rx: float
    jaw: float
    brow_color: np.ndarray
    brow_thick: float
    brow_gap: float
    brow_arch: float
    eye_y: float
    eye_dx: float
    eye_rx: float
    eye_ry: float
    iris: np.ndarray
    nose_tip: float
    nose_w: float
    mouth_y: float
    mouth_w: float
    lip_up: float
    lip_lo: float
    lip_color: np.ndarray


def sample_identity(rng: np.random.Generator) -> Identity:
    skin = _LIGHT_SKIN + rng.uniform(0, 1) * (_DARK_SKIN - _LIGHT_SKIN) + rng.normal(0, 6, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.1)
    return Identity(
        skin=np.clip(skin, 0, 255),
        hair=np.clip(hair, 0, 255),
        hair_style=int(rng.integers(3)),
        hairline=rng.uniform(-0.78, -0.6),
        head_rx=rng.uniform(0.68, 0.82),
        jaw=rng.uniform(0.65, 0.9),
        brow_color=np.minimum(hair * 0.6, skin * 0.35),
        brow_thick=rng.uniform(0.05, 0.085),
        brow_gap=rng.uniform(0.16, 0.22),
        brow_arch=rng.uniform(0.0, 0.06),
        eye_y=rng.uniform(-0.2, -0.1),
        eye_dx=rng.uniform(0.27, 0.34),
        eye_rx=rng.uniform(0.11, 0.14),
        eye_ry=rng.uniform(0.05, 0.07),
        iris=_IRIS[rng.integers(len(_IRIS))],
        nose_tip=rng.uniform(0.2, 0.3),
        nose_w=rng.uniform(0.1, 0.14),
        mouth_y=rng.uniform(0.5, 0.58),
        mouth_w=rng.uniform(0.2, 0.26),
        lip_up=rng.uniform(0.035, 0.055),
        lip_lo=rng.uniform(0.045, 0.07),
        lip_color=np.clip(skin * 0.55 + np.array([150, 50, 55]) * 0.35, 0, 255),
    )


@lru_cache(maxsize=None)
def _circle(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], 1)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> np.ndarray:
    return _circle(n) * (rx, ry) + (cx, cy)


class _Canvas:
    """Draws face-unit polygons onto a pixel image through the affine M (sub-pixel, anti-aliased)."""

    def __init__(self, img: np.ndarray, m: np.ndarray) -> None:
        self.img, self.m = img, m
        self.rot16, self.shift16 = m[:, :2].T * 16, m[:, 2] * 16  # 4 fractional bits
        self.scale = float(np.hypot(m[0, 0], m[1, 0]))

    def px(self, pts: np.ndarray) -> np.ndarray:
        return pts @ self.m[:, :2].T + self.m[:, 2]

    def _fixed(self, pts: np.ndarray) -> list[np.ndarray]:
        return [(pts @ self.rot16 + self.shift16).round().astype(np.int32)]

    def fill(self, pts: np.ndarray, color: np.ndarray) -> None:
        cv2.fillPoly(self.img, self._fixed(pts), color.tolist(), cv2.LINE_AA, 4)

    def line(self, pts: np.ndarray, color: np.ndarray, width: float) -> None:
        thickness = max(1, int(round(width * self.scale)))
        cv2.polylines(self.img, self._fixed(pts), False, color.tolist(), thickness, cv2.LINE_AA, 4)


def _mix(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    return a + (b - a) * float(np.clip(w, 0, 1))


def _head(ident: Identity, mouth_open: float) -> np.ndarray:
    cos, s = _circle(48).T
    below = np.maximum(s, 0)
    x = ident.head_rx * cos * (1 - (1 - ident.jaw) * below ** 2)
    y = s * (1 + 0.12 * mouth_open * below)
    return np.stack([x, y], 1)


def _hair_back(ident: Identity) -> np.ndarray:
    rx = ident.head_rx * 1.18
    t = np.linspace(np.pi, 2 * np.pi, 20)
    arc = np.stack([rx * np.cos(t), -0.05 + 1.1 * np.sin(t)], 1)
    return np.vstack([arc, [[rx, 0.75], [rx * 0.7, 0.82], [-rx * 0.7, 0.82], [-rx, 0.75]]])


def _hair_cap(ident: Identity) -> np.ndarray:
    rx, ry = ident.head_rx * 1.05, 1.05
    side_y = ident.hairline + 0.3
    t0 = np.arcsin(np.clip(side_y / ry, -1, 1))  # side_y < 0: angle in (-pi/2, 0)
    t = np.linspace(np.pi - t0, 2 * np.pi + t0, 24)
    arc = np.stack([rx * np.cos(t), ry * np.sin(t)], 1)
    xe = abs(arc[0, 0])
    xs = np.linspace(xe, -xe, 15)
    fringe = np.stack([xs, ident.hairline + 0.3 * (np.abs(xs) / xe) ** 3], 1)
    return np.vstack([arc, fringe])


def _brow(ident: Identity, brow: float, inner: float) -> np.ndarray:
    """Right-hand brow (x > 0) as a tapered band; lowering also pulls it inward and slants it."""
    up = 0.15 * max(brow, 0) - 0.11 * max(-brow, 0)
    x_in = 0.1 - 0.04 * max(-brow, 0)
    x_out = ident.eye_dx + ident.eye_rx + 0.06
    y_base = ident.eye_y - ident.brow_gap - up
    y_in = y_base + 0.12 * max(-brow, 0) - 0.18 * inner
    y_out = y_base + 0.04 * inner
    t = _T9
    x = x_in + (x_out - x_in) * t
    y = y_in + (y_out - y_in) * t - ident.brow_arch * 4 * t * (1 - t)
    half = ident.brow_thick / 2 * (1 - 0.45 * t)
    return np.vstack([np.stack([x, y - half], 1), np.stack([x, y + half], 1)[::-1]])


def _eye(ident: Identity, eyes: float, cheek: float) -> tuple[np.ndarray, float, float]:
    """Right eye outline plus its upper and lower opening (face units)."""
    open_up = ident.eye_ry * np.clip(1 + 0.9 * eyes, 0.2, 2.0)
    open_lo = ident.eye_ry * (0.8 + 0.6 * max(eyes, 0)) * (1 - 0.6 * cheek) * (1 - 0.5 * max(-eyes, 0))
    cx = ident.eye_dx
    upper = np.stack([cx + ident.eye_rx * _ARC12_COS, ident.eye_y - open_up * _ARC12_SIN], 1)
    lower = np.stack([cx - ident.eye_rx * _ARC12_COS, ident.eye_y + open_lo * _ARC12_SIN], 1)
    return np.vstack([upper, lower]), open_up, open_lo


def _mouth(ident: Identity, c: np.ndarray) -> tuple[np.ndarray, ...]:
    """Upper lip, lower lip, cavity and upper-teeth polygons plus the closed-mouth line."""
    corner, opening, stretch = c[_C["lip_corner"]], max(c[_C["mouth_open"]], 0), max(c[_C["lip_stretch"]], 0)
    w = ident.mouth_w * (1 + 0.45 * stretch + 0.4 * max(corner, 0) - 0.15 * max(-corner, 0))
    gap = 0.36 * opening
    r = _SPAN17
    xs = w * r
    f = _SPAN17_PROFILE
    base = ident.mouth_y + 0.3 * gap - 0.06 * max(c[_C["nose_wrinkle"]], 0) - 0.26 * corner * r ** 2
    up_in, lo_in = base - gap / 2 * f, base + gap / 2 * f
    thin = 1 - 0.55 * stretch
    up_out = up_in - ident.lip_up * thin * f
    lo_out = lo_in + ident.lip_lo * thin * f
    teeth = up_in + min(0.35 * gap, 0.06) * f

    def band(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.vstack([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]])

    return band(up_out, up_in), band(lo_in, lo_out), band(up_in, lo_in), band(up_in, teeth), \
        np.stack([xs, base], 1)


def _draw_eyes(cv: _Canvas, ident: Identity, c: np.ndarray, gaze: float) -> None:
    skin, cheek = ident.skin, max(c[_C["cheek"]], 0)
    eye, open_up, open_lo = _eye(ident, c[_C["eyes"]], cheek)
    brow = _brow(ident, c[_C["brow"]], c[_C["brow_inner"]])
    lift = 0.15 * max(c[_C["brow"]], 0)  # the shadowed socket follows a raised brow up
    socket = _ellipse(ident.eye_dx, ident.eye_y - 0.03 - lift / 2, ident.eye_rx * 1.5,
                      ident.eye_ry * 1.6 + 0.05 + lift / 2)
    cheek_pts = _ellipse(ident.eye_dx + 0.02, ident.eye_y + 0.3 - 0.07 * cheek, 0.16, 0.09)
    centre_y, iris_ry = ident.eye_y + (open_lo - open_up) / 2, min(0.06, (open_up + open_lo) / 2)
    iris = _ellipse(ident.eye_dx + gaze, centre_y, 0.06, iris_ry, 16)
    pupil = _ellipse(ident.eye_dx + gaze, centre_y, 0.027, iris_ry * 0.45, 12)
    for side in (np.array([1.0, 1.0]), np.array([-1.0, 1.0])):  # right, then mirrored left
        if cheek > 0.05:
            cv.fill(cheek_pts * side, _mix(skin, np.array([235, 120, 110.0]), 0.35 * cheek))
        cv.fill(socket * side, skin * 0.68)
        cv.fill(eye * side, _mix(skin, np.array([235, 232, 228.0]), 0.45))
        cv.fill(iris * side, ident.iris)
        cv.fill(pupil * side, np.array([10, 10, 10.0]))
        cv.line(eye[:12] * side, skin * 0.35, 0.035)  # upper lid and lashes
        cv.fill(brow * side, ident.brow_color)


def _draw_nose(cv: _Canvas, ident: Identity, c: np.ndarray) -> None:
    skin, wrinkle = ident.skin, max(c[_C["nose_wrinkle"]], 0)
    tip, nw = ident.nose_tip - 0.04 * wrinkle, ident.nose_w * (1 + 0.25 * wrinkle)
    cv.line(np.array([[0.04, ident.eye_y + 0.04], [0.07, tip - 0.06]]), skin * 0.78, 0.03)
    cv.fill(_ellipse(0, tip, nw, 0.06, 16), skin * 0.85)
    for side in (1, -1):
        cv.fill(_ellipse(side * nw * 0.5, tip + 0.025, 0.035 * (1 + 0.3 * wrinkle), 0.018, 12), skin * 0.4)
    if wrinkle > 0.05:
        for k in range(3):
            y = ident.eye_y + 0.06 + 0.045 * k
            cv.line(np.array([[-0.07, y + 0.01], [0, y - 0.01], [0.07, y + 0.01]]),
                    _mix(skin, skin * 0.5, wrinkle), 0.02)
    fold = float(np.clip(0.5 * max(c[_C["cheek"]], 0) + 0.5 * max(c[_C["lip_corner"]], 0) + 0.6 * wrinkle, 0, 1))
    if fold > 0.05:  # nasolabial folds deepen with a smile, raised cheeks or a wrinkled nose
        pts = np.array([[nw + 0.03, tip - 0.01], [nw + 0.1, ident.mouth_y - 0.12],
                        [ident.mouth_w + 0.08, ident.mouth_y + 0.05]])
        for side in (1, -1):
            cv.line(pts * np.array([side, 1.0]), _mix(skin, skin * 0.6, fold), 0.02)


def draw_face(img: np.ndarray, ident: Identity, c: np.ndarray, m: np.ndarray, gaze: float) -> np.ndarray:
    """Draw in place; return the ground-truth face box (x, y, w, h) of the skin outline in pixels."""
    cv = _Canvas(img, m)
    head = _head(ident, max(c[_C["mouth_open"]], 0))
    if ident.hair_style == 2:
        cv.fill(_hair_back(ident), ident.hair)
    for side in (1, -1):  # ears
        cv.fill(_ellipse(side * ident.head_rx * 0.97, -0.02, 0.09, 0.17, 16), ident.skin * 0.88)
    cv.fill(head, ident.skin)
    _draw_eyes(cv, ident, c, gaze)
    _draw_nose(cv, ident, c)
    upper, lower, cavity, teeth, line = _mouth(ident, c)
    if c[_C["mouth_open"]] > 0.05:
        cv.fill(cavity, np.array([70, 20, 25.0]))
        cv.fill(teeth, _mix(ident.skin, np.array([235, 232, 222.0]), 0.6))
    cv.fill(upper, ident.lip_color)
    cv.fill(lower, ident.lip_color * 1.05)
    cv.line(line, ident.lip_color * 0.35, 0.03)
    if ident.hair_style:
        cv.fill(_hair_cap(ident), ident.hair)
    px = cv.px(head)
    return np.concatenate([px.min(0), px.max(0) - px.min(0)]).astype(np.float32)
