"""Typed view of params.yaml.

Every section becomes a frozen dataclass so a typo in params.yaml fails loudly at
load time (unknown, missing or wrongly typed key) instead of deep inside a stage.
params.yaml is the only place a value lives: the dataclasses declare names and
types, never defaults (an optional `X | None` key may be left out and is None).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml


CLASS_WEIGHTS = ("none", "sqrt_inverse", "inverse")
EMBEDDING_DRIFT_METHODS = ("model", "mmd", "ratio", "distance")
BACKENDS = ("torch", "onnxruntime", "tensorrt")          # how models/deploy runs (inference.backends)


@dataclass(frozen=True)
class DataConfig:
    dataset: str
    root: str
    csv: str
    lists: dict[str, str]
    list_classes: tuple[str, ...]
    fold: int
    val_fraction: float
    classes: tuple[str, ...]
    seed: int


@dataclass(frozen=True)
class SyntheticConfig:
    identities: dict[str, int]
    clips_per_identity: int
    min_frames: int
    max_frames: int
    width: int
    height: int
    fps: int
    class_weights: tuple[float, ...]
    label_noise: float
    light_gain: float
    extra_blur: float
    noise_gain: float
    face_scale: float
    workers: int


@dataclass(frozen=True)
class FaceCropConfig:
    detector: str
    size: int
    margin: float
    smooth_window: int
    min_face: int
    detect_max_side: int             # the detector sees a copy of the frame with at most this longer side
    detect_fps: float                # the detector runs on at most this many frames per second of video
    yunet_score_threshold: float
    min_detection_rate: float
    jpeg_quality: int
    workers: int


@dataclass(frozen=True)
class ValidateConfig:
    """The data gate before training (the `validate` stage); see params.yaml."""

    min_clip_detection_rate: float
    min_train_clips_per_class: int


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


@dataclass(frozen=True)
class TrainConfig:
    seed: int
    batch_size: int
    momentum: float
    weight_decay: float
    grad_clip: float
    class_weight: str
    select_metric: str


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
class ShuffleCheckConfig:
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class ReleaseConfig:
    """The quality gate a model passes before the registry gives it a stage."""

    artifact: str
    min_test_uar: float
    min_shuffled_uar_drop: float


@dataclass(frozen=True)
class ExportConfig:
    max_batch: int
    parity_clips: int
    parity_atol: float
    min_frames: int


@dataclass(frozen=True)
class EmbeddingDriftConfig:
    """The whole-embedding test (Evidently's EmbeddingsDrift) on the PCA components."""

    method: str                      # model, mmd, ratio or distance (Evidently's embedding drift methods)
    threshold: float                 # drifted when the method's score is above this


@dataclass(frozen=True)
class DriftConfig:
    """The drift monitor's reference profile and thresholds, saved into models/deploy by export."""

    pca_components: int              # embedding components (PCA fitted on the training clips)
    column_p_value: float            # a column drifted (in the report and the share) when its p-value is below this
    drifted_share: float             # drift flagged when more than this share of input columns drifted,
    alarm_p_value: float             # or any one input column's p-value is below this,
    class_mix_p_value: float         # or the predicted-class mix test's p-value is below this (0: never),
    embedding: EmbeddingDriftConfig  # or the embedding as a whole drifted


@dataclass(frozen=True)
class ServeConfig:
    """The HTTP service (`serve`, README "Serving"): what one request may send, and micro-batching."""

    backend: str                     # onnxruntime | tensorrt | torch, as in `predict`
    host: str                        # 127.0.0.1 unless the service must be reachable from elsewhere
    port: int
    max_upload_mb: float             # a larger upload is refused (413) while it streams in
    max_frames: int                  # a video with more frames is refused (413), checked before decoding
    max_megapixel_frames: float      # frames x width x height / 1e6 above this: refused (413) before decoding
    max_cpu_seconds: float           # preprocessing one upload stops (413) after this much CPU time
    max_batch: int                   # clips per backend call; 1 serves one request at a time
    max_wait_ms: float               # how long a batch waits for more requests after its first
    preprocess_workers: int          # uploads decoded and face-cropped at once (processes)
    registry_repo: str               # the git repo whose GTO tags `--stage` reads (a path or URL)
    metrics_need_key: bool           # /metrics also needs the API key (when one is set); /health never does


@dataclass(frozen=True)
class Params:
    data: DataConfig
    synthetic: SyntheticConfig
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
    export: ExportConfig
    drift: DriftConfig
    release: ReleaseConfig
    serve: ServeConfig

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
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw and f.default is dataclasses.MISSING]
    if missing:
        raise ValueError(f"params.yaml: missing key(s) {missing} in '{where or 'the top level'}'")
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
    if not 0 <= p.validate.min_clip_detection_rate <= 1:
        raise ValueError(f"validate.min_clip_detection_rate is a fraction of frames (0 to 1), "
                         f"got {p.validate.min_clip_detection_rate}")
    if not 0 < p.data.val_fraction < 1:
        raise ValueError(f"data.val_fraction must be between 0 and 1, got {p.data.val_fraction}")
    for key in ("light_gain", "face_scale"):
        if getattr(p.synthetic, key) <= 0:
            raise ValueError(f"synthetic.{key} is a positive factor (1 = the benchmark), "
                             f"got {getattr(p.synthetic, key)}")
    for key in ("extra_blur", "noise_gain"):
        if getattr(p.synthetic, key) < 0:
            raise ValueError(f"synthetic.{key} must not be negative, got {getattr(p.synthetic, key)}")
    if p.drift.embedding.method not in EMBEDDING_DRIFT_METHODS:
        raise ValueError(f"drift.embedding.method must be one of {EMBEDDING_DRIFT_METHODS}, "
                         f"got {p.drift.embedding.method!r}")
    d = p.drift
    if not (0 < d.column_p_value < 1 and 0 < d.alarm_p_value < 1 and 0 <= d.class_mix_p_value < 1
            and 0 <= d.drifted_share <= 1 and d.pca_components >= 1):
        raise ValueError("drift: column_p_value and alarm_p_value must be in (0, 1), class_mix_p_value in [0, 1), "
                         "drifted_share in [0, 1], pca_components >= 1")
    if p.serve.backend not in BACKENDS:
        raise ValueError(f"serve.backend must be one of {BACKENDS}, got {p.serve.backend!r}")
    if min(p.serve.max_upload_mb, p.serve.max_frames, p.serve.max_batch, p.serve.preprocess_workers) <= 0 \
            or p.serve.max_wait_ms < 0:
        raise ValueError("serve: max_upload_mb, max_frames, max_batch and preprocess_workers must be positive, "
                         "max_wait_ms not negative")
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


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """The params file, with `overrides` (nested sections, e.g. {"stage1": {"epochs": 2}}) merged on top."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"params file not found: {path}")
    return params_from_dict(merge(yaml.safe_load(path.read_text()), overrides or {}))


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of base with overrides merged in, section by section (lists and scalars replace)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-JSON form, stored beside checkpoints so they never depend on params.yaml."""
    return json_ready(dataclasses.asdict(obj))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
