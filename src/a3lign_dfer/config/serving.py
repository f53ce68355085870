"""params.yaml sections of the HTTP service (`serve`) and of expression timelines (`timeline`); no pipeline stage
reads them."""
from __future__ import annotations

from dataclasses import dataclass

from a3lign_dfer.config.deploy import BACKENDS, ReleaseConfig


@dataclass(frozen=True)
class PredictionLogConfig:
    """The prediction log (`serve.prediction_log`, docs/serving.md): every answered /predict and /timeline request,
    in SQLite (WAL) at `path` or the server database at `url`."""

    enabled: bool                    # false: nothing is recorded (/feedback then answers 501)
    path: str                        # the SQLite file, relative to the service's working directory; crops beside it
    url: str | None                  # a SQLAlchemy URL (postgresql://...) instead of the SQLite file
    commit_timeout_ms: float         # a request waits at most this long for its row's commit, then answers anyway
    synchronous: str                 # normal: a commit survives the service being killed; full: a power cut too
    keep_crops: bool                 # also keep the face crops the model saw (JPEG): faces of people, off by default
    crop_retention_days: int         # kept crops older than this many days are deleted (at start and hourly)

    def __post_init__(self) -> None:
        if self.synchronous not in ("normal", "full"):
            raise ValueError(f"prediction_log.synchronous must be normal or full, got {self.synchronous!r}")
        if self.commit_timeout_ms < 0 or self.crop_retention_days < 1:
            raise ValueError("prediction_log: commit_timeout_ms >= 0 and crop_retention_days >= 1, got "
                             f"{self.commit_timeout_ms}, {self.crop_retention_days}")


@dataclass(frozen=True)
class FollowConfig:
    """`serve.follow`: the registry stage the service follows (swapping to whichever version holds it)."""

    stage: str | None                # staging | prod; null: serve what was given, swap only on POST /admin/reload
    poll_seconds: float              # how often the registry (GTO tags of serve.registry_repo) is read

    def __post_init__(self) -> None:
        if self.poll_seconds <= 0:
            raise ValueError(f"follow.poll_seconds must be positive, got {self.poll_seconds}")


@dataclass(frozen=True)
class ServeConfig:
    """The HTTP service (`serve`, docs/serving.md): what one request may send, and micro-batching."""

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
    prediction_log: PredictionLogConfig
    follow: FollowConfig

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"serve.backend must be one of {BACKENDS}, got {self.backend!r}")
        for key in ("max_upload_mb", "max_frames", "max_megapixel_frames", "max_cpu_seconds", "max_batch",
                    "preprocess_workers"):
            if getattr(self, key) <= 0:
                raise ValueError(f"serve.{key} must be positive, got {getattr(self, key)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"serve.max_wait_ms must not be negative, got {self.max_wait_ms}")


@dataclass(frozen=True)
class TimelineConfig:
    """The sliding window of `timeline` and POST /timeline (docs/inference.md): one prediction per stride."""

    window_seconds: float            # the span of video one prediction sees (its `frames` sampled as training does)
    stride_seconds: float            # a new prediction every this many seconds of video
    default_fps: float               # the frame rate assumed where a camera or stream states none

    def __post_init__(self) -> None:
        if not 0 < self.stride_seconds <= self.window_seconds or self.default_fps <= 0:
            raise ValueError("timeline: 0 < stride_seconds <= window_seconds and default_fps > 0, got "
                             f"{self.stride_seconds}, {self.window_seconds}, {self.default_fps}")


@dataclass(frozen=True)
class TimelineParams:
    timeline: TimelineConfig


@dataclass(frozen=True)
class ServeParams:
    """What `serve` reads: its own section, the timeline window, and the registry artifact `--stage` fetches."""

    release: ReleaseConfig
    serve: ServeConfig
    timeline: TimelineConfig
