"""A timeline on disk: the CSV table (one row per window) and the PNG of class probabilities over time."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from a3lign_dfer.inference.timeline import TimelinePoint

BOX = ("face_x", "face_y", "face_width", "face_height")


def table(points: list[TimelinePoint], classes: list[str]) -> pd.DataFrame:
    """start, end, label, detection_rate, the face box, then one probability column per class (empty where a
    window had too few frames with a face)."""
    rows = [{"start": p.start, "end": p.end, "label": p.label, "detection_rate": p.detection_rate,
             **dict(zip(BOX, p.face_box or [None] * 4)), **(p.probabilities or dict.fromkeys(classes))}
            for p in points]
    return pd.DataFrame(rows, columns=["start", "end", "label", "detection_rate", *BOX, *classes])


def write(points: list[TimelinePoint], classes: list[str], csv: Path, title: str) -> Path:
    """The table at `csv` and its plot beside it; the plot's path."""
    csv.parent.mkdir(parents=True, exist_ok=True)
    table(points, classes).to_csv(csv, index=False)
    png = csv.with_suffix(".png")
    plot(points, classes, png, title)
    return png


def plot(points: list[TimelinePoint], classes: list[str], path: Path, title: str) -> None:
    """Each class's probability at each window's centre, the label strip underneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = table(points, classes)
    centre = (frame["start"] + frame["end"]) / 2
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(classes)}
    fig, (ax, strip) = plt.subplots(2, 1, figsize=(10, 4.2), sharex=True, height_ratios=[5, 1])
    for c in classes:
        ax.plot(centre, frame[c], color=colours[c], label=c, linewidth=1.6, marker="o" if len(frame) < 40 else None,
                markersize=3)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    half = (frame["end"] - frame["start"]).min() / 2 if len(frame) else 0
    step = (centre.diff().median() if len(frame) > 1 else 2 * half) or 2 * half
    for x, label in zip(centre, frame["label"]):
        strip.barh(0, step, left=x - step / 2, color=colours[label] if isinstance(label, str) else "#dddddd")
    strip.set_yticks([])
    strip.set_xlabel("seconds (window centre)")
    strip.set_ylabel("label", rotation=0, ha="right", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
