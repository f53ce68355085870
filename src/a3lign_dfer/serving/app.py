"""`python -m a3lign_dfer serve`: the deployment artifact over HTTP (docs/serving.md).

  POST /predict    a video (multipart field `file`, or the raw bytes as the body) -> label,
                   probabilities, per-frame face boxes, frames used, model version; ?crops=true
                   adds the face crops the model saw (JPEG data URLs)
  POST /timeline   the same upload -> one prediction per stride over a sliding window (params timeline):
                   start, end, label, probabilities, face box per window (docs/inference.md)
  GET  /health     200 once the model is loaded and a warm-up inference ran, 503 before
  GET  /metadata   model version and registry stage, classes, preprocessing, backend, limits
  GET  /metrics    Prometheus text: requests, latency histogram, errors by kind, batch sizes
  GET  /           a page to try it in a browser (no external scripts or fonts)

With an API key (serving/auth.py; required unless bound to loopback) every path but /health, / and
(unless serve.metrics_need_key) /metrics answers 401 {"error": "unauthorized"} to a request without it.

A bad upload gets a 4xx JSON error {"error": kind, "detail": message} (serving/errors.py); nothing a
client sends takes the service down, and every upload's temporary file is removed. The bodies are the
models of serving/schemas.py, declared on the routes: /openapi.json and /docs list every field and error kind.
"""
from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from a3lign_dfer.config.deploy import DEPLOY_DIR
from a3lign_dfer.config.serving import ServeParams
from a3lign_dfer.inference.artifact import verify
from a3lign_dfer.serving.auth import authorized
from a3lign_dfer.serving.errors import UPLOAD_STATUS, RequestError, documented, error_response
from a3lign_dfer.serving.schemas import Health, Metadata, Prediction, Timeline
from a3lign_dfer.serving.service import Service

ENDPOINTS = ("/predict", "/timeline", "/health", "/metadata", "/metrics", "/")
CHUNK = 1 << 20
# What receive_upload reads, for the schema: the route takes the raw request, so FastAPI cannot infer it.
UPLOAD_BODY = {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "the video itself; its name in the x-filename header"}}}}


async def receive_upload(request: Request, dest: Path, limit: int) -> str:
    """Write the uploaded video to `dest` (refusing more than `limit` bytes as they arrive); its file name."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + CHUNK:    # + room for the multipart envelope
        raise RequestError("upload_too_large", f"upload of {int(declared)} bytes; the limit is {limit}")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        name = request.headers.get("x-filename", "upload")
        if await _write_capped(request.stream(), dest, limit, name) == 0:
            raise RequestError("no_file", "no video: the request body is empty (curl --data-binary @clip.mp4 "
                                          "or -F file=@clip.mp4)")
        return name
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise RequestError("no_file", "no video in the form: send it as the field `file` "
                                          "(curl -F file=@clip.mp4 ...)")
        name = upload.filename or "upload"
        if await _write_capped(_chunks(upload), dest, limit, name) == 0:
            raise RequestError("empty_video", f"{name}: empty file (0 bytes)")
        return name
    finally:
        await form.close()


async def _chunks(upload) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


async def _write_capped(chunks: AsyncIterator[bytes], dest: Path, limit: int, name: str) -> int:
    """Bytes written; RequestError as soon as they pass `limit`."""
    size = 0
    with dest.open("wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise RequestError("upload_too_large", f"{name}: more than the limit of {limit} bytes")
            out.write(chunk)
    return size


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
    async def invalid_request(_: Request, err: RequestValidationError):
        metrics.errors.labels("invalid_request").inc()
        return error_response("invalid_request", "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                            for e in err.errors()))

    async def upload_answer(request: Request, answer):
        """`answer(path, filename)` on the uploaded video, its temporary file removed whatever happens."""
        if not service.ready:
            return error_response("not_ready", "the model is still loading")
        path = service.uploads / f"{uuid.uuid4().hex}.upload"
        try:
            name = await receive_upload(request, path, limit)
            return await answer(path, name)
        except RequestError as err:
            metrics.errors.labels(err.kind).inc()
            return error_response(err.kind, err.message)
        finally:
            path.unlink(missing_ok=True)

    @app.post("/predict", response_model=Prediction, response_model_exclude_unset=True,
              responses=documented(*UPLOAD_STATUS, "invalid_request", "unauthorized", "not_ready", "internal"),
              openapi_extra={"requestBody": UPLOAD_BODY})
    async def predict(request: Request, crops: bool = False):
        return await upload_answer(request, lambda path, name: service.predict(path, name, crops))

    @app.post("/timeline", response_model=Timeline,
              responses=documented(*UPLOAD_STATUS, "unauthorized", "not_ready", "no_timeline", "internal"),
              openapi_extra={"requestBody": UPLOAD_BODY})
    async def timeline(request: Request):
        return await upload_answer(request, service.timeline)

    @app.get("/health", response_model=Health, response_model_exclude_unset=True,
             responses={503: {"model": Health, "description": "still loading"}})
    async def health():
        if service.ready:
            return Health(status="ready", model=service.artifact.version or "unregistered")
        return JSONResponse(Health(status="loading").model_dump(exclude_unset=True), 503)

    @app.get("/metadata", response_model=Metadata, responses=documented("unauthorized", "internal"))
    async def metadata():
        return service.metadata()

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return (resources.files("a3lign_dfer.serving") / "page.html").read_text()

    return app


def load_artifact(params: ServeParams, artifact: str | None, stage: str | None, fetched: Path | None):
    """The folder given (models/deploy by default) or the registry's version in `stage` (into `fetched`),
    verified."""
    if stage is not None:
        from a3lign_dfer.registry.fetch import fetch_registered     # GTO and DVC: the `registry` extra

        return fetch_registered(params.serve.registry_repo, params.release.artifact, stage, fetched)
    return verify(Path(artifact) if artifact else DEPLOY_DIR)


def serve(params: ServeParams, artifact: str | None, stage: str | None, host: str, port: int, backend: str,
          device: str, api_key: str | None = None, precision: str = "fp32") -> int:
    import uvicorn

    with contextlib.ExitStack() as stack:         # a fetched artifact lives in a folder removed at exit
        fetched = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="a3lign-artifact-"))) / "deploy" \
            if stage is not None else None
        loaded = load_artifact(params, artifact, stage, fetched)
        loaded.require_precision(precision)
        print(f"serving {loaded.path} (version {loaded.version or 'unregistered'}, manifest sha256 "
              f"{loaded.manifest_sha256[:12]}) with {backend} {precision} on http://{host}:{port}"
              f"{'; API key required' if api_key else ''}", flush=True)
        app = create_app(Service(loaded, params.serve, params.timeline, backend, device, precision), api_key)
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info")).run()
    return 0
