"""The report files one stage writes and others read: each file's path and schema, in one place.

Writers build the dataclass (an unknown or missing key fails there, in the stage) and
write it with `write`; readers (the reports page, the curves, the release gate, the
multi-seed summary, export's manifest, the README results block) read with
`ReportFile.read`, which refuses an unknown, missing or wrongly typed key. So renaming
a key fails a test, not a page. Paths are relative to the reports folder; dvc.yaml
names the same paths (tests/test_report_files.py holds the two together). A field
that is None and defaults to None is left out of the file (e.g. the small CLIP's
numbers when a real CLIP skips pretraining).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from a3lign_dfer.config.schema import build, json_ready

T = TypeVar("T")


@dataclass(frozen=True)
class FaceCropReport:
    videos: int
    accepted: int
    rejected: int
    frames: int
    frame_folders: int
    detection_rate: float | None             # None without videos (frame folders only)
    frames_per_second: float
    seconds: float
    rejected_by_problem: dict[str, int]
    shards: int
    shards_reused: int                       # finished by an earlier, interrupted run with the same inputs
    workers: int                             # Dask workers the shards ran on


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    clips: int
    clips_per_split: dict[str, int]
    class_counts: dict[str, dict[str, int]]
    smallest_class: dict[str, dict]          # split -> {"class", "clips"}
    clips_without_detection_rate: int
    expectations: list[dict]                 # {"expectation", "success", ...} per expectation
    skipped: list[str]
    failures: list[str]
    data_docs: str


@dataclass(frozen=True)
class PretrainClipReport:
    skipped: bool
    reason: str | None = None                # why nothing was pretrained (a real CLIP is configured)
    train_frames: int | None = None
    distinct_captions: int | None = None
    final_loss: float | None = None
    zero_shot_frame_uar_before: float | None = None
    zero_shot_frame_accuracy: float | None = None
    zero_shot_frame_uar: float | None = None
    zero_shot_frames: int | None = None
    zero_shot_choices: int | None = None
    zero_shot_chance: float | None = None
    device: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class FeaturesReport:
    embed_dim: int
    train_clips: int
    train_views: int
    val_clips: int
    val_views: int
    test_clips: int
    test_views: int
    images_encoded: int                      # by this run (not by the shards it reused)
    seconds: float
    images_per_second: float
    shards: int
    shards_reused: int                       # finished by an earlier, interrupted run with the same inputs
    workers: int                             # Dask workers the shards ran on


@dataclass(frozen=True)
class ShuffledReport:
    """The same clips with their frames in random order (paper Table 5)."""

    seeds: list[int]
    war: float
    uar: float
    war_drop: float
    uar_drop: float
    per_class_recall: dict[str, float]
    per_class_drop: dict[str, float]


@dataclass(frozen=True)
class SplitReport:
    """A model on one split (val, at the end of a training stage)."""

    war: float
    uar: float
    per_class_recall: dict[str, float]
    absent_classes: list[str]
    num_samples: int
    shuffled: ShuffledReport


@dataclass(frozen=True)
class PhaseRun:
    """One growth phase as planned: `epochs` epochs at `depth` layers of the growing encoder."""

    epochs: int
    depth: int | None


@dataclass(frozen=True)
class TrainingSummary:
    """What a training stage reports (DVCLive's summary), val only: choices are made on these."""

    stage: str
    train_seed: int
    selected: dict[str, Any]                 # the final phase's val-selected epoch row
    layers: dict[str, int]
    plan: list[PhaseRun]                     # what was trained (the curves mark phases from this)
    phases: list[dict[str, Any]]             # each phase's val-selected epoch row
    val: SplitReport
    seconds: float


@dataclass(frozen=True)
class TrainingReport(TrainingSummary):
    step: int                                # epochs logged (DVCLive adds it)


@dataclass(frozen=True)
class EvaluationReport:
    checkpoint: str
    clip_model: str
    train_seed: int | None
    classes: list[str]
    chance_uar: float
    num_test_clips: int
    war: float
    uar: float
    per_class_recall: dict[str, float]
    absent_classes: list[str]
    table4: list[dict[str, Any]]             # one row per Table 4 row: paradigm, layers, war, uar, stage, ...


@dataclass(frozen=True)
class ShuffleCheckReport:
    checkpoint: str
    seeds: list[int]
    num_test_clips: int
    war: float
    uar: float
    per_class_recall: dict[str, float]
    shuffled: ShuffledReport
    table5: list[dict[str, Any]]


@dataclass(frozen=True)
class Parity:
    clips: int
    max_abs_logit_difference: float
    top1_agreement: float
    logit_atol: float
    passed: bool


@dataclass(frozen=True)
class Int8Gate:
    """The INT8 image encoder (+ FP32 head) against FP32 ONNX Runtime on the parity clips, and the verdict."""

    method: str                              # export.int8.method: dynamic, static or none
    releasable: bool                         # predict/serve --precision int8 refuse the artifact unless true
    reason: str | None = None                # why not, when not releasable
    file: str | None = None                  # the INT8 graph in the artifact (none when method is none)
    calibration_frames: int | None = None    # static: training frames the activation ranges came from
    clips: int | None = None
    top1_agreement: float | None = None      # share of clips whose INT8 top-1 is FP32's
    min_agreement: float | None = None
    max_abs_logit_difference: float | None = None
    per_class_recall_fp32: dict[str, float] | None = None      # against the clips' true labels
    per_class_recall_int8: dict[str, float] | None = None
    max_recall_gap: float | None = None      # the gate: |INT8 - FP32| recall of every class within this
    worst_recall_gap: float | None = None


@dataclass(frozen=True)
class ExportReport:
    parity: Parity                           # ONNX Runtime vs PyTorch on the test clips
    parity_split: Parity                     # image_encoder.onnx then head.onnx vs model.onnx, same clips
    int8: Int8Gate
    tensorrt: dict[str, Any]                 # status, reason; the FP16 engine's parity where one was built
    onnx_megabytes: float
    opset: int
    files: int
    drift_reference: dict[str, Any]


@dataclass(frozen=True)
class SourceCheckpoint:
    path: str
    sha256: str
    stage: str
    train_seed: int | None


@dataclass(frozen=True)
class TestMetrics:
    war: float
    uar: float
    shuffled_uar_drop: float
    num_test_clips: int


@dataclass(frozen=True)
class DeployManifest:
    """models/deploy/manifest.json: what the artifact is; serving refuses files that do not match `files`."""

    clip_model: str
    classes: list[str]
    source_checkpoint: SourceCheckpoint
    opset: int
    io: dict[str, dict[str, list]]           # inputs/outputs: name -> shape (None: the batch axis)
    max_batch: int
    test_metrics: TestMetrics
    parity_onnxruntime_vs_torch: Parity
    tensorrt: dict[str, Any]
    drift_reference: dict[str, Any]
    versions: dict[str, str | None]
    files: dict[str, str]                    # every other file of the artifact: sha256
    # The split graphs and the INT8 image encoder; None in artifacts exported before them (served in FP32 only).
    split_io: dict[str, dict[str, dict[str, list]]] | None = None   # image_encoder, head: io as above
    parity_split_vs_onnx: Parity | None = None
    int8: Int8Gate | None = None


@dataclass(frozen=True)
class ModelScores:
    """One model on one set of clips."""

    war: float
    uar: float
    per_class_recall: dict[str, float]


@dataclass(frozen=True)
class ChallengerSet:
    """The candidate and prod on one set of clips, and what the champion/challenger gate made of it."""

    name: str                                # test (the pipeline's test split) or feedback (held-out labelled feedback)
    clips: int                               # clips every model was scored on
    skipped: int                             # listed clips that could not be read (a video without a usable face)
    gated: bool                              # whether this set can refuse the candidate
    failures: list[str]                      # why it refuses (empty: it passes, or it is not gated)
    candidate: ModelScores | None = None     # None where the set has no usable clip
    prod: ModelScores | None = None          # None on a first release (no version in prod)
    note: str | None = None                  # why not gated, or how the models' inputs differ


@dataclass(frozen=True)
class ChallengerReport:
    """reports/release/challenger.json: the release's candidate (models/deploy) against the version in prod."""

    verdict: str                             # passed | refused | no_prod (first release) | not_comparable
    candidate_sha256: str                    # manifest sha256 of models/deploy
    prod_version: str | None
    prod_sha256: str | None
    max_uar_drop: float                      # params release.challenger, as applied
    max_class_recall_drop: float
    min_feedback_clips: int
    sets: list[ChallengerSet]


@dataclass(frozen=True)
class ReportFile(Generic[T]):
    path: str                                # relative to the reports folder (the artifact's, for the manifest)
    schema: type[T]
    writer: str                              # the command that writes it (the dvc.yaml stage of that name)

    def read(self, reports: Path) -> T | None:
        """The report, or None where the stage has not run; a file of another shape raises."""
        target = reports / self.path
        return parse(self.schema, target.read_text(), self.path) if target.is_file() else None

    def write(self, path: Path, report: T | dict) -> T:
        """Write `report` (the dataclass, or a dict checked against it) to `path`, where dvc.yaml puts it."""
        if isinstance(report, dict):
            report = from_dict(self.schema, report, f"{self.writer} writing {self.path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_json(report), indent=2))
        return report


FACE_CROP = ReportFile("face_crop.json", FaceCropReport, "face_crop")
VALIDATION = ReportFile("validation.json", ValidationReport, "validate")
PRETRAIN_CLIP = ReportFile("pretrain_clip.json", PretrainClipReport, "pretrain_clip")
FEATURES = ReportFile("features.json", FeaturesReport, "features")
EVALUATION = ReportFile("eval/metrics.json", EvaluationReport, "evaluate")
SHUFFLE_CHECK = ReportFile("shuffle/metrics.json", ShuffleCheckReport, "shuffle_check")
EXPORT = ReportFile("export.json", ExportReport, "export")
FILES = (FACE_CROP, VALIDATION, PRETRAIN_CLIP, FEATURES, EVALUATION, SHUFFLE_CHECK, EXPORT)
DEPLOY_MANIFEST = ReportFile("manifest.json", DeployManifest, "export")     # in models/deploy, not reports/
# Written by each release, not by a dvc.yaml stage (so not in FILES): an operating record, like the drift reports.
RELEASE_CHALLENGER = ReportFile("release/challenger.json", ChallengerReport, "release")


def training(stage: str) -> ReportFile[TrainingReport]:
    """A training stage's metrics (DVCLive writes them under reports/train/<stage>/)."""
    return ReportFile(f"train/{stage}/metrics.json", TrainingReport, f"train --stage {stage}")


def parse(schema: type[T], text: str, source: str) -> T:
    return from_dict(schema, json.loads(text), source)


def from_dict(schema: type[T], raw: dict[str, Any], source: str) -> T:
    """`raw` as `schema`, refusing an unknown, missing or wrongly typed key (named with `source`)."""
    return build(schema, raw, source=source)


def to_json(report: Any) -> dict[str, Any]:
    """Plain JSON in field order; optional fields that are None are left out."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                    if not (getattr(value, f.name) is None and f.default is None)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return json_ready(plain(report))

