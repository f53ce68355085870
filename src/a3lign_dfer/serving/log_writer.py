"""The prediction log's one writer: a thread that commits queued rows in groups.

A request hands its row over (`submit`) and waits for the row's commit at most params
serve.prediction_log.commit_timeout_ms, then answers whatever happened: the database never fails a
prediction, and a prediction answered after its commit survives the service being killed (SQLite WAL,
synchronous FULL). Rows that arrive while a commit runs go into the next one together (group commit),
so a commit costs one disk sync however many requests it carries. A row that cannot be written (a
locked database, a full disk, a folder the service may not write) is counted by reason (`on_failure`)
and dropped; the service goes on. Feedback and other reads and writes run on the same thread (`call`),
after every row queued before them.
"""
from __future__ import annotations

import datetime
import json
import queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import cv2
import numpy as np

from a3lign_dfer.serving.prediction_log import COLUMNS, CROPS, PredictionLog, failure_reason

T = TypeVar("T")
MAX_GROUP = 512                  # rows in one commit at most
PURGE_EVERY_S = 3600.0           # kept crops past their retention are deleted this often (and at start)
CROP_QUALITY = 95


@dataclass
class LogRow:
    """One answered request, as the predictions table holds it (probabilities and windows as objects here);
    `crops` (RGB arrays, the frames the model saw) become JPEG files when the service keeps them."""

    request_id: str
    time: str
    endpoint: str
    status: int
    error_kind: str | None
    model_version: str | None
    artifact_sha256: str
    filename: str | None
    input_sha256: str | None
    input_bytes: int | None
    label: str | None
    probabilities: dict[str, float] | None
    margin: float | None
    windows: list[dict] | None
    duration_ms: float
    crops: Sequence[np.ndarray] | None = field(default=None, repr=False)

    def columns(self, crops_dir: str | None) -> dict:
        values = {name: getattr(self, name) for name in COLUMNS if name != "crops_dir"}
        values["probabilities"] = json.dumps(self.probabilities) if self.probabilities is not None else None
        values["windows"] = json.dumps(self.windows) if self.windows is not None else None
        return {**values, "crops_dir": crops_dir}


@dataclass
class _Job:
    future: Future
    row: LogRow | None = None
    call: Callable[[PredictionLog], Any] | None = None


_STOP = object()


class LogWriter:
    """`submit(row)` -> a Future resolving to None (committed) or the reason it was not; `call(fn)` -> a Future of
    fn(log) run on the writer's connection. `open_store` opens the log (again after a failure)."""

    def __init__(self, open_store: Callable[[], PredictionLog], on_failure: Callable[[str, BaseException], None],
                 keep_crops: bool, crop_retention_days: int) -> None:
        self.open_store, self.on_failure = open_store, on_failure
        self.keep_crops, self.crop_retention_days = keep_crops, crop_retention_days
        self._queue: queue.Queue = queue.Queue()
        self._store: PredictionLog | None = None
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._next_purge = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then close the log."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def submit(self, row: LogRow) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()        # nobody may cancel it: the row is committed regardless
        if not self.keep_crops:
            row.crops = None
        self._queue.put(_Job(future, row=row))
        return future

    def call(self, fn: Callable[[PredictionLog], T]) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()
        self._queue.put(_Job(future, call=fn))
        return future

    def _run(self) -> None:
        while True:
            wait = max(0.0, self._next_purge - time.monotonic())
            try:
                first = self._queue.get(timeout=wait or None) if wait else self._queue.get_nowait()
            except queue.Empty:
                first = None
            if time.monotonic() >= self._next_purge:
                self._purge()
            if first is None:
                continue
            batch = [first]
            while len(batch) < MAX_GROUP:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows: list[_Job] = []
            for job in batch:
                if job is _STOP or job.call is not None:
                    self._commit(rows)
                    rows = []
                    if job is _STOP:
                        self._close()
                        return
                    self._run_call(job)
                else:
                    rows.append(job)
            self._commit(rows)

    def _open(self) -> PredictionLog:
        if self._store is None:
            self._store = self.open_store()
        return self._store

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _fail(self, jobs: list[_Job], err: BaseException) -> None:
        reason = failure_reason(err)
        for job in jobs:
            self.on_failure(reason, err)
            job.future.set_result(reason)
        if reason != "locked":                       # reopen next time: the folder may have been fixed
            self._close()

    def _commit(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        try:
            store = self._open()
        except Exception as err:                     # cannot open or create the database
            self._fail(jobs, err)
            return
        rows = [job.row.columns(self._write_crops(store, job.row)) for job in jobs]
        try:
            store.insert(rows)
        except Exception as err:
            for row in rows:                         # the rows are gone, so are their crops
                if row["crops_dir"] is not None:
                    shutil.rmtree(store.folder / row["crops_dir"], ignore_errors=True)
            self._fail(jobs, err)
            return
        for job in jobs:
            job.future.set_result(None)

    def _write_crops(self, store: PredictionLog, row: LogRow) -> str | None:
        """The row's crops as JPEG files under the log's folder; their folder (relative to it), or None."""
        if not row.crops or store.folder is None:
            return None
        relative = f"{CROPS}/{row.time[:10]}/{row.request_id}"
        folder = store.folder / relative
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for i, crop in enumerate(row.crops):
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, CROP_QUALITY])
                if not ok:
                    raise OSError(f"cannot encode crop {i} of {row.request_id} as JPEG")
                (folder / f"frame_{i:02d}.jpg").write_bytes(buf.tobytes())
        except Exception as err:                     # the row is kept without its crops
            shutil.rmtree(folder, ignore_errors=True)
            self.on_failure("crops", err)
            return None
        return relative

    def _run_call(self, job: _Job) -> None:
        try:
            job.future.set_result(job.call(self._open()))
        except Exception as err:
            job.future.set_exception(err)

    def _purge(self) -> None:
        self._next_purge = time.monotonic() + PURGE_EVERY_S
        try:
            self._open().purge_crops(self.crop_retention_days, datetime.datetime.now(datetime.UTC).date())
        except Exception as err:                     # told now, at start, rather than at the first request
            self.on_failure(failure_reason(err), err)
            self._close()
