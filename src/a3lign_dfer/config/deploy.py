"""params.yaml sections of the deployment artifact (export, its drift profile, the release gate), and its folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.config.data import DataConfig, FaceCropConfig

DEPLOY_DIR = Path("models/deploy")    # export's output (dvc.yaml): what predict, timeline, serve and drift read
BACKENDS = ("torch", "onnxruntime", "tensorrt")          # how models/deploy runs (inference.backends)
PRECISIONS = ("fp32", "int8")                            # of the image encoder (predict/serve --precision)
INT8_METHODS = ("dynamic", "static", "none")             # how export quantizes the image encoder (export.int8)
EMBEDDING_DRIFT_METHODS = ("model", "mmd", "ratio", "distance")


@dataclass(frozen=True)
class Int8Config:
    """The INT8 image encoder export writes (ONNX Runtime quantization) and the gate that may release it."""

    method: str                      # dynamic | static | none (no INT8 graph)
    calibration_clips: int           # static: training clips whose frames calibrate the activation ranges
    min_agreement: float             # releasable only if top-1 agrees with FP32 on at least this share of test clips
    max_recall_gap: float            # and every class's test recall is within this of FP32's

    def __post_init__(self) -> None:
        if self.method not in INT8_METHODS:
            raise ValueError(f"export.int8.method must be one of {INT8_METHODS}, got {self.method!r}")
        if self.calibration_clips < 1 or not 0 <= self.min_agreement <= 1 or self.max_recall_gap < 0:
            raise ValueError("export.int8: calibration_clips >= 1, min_agreement in [0, 1], max_recall_gap >= 0")


@dataclass(frozen=True)
class ExportConfig:
    max_batch: int
    parity_clips: int
    parity_atol: float
    min_frames: int
    int8: Int8Config


@dataclass(frozen=True)
class EmbeddingDriftConfig:
    """The whole-embedding test (Evidently's EmbeddingsDrift) on the PCA components."""

    method: str                      # model, mmd, ratio or distance (Evidently's embedding drift methods)
    threshold: float                 # drifted when the method's score is above this

    def __post_init__(self) -> None:
        if self.method not in EMBEDDING_DRIFT_METHODS:
            raise ValueError(f"drift.embedding.method must be one of {EMBEDDING_DRIFT_METHODS}, got {self.method!r}")


@dataclass(frozen=True)
class DriftConfig:
    """The drift monitor's reference profile and thresholds, saved into models/deploy by export."""

    pca_components: int              # embedding components (PCA fitted on the training clips)
    column_p_value: float            # a column drifted (in the report and the share) when its p-value is below this
    drifted_share: float             # drift flagged when more than this share of input columns drifted,
    alarm_p_value: float             # or any one input column's p-value is below this,
    class_mix_p_value: float         # or the predicted-class mix test's p-value is below this (0: never),
    embedding: EmbeddingDriftConfig  # or the embedding as a whole drifted

    def __post_init__(self) -> None:
        if not (0 < self.column_p_value < 1 and 0 < self.alarm_p_value < 1 and 0 <= self.class_mix_p_value < 1
                and 0 <= self.drifted_share <= 1 and self.pca_components >= 1):
            raise ValueError("drift: column_p_value and alarm_p_value must be in (0, 1), class_mix_p_value in "
                             "[0, 1), drifted_share in [0, 1], pca_components >= 1")


PROMOTIONS = ("explicit", "after_gate")                 # when a release assigns prod (release.promote_to_prod)


@dataclass(frozen=True)
class ChallengerConfig:
    """The champion/challenger gate: the candidate against the version in prod, scored on the same clips."""

    max_uar_drop: float              # refused when its test UAR is below prod's by more than this,
    max_class_recall_drop: float     # or one class's test recall is below prod's by more than this
    min_feedback_clips: int          # the labelled feedback's test clips are gated alike from this many on

    def __post_init__(self) -> None:
        if not (0 <= self.max_uar_drop <= 1 and 0 <= self.max_class_recall_drop <= 1 and self.min_feedback_clips >= 1):
            raise ValueError("release.challenger: max_uar_drop and max_class_recall_drop in [0, 1], "
                             "min_feedback_clips >= 1")


@dataclass(frozen=True)
class ReleaseConfig:
    """The gates a model passes before the registry gives it a stage, and whether a pass reaches prod."""

    artifact: str
    min_test_uar: float
    min_shuffled_uar_drop: float
    challenger: ChallengerConfig
    promote_to_prod: str             # explicit (--prod / promote_to_prod=True) | after_gate (every passing release)

    def __post_init__(self) -> None:
        if self.promote_to_prod not in PROMOTIONS:
            raise ValueError(f"release.promote_to_prod must be one of {PROMOTIONS}, got {self.promote_to_prod!r}")


@dataclass(frozen=True)
class ExportParams:
    """What `export` reads: the face track the artifact replays, the export and drift settings."""

    data: DataConfig
    face_crop: FaceCropConfig
    export: ExportConfig
    drift: DriftConfig


@dataclass(frozen=True)
class ReleaseParams:
    release: ReleaseConfig
