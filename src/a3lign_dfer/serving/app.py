"""`python -m a3lign_dfer serve`: the deployment artifact over HTTP (docs/serving.md).

  POST /predict       a video (multipart field `file`, or the raw bytes as the body) -> label,
                      probabilities, per-frame face boxes, frames used, model version, request id; ?crops=true
                      adds the face crops the model saw (JPEG data URLs)
  POST /timeline      the same upload -> one prediction per stride over a sliding window (params timeline):
                      start, end, label, probabilities, face box per window (docs/inference.md)
  POST /feedback      {request_id, label}: the true label of a logged request (the prediction log)
  POST /admin/reload  fetch, verify and warm the service's source again (or {"artifact": folder}) and swap
  GET  /health        200 once the model is loaded and a warm-up inference ran, 503 before
  GET  /metadata      model version and registry stage, classes, preprocessing, backend, limits
  GET  /metrics       Prometheus text: requests, latency, errors by kind, batch sizes, log failures, swaps
  GET  /              a page to try it in a browser (no external scripts or fonts)

With an API key (serving/auth.py; required unless bound to loopback) every path but /health, / and
(unless serve.metrics_need_key) /metrics answers 401 {"error": "unauthorized"} to a request without it.

A bad upload gets a 4xx JSON error {"error": kind, "detail": message} (serving/errors.py); nothing a
client sends takes the service down, and every upload's temporary file is removed. The bodies are the
models of serving/schemas.py, declared on the routes: /openapi.json and /docs list every field and error kind.
Every answer of /predict and /timeline (refusals too) carries its request id (X-Request-ID) and is recorded in
the prediction log with the version of the model that answered it (serving/prediction_log.py).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.config.serving import ServeParams
from a3lign_dfer.serving.auth import authorized
from a3lign_dfer.serving.errors import (FEEDBACK_STATUS, RELOAD_STATUS, STATUS, UPLOAD_STATUS, RequestError,
                                        documented, error_response)
from a3lign_dfer.serving.log_writer import LogRow
from a3lign_dfer.serving.model_source import ModelSource, fetch
from a3lign_dfer.serving.prediction_log import now
from a3lign_dfer.serving.schemas import (FeedbackRequest, FeedbackStored, Health, Metadata, Prediction, Reloaded,
                                         ReloadRequest, Timeline)
from a3lign_dfer.serving.service import Answer, Service

ENDPOINTS = ("/predict", "/timeline", "/feedback", "/admin/reload", "/health", "/metadata", "/metrics", "/")
LOGGED = ("/predict", "/timeline")       # the endpoints whose every answer is a row of the prediction log
REQUEST_ID_HEADER = "X-Request-ID"
# answer(model, path, filename, request_id): what /predict and /timeline do with an upload
Answering = Callable[[object, Path, str, str], Awaitable[Answer]]
CHUNK = 1 << 20
# What receive_upload reads, for the schema: the route takes the raw request, so FastAPI cannot infer it.
UPLOAD_BODY = {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "the video itself; its name in the x-filename header"}}}}


@dataclass(frozen=True)
class Upload:
    name: str            # the file's name as sent (x-filename for a raw body)
    size: int            # bytes
    sha256: str          # of the bytes as sent: the prediction log's input_sha256


async def receive_upload(request: Request, dest: Path, limit: int) -> Upload:
    """Write the uploaded video to `dest` (refusing more than `limit` bytes as they arrive), hashing it as it
    streams in."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + CHUNK:    # + room for the multipart envelope
        raise RequestError("upload_too_large", f"upload of {int(declared)} bytes; the limit is {limit}")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        name = request.headers.get("x-filename", "upload")
        size, digest = await _write_capped(request.stream(), dest, limit, name)
        if size == 0:
            raise RequestError("no_file", "no video: the request body is empty (curl --data-binary @clip.mp4 "
                                          "or -F file=@clip.mp4)")
        return Upload(name, size, digest)
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise RequestError("no_file", "no video in the form: send it as the field `file` "
                                          "(curl -F file=@clip.mp4 ...)")
        name = upload.filename or "upload"
        size, digest = await _write_capped(_chunks(upload), dest, limit, name)
        if size == 0:
            raise RequestError("empty_video", f"{name}: empty file (0 bytes)")
        return Upload(name, size, digest)
    finally:
        await form.close()


async def _chunks(upload) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


