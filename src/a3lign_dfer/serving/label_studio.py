"""Annotation round trip with Label Studio: uncertain requests out as tasks, annotators' labels back in.

Out: the N unlabelled /predict requests the model was least sure of (lowest margin, top-1 minus
top-2 probability), taken in turn from each predicted class so one class the model likes does not
fill the batch, as tasks in Label Studio's JSON import format: `data` holds the media URL (the
request's crops as a short video, or its first crop image), the request id and what the model said;
the model's answer rides along as a `predictions` entry (a pre-annotation the annotator confirms or
corrects). `labeling_config` is the matching project interface (Video or Image + one Choices).

Back: Label Studio's JSON export (or JSON_MIN) read task by task; each task's latest submitted
annotation becomes the request's label, stored with source 'label-studio' through the log (the
latest label of a request wins, as for POST /feedback). Unknown request ids and labels the
answering model does not have are reported apart; the rest are stored.

Label Studio's formats: https://labelstud.io/guide/tasks (import), /guide/predictions
(pre-annotations), /guide/export (JSON, JSON_MIN), /guide/task_format (an annotated task).
"""
from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from a3lign_dfer.data.video_io import write_video
from a3lign_dfer.errors import ConfigError, MissingInput
from a3lign_dfer.serving.feedback_dataset import CROP_VIDEO_FPS, crop_frames
from a3lign_dfer.serving.prediction_log import (
    LoggedPrediction,
    PredictionLog,
    UnknownLabel,
    UnknownRequest,
)

CHOICES = "expression"           # the Choices control's name: `from_name` of every result
MEDIA = ("video", "image")       # the object tag, also the task's data key holding the URL (`$video`, `$image`)
LOCAL_FILES = "/data/local-files/?d="    # Label Studio serves files under LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT
SOURCE = "label-studio"


def labeling_config(classes: Iterable[str], media: str = "video") -> str:
    """The project's labeling interface: the request's media and one required single choice among the classes."""
    if media not in MEDIA:
        raise ConfigError(f"media must be one of {MEDIA}, got {media!r}")
    tag = "Video" if media == "video" else "Image"
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (f"<View>\n  <{tag} name=\"{media}\" value=\"${media}\"/>\n  <Header value=\"Which expression is it?\"/>\n"
            f"  <Choices name=\"{CHOICES}\" toName=\"{media}\" choice=\"single-radio\" showInline=\"true\" "
            f"required=\"true\">\n{choices}\n  </Choices>\n</View>\n")


def most_uncertain(predictions: Iterable[LoggedPrediction], n: int) -> list[LoggedPrediction]:
    """Up to n predictions with kept crops, lowest margin first within each predicted class, taken in turn from
    each class (the class whose most uncertain request is least certain goes first)."""
    by_class: dict[str, list[LoggedPrediction]] = {}
    for p in predictions:
        if p.crops_dir is not None and p.label is not None and p.margin is not None:
            by_class.setdefault(p.label, []).append(p)
    queues = [sorted(group, key=lambda p: (p.margin, p.time, p.request_id)) for group in by_class.values()]
    queues.sort(key=lambda q: (q[0].margin, q[0].label))
    turns = itertools.chain.from_iterable(itertools.zip_longest(*queues))
    return [p for p in turns if p is not None][:n]


def media_url(path: Path, document_root: Path, url_prefix: str = LOCAL_FILES) -> str:
    """The URL a task names `path` by: relative to the folder Label Studio serves (document_root), after the
    prefix (local-files serving by default; any static file server's base URL works alike)."""
    try:
        relative = path.resolve().relative_to(document_root.resolve())
    except ValueError:
        raise ConfigError(f"{path} is not under the document root {document_root} (--document-root, "
                          "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT): Label Studio could not serve it") from None
    return url_prefix + quote(relative.as_posix(), safe="/")


def write_media(prediction: LoggedPrediction, media: str, media_dir: Path) -> Path | None:
    """The file a task shows: the crops as a video under media_dir (written once), or the first crop image."""
    if media == "image":
        first = sorted(prediction.crops_dir.glob("*.jpg"))[:1]
        return first[0] if first else None
    path = media_dir / f"{prediction.request_id}.mp4"
    if not path.is_file():
        frames = crop_frames(prediction.crops_dir)
        if frames is None:
            return None
        media_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.mp4")
        write_video(frames, tmp, CROP_VIDEO_FPS)
        os.replace(tmp, path)
    return path


def task(prediction: LoggedPrediction, url: str, media: str) -> dict:
    """One task in Label Studio's import format, the model's answer as its pre-annotation."""
    top = max(prediction.probabilities.values()) if prediction.probabilities else None
    return {
        "data": {media: url, "request_id": prediction.request_id, "predicted": prediction.label,
                 "margin": prediction.margin, "time": prediction.time,
                 "model_version": prediction.model_version or prediction.artifact_sha256[:12]},
        "predictions": [{"model_version": prediction.model_version or prediction.artifact_sha256[:12],
                         "score": top,
                         "result": [{"from_name": CHOICES, "to_name": media, "type": "choices",
                                     "value": {"choices": [prediction.label]}}]}],
    }


