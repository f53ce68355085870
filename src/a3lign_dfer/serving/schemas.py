"""The JSON bodies of /predict, /timeline, /metadata, /health, /feedback and /admin/reload (errors:
serving/errors.py) as Pydantic models.

The routes declare them, so /openapi.json and /docs tell a client every field it gets; the field names
and values are the ones the service always sent (the page, serving/page.html, reads them).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from a3lign_dfer.report_files import SourceCheckpoint, TestMetrics

# A number from params.yaml, sent as written there (50 stays 50, not 50.0).
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]


class ModelVersion(BaseModel):
    version: str | None = Field(description="the registry (GTO) version; null when served from a folder")
    stage: str | None = Field(description="the registry stage it was fetched by (staging, prod), or null")
    manifest_sha256: str = Field(description="sha256 of the artifact's manifest.json: the exact build")


REQUEST_ID = Field(description="this request's id in the prediction log (also the X-Request-ID header): "
                                "what POST /feedback takes")


class Prediction(BaseModel):
    request_id: str = REQUEST_ID
    filename: str = Field(description="the uploaded file's name (x-filename for a raw body)")
    label: str = Field(description="the most probable class")
    probabilities: dict[str, float] = Field(description="every class's probability, rounded to 6 decimals")
    frames_decoded: int
    frames_used: list[int] = Field(description="the decoded frames the model got (segment centres), in order")
    frame_size: tuple[int, int] = Field(description="decoded (height, width) in pixels")
    face_boxes: list[tuple[int, int, int, int]] = Field(
        description="per decoded frame, the smoothed face track's square box [x, y, width, height] in pixels")
    detection_rate: float = Field(description="share of the frames the detector ran on where it found the face")
    model: ModelVersion
    backend: str = Field(description="onnxruntime, tensorrt or torch")
    precision: str = Field(description="fp32, or int8 (the INT8 image encoder, where the manifest releases it)")
    crops: list[str] = Field(default_factory=list, description="only with ?crops=true (absent otherwise): the face "
                             "crops the model saw, one per frames_used, as JPEG data URLs")


class TimelineWindow(BaseModel):
    start: float = Field(description="seconds from the video's start")
    end: float
    label: str | None = Field(description="the most probable class; null where the face was found on fewer than "
                                          "face_crop.min_detection_rate of the window's detector runs")
    probabilities: dict[str, float] | None = Field(description="every class's probability (6 decimals), or null")
    face_box: tuple[int, int, int, int] | None = Field(
        description="the face box [x, y, width, height] in pixels at the window's middle sampled frame")
    detection_rate: float | None = Field(description="face found / detector runs within the window")


class Timeline(BaseModel):
    request_id: str = REQUEST_ID
    filename: str
    fps: float = Field(description="the video's frame rate (params timeline.default_fps where it states none)")
    frames_decoded: int
    frame_size: tuple[int, int] = Field(description="decoded (height, width) in pixels")
    window_seconds: float = Field(description="params timeline: one prediction sees this span of video")
    stride_seconds: float = Field(description="and a new one starts every stride")
    windows: list[TimelineWindow] = Field(description="in order; one over the whole video when it is no longer "
                                                      "than a window (then equal to /predict's answer)")
    model: ModelVersion
    precision: str = Field(description="fp32 or int8: the image encoder the frames went through")


class ModelRecord(ModelVersion):
    source_checkpoint: SourceCheckpoint = Field(description="the checkpoint the artifact was exported from")
    test_metrics: TestMetrics = Field(description="the test split's metrics of the exported model")


class Limits(BaseModel):
    max_upload_mb: Number
    max_frames: int
    max_megapixel_frames: Number = Field(description="frames x width x height / 1e6, as the container declares")
    max_cpu_seconds: Number = Field(description="CPU time preparing one upload may take")


class Batching(BaseModel):
    max_batch: int
    max_wait_ms: Number


class PredictionLogInfo(BaseModel):
    enabled: bool = Field(description="whether answered requests are recorded (params serve.prediction_log)")
    keep_crops: bool = Field(description="whether the face crops the model saw are kept with them")
    crop_retention_days: int = Field(description="kept crops are deleted after this many days")


class Metadata(BaseModel):
    model: ModelRecord
    classes: list[str]
    backend: str = Field(description="onnxruntime, tensorrt or torch")
    precision: str = Field(description="fp32, or int8 (the INT8 image encoder, where the manifest releases it)")
    preprocessing: dict[str, Any] = Field(description="the artifact's preprocess.json: raw video to model input")
    limits: Limits
    batching: Batching
    prediction_log: PredictionLogInfo | None = None
    follows: str | None = Field(None, description="the registry stage the service follows (swapping to whichever "
                                                  "version holds it), or null")


class Health(BaseModel):
    status: Literal["ready", "loading"]
    model: str | None = Field(None, description="when ready: the registry version, or `unregistered`")


class FeedbackRequest(BaseModel):
    request_id: str = Field(description="the request_id of a logged /predict or /timeline answer")
    label: str = Field(description="the true class: one of the classes of the model that answered")


class FeedbackStored(BaseModel):
    request_id: str
    label: str = Field(description="the true label now stored (a later one for the same id replaces it)")
    source: str = Field(description="api (POST /feedback, the page) or label-studio")
    time: str = Field(description="when it was stored, ISO 8601 UTC")
    predicted: str | None = Field(description="what the model answered (null for a timeline or a refused request)")


class ReloadRequest(BaseModel):
    artifact: str | None = Field(None, description="a deployment folder on the server to swap to; without it, the "
                                                   "service's own source again (its folder, or its registry stage)")


class Reloaded(BaseModel):
    result: Literal["swapped", "unchanged"] = Field(description="unchanged: that build and version already served")
    model: ModelVersion = Field(description="what answers from now on")
    previous: ModelVersion = Field(description="what answered before (requests already started finish on it)")
    seconds: float = Field(description="fetch, verification, loading and warm-up")
