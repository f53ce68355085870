"""Action-unit-like expression controls, their time course and their captions.

Every frame of a synthetic clip is drawn from a vector of CONTROLS, so the caption of
a frame can be read off the very numbers that drew it (frame-level text supervision
that is exact by construction).
"""
from __future__ import annotations

import numpy as np

# Signed controls run -1..1 (e.g. brow: lowered..raised), the others 0..1.
CONTROLS = ("brow", "brow_inner", "eyes", "cheek", "lip_corner", "mouth_open", "lip_stretch",
            "nose_wrinkle")
_INDEX = {name: i for i, name in enumerate(CONTROLS)}
_LOWER = np.array([-1 if name in ("brow", "brow_inner", "eyes", "lip_corner") else 0 for name in CONTROLS])


def as_vector(**values: float) -> np.ndarray:
    vec = np.zeros(len(CONTROLS), np.float32)
    for name, value in values.items():
        vec[_INDEX[name]] = value
    return vec


# Apex of each class at full intensity. fear has no prototype of its own: it is the
# time-reversed surprise clip (see render.render_clip), so it shares surprise's frames.
PROTOTYPES = {
    "happy": as_vector(cheek=0.9, lip_corner=1.0, eyes=-0.2, mouth_open=0.2),
    "sad": as_vector(lip_corner=-0.9, eyes=-0.5, brow_inner=1.0),
    "neutral": as_vector(),
    "angry": as_vector(brow=-1.0, lip_stretch=0.9, eyes=0.1),
    "surprise": as_vector(brow=1.0, eyes=1.0, mouth_open=0.9),
    "disgust": as_vector(nose_wrinkle=1.0, lip_corner=-0.6, brow=-0.5, eyes=-0.5),
}
PROTOTYPES["fear"] = PROTOTYPES["surprise"]
# MAFW's classes (data.importers.mafw.ORDER): its names for four of the above, and its four
# classes DFEW lacks, each apart from every other apex in what the caption names.
PROTOTYPES |= {"anger": PROTOTYPES["angry"], "happiness": PROTOTYPES["happy"], "sadness": PROTOTYPES["sad"],
               "contempt": as_vector(lip_corner=0.5, lip_stretch=0.6, eyes=-0.6),
               "anxiety": as_vector(brow_inner=0.8, eyes=0.7, lip_stretch=0.6),
               "helplessness": as_vector(brow_inner=0.9, lip_corner=-0.5, mouth_open=0.6),
               "disappointment": as_vector(lip_corner=-0.7, eyes=-0.8, brow=-0.4)}

THRESHOLD = 0.3  # a control drives the caption once it passes this magnitude

# (control, sign, phrase): phrase is used when sign * value > THRESHOLD.
_PHRASES = (
    ("brow", +1, "raised eyebrows"),
    ("brow", -1, "lowered, furrowed eyebrows"),
    ("brow_inner", +1, "eyebrows raised at the inner corners"),
    ("eyes", +1, "wide open eyes"),
    ("eyes", -1, "narrowed eyes"),
    ("cheek", +1, "raised cheeks"),
    ("nose_wrinkle", +1, "a wrinkled nose"),
    ("lip_corner", +1, "lip corners pulled up into a smile"),
    ("lip_corner", -1, "lip corners pulled down"),
    ("lip_stretch", +1, "tightly stretched lips"),
    ("mouth_open", +1, "an open mouth"),
)


def caption_for(controls: np.ndarray) -> str:
    """Deterministic sentence naming every control past THRESHOLD."""
    parts = [phrase for name, sign, phrase in _PHRASES if sign * controls[_INDEX[name]] > THRESHOLD]
    if not parts:
        return "a face with a neutral expression"
    if len(parts) == 1:
        return f"a face with {parts[0]}"
    return f"a face with {', '.join(parts[:-1])} and {parts[-1]}"


def envelope(n: int, start: float, onset: float, apex: float, offset: float) -> np.ndarray:
    """Onset-apex-offset curve over n frames: 0 -> linear rise -> 1 -> linear fall -> 0."""
    t = np.arange(n, dtype=np.float64)
    rise = np.clip((t - start + 1) / max(onset, 1e-6), 0, 1)
    fall = np.clip((start + onset + apex + offset - t) / max(offset, 1e-6), 0, 1)
    return np.minimum(rise, fall).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Slowly varying per-control jitter, so no two clips of a class are identical."""
    knots = rng.normal(0, scale, size=(max(2, n // 8 + 2), len(CONTROLS)))
    x = np.linspace(0, len(knots) - 1, n)
    return np.stack([np.interp(x, np.arange(len(knots)), k) for k in knots.T], 1).astype(np.float32)


def expression_curve(label: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Controls [n, len(CONTROLS)] of one clip of class `label` (before any time reversal).

    surprise (and fear, before it is reversed) has a fast onset of 1-3 frames, a hold
    and a slow offset over many frames; the other classes rise and fall at random pace.
    """
    if label not in PROTOTYPES:
        raise ValueError(f"no synthetic prototype for class {label!r}; known: {sorted(PROTOTYPES)}")
    intensity = rng.uniform(0.6, 1.0)
    if label in ("surprise", "fear"):
        start = rng.uniform(0.05, 0.2) * n
        onset = float(rng.integers(1, 4))
        apex = rng.uniform(0.1, 0.25) * n
        offset = rng.uniform(0.5, 0.8) * n
    else:
        start = rng.uniform(0.0, 0.25) * n
        onset = rng.uniform(0.15, 0.35) * n
        apex = rng.uniform(0.15, 0.4) * n
        offset = rng.uniform(0.15, 0.4) * n
    curve = envelope(n, start, onset, apex, offset)[:, None] * (intensity * PROTOTYPES[label])[None]
    curve += _smooth_noise(rng, n, 0.06)
    return np.clip(curve, _LOWER, 1).astype(np.float32)