@dataclass(frozen=True)
class TaskExport:
    tasks: list[dict]
    candidates: int                        # unlabelled /predict requests in the log
    without_crops: int                     # of those, not shown: no crops kept (or purged)
    per_class: dict[str, int]              # tasks per predicted class


def uncertain_tasks(log: PredictionLog, n: int, media: str, media_dir: Path, document_root: Path,
                    url_prefix: str = LOCAL_FILES) -> TaskExport:
    """The n most uncertain unlabelled requests as Label Studio tasks (their media written under media_dir)."""
    if media not in MEDIA:
        raise ConfigError(f"media must be one of {MEDIA}, got {media!r}")
    candidates = log.unlabelled("/predict")
    with_crops = [p for p in candidates if p.crops_dir is not None]
    tasks, per_class = [], {}
    for prediction in most_uncertain(with_crops, len(with_crops)):
        if len(tasks) == n:
            break
        path = write_media(prediction, media, media_dir)
        if path is None:                       # crops folder empty or unreadable: as if none were kept
            continue
        tasks.append(task(prediction, media_url(path, document_root, url_prefix), media))
        per_class[prediction.label] = per_class.get(prediction.label, 0) + 1
    return TaskExport(tasks, len(candidates), len(candidates) - len(with_crops), per_class)


@dataclass(frozen=True)
class AnnotatedLabel:
    request_id: str
    label: str
    task_id: int | str | None


@dataclass
class LabelImport:
    stored: list[AnnotatedLabel] = field(default_factory=list)
    unknown_ids: list[str] = field(default_factory=list)                     # request ids the log does not hold
    unknown_labels: list[AnnotatedLabel] = field(default_factory=list)       # not a class of the answering model
    unannotated: list[str] = field(default_factory=list)    # tasks without a submitted choice (request id or task)
    not_ours: list[str] = field(default_factory=list)       # tasks without a request_id (not made by `uncertain`)


def _choice(results: list[dict]) -> str | None:
    for result in results or []:
        if result.get("type") == "choices" and result.get("from_name") == CHOICES:
            chosen = (result.get("value") or {}).get("choices") or []
            if chosen:
                return chosen[0]
    return None


def _latest(annotations: list[dict]) -> dict | None:
    """The last submitted annotation (skipped ones, was_cancelled, do not count)."""
    kept = [a for a in annotations or [] if not a.get("was_cancelled") and _choice(a.get("result")) is not None]
    return max(kept, key=lambda a: (a.get("updated_at") or a.get("created_at") or "", str(a.get("id", ""))),
               default=None)


def read_export(payload: list[dict]) -> tuple[list[AnnotatedLabel], list[str], list[str]]:
    """(labels, tasks without a submitted choice, tasks without a request id) of a JSON or JSON_MIN export."""
    if not isinstance(payload, list):
        raise ConfigError("a Label Studio export is a JSON list of tasks (export type JSON or JSON_MIN)")
    labels, unannotated, not_ours = [], [], []
    for item in payload:
        task_id = item.get("id")
        if "data" in item or "annotations" in item:                 # JSON: the task with its annotations
            request_id = (item.get("data") or {}).get("request_id")
            latest = _latest(item.get("annotations"))
            label = _choice(latest["result"]) if latest else None
        else:                                                       # JSON_MIN: data fields and one column per control
            request_id = item.get("request_id")
            value = item.get(CHOICES)
            label = value if isinstance(value, str) else ((value or {}).get("choices") or [None])[0]
        if not request_id:
            not_ours.append(str(task_id))
        elif label is None:
            unannotated.append(request_id)
        else:
            labels.append(AnnotatedLabel(request_id, label, task_id))
    return labels, unannotated, not_ours


def load_export(path: Path) -> list[dict]:
    if not path.is_file():
        raise MissingInput(f"Label Studio export not found: {path} (Export > JSON in the project)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not a Label Studio JSON export ({err})") from None


def import_labels(log: PredictionLog, payload: list[dict],
                  model_classes: dict[str, list[str]] | None = None) -> LabelImport:
    """Store each annotated task's label in the log (source 'label-studio'); bad ones are reported, not fatal."""
    labels, unannotated, not_ours = read_export(payload)
    result = LabelImport(unannotated=unannotated, not_ours=not_ours)
    for item in labels:
        try:
            log.add_feedback(item.request_id, item.label, SOURCE, model_classes)
        except UnknownRequest:
            result.unknown_ids.append(item.request_id)
        except UnknownLabel:
            result.unknown_labels.append(item)
        else:
            result.stored.append(item)
    return result
