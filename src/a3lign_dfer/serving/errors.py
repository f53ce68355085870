"""What a refused or failed request gets: `{"error": kind, "detail": message}` with the kind's HTTP status.

Every error body the service sends is built by `error_response`, and STATUS is the one list of kinds: the
OpenAPI schema's enum of `error` and the statuses each route documents come from it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

# HTTP status of each kind of bad upload: the upload checks and inference.video_input's InputError kinds.
UPLOAD_STATUS = {"no_file": 400, "empty_video": 400, "missing_video": 400, "not_a_video": 415,
                 "truncated_video": 422, "no_face": 422, "too_few_frames": 422, "too_many_frames": 413,
                 "too_many_pixels": 413, "too_costly": 413, "upload_too_large": 413}
# ... and of what the service itself refuses or fails at, whatever the upload (invalid_request: a query parameter;
# no_timeline: an artifact exported before the split graphs existed).
STATUS = UPLOAD_STATUS | {"invalid_request": 422, "unauthorized": 401, "not_ready": 503, "internal": 500,
                          "no_timeline": 501}
# POST /feedback: an id the prediction log does not hold, a label the answering model does not have, the log off.
FEEDBACK_STATUS = {"unknown_request": 404, "unknown_label": 422, "no_prediction_log": 501}
# POST /admin/reload: the new artifact failed its fetch or verification, or its warm-up (the old model serves on).
RELOAD_STATUS = {"artifact_refused": 422, "warmup_failed": 500}
STATUS |= FEEDBACK_STATUS | RELOAD_STATUS

ErrorKind = Literal[tuple(STATUS)]          # the STATUS keys, in order: the schema's enum


class ErrorBody(BaseModel):
    error: ErrorKind = Field(description="what went wrong, one word a client can branch on")
    detail: str = Field(description="the same for a person: which file, which limit, what to send instead")


class RequestError(Exception):
    """A request the service refuses: `kind` (a STATUS key) and a message for the client."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in STATUS:
            raise KeyError(f"unknown error kind {kind!r}; known: {list(STATUS)}")
        super().__init__(message)
        self.kind, self.message = kind, message


def error_response(kind: ErrorKind, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=kind, detail=detail).model_dump(), STATUS[kind], headers)


def documented(*kinds: ErrorKind) -> dict[int, dict]:
    """A route's `responses=`: each status its kinds can answer, with ErrorBody and those kinds named."""
    by_status: dict[int, list[str]] = defaultdict(list)
    for kind in kinds:
        by_status[STATUS[kind]].append(kind)
    return {status: {"model": ErrorBody, "description": ", ".join(named)}
            for status, named in sorted(by_status.items())}
