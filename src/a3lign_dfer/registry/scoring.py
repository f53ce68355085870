"""Several deployment artifacts scored on the same clips, through the product's own inference path.

Each model is an inference.predict_videos.Predictor on its deploy folder (verified file by file,
run by a backend). The pipeline's test split is read from the face crops the face_crop stage
stored: sampled and normalised as export's parity clips and the feature cache were
(ImageSpec.graph_input), so models that share a preprocessing spec get the identical input
tensors, and no test video is decoded or face-tracked again. The labelled feedback (the `csv`
importer's format that `feedback export` writes) is read from its videos as `predict` reads any
video (video_input). A clip is read once per distinct preprocessing spec; one that cannot be read
(a feedback video without a usable face) is skipped for every model and counted.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from a3lign_dfer.data import manifest
from a3lign_dfer.data.frame_folders import load_frames
from a3lign_dfer.data.sampling import segment_indices
from a3lign_dfer.errors import MissingInput
from a3lign_dfer.evaluation.metrics import recall_metrics
from a3lign_dfer.inference.predict_videos import Predictor
from a3lign_dfer.inference.video_input import InputError, PreprocessSpec, video_input
from a3lign_dfer.report_files import ModelScores

BACKEND = "onnxruntime"                 # model.onnx: the graph export checks against PyTorch, on any machine
BATCH = 8                               # clips per backend call


@dataclass(frozen=True)
class Clip:
    source: Path                        # a stored crop folder or a video file
    label: int                          # index into the classes


@dataclass(frozen=True)
class Scored:
    """What the models predicted on a set's readable clips."""

    labels: np.ndarray                  # (clips,) true class indices
    predicted: dict[str, np.ndarray]    # model name -> (clips,) predicted class indices
    skipped: int

    def scores(self, name: str, classes: Sequence[str]) -> ModelScores | None:
        if not len(self.labels):
            return None
        m = recall_metrics(self.labels, self.predicted[name], tuple(classes))
        return ModelScores(m["war"], m["uar"], m["per_class_recall"])


def stored_crop_input(clip: Clip, spec: PreprocessSpec) -> np.ndarray:
    """A test clip's stored crops, sampled at the segment centres and normalised, as export's parity clips."""
    frames = load_frames(clip.source)
    return spec.image.graph_input(frames[segment_indices(len(frames), spec.frames, train=False)])


def video_file_input(clip: Clip, spec: PreprocessSpec) -> np.ndarray:
    """A video as `predict` reads it: face track, crops, the JPEG round trip, normalisation."""
    return video_input(clip.source, spec)


def test_split_clips(crops_dir: Path, classes: Sequence[str]) -> list[Clip]:
    """The test rows of the face_crop stage's manifest; MissingInput when the pipeline has not made them."""
    path = crops_dir / "manifest.parquet"
    if not path.is_file():
        raise MissingInput(f"cannot compare with prod: {path} not found (the face_crop stage's test crops; "
                           "run the pipeline, or pass --crops)")
    rows = manifest.read(path, tuple(classes))
    rows = rows[rows["split"] == "test"]
    return [Clip(crops_dir / row.path, int(row.label_idx)) for row in rows.itertuples()]


@dataclass(frozen=True)
class FeedbackClips:
    clips: list[Clip]
    note: str | None                    # why there are none, or which rows were left out


def feedback_clips(feedback_dir: Path, classes: Sequence[str]) -> FeedbackClips:
    """The held-out (`test`) rows of the feedback export, paths relative to its folder; none is no error."""
    listing = feedback_dir / "labels.csv"
    if not listing.is_file():
        return FeedbackClips([], f"no labelled feedback ({listing} not found)")
    try:
        table = pd.read_csv(listing, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        table = pd.DataFrame(columns=["path", "label", "split"])
    if "split" in table:
        table = table[table["split"].str.strip() == "test"]
    if table.empty:
        return FeedbackClips([], f"no labelled feedback ({listing} has no test rows)")
    index = {c.lower(): i for i, c in enumerate(classes)}
    known = table["label"].str.strip().str.lower().isin(index)
    clips = [Clip(feedback_dir / row.path.strip(), index[row.label.strip().lower()])
             for row in table[known].itertuples()]
    unknown = int((~known).sum())
    return FeedbackClips(clips, f"{unknown} row(s) with a label outside the model's classes left out" if unknown
                         else None)


def input_key(spec: PreprocessSpec) -> PreprocessSpec:
    """What decides a model's input: its spec, less face_crop.workers (how many processes crop, not how)."""
    if isinstance(spec, PreprocessSpec):
        return replace(spec, face_crop=replace(spec.face_crop, workers=0))
    return spec


def score(models: dict[str, Predictor], clips: list[Clip], read: Callable[[Clip, PreprocessSpec], np.ndarray],
          batch: int = BATCH) -> Scored:
    """Every model's predicted class for every readable clip; each clip read once per distinct input_key."""
    labels: list[int] = []
    predicted: dict[str, list[np.ndarray]] = {name: [] for name in models}
    skipped = 0
    specs = {input_key(m.spec): m.spec for m in models.values()}
    for chunk in _chunks(clips, batch):
        inputs: dict[PreprocessSpec, list[np.ndarray]] = {key: [] for key in specs}
        for clip in chunk:
            try:
                read_once = {key: read(clip, spec) for key, spec in specs.items()}
            except InputError:
                skipped += 1
                continue
            labels.append(clip.label)
            for key, x in read_once.items():
                inputs[key].append(x)
        if not any(inputs.values()):
            continue
        for name, model in models.items():
            frames = np.stack(inputs[input_key(model.spec)])
            _, probabilities, _ = model.run(np.ascontiguousarray(frames, dtype=np.float32))
            predicted[name].append(probabilities.argmax(axis=1))
    return Scored(np.asarray(labels, dtype=np.int64),
                  {n: np.concatenate(p) if p else np.zeros(0, np.int64) for n, p in predicted.items()}, skipped)


def _chunks(items: list[Clip], size: int) -> Iterator[list[Clip]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def input_note(models: dict[str, Predictor]) -> str | None:
    """How the models' inputs differ, where their preprocessing specs do (None: identical input tensors)."""
    specs = {name: input_key(m.spec) for name, m in models.items()}
    if len(set(specs.values())) == 1:
        return None
    parts = []
    for field in ("frames", "image", "face_crop"):
        values = {name: getattr(spec, field) for name, spec in specs.items()}
        if len(set(values.values())) > 1:
            parts.append(field)
    return (f"the models' preprocessing differs ({', '.join(parts)} in preprocess.json): each got its own input "
            "from the same clips" + ("; the test split's stored crops follow the pipeline's face_crop settings"
                                     if "face_crop" in parts else ""))
