"""params.yaml sections of the backbone and the model: clip, pretrain_clip, features, model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.config.data import DataConfig, ScaleConfig

# The embedded default's CLIP: the pretrain_clip stage's output (dvc.yaml) and params clip.model. It is pretrained
# on the synthetic benchmark's captions, so a model on it learned drawn faces (tests/test_report_files.py).
EMBEDDED_CLIP = Path("models/clip_small")

# How a MAT sentence meets CLIP's text encoder (model/a3lign.py: sentence_inputs). paper (Eq. 2):
# [SOS] + MAT + zeros + [period] + [EOS] at CLIP's full context, EOS last; under the causal mask the zero
# slots (with their positions) and the period shape the EOS feature. compact: [SOS] + MAT + [EOS]
# (T + 2 positions), a different model, not a shortcut.
TEXT_LAYOUTS = ("paper", "compact")


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
    text_layout: str
    init: str
    init_text: str
    temperature: float
    heads: int
    de_text_layers: int
    mlp_ratio: int
    dropout: float

    def __post_init__(self) -> None:
        if self.text_layout not in TEXT_LAYOUTS:
            raise ValueError(f"model.text_layout must be one of {TEXT_LAYOUTS}, got {self.text_layout!r}")
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
