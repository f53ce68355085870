"""params.yaml sections of the backbone and the model: clip, pretrain_clip, features, model."""
from __future__ import annotations

from dataclasses import dataclass

from a3lign_dfer.config.data import DataConfig, ScaleConfig


@dataclass(frozen=True)
class ClipConfig:
    model: str


@dataclass(frozen=True)
class PretrainClipConfig:
    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    projection_dim: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float


@dataclass(frozen=True)
class FeaturesConfig:
    num_frames: int
    augmented_views: int
    batch_size: int


@dataclass(frozen=True)
class ModelConfig:
    sentences: int
    tokens: int
    init: str
    init_text: str
    temperature: float
    heads: int
    de_text_layers: int
    mlp_ratio: int
    dropout: float

    def __post_init__(self) -> None:
        if self.init not in ("text", "random"):
            raise ValueError(f"model.init must be 'text' or 'random', got {self.init!r}")


@dataclass(frozen=True)
class PretrainClipParams:
    data: DataConfig
    clip: ClipConfig
    pretrain_clip: PretrainClipConfig


@dataclass(frozen=True)
class FeaturesParams:
    data: DataConfig
    clip: ClipConfig
    features: FeaturesConfig
    scale: ScaleConfig
