"""The models the HTTP service answers with, and everything about a request that is not HTTP.

An upload goes through exactly `predict`'s path (inference.video_input: streamed
decode, face track, crop, JPEG round trip, segment centres, CLIP normalisation), then
through the micro-batcher to the backend, so the service and `predict` give the same
numbers for the same file. Uploads are prepared in worker processes (decoding and
detection hold the GIL for part of their time, so threads kept one core busy), each
within the request limits of params `serve` (pixels x frames before decoding, CPU time
while it streams): one user's long 1080p video costs a bounded share of one core.

A request holds one LoadedModel from start to end (`model_for_request`). `reload` fetches,
verifies, loads and warms a new artifact beside the current one and then swaps the reference
in one step on the event loop: requests already started finish on the old model, which is
closed after the last of them; a new artifact that fails any step is refused and the old one
serves on. With a followed stage, a poll of the registry starts the same reload when the stage
moves. Answered requests go to the prediction log (serving/recorder.py).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import multiprocessing as mp
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.config.serving import ServeConfig, TimelineConfig
from a3lign_dfer.data.face_track import warm_detector
from a3lign_dfer.errors import UserError
from a3lign_dfer.inference.artifact import Artifact
from a3lign_dfer.inference.timeline import predict_windows, prepared_file
from a3lign_dfer.inference.video_input import InputError, RequestLimits, face_frames
from a3lign_dfer.serving.errors import RequestError
from a3lign_dfer.serving.loaded_model import LoadedModel
from a3lign_dfer.serving.metrics import ServiceMetrics
from a3lign_dfer.serving.model_source import ModelSource, fetch, held_version
from a3lign_dfer.serving.recorder import Recorder
from a3lign_dfer.serving.schemas import (Metadata, Prediction, PredictionLogInfo, Reloaded, Timeline,
                                         TimelineWindow)
from a3lign_dfer.serving.workers import start_worker

log = logging.getLogger("a3lign_dfer.serving")


@dataclass
class Answer:
    body: Prediction | Timeline
    crops: list[np.ndarray] | None = None     # the RGB face crops the model saw (/predict)


class Service:
    def __init__(self, artifact: Artifact, cfg: ServeConfig, timeline: TimelineConfig, backend: str,
                 device: str = "cpu", precision: str = "fp32", source: ModelSource | None = None,
                 follow: str | None = None, owned: Path | None = None) -> None:
        """`artifact`: verified, from `source` (the folder it is in by default); `follow`: the source's stage,
        polled every serve.follow.poll_seconds; `owned`: a fetched folder to remove once that model is closed."""
        self.cfg, self.backend, self.device, self.precision = cfg, backend, device, precision
        self.timeline_cfg = timeline
        self.source = source or ModelSource(artifact.path, None, cfg.registry_repo, "")
        self.follow = follow
        self.metrics = ServiceMetrics()
        self.preparing = 0                       # uploads being decoded and cropped: the batchers wait for them
        self.limits = RequestLimits(cfg.max_frames, cfg.max_megapixel_frames, cfg.max_cpu_seconds)
        self.model = self._load(artifact, owned)
        self.metrics.models_loaded.set(1)
        self.pool = self._new_pool()
        self.uploads = Path(tempfile.mkdtemp(prefix="a3lign-serve-"))   # one file per request in flight
        self.fetched = Path(tempfile.mkdtemp(prefix="a3lign-artifacts-"))   # registry versions, one folder each
        self._fetch_ids = itertools.count(1)
        self.recorder = Recorder(cfg.prediction_log, self.metrics)
        self.recorder.classes_by_build[artifact.manifest_sha256] = self.model.classes
        self._told: set[str] = set()
        self._swap = asyncio.Lock()
        self._refused_version: str | None = None   # a followed version that failed: not fetched again
        self._tasks: set[asyncio.Task] = set()
        self.ready = False

    def _load(self, artifact: Artifact, owned: Path | None) -> LoadedModel:
        return LoadedModel(artifact, self.cfg, self.backend, self.device, self.precision, lambda: self.preparing,
                           self.metrics.batches.observe, owned)

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: the service process holds ONNX Runtime / torch threads that a fork would copy mid-flight
        return ProcessPoolExecutor(self.cfg.preprocess_workers, mp.get_context("spawn"),
                                   initializer=start_worker, initargs=(self.model.spec.face_crop,))

    async def start(self) -> None:
        """Ready only after the workers are up and a warm-up inference ran: the first real request must not pay
        for process start-up or graph set-up."""
        self.recorder.start()
        await self._warm_workers(self.model)
        await self.model.start()
        if self.follow is not None:
            self._spawn(self._follow())
        self.ready = True

    async def _warm_workers(self, model: LoadedModel) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.pool, warm_detector, model.spec.face_crop)
                               for _ in range(self.cfg.preprocess_workers)))

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        self.ready = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.model.close()
        await self.recorder.stop()
        self.pool.shutdown(wait=True)
        shutil.rmtree(self.uploads, ignore_errors=True)
        shutil.rmtree(self.fetched, ignore_errors=True)

    @contextlib.contextmanager
    def model_for_request(self) -> Iterator[LoadedModel]:
        """The model answering now, held until the request is done (a swap meanwhile does not close it)."""
        model = self.model
        model.in_flight += 1
        try:
            yield model
        finally:
            model.in_flight -= 1
            if model.retired and model.in_flight == 0:
                self._spawn(self._close(model))

    async def _close(self, model: LoadedModel) -> None:
        await model.close()
        self.metrics.models_loaded.dec()

    # -- swapping ---------------------------------------------------------------------------------------------

    async def reload(self, folder: Path | None = None) -> Reloaded:
        """Swap to the artifact in `folder`, or to the service's source again (its folder, or the version now
        holding its stage). RequestError artifact_refused / warmup_failed when the new artifact fails; the
        current model then serves on."""
        async with self._swap:
            started, previous = time.perf_counter(), self.model
            source = ModelSource(folder, None, self.source.repo, self.source.name) if folder else self.source
            dest = self.fetched / f"deploy-{next(self._fetch_ids)}" if source.stage else None
            try:
                artifact = await asyncio.to_thread(fetch, source, dest)
                artifact.require_precision(self.precision)
            except UserError as err:
                self._remove(dest)
                self._swap_failed("refused", source, err)
                raise RequestError("artifact_refused", f"{source.describe()}: {err}") from None
            if previous.same_as(artifact):
                self._remove(dest)
                self.metrics.swaps.labels("unchanged").inc()
                return Reloaded(result="unchanged", model=previous.version, previous=previous.version,
                                seconds=round(time.perf_counter() - started, 3))
            new = None
            try:
                new = await asyncio.to_thread(self._load, artifact, dest)
                await self._warm_workers(new)
                await new.start()
            except Exception as err:                       # a graph that does not load or run: keep the old model
                if new is not None:
                    await new.close()
                self._remove(dest)
                self._swap_failed("warmup_failed", source, err)
                raise RequestError("warmup_failed", f"{source.describe()}: {type(err).__name__}: {err}") from None
            self.recorder.classes_by_build[artifact.manifest_sha256] = new.classes
            self.model = new                                   # one step on the event loop: the swap
            self.metrics.models_loaded.inc()
            self.metrics.swaps.labels("swapped").inc()
            previous.retired = True
            if previous.in_flight == 0:
                self._spawn(self._close(previous))
            seconds = round(time.perf_counter() - started, 3)
            log.info("swapped to %s (manifest sha256 %s) from %s in %.2f s; %d request(s) finishing on the old one",
                     artifact.version or artifact.path, artifact.manifest_sha256[:12],
                     previous.artifact.version or previous.artifact.path, seconds, previous.in_flight)
            return Reloaded(result="swapped", model=new.version, previous=previous.version, seconds=seconds)

    def _swap_failed(self, result: str, source: ModelSource, err: BaseException) -> None:
        self.metrics.swaps.labels(result).inc()
        log.warning("not swapping to %s (%s): %s; still serving %s", source.describe(), result, err,
                    self.model.artifact.version or self.model.artifact.path)

    @staticmethod
    def _remove(dest: Path | None) -> None:
        if dest is not None:
            shutil.rmtree(dest, ignore_errors=True)

    async def _follow(self) -> None:
        """Poll the followed stage; reload when another version holds it (a refused version is not retried)."""
        while True:
            await asyncio.sleep(self.cfg.follow.poll_seconds)
            try:
                version = await asyncio.to_thread(held_version, self.source)
            except Exception as err:                            # registry unreadable now: try at the next poll
                self._log_once(f"registry: {err}", "cannot read the registry of %s: %s", self.source.repo, err)
                continue
            if version is None or version in (self.model.artifact.version, self._refused_version):
                continue
            try:
                await self.reload()
            except RequestError:
                self._refused_version = version                # said why and counted in reload
            else:
                self._refused_version = None

    def _log_once(self, key: str, message: str, *args) -> None:
        if key not in self._told:
            self._told.add(key)
            log.warning(message, *args)

    # -- answering ------------------------------------------------------------------------------------------

    def metadata(self) -> Metadata:
        model, log_cfg = self.model, self.cfg.prediction_log
        return Metadata(model=model.artifact.describe(), classes=model.classes, backend=self.backend,
                        precision=self.precision,
                        preprocessing=model.spec.to_json(),
                        limits={"max_upload_mb": self.cfg.max_upload_mb, "max_frames": self.cfg.max_frames,
                                "max_megapixel_frames": self.cfg.max_megapixel_frames,
                                "max_cpu_seconds": self.cfg.max_cpu_seconds},
                        batching={"max_batch": self.cfg.max_batch, "max_wait_ms": self.cfg.max_wait_ms},
                        prediction_log=PredictionLogInfo(enabled=log_cfg.enabled, keep_crops=log_cfg.keep_crops,
                                                         crop_retention_days=log_cfg.crop_retention_days),
                        follows=self.follow)

    async def _prepared(self, model: LoadedModel, prepare, path: Path, filename: str, *args):
        """`prepare(path, spec, *args, limits)` in a worker process; RequestError for a video it refuses."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, prepare, path, model.spec, *args,
                                                                    self.limits)
        except InputError as err:
            raise RequestError(err.kind, str(err).replace(str(path), filename)) from err
        except BrokenProcessPool:                      # a worker died (killed): the next request gets a new pool
            self.pool = self._new_pool()
            raise

    async def predict(self, model: LoadedModel, path: Path, filename: str, with_crops: bool,
                      request_id: str) -> Answer:
        """The prediction for one uploaded video; RequestError for a video that cannot be predicted."""
        self.preparing += 1
        try:
            faces = await self._prepared(model, face_frames, path, filename)
        finally:
            self.preparing -= 1
        frames = model.spec.image.graph_input(faces.crops)
        _, probs, _ = await model.batcher(frames)      # no await between the count going down and the queue
        crops = {"crops": [_jpeg_data_url(crop) for crop in faces.crops]} if with_crops else {}
        body = Prediction(request_id=request_id, filename=filename, label=model.classes[int(probs.argmax())],
                          probabilities={c: round(float(p), 6) for c, p in zip(model.classes, probs)},
                          frames_decoded=len(faces.track), frames_used=faces.used.tolist(),
                          frame_size=faces.frame_size, face_boxes=faces.boxes(),
                          detection_rate=round(faces.stats.detection_rate, 4),
                          model=model.version, backend=self.backend, precision=self.precision, **crops)
        return Answer(body, list(faces.crops))

    async def timeline(self, model: LoadedModel, path: Path, filename: str, request_id: str) -> Answer:
        """The timeline of one uploaded video (inference.timeline, params timeline), through the split graphs."""
        if model.split is None:
            raise RequestError("no_timeline", f"{model.artifact.path} has no split graphs: it was exported before "
                                              "timelines existed; re-run the export stage")
        cfg = self.timeline_cfg
        faces = await self._prepared(model, prepared_file, path, filename, cfg)
        points = await asyncio.get_running_loop().run_in_executor(
            None, lambda: list(predict_windows(faces, model.split, model.classes, model.spec.image)))
        return Answer(Timeline(request_id=request_id, filename=filename, fps=round(faces.fps, 3),
                               frames_decoded=faces.frames, frame_size=faces.frame_size,
                               window_seconds=cfg.window_seconds, stride_seconds=cfg.stride_seconds,
                               windows=[TimelineWindow(**p.to_json()) for p in points], model=model.version,
                               precision=self.precision))


def _jpeg_data_url(rgb: np.ndarray) -> str:
    _, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()
