"""Every params.yaml section at once, checked by every stage view: for tools, flows and tests.

A stage never loads this (it loads its own view), so its deps stay its own area's modules.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from a3lign_dfer.config import schema
from a3lign_dfer.config.data import (DataConfig, FaceCropConfig, FaceCropParams, PrepareParams, ScaleConfig,
                                     SyntheticConfig, ValidateConfig, ValidateParams)
from a3lign_dfer.config.deploy import DriftConfig, ExportConfig, ExportParams, ReleaseConfig
from a3lign_dfer.config.evaluation import PaperConfig, ShuffleCheckConfig
from a3lign_dfer.config.feedback import FeedbackConfig, FeedbackParams
from a3lign_dfer.config.model import (ClipConfig, FeaturesConfig, FeaturesParams, ModelConfig, PretrainClipConfig,
                                      PretrainClipParams)
from a3lign_dfer.config.serving import ServeConfig, ServeParams, TimelineConfig
from a3lign_dfer.config.training import (AllAtOnceConfig, GrowingStageConfig, Stage1Config, Stage3Config,
                                         TrainConfig, TrainingParams)

VIEWS = (PrepareParams, FaceCropParams, ValidateParams, PretrainClipParams, FeaturesParams, TrainingParams,
         ExportParams, ServeParams, FeedbackParams)


@dataclass(frozen=True)
class Params:
    data: DataConfig
    synthetic: SyntheticConfig
    scale: ScaleConfig
    face_crop: FaceCropConfig
    validate: ValidateConfig
    clip: ClipConfig
    pretrain_clip: PretrainClipConfig
    features: FeaturesConfig
    model: ModelConfig
    train: TrainConfig
    stage1: Stage1Config
    stage2: GrowingStageConfig
    stage2_text: GrowingStageConfig
    stage3: Stage3Config
    all_at_once: AllAtOnceConfig
    shuffle_check: ShuffleCheckConfig
    paper: PaperConfig
    export: ExportConfig
    drift: DriftConfig
    release: ReleaseConfig
    serve: ServeConfig
    timeline: TimelineConfig
    feedback: FeedbackConfig

    def __post_init__(self) -> None:
        for view in VIEWS:                 # the checks across sections live on the views
            view(**{f.name: getattr(self, f.name) for f in dataclasses.fields(view)})


def params_from_dict(raw: dict[str, Any]) -> Params:
    return schema.build(Params, raw or {})


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """The params file, with `overrides` (nested sections, e.g. {"stage1": {"epochs": 2}}) merged on top."""
    return params_from_dict(schema.read(path, overrides))
