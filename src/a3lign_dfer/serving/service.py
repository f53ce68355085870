"""One loaded deployment artifact answering predictions: the part of the HTTP service that is not HTTP.

An upload goes through exactly `predict`'s path (inference.video_input: streamed
decode, face track, crop, JPEG round trip, segment centres, CLIP normalisation), then
through the micro-batcher to the backend, so the service and `predict` give the same
numbers for the same file. Uploads are prepared in worker processes (decoding and
detection hold the GIL for part of their time, so threads kept one core busy), each
within the request limits of params `serve` (pixels x frames before decoding, CPU time
while it streams): one user's long 1080p video costs a bounded share of one core.
"""
from __future__ import annotations

import asyncio
import base64
import multiprocessing as mp
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import cv2
import numpy as np

from a3lign_dfer.config.serving import ServeConfig, TimelineConfig
from a3lign_dfer.data.face_track import warm_detector
from a3lign_dfer.inference.artifact import Artifact
from a3lign_dfer.inference.backends import HEAD_FILE, SplitRunner, load_backend
from a3lign_dfer.inference.timeline import predict_windows, prepared_file
from a3lign_dfer.inference.video_input import InputError, RequestLimits, face_frames
from a3lign_dfer.serving.batcher import MicroBatcher
from a3lign_dfer.serving.errors import RequestError
from a3lign_dfer.serving.metrics import ServiceMetrics
from a3lign_dfer.serving.schemas import Metadata, ModelVersion, Prediction, Timeline, TimelineWindow


class Service:
    def __init__(self, artifact: Artifact, cfg: ServeConfig, timeline: TimelineConfig, backend: str,
                 device: str = "cpu", precision: str = "fp32") -> None:
        self.artifact, self.cfg, self.backend, self.precision = artifact, cfg, backend, precision
        self.timeline_cfg = timeline
        # Timelines run the split graphs (per-frame encoder, per-window head) on ONNX Runtime, whatever `backend`.
        self.split = SplitRunner(artifact.path, precision, device) if (artifact.path / HEAD_FILE).is_file() else None
        self.spec = artifact.preprocess()
        self.classes: list[str] = artifact.manifest.classes
        self.metrics = ServiceMetrics()
        self.preparing = 0                       # uploads being decoded and cropped: the batcher waits for them
        self.batcher = MicroBatcher(load_backend(artifact.path, backend, device, precision), cfg.max_batch,
                                    cfg.max_wait_ms / 1000, lambda: self.preparing, self.metrics.batches.observe)
        self.limits = RequestLimits(cfg.max_frames, cfg.max_megapixel_frames, cfg.max_cpu_seconds)
        self.pool = self._new_pool()
        self.uploads = Path(tempfile.mkdtemp(prefix="a3lign-serve-"))   # one file per request in flight
        self.ready = False

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: the service process holds ONNX Runtime / torch threads that a fork would copy mid-flight
        return ProcessPoolExecutor(self.cfg.preprocess_workers, mp.get_context("spawn"),
                                   initializer=warm_detector, initargs=(self.spec.face_crop,))

    async def start(self) -> None:
        """Ready only after the workers are up and a warm-up inference ran: the first real request must not pay
        for process start-up or graph set-up."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.pool, warm_detector, self.spec.face_crop)
                               for _ in range(self.cfg.preprocess_workers)))
        await self.batcher.start()
        size = self.spec.image.size
        await self.batcher(np.zeros((self.spec.frames, 3, size, size), np.float32))
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.batcher.stop()
        self.pool.shutdown(wait=True)
        shutil.rmtree(self.uploads, ignore_errors=True)

    def metadata(self) -> Metadata:
        return Metadata(model=self.artifact.describe(), classes=self.classes, backend=self.backend,
                        precision=self.precision,
                        preprocessing=self.spec.to_json(),
                        limits={"max_upload_mb": self.cfg.max_upload_mb, "max_frames": self.cfg.max_frames,
                                "max_megapixel_frames": self.cfg.max_megapixel_frames,
                                "max_cpu_seconds": self.cfg.max_cpu_seconds},
                        batching={"max_batch": self.cfg.max_batch, "max_wait_ms": self.cfg.max_wait_ms})

    def model_version(self) -> ModelVersion:
        return ModelVersion(version=self.artifact.version, stage=self.artifact.stage,
                            manifest_sha256=self.artifact.manifest_sha256)

    async def _prepared(self, prepare, path: Path, filename: str, *args):
        """`prepare(path, spec, *args, limits)` in a worker process; RequestError for a video it refuses."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, prepare, path, self.spec, *args,
                                                                    self.limits)
        except InputError as err:
            raise RequestError(err.kind, str(err).replace(str(path), filename)) from err
        except BrokenProcessPool:                      # a worker died (killed): the next request gets a new pool
            self.pool = self._new_pool()
            raise

    async def predict(self, path: Path, filename: str, with_crops: bool) -> Prediction:
        """The prediction for one uploaded video; RequestError for a video that cannot be predicted."""
        self.preparing += 1
        try:
            faces = await self._prepared(face_frames, path, filename)
        finally:
            self.preparing -= 1
        frames = self.spec.image.graph_input(faces.crops)
        _, probs, _ = await self.batcher(frames)       # no await between the count going down and the queue
        crops = {"crops": [_jpeg_data_url(crop) for crop in faces.crops]} if with_crops else {}
        return Prediction(filename=filename, label=self.classes[int(probs.argmax())],
                          probabilities={c: round(float(p), 6) for c, p in zip(self.classes, probs)},
                          frames_decoded=len(faces.track), frames_used=faces.used.tolist(),
                          frame_size=faces.frame_size, face_boxes=faces.boxes(),
                          detection_rate=round(faces.stats.detection_rate, 4),
                          model=self.model_version(), backend=self.backend, precision=self.precision, **crops)

    async def timeline(self, path: Path, filename: str) -> Timeline:
        """The timeline of one uploaded video (inference.timeline, params timeline), through the split graphs."""
        if self.split is None:
            raise RequestError("no_timeline", f"{self.artifact.path} has no split graphs ({HEAD_FILE}): it was "
                                              "exported before timelines existed; re-run the export stage")
        cfg = self.timeline_cfg
        faces = await self._prepared(prepared_file, path, filename, cfg)
        points = await asyncio.get_running_loop().run_in_executor(
            None, lambda: list(predict_windows(faces, self.split, self.classes, self.spec.image)))
        return Timeline(filename=filename, fps=round(faces.fps, 3), frames_decoded=faces.frames,
                        frame_size=faces.frame_size, window_seconds=cfg.window_seconds,
                        stride_seconds=cfg.stride_seconds, windows=[TimelineWindow(**p.to_json()) for p in points],
                        model=self.model_version(), precision=self.precision)


def _jpeg_data_url(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()
