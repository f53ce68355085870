"""Typed view of params.yaml.

Every section becomes a frozen dataclass so a typo in params.yaml fails loudly at
load time (unknown or missing key) instead of deep inside a stage.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml


CLASS_WEIGHTS = ("none", "sqrt_inverse", "inverse")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"
    root: str = "data/raw"
    csv: str = "labels.csv"
    lists: dict[str, str] = field(default_factory=lambda: {"train": "train.txt", "test": "test.txt"})
    list_classes: tuple[str, ...] = ()
    fold: int = 1
    val_fraction: float = 0.1
    classes: tuple[str, ...] = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
    seed: int = 1


@dataclass(frozen=True)
class SyntheticConfig:
    identities: dict[str, int] = field(default_factory=lambda: {"train": 70, "val": 40, "test": 60})
    clips_per_identity: int = 6
    min_frames: int = 20
    max_frames: int = 32
    width: int = 320
    height: int = 240
    fps: int = 12
    class_weights: tuple[float, ...] = (0.23, 0.18, 0.22, 0.16, 0.10, 0.03, 0.08)
    label_noise: float = 0.03
    workers: int = 2


@dataclass(frozen=True)
class FaceCropConfig:
    detector: str = "haar"
    size: int = 112
    margin: float = 0.25
    smooth_window: int = 5
    min_face: int = 40
    min_detection_rate: float = 0.2
    jpeg_quality: int = 95
    workers: int = 2


@dataclass(frozen=True)
class ClipConfig:
    model: str = "models/clip_small"


@dataclass(frozen=True)
class PretrainClipConfig:
    image_size: int = 64
    patch_size: int = 8
    width: int = 64
    layers: int = 3
    heads: int = 4
    projection_dim: int = 64
    epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05


@dataclass(frozen=True)
class FeaturesConfig:
    num_frames: int = 16
    augmented_views: int = 2
    batch_size: int = 256


@dataclass(frozen=True)
class ModelConfig:
    sentences: int = 16
    tokens: int = 64
    init: str = "text"
    init_text: str = "a photo of a {} face"
    temperature: float = 0.01
    heads: int = 4
    de_text_layers: int = 2
    mlp_ratio: int = 4
    dropout: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    class_weight: str = "inverse"
    select_metric: str = "uar"


@dataclass(frozen=True)
class LearningRates:
    """One lr per parameter group: MAT and the temporal encoders learn at different speeds.
    `mat` is absent (None) exactly where MAT is frozen (BAP stage 2)."""

    mat: float | None = None
    encoder: float = 0.1


@dataclass(frozen=True)
class Stage1Config:
    epochs: int = 20
    lr: LearningRates = field(default_factory=lambda: LearningRates(mat=0.01, encoder=0.01))


@dataclass(frozen=True)
class GrowingStageConfig:
    """A stage whose temporal encoder grows: layers[i] layers for epochs[i] epochs."""

    layers: tuple[int, ...] = (2, 4)
    epochs: tuple[int, ...] = (90, 90)
    lr: LearningRates = field(default_factory=lambda: LearningRates(mat=0.01))


@dataclass(frozen=True)
class Stage2Config(GrowingStageConfig):
    lr: LearningRates = field(default_factory=LearningRates)


@dataclass(frozen=True)
class TextGrowthConfig(GrowingStageConfig):
    layers: tuple[int, ...] = (4,)
    epochs: tuple[int, ...] = (10,)


@dataclass(frozen=True)
class Stage3Config(GrowingStageConfig):
    epochs: tuple[int, ...] = (20, 20)
    init_layers: int = 2


@dataclass(frozen=True)
class AllAtOnceConfig:
    epochs: int = 40
    layers: int = 4
    lr: LearningRates = field(default_factory=lambda: LearningRates(mat=0.01))


@dataclass(frozen=True)
class ShuffleCheckConfig:
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)


@dataclass(frozen=True)
class ReleaseConfig:
    """The quality gate a model passes before the registry gives it a stage."""

    artifact: str = "a3lign-dfer"
    min_test_uar: float = 0.7
    min_shuffled_uar_drop: float = 0.05


@dataclass(frozen=True)
class ExportConfig:
    max_batch: int = 16
    parity_clips: int = 1000
    parity_atol: float = 1e-3
    min_frames: int = 4


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    face_crop: FaceCropConfig = field(default_factory=FaceCropConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    pretrain_clip: PretrainClipConfig = field(default_factory=PretrainClipConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    stage2_text: TextGrowthConfig = field(default_factory=TextGrowthConfig)
    stage3: Stage3Config = field(default_factory=Stage3Config)
    all_at_once: AllAtOnceConfig = field(default_factory=AllAtOnceConfig)
    shuffle_check: ShuffleCheckConfig = field(default_factory=ShuffleCheckConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)

    def __post_init__(self) -> None:
        _validate(self)


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    if not isinstance(raw, dict):
        raise ValueError(f"params.yaml: section '{where}' must be a mapping, got {raw!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"params.yaml: unknown key(s) {unknown} in '{where}'; known: {sorted(names)}")
    kwargs = {}
    for key, value in raw.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{where}.{key}" if where else key)
        elif getattr(hint, "__origin__", None) is tuple:
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = _scalar(hint, value, f"{where}.{key}" if where else key)
    return cls(**kwargs)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    """A wrong type in params.yaml (`lr: abc`) fails here with its key, not deep inside a stage."""
    allowed = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) else {hint}
    if value is None and type(None) in allowed:
        return value
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str), bool: lambda v: isinstance(v, bool)}
    checks = [ok[t] for t in allowed if t in ok]
    if checks and not any(check(value) for check in checks):
        names = " or ".join(t.__name__ for t in allowed if t is not type(None))
        raise ValueError(f"params.yaml: {where} must be {names}, got {value!r}")
    return value


def _validate(p: Params) -> None:
    if p.model.init not in ("text", "random"):
        raise ValueError(f"model.init must be 'text' or 'random', got {p.model.init!r}")
    if p.train.class_weight not in CLASS_WEIGHTS:
        raise ValueError(f"train.class_weight must be one of {CLASS_WEIGHTS}, got {p.train.class_weight!r}")
    if p.train.select_metric not in ("uar", "war"):
        raise ValueError(f"train.select_metric must be 'uar' or 'war', got {p.train.select_metric!r}")
    if not 0 < p.data.val_fraction < 1:
        raise ValueError(f"data.val_fraction must be between 0 and 1, got {p.data.val_fraction}")
    if p.data.dataset == "synthetic" and len(p.synthetic.class_weights) != len(p.data.classes):
        raise ValueError("synthetic.class_weights needs one weight per entry of data.classes")
    for name in ("stage2", "stage2_text", "stage3"):
        stage: GrowingStageConfig = getattr(p, name)
        if len(stage.layers) != len(stage.epochs) or not stage.layers:
            raise ValueError(f"{name}.layers and {name}.epochs must be non-empty lists of equal length")
        if list(stage.layers) != sorted(stage.layers):
            raise ValueError(f"{name}.layers must not shrink: {list(stage.layers)}")
    for name in ("stage1", "stage2_text", "stage3", "all_at_once"):
        if getattr(p, name).lr.mat is None:
            raise ValueError(f"{name} trains MAT: give {name}.lr.mat")
    if p.stage2.lr.mat is not None:
        raise ValueError("stage2 freezes MAT (BAP): leave stage2.lr.mat out (or null)")
    if p.stage3.init_layers > p.stage2.layers[-1]:
        raise ValueError("stage3.init_layers cannot exceed the final DE_video depth (stage2.layers[-1])")
    if p.stage2_text.layers[0] < p.model.de_text_layers:
        raise ValueError("stage2_text.layers must not be shallower than model.de_text_layers (DE_text only grows)")
    if p.stage3.init_layers > p.stage3.layers[0]:
        raise ValueError("stage3.layers[0] must be >= stage3.init_layers")


def params_from_dict(raw: dict[str, Any]) -> Params:
    return _build(Params, raw or {}, "")


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"params file not found: {path}")
    return params_from_dict(yaml.safe_load(path.read_text()))


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-JSON form, stored beside checkpoints so they never depend on params.yaml."""
    return json_ready(dataclasses.asdict(obj))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
