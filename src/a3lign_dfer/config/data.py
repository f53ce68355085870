"""params.yaml sections of the data stages: prepare, face_crop, validate, and the scale-out of face_crop and features."""
from __future__ import annotations

import os
from dataclasses import dataclass


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
    # Folders in the csv importer's layout (labels.csv: path,label,split) whose train and val clips `prepare`
    # adds to the manifest; their test clips stay out of it (data/importers/extra_sources.py).
    extra_sources: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be between 0 and 1, got {self.val_fraction}")
        names = [os.path.basename(os.path.normpath(s)) if s.strip() else "" for s in self.extra_sources]
        if "" in names or len(set(names)) != len(names):
            raise ValueError(f"data.extra_sources are folders with distinct names (a name prefixes its clip ids), "
                             f"got {list(self.extra_sources)}")


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

    def __post_init__(self) -> None:
        for key in ("light_gain", "face_scale"):
            if getattr(self, key) <= 0:
                raise ValueError(f"synthetic.{key} is a positive factor (1 = the benchmark), got {getattr(self, key)}")
        for key in ("extra_blur", "noise_gain"):
            if getattr(self, key) < 0:
                raise ValueError(f"synthetic.{key} must not be negative, got {getattr(self, key)}")


@dataclass(frozen=True)
class FaceCropConfig:
    detector: str
    size: int
    margin: float
    smooth_window: int
    min_face: int
    detect_max_side: int             # the detector sees a copy of the frame with at most this longer side
    detect_fps: float                # the detector runs on at most this many frames per second of video
    track_lookahead_seconds: float   # a frame's box waits for the detections this far ahead (data.face_track)
    reacquire_runs: int              # detector runs with faces but none continuing the track that end a segment
    yunet_score_threshold: float
    min_detection_rate: float
    jpeg_quality: int
    workers: int


SCHEDULER_ENV = "A3LIGN_DASK_SCHEDULER"


@dataclass(frozen=True)
class ScaleConfig:
    """How face_crop and features spread their shards over workers. Only shard_size shapes a stage's
    outputs (the file layout); the rest say where the shards run, and the outputs are byte-identical
    for any of them, so dvc.yaml lists only scale.shard_size and moving to a cluster re-runs nothing."""

    shard_size: int                  # clips per shard: one task, one output file
    scheduler: str | None            # a running Dask scheduler's address; None: a LocalCluster
    workers: int                     # LocalCluster worker processes (0: one per CPU core)
    torch_threads: int               # intra-op threads of torch and OpenCV in each task
    retries: int                     # times a failed shard is re-run before the stage fails
    connect_timeout: float           # seconds to wait for scale.scheduler before giving up

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"scale.shard_size is a number of clips (>= 1), got {self.shard_size}")
        for key in ("workers", "retries"):
            if getattr(self, key) < 0:
                raise ValueError(f"scale.{key} must not be negative, got {getattr(self, key)}")
        if self.torch_threads < 1:
            raise ValueError(f"scale.torch_threads must be >= 1, got {self.torch_threads}")

    @property
    def address(self) -> str | None:
        """The scheduler to use: $A3LIGN_DASK_SCHEDULER over scale.scheduler; None starts a LocalCluster."""
        return os.environ.get(SCHEDULER_ENV) or self.scheduler or None

    @property
    def local_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class ValidateConfig:
    """The data gate before training (the `validate` stage); see params.yaml."""

    min_clip_detection_rate: float
    min_train_clips_per_class: int

    def __post_init__(self) -> None:
        if not 0 <= self.min_clip_detection_rate <= 1:
            raise ValueError(f"validate.min_clip_detection_rate is a fraction of frames (0 to 1), "
                             f"got {self.min_clip_detection_rate}")


@dataclass(frozen=True)
class PrepareParams:
    """What `prepare` reads: the dataset and, for the embedded default, the generator."""

    data: DataConfig
    synthetic: SyntheticConfig

    def __post_init__(self) -> None:
        if self.data.dataset == "synthetic" and len(self.synthetic.class_weights) != len(self.data.classes):
            raise ValueError("synthetic.class_weights needs one weight per entry of data.classes")


@dataclass(frozen=True)
class FaceCropParams:
    data: DataConfig
    face_crop: FaceCropConfig
    scale: ScaleConfig


@dataclass(frozen=True)
class ValidateParams:
    data: DataConfig
    validate: ValidateConfig
