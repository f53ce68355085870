"""The service's typed HTTP API, on a stand-in service (no model): /openapi.json names the prediction's fields
and every error kind, error bodies are ErrorBody, and a prediction's JSON is what clients always got."""
import contextlib
import json
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from a3lign_dfer.serving.app import create_app
from a3lign_dfer.serving.errors import ErrorBody, RequestError
from a3lign_dfer.serving.metrics import ServiceMetrics
from a3lign_dfer.serving.schemas import ModelVersion, Prediction
from a3lign_dfer.serving.service import Answer

KINDS = ["no_file", "empty_video", "missing_video", "not_a_video", "truncated_video", "no_face", "too_few_frames",
         "too_many_frames", "too_many_pixels", "too_costly", "upload_too_large", "invalid_request", "unauthorized",
         "not_ready", "internal", "no_timeline", "unknown_request", "unknown_label", "no_prediction_log",
         "artifact_refused", "warmup_failed"]


def _prediction(with_crops: bool, request_id: str = "0" * 32) -> Prediction:
    crops = {"crops": ["data:image/jpeg;base64,AAAA"]} if with_crops else {}
    return Prediction(request_id=request_id, filename="clip.mp4", label="happy",
                      probabilities={"happy": 0.999999, "sad": 1e-06},
                      frames_decoded=3, frames_used=[0, 1, 2], frame_size=(240, 320),
                      face_boxes=[[10, 20, 64, 64]] * 3, detection_rate=1.0,
                      model=ModelVersion(version=None, stage=None, manifest_sha256="ab" * 32), backend="onnxruntime",
                      precision="fp32", **crops)


def _client(tmp_path, ready: bool = True, api_key: str | None = None) -> TestClient:
    async def predict(model, path, name, with_crops, request_id):
        return Answer(_prediction(with_crops, request_id))

    async def timeline(model, path, name, request_id):
        raise RequestError("no_timeline", f"{name}: this stand-in has no split graphs")

    async def record(row):                                     # the prediction log: tests/test_prediction_log.py
        return False

    model = SimpleNamespace(artifact=SimpleNamespace(version=None, manifest_sha256="ab" * 32))
    service = SimpleNamespace(metrics=ServiceMetrics(), ready=ready, uploads=tmp_path, predict=predict,
                              timeline=timeline, cfg=SimpleNamespace(max_upload_mb=1, metrics_need_key=False),
                              model=model, model_for_request=lambda: contextlib.nullcontext(model),
                              recorder=SimpleNamespace(record=record))
    return TestClient(create_app(service, api_key))


def test_openapi_names_the_prediction_fields_and_the_error_kinds(tmp_path):
    schema = _client(tmp_path).get("/openapi.json").json()
    models = schema["components"]["schemas"]
    assert list(models["Prediction"]["properties"]) == [
        "request_id", "filename", "label", "probabilities", "frames_decoded", "frames_used", "frame_size",
        "face_boxes", "detection_rate", "model", "backend", "precision", "crops"]
    assert "crops" not in models["Prediction"]["required"]
    assert list(models["ModelVersion"]["properties"]) == ["version", "stage", "manifest_sha256"]
    assert models["ErrorBody"]["properties"]["error"]["enum"] == KINDS
    assert models["ErrorBody"]["required"] == ["error", "detail"]
    assert list(models["Metadata"]["properties"]) == ["model", "classes", "backend", "precision", "preprocessing",
                                                      "limits", "batching", "prediction_log", "follows"]

    predict = schema["paths"]["/predict"]["post"]
    assert predict["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Prediction"}
    errors = {status: answer["description"] for status, answer in predict["responses"].items() if status != "200"}
    assert errors == {"400": "no_file, empty_video, missing_video", "401": "unauthorized",
                      "413": "too_many_frames, too_many_pixels, too_costly, upload_too_large",
                      "415": "not_a_video", "422": "truncated_video, no_face, too_few_frames, invalid_request",
                      "500": "internal", "503": "not_ready"}
    assert all(predict["responses"][status]["content"]["application/json"]["schema"] ==
               {"$ref": "#/components/schemas/ErrorBody"} for status in errors)
    assert set(predict["requestBody"]["content"]) == {"multipart/form-data", "application/octet-stream"}
    assert set(schema["paths"]["/metadata"]["get"]["responses"]) == {"200", "401", "500"}
    timeline = schema["paths"]["/timeline"]["post"]
    assert timeline["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Timeline"}
    assert {s: a["description"] for s, a in timeline["responses"].items() if s != "200"} == \
        {**{s: d.replace(", invalid_request", "") for s, d in errors.items()}, "501": "no_timeline"}
    assert list(models["TimelineWindow"]["properties"]) == ["start", "end", "label", "probabilities", "face_box",
                                                            "detection_rate"]
    assert list(models["Timeline"]["properties"]) == ["request_id", "filename", "fps", "frames_decoded",
                                                      "frame_size", "window_seconds", "stride_seconds", "windows",
                                                      "model", "precision"]
    assert set(timeline["requestBody"]["content"]) == {"multipart/form-data", "application/octet-stream"}


def test_timeline_refusals_are_error_bodies_too(tmp_path):
    response = _client(tmp_path).post("/timeline", content=b"video bytes", headers={"x-filename": "clip.mp4"})
    assert response.status_code == 501
    assert ErrorBody.model_validate(response.json()).error == "no_timeline" and "clip.mp4" in response.json()["detail"]
    assert _client(tmp_path).post("/timeline", content=b"").json()["error"] == "no_file"


@pytest.mark.parametrize("request_kwargs, ready, status, kind", [
    ({"content": b""}, True, 400, "no_file"),
    ({"files": {"video": ("clip.mp4", b"x")}}, True, 400, "no_file"),
    ({"files": {"file": ("clip.mp4", b"")}}, True, 400, "empty_video"),
    ({"content": b"x" * (2 * 2**20 + 1)}, True, 413, "upload_too_large"),
    ({"params": {"crops": "maybe"}, "content": b"x"}, True, 422, "invalid_request"),
    ({"content": b"x"}, False, 503, "not_ready"),
])
def test_error_responses_are_error_bodies(tmp_path, request_kwargs, ready, status, kind):
    client = _client(tmp_path, ready)
    response = client.post("/predict", **request_kwargs)
    assert response.status_code == status
    body = ErrorBody.model_validate(response.json())
    assert body.error == kind and body.detail
    assert list(tmp_path.iterdir()) == []                       # the upload's temporary file is gone


def test_an_unauthorized_request_gets_an_error_body(tmp_path):
    response = _client(tmp_path, api_key="k3y").get("/metadata")
    assert response.status_code == 401
    assert ErrorBody.model_validate(response.json()).error == "unauthorized"


def test_a_prediction_is_the_json_clients_always_got(tmp_path):
    client = _client(tmp_path)
    response = client.post("/predict", content=b"video bytes", headers={"x-filename": "clip.mp4"})
    assert response.status_code == 200
    expected = _prediction(False, response.headers["x-request-id"]).model_dump(exclude={"crops"})
    assert response.content == json.dumps(expected, ensure_ascii=False, separators=(",", ":")).encode()
    assert b'"sad":1e-06' in response.content and b'"frame_size":[240,320]' in response.content
    with_crops = client.post("/predict", params={"crops": "true"}, content=b"video bytes").json()
    assert with_crops["crops"] == ["data:image/jpeg;base64,AAAA"]