async def _write_capped(chunks: AsyncIterator[bytes], dest: Path, limit: int, name: str) -> tuple[int, str]:
    """(bytes written, their sha256); RequestError as soon as they pass `limit`."""
    size, digest = 0, hashlib.sha256()
    with dest.open("wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise RequestError("upload_too_large", f"{name}: more than the limit of {limit} bytes")
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def answered_row(request_id: str, started: str, endpoint: str, model, upload: Upload | None, answer: Answer | None,
                 kind: str | None, duration_s: float) -> LogRow:
    """The prediction log's row of one answered (`answer`) or refused (`kind`) request."""
    body = answer.body if answer is not None else None
    probabilities = body.probabilities if isinstance(body, Prediction) else None
    top = sorted(probabilities.values(), reverse=True) if probabilities else []
    return LogRow(request_id=request_id, time=started, endpoint=endpoint, status=STATUS[kind] if kind else 200,
                  error_kind=kind, model_version=model.artifact.version,
                  artifact_sha256=model.artifact.manifest_sha256, filename=upload.name if upload else None,
                  input_sha256=upload.sha256 if upload else None, input_bytes=upload.size if upload else None,
                  label=body.label if isinstance(body, Prediction) else None, probabilities=probabilities,
                  margin=round(top[0] - top[1], 6) if len(top) > 1 else None,
                  windows=[w.model_dump() for w in body.windows] if isinstance(body, Timeline) else None,
                  duration_ms=round(duration_s * 1000, 3),
                  crops=answer.crops if answer is not None else None)


def create_app(service: Service, api_key: str | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await service.start()
        yield
        await service.stop()

    # JSONResponse (json.dumps) also for the models: the bytes clients always got (1e-06, not Pydantic's 1e-6).
    app = FastAPI(title="A3lign-DFER", description="dynamic facial expression recognition on face videos",
                  lifespan=lifespan, default_response_class=JSONResponse)
    metrics = service.metrics
    limit = int(service.cfg.max_upload_mb * 2**20)
    open_paths = {"/health", "/"} | (set() if service.cfg.metrics_need_key else {"/metrics"})

    # Registered before `measure`, so it runs inside it: a refused request is counted like any other.
    # Everything not listed as open needs the key (a path added later is guarded by default).
    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if api_key is None or request.url.path in open_paths or authorized(request.headers, api_key):
            return await call_next(request)
        metrics.errors.labels("unauthorized").inc()
        return error_response("unauthorized", "this service needs its API key: send 'Authorization: Bearer <key>' "
                              "or 'X-API-Key: <key>'", headers={"WWW-Authenticate": "Bearer"})

    @app.middleware("http")
    async def measure(request: Request, call_next):
        start, endpoint = time.perf_counter(), request.url.path if request.url.path in ENDPOINTS else "other"
        try:
            response = await call_next(request)
        except Exception as err:                        # a bug must not take the service down: 500, counted
            metrics.errors.labels("internal").inc()
            response = error_response("internal", f"{type(err).__name__}: {err}")
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, err: RequestValidationError):
        metrics.errors.labels("invalid_request").inc()
        response = error_response("invalid_request", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                                for e in err.errors()))
        if request.url.path in LOGGED and service.ready:         # refused before the route: logged all the same
            request_id = uuid.uuid4().hex
            response.headers[REQUEST_ID_HEADER] = request_id
            await service.recorder.record(answered_row(request_id, now(), request.url.path, service.model, None, None,
                                              "invalid_request", 0.0))
        return response

    async def upload_answer(request: Request, response: Response, answer: Answering):
        """`answer(model, path, filename, request_id)` on the uploaded video with the model current at the
        request's start, its temporary file removed whatever happens; the answer or refusal is logged."""
        if not service.ready:
            return error_response("not_ready", "the model is still loading")
        request_id, started, clock = uuid.uuid4().hex, now(), time.perf_counter()
        path = service.uploads / f"{request_id}.upload"
        upload = answered = kind = None
        with service.model_for_request() as model:
            try:
                upload = await receive_upload(request, path, limit)
                answered = await answer(model, path, upload.name, request_id)
                result = answered.body
            except RequestError as err:
                kind, result = err.kind, error_response(err.kind, err.message)
            except Exception as err:                    # a bug: 500, and logged like any other answer
                kind, result = "internal", error_response("internal", f"{type(err).__name__}: {err}")
                logging.getLogger("a3lign_dfer.serving").exception("request %s failed", request_id)
            finally:
                path.unlink(missing_ok=True)
        if kind is not None:
            metrics.errors.labels(kind).inc()
            result.headers[REQUEST_ID_HEADER] = request_id
        else:
            response.headers[REQUEST_ID_HEADER] = request_id
        await service.recorder.record(answered_row(request_id, started, request.url.path, model, upload, answered, kind,
                                          time.perf_counter() - clock))
        return result

    @app.post("/predict", response_model=Prediction, response_model_exclude_unset=True,
              responses=documented(*UPLOAD_STATUS, "invalid_request", "unauthorized", "not_ready", "internal"),
              openapi_extra={"requestBody": UPLOAD_BODY})
    async def predict(request: Request, response: Response, crops: bool = False):
        return await upload_answer(request, response, lambda model, path, name, request_id: service.predict(
            model, path, name, crops, request_id))

    @app.post("/timeline", response_model=Timeline,
              responses=documented(*UPLOAD_STATUS, "unauthorized", "not_ready", "no_timeline", "internal"),
              openapi_extra={"requestBody": UPLOAD_BODY})
    async def timeline(request: Request, response: Response):
        return await upload_answer(request, response, service.timeline)

    @app.post("/feedback", response_model=FeedbackStored,
              responses=documented(*FEEDBACK_STATUS, "invalid_request", "unauthorized", "internal"))
    async def feedback(body: FeedbackRequest):
        """The true label of a logged request: one of the classes of the model that answered it."""
        try:
            return await service.recorder.add_feedback(body.request_id, body.label)
        except RequestError as err:
            metrics.errors.labels(err.kind).inc()
            return error_response(err.kind, err.message)

    @app.post("/admin/reload", response_model=Reloaded,
              responses=documented(*RELOAD_STATUS, "invalid_request", "unauthorized", "not_ready", "internal"))
    async def reload(body: ReloadRequest | None = None):
        """Fetch and verify the service's source again (its folder, or the version now holding its registry
        stage), or the deployment folder `artifact`; warm it and swap. Requests already started finish on the
        old model; a failure keeps it."""
        if not service.ready:
            return error_response("not_ready", "the model is still loading")
        try:
            return await service.reload(Path(body.artifact) if body and body.artifact else None)
        except RequestError as err:
            metrics.errors.labels(err.kind).inc()
            return error_response(err.kind, err.message)

    @app.get("/health", response_model=Health, response_model_exclude_unset=True,
             responses={503: {"model": Health, "description": "still loading"}})
    async def health():
        if service.ready:
            return Health(status="ready", model=service.model.artifact.version or "unregistered")
        return JSONResponse(Health(status="loading").model_dump(exclude_unset=True), 503)

    @app.get("/metadata", response_model=Metadata, response_model_exclude_unset=True,
             responses=documented("unauthorized", "internal"))
    async def metadata():
        return service.metadata()

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return (resources.files("a3lign_dfer.serving") / "page.html").read_text()

    return app


