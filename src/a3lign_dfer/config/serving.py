"""params.yaml sections of the HTTP service (`serve`) and of expression timelines (`timeline`); no pipeline stage
reads them."""
from __future__ import annotations

from dataclasses import dataclass

from a3lign_dfer.config.deploy import BACKENDS, ReleaseConfig


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
