"""The labelled requests of the prediction log as a dataset in the `csv` importer's layout (data/feedback).

    data/feedback/labels.csv          path,label,split,clip_id (one row per request, the log's order)
    data/feedback/videos/<id>.mp4     the request's kept face crops, re-encoded as a short video

The crops are the frames the model saw, face crops already; as a video, the face crop stage
finds the face in them again and crops it as it crops any video (tests/test_feedback.py checks
this with the project's detector on crops of a real face photo). A request's split is fixed by a
hash of its id, so it never moves between train and test from one export to the next: `train`
rows join the pipeline's training data (data.extra_sources), `test` rows are the held-out
labelled feedback the release gate scores apart.

An export writes what the log holds now. A request whose crops were not kept cannot be shown to
the model again and is skipped (named in the result). A video an earlier export wrote is kept
even when the log's crops have since expired: the dataset, versioned, is the durable copy; a
video no longer listed is deleted. Nothing here imports the service.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.data.video_io import write_video
from a3lign_dfer.serving.prediction_log import LabelledRequest, PredictionLog

LABELS = "labels.csv"
VIDEOS = "videos"
COLUMNS = ("path", "label", "split", "clip_id")
SPLITS = ("train", "test")
# The crops are the segment centres of the upload (features.num_frames of them, 16), not consecutive frames:
# 8 fps makes them a 2 s clip, and at or below face_crop.detect_fps the detector runs on every one.
CROP_VIDEO_FPS = 8


def split_of(request_id: str, test_fraction: float) -> str:
    """`test` or `train`, the same for a request on every export and machine: sha256 of its id as a fraction."""
    share = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2 ** 64
    return "test" if share < test_fraction else "train"


@dataclass(frozen=True)
class FeedbackExport:
    """What an export wrote (plain values: `dataclasses.asdict` of it is JSON)."""

    out_dir: str
    exported: int                                  # rows of labels.csv
    encoded: int                                   # videos written by this export (the rest were there already)
    skipped_without_crops: list[str]               # request ids: no crops kept (or purged) and no earlier video
    skipped_unknown_label: list[str]               # request ids: the true label is not one of `classes`
    per_class: dict[str, int]
    per_split: dict[str, int]
    per_split_and_class: dict[str, dict[str, int]]


def crop_frames(crops_dir: Path) -> np.ndarray | None:
    """The request's crops (frame_00.jpg ...) as RGB uint8 (frames, H, W, 3) with even sides (yuv420p), None when
    there are none or one does not decode."""
    files = sorted(crops_dir.glob("*.jpg")) if crops_dir is not None and crops_dir.is_dir() else []
    frames = []
    for f in files:
        image = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if image is None:
            return None
        if frames and image.shape != frames[0].shape:
            image = cv2.resize(image, frames[0].shape[1::-1], interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if not frames:
        return None
    clip = np.stack(frames)
    pad_h, pad_w = clip.shape[1] % 2, clip.shape[2] % 2
    return np.pad(clip, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else clip


def write_labels(rows: list[tuple[str, str, str, str]], path: Path) -> None:
    """labels.csv (the header alone when there are no rows), replaced whole so a reader never sees half of it."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text.getvalue())
    os.replace(tmp, path)


def _video(request: LabelledRequest, videos: Path) -> tuple[Path | None, bool]:
    """(the request's video, whether this call wrote it); (None, False) without crops or an earlier video."""
    path = videos / f"{request.request_id}.mp4"
    if path.is_file():
        return path, False
    frames = crop_frames(request.crops_dir) if request.crops_dir is not None else None
    if frames is None:
        return None, False
    tmp = path.with_name(f".{path.stem}.tmp.mp4")
    write_video(frames, tmp, CROP_VIDEO_FPS)
    os.replace(tmp, path)
    return path, True


def export_feedback(log: PredictionLog, out_dir: str | Path, classes: list[str] | tuple[str, ...],
                    test_fraction: float) -> FeedbackExport:
    """Write out_dir/labels.csv and out_dir/videos/ from the log's labelled /predict requests (see the module)."""
    out_dir = Path(out_dir)
    videos = out_dir / VIDEOS
    videos.mkdir(parents=True, exist_ok=True)
    rows, encoded, no_crops, unknown = [], 0, [], []
    for request in log.labelled():
        if request.label not in classes:
            unknown.append(request.request_id)
            continue
        video, wrote = _video(request, videos)
        if video is None:
            no_crops.append(request.request_id)
            continue
        encoded += wrote
        rows.append((f"{VIDEOS}/{video.name}", request.label, split_of(request.request_id, test_fraction),
                     request.request_id))
    listed = {Path(r[0]).name for r in rows}
    for stale in videos.glob("*.mp4"):
        if stale.name not in listed:
            stale.unlink()
    write_labels(rows, out_dir / LABELS)
    table = {s: {c: sum(1 for r in rows if r[2] == s and r[1] == c) for c in classes} for s in SPLITS}
    return FeedbackExport(str(out_dir), len(rows), encoded, no_crops, unknown,
                          {c: sum(table[s][c] for s in SPLITS) for c in classes},
                          {s: sum(table[s].values()) for s in SPLITS}, table)
