"""The service's side of the prediction log: rows handed to the writer thread and waited for (at most
serve.prediction_log.commit_timeout_ms), failures counted in /metrics and told once per reason, and feedback
checked against the classes of the model that answered."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from a3lign_dfer.config.serving import PredictionLogConfig
from a3lign_dfer.serving.errors import RequestError
from a3lign_dfer.serving.log_writer import LogRow, LogWriter
from a3lign_dfer.serving.metrics import ServiceMetrics
from a3lign_dfer.serving.prediction_log import UnknownLabel, UnknownRequest, open_log
from a3lign_dfer.serving.schemas import FeedbackStored

log = logging.getLogger("a3lign_dfer.serving")


class Recorder:
    def __init__(self, cfg: PredictionLogConfig, metrics: ServiceMetrics) -> None:
        self.cfg, self.metrics = cfg, metrics
        path = Path(cfg.path)
        self.writer = LogWriter(lambda: open_log(cfg.url or path, path.parent, synchronous=cfg.synchronous),
                                self.failed, cfg.keep_crops, cfg.crop_retention_days) if cfg.enabled else None
        self.classes_by_build: dict[str, list[str]] = {}     # manifest sha256 -> classes, of every model loaded
        self._told: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        if self.writer is not None:
            self.writer.start()

    async def stop(self) -> None:
        """After the last request: what is queued is committed."""
        if self.writer is not None:
            await asyncio.to_thread(self.writer.stop)

    def failed(self, reason: str, err: BaseException | str) -> None:
        """Counted every time, told once per reason (from any thread)."""
        self.metrics.log_failures.labels(reason).inc()
        with self._lock:
            if reason in self._told:
                return
            self._told.add(reason)
        log.warning("prediction log (%s): %s; the service goes on, and further failures of this kind are only "
                    "counted: a3lign_prediction_log_failures_total{reason=%r}", reason, err, reason)

    async def record(self, row: LogRow) -> bool:
        """Hand the row to the writer and wait for its commit, at most commit_timeout_ms; a row not committed
        by then is counted (timeout) and committed later. Whether it was committed in time; never raises."""
        if self.writer is None:
            return False
        start = time.perf_counter()
        future = asyncio.wrap_future(self.writer.submit(row))
        done, _ = await asyncio.wait({future}, timeout=self.cfg.commit_timeout_ms / 1000)
        self.metrics.log_wait.observe(time.perf_counter() - start)
        if not done:
            self.failed("timeout", f"a row waited more than {self.cfg.commit_timeout_ms:g} ms for its commit "
                                   "(answered before it was on disk)")
            return False
        return future.result() is None

    async def add_feedback(self, request_id: str, label: str) -> FeedbackStored:
        """The true label of a logged request (RequestError unknown_request / unknown_label / no_prediction_log)."""
        if self.writer is None:
            raise RequestError("no_prediction_log", "this service keeps no prediction log "
                                                    "(serve.prediction_log.enabled: false), so it takes no feedback")
        classes = dict(self.classes_by_build)
        try:
            stored = await asyncio.wrap_future(self.writer.call(
                lambda store: store.add_feedback(request_id, label, "api", classes)))
        except UnknownRequest as err:
            raise RequestError("unknown_request", str(err)) from None
        except UnknownLabel as err:
            raise RequestError("unknown_label", str(err)) from None
        return FeedbackStored(request_id=stored.request_id, label=stored.label, source=stored.source,
                              time=stored.time, predicted=stored.predicted)
