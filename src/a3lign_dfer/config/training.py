"""params.yaml sections of the training stages (the BAP ladder and the all-at-once rows)."""
from __future__ import annotations

from dataclasses import dataclass

from a3lign_dfer.config.data import DataConfig
from a3lign_dfer.config.evaluation import ShuffleCheckConfig
from a3lign_dfer.config.model import ClipConfig, FeaturesConfig, ModelConfig
from a3lign_dfer.config.stage_table import STAGES

CLASS_WEIGHTS = ("none", "sqrt_inverse", "inverse")
LR_SCHEDULES = ("cosine", "constant")     # cosine: decays to 0 over each phase


@dataclass(frozen=True)
class TrainConfig:
    seed: int
    batch_size: int
    momentum: float
    weight_decay: float
    grad_clip: float | None            # None: no clipping
    lr_schedule: str
    class_weight: str
    select_metric: str

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"train.class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        if self.select_metric not in ("uar", "war"):
            raise ValueError(f"train.select_metric must be 'uar' or 'war', got {self.select_metric!r}")


@dataclass(frozen=True)
class LearningRates:
    """One lr per parameter group: MAT and the temporal encoders learn at different speeds.
    `mat` is absent (None) exactly where MAT is frozen (BAP stage 2)."""

    encoder: float
    mat: float | None = None           # absent in params.yaml: none (no lr.mat where MAT is frozen)


@dataclass(frozen=True)
class Stage1Config:
    epochs: int
    lr: LearningRates


@dataclass(frozen=True)
class GrowingStageConfig:
    """A stage whose temporal encoder grows: layers[i] layers for epochs[i] epochs."""

    layers: tuple[int, ...]
    epochs: tuple[int, ...]
    lr: LearningRates

    def __post_init__(self) -> None:
        if len(self.layers) != len(self.epochs) or not self.layers:
            raise ValueError(f"layers and epochs must be non-empty lists of equal length, got {self}")
        if list(self.layers) != sorted(self.layers):
            raise ValueError(f"layers must not shrink: {list(self.layers)}")


@dataclass(frozen=True)
class Stage3Config(GrowingStageConfig):
    epochs: tuple[int, ...]
    init_layers: int


@dataclass(frozen=True)
class AllAtOnceConfig:
    epochs: int
    layers: int
    lr: LearningRates


@dataclass(frozen=True)
class TrainingParams:
    """What a training stage reads (`train --stage`)."""

    data: DataConfig
    clip: ClipConfig
    features: FeaturesConfig
    model: ModelConfig
    train: TrainConfig
    stage1: Stage1Config
    stage2: GrowingStageConfig
    stage2_text: GrowingStageConfig
    stage3: Stage3Config
    all_at_once: AllAtOnceConfig
    shuffle_check: ShuffleCheckConfig

    def __post_init__(self) -> None:
        for row in STAGES:               # lr.mat exactly where the stage trains MAT
            mat = getattr(self, row.section).lr.mat
            if "mat" in row.trains and mat is None:
                raise ValueError(f"{row.section} trains MAT: give {row.section}.lr.mat")
            if "mat" not in row.trains and mat is not None:
                raise ValueError(f"{row.section} freezes MAT (BAP): leave {row.section}.lr.mat out (or null)")
        if self.stage3.init_layers > self.stage2.layers[-1]:
            raise ValueError("stage3.init_layers cannot exceed the final DE_video depth (stage2.layers[-1])")
        if self.stage2_text.layers[0] < self.model.de_text_layers:
            raise ValueError("stage2_text.layers must not be shallower than model.de_text_layers (DE_text only grows)")
        if self.stage3.init_layers > self.stage3.layers[0]:
            raise ValueError("stage3.layers[0] must be >= stage3.init_layers")