def model_source(params: ServeParams, artifact: str | None, stage: str | None) -> ModelSource:
    """The folder given (models/deploy by default) or the registry's version in `stage`."""
    return ModelSource(None if stage else Path(artifact) if artifact else DEPLOY_DIR, stage,
                       params.serve.registry_repo, params.release.artifact)


def serve(params: ServeParams, artifact: str | None, stage: str | None, host: str, port: int, backend: str,
          device: str, api_key: str | None = None, precision: str = "fp32", follow: str | None = None) -> int:
    """`follow`: serve the version holding this registry stage and swap whenever another one holds it."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    source = model_source(params, artifact, follow or stage)
    # A fetched version lives in a folder of its own, removed when the model is closed.
    fetched = Path(tempfile.mkdtemp(prefix="a3lign-artifact-")) if source.stage is not None else None
    try:
        loaded = fetch(source, fetched / "deploy" if fetched else None)
        loaded.require_precision(precision)
    except BaseException:
        if fetched is not None:
            shutil.rmtree(fetched, ignore_errors=True)
        raise
    print(f"serving {loaded.path} (version {loaded.version or 'unregistered'}, manifest sha256 "
          f"{loaded.manifest_sha256[:12]}) with {backend} {precision} on http://{host}:{port}"
          f"{'; API key required' if api_key else ''}"
          f"{f'; following stage {follow} every {params.serve.follow.poll_seconds:g} s' if follow else ''}", flush=True)
    log_cfg = params.serve.prediction_log
    print(f"prediction log: {log_cfg.url or log_cfg.path}; face crops "
          f"{f'kept {log_cfg.crop_retention_days} days' if log_cfg.keep_crops else 'not kept'}"
          if log_cfg.enabled else "prediction log: off (serve.prediction_log.enabled: false)", flush=True)
    service = Service(loaded, params.serve, params.timeline, backend, device, precision, source, follow, fetched)
    uvicorn.Server(uvicorn.Config(create_app(service, api_key), host=host, port=port, log_level="info")).run()
    return 0
