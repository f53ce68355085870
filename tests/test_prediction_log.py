"""The prediction log (fast): its tables exactly as the readers rely on them, in WAL mode; the writer thread's
group commit; committed rows surviving SIGKILL of the writing process; feedback upserts and refusals; the
labelled/unlabelled queries; kept crops and their retention; each kind of write failure counted and told once;
a server database through SQLAlchemy. Then the app in-process around a stand-in model: every answer and refusal
of /predict and /timeline logged under the request id it returned, and /feedback's answers by kind."""
import asyncio
import contextlib
import datetime
import hashlib
import json
import logging
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import wait
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from a3lign_dfer.config.serving import PredictionLogConfig
from a3lign_dfer.serving.app import create_app
from a3lign_dfer.serving.errors import RequestError
from a3lign_dfer.serving.log_writer import LogRow, LogWriter
from a3lign_dfer.serving.metrics import ServiceMetrics
from a3lign_dfer.serving.prediction_log import UnknownLabel, UnknownRequest, open_log
from a3lign_dfer.serving.recorder import Recorder
from a3lign_dfer.serving.schemas import ModelVersion, Prediction
from a3lign_dfer.serving.service import Answer

CLASSES = ["happy", "sad", "neutral"]
SHA = "ab" * 32
CONTRACT = {  # Contract 1 of issue 33: (column, type, not null, primary key)
    "predictions": [("request_id", "TEXT", 0, 1), ("time", "TEXT", 1, 0), ("endpoint", "TEXT", 1, 0),
                    ("status", "INTEGER", 1, 0), ("error_kind", "TEXT", 0, 0), ("model_version", "TEXT", 0, 0),
                    ("artifact_sha256", "TEXT", 1, 0), ("filename", "TEXT", 0, 0), ("input_sha256", "TEXT", 0, 0),
                    ("input_bytes", "INTEGER", 0, 0), ("label", "TEXT", 0, 0), ("probabilities", "TEXT", 0, 0),
                    ("margin", "REAL", 0, 0), ("windows", "TEXT", 0, 0), ("duration_ms", "REAL", 1, 0),
                    ("crops_dir", "TEXT", 0, 0)],
    "feedback": [("request_id", "TEXT", 0, 1), ("label", "TEXT", 1, 0), ("source", "TEXT", 1, 0),
                 ("time", "TEXT", 1, 0)],
}


def row(request_id: str, label: str | None = "happy", endpoint: str = "/predict", status: int = 200,
        kind: str | None = None, time: str | None = None, crops=None) -> LogRow:
    probabilities = None if label is None else {c: (0.7 if c == label else 0.15) for c in CLASSES}
    windows = [{"start": 0.0, "end": 2.0, "label": "sad", "probabilities": {c: 1 / 3 for c in CLASSES},
                "face_box": [1, 2, 3, 3], "detection_rate": 1.0}] if endpoint == "/timeline" else None
    return LogRow(request_id=request_id, time=time or datetime.datetime.now(datetime.UTC).isoformat(),
                  endpoint=endpoint, status=status, error_kind=kind, model_version="v1", artifact_sha256=SHA,
                  filename=f"{request_id}.mp4", input_sha256="cd" * 32, input_bytes=123,
                  label=label if endpoint == "/predict" else None,
                  probabilities=probabilities if endpoint == "/predict" else None,
                  margin=0.55 if probabilities and endpoint == "/predict" else None, windows=windows,
                  duration_ms=12.5, crops=crops)


@contextlib.contextmanager
def writer(path: Path, keep_crops: bool = False, retention: int = 30, **open_kwargs):
    failures = []
    w = LogWriter(lambda: open_log(path, **open_kwargs), lambda reason, err: failures.append((reason, str(err))),
                  keep_crops, retention)
    w.start()
    try:
        yield w, failures
    finally:
        w.stop()


def committed(w: LogWriter, rows: list[LogRow]) -> list:
    futures = [w.submit(r) for r in rows]
    wait(futures, timeout=30)
    return [f.result() for f in futures]


def test_the_tables_are_the_contract_in_wal_mode(tmp_path):
    open_log(tmp_path / "logs/predictions.sqlite").close()
    db = sqlite3.connect(tmp_path / "logs/predictions.sqlite")
    for table, columns in CONTRACT.items():
        info = [(name, kind, notnull, pk)
                for _, name, kind, notnull, _, pk in db.execute(f"PRAGMA table_info({table})")]
        assert info == columns, table
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA foreign_key_list(feedback)").fetchone()[2:5] == ("predictions", "request_id",
                                                                                 "request_id")
    with pytest.raises(Exception, match="no prediction log at"):
        open_log(tmp_path / "elsewhere.sqlite", create=False)
    for synchronous, pragma in (("normal", 1), ("full", 2)):        # SQLite's numbers for NORMAL and FULL
        log = open_log(tmp_path / "logs/predictions.sqlite", synchronous=synchronous)
        assert log.db.conn.execute("PRAGMA synchronous").fetchone()[0] == pragma


def test_rows_queued_during_a_commit_go_into_the_next_one_together(tmp_path):
    path, inserts = tmp_path / "log.sqlite", []

    def counted():
        log = open_log(path)
        insert = log.insert
        log.insert = lambda rows: (inserts.append(len(rows)), insert(rows))
        return log

    gate = threading.Event()
    w = LogWriter(counted, lambda *_: pytest.fail("no failure expected"), False, 30)
    w.start()
    try:
        inside = threading.Event()
        busy = w.call(lambda log: (inside.set(), gate.wait(30)))    # the writer is busy (as during a slow commit)
        assert inside.wait(30)                        # rows queued from now on wait for the writer together
        futures = [w.submit(row(f"r{i:02d}")) for i in range(40)]
        gate.set()
        wait([busy, *futures], timeout=30)
        assert [f.result() for f in futures] == [None] * 40
    finally:
        w.stop()
    assert inserts == [40]                                     # one commit, one disk sync, for 40 requests
    reader = sqlite3.connect(path)
    assert reader.execute("SELECT count(*) FROM predictions").fetchone() == (40,)
    stored = dict(zip(CONTRACT["predictions"], reader.execute("SELECT * FROM predictions WHERE request_id='r07'")
                      .fetchone()))
    assert {name: value for (name, *_), value in stored.items()} == {
        "request_id": "r07", "time": stored[CONTRACT["predictions"][1]], "endpoint": "/predict", "status": 200,
        "error_kind": None, "model_version": "v1", "artifact_sha256": SHA, "filename": "r07.mp4",
        "input_sha256": "cd" * 32, "input_bytes": 123, "label": "happy",
        "probabilities": json.dumps({"happy": 0.7, "sad": 0.15, "neutral": 0.15}), "margin": 0.55, "windows": None,
        "duration_ms": 12.5, "crops_dir": None}


KILLED_WRITER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_prediction_log import row, writer, committed
from pathlib import Path
with writer(Path({path!r})) as (w, _):
    for i in range(5):
        ids = [f"b{{i}}-{{j}}" for j in range(20)]
        assert committed(w, [row(r) for r in ids]) == [None] * 20
        print(*ids, flush=True)                 # acknowledged: its rows are committed
    for j in range(200):                        # still queued or being written when the process dies
        w.submit(row(f"late-{{j}}"))
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_every_committed_row_survives_sigkill_and_the_database_opens_cleanly(tmp_path):
    path = tmp_path / "log.sqlite"
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER.format(tests=str(Path(__file__).parent),
                                                                     path=str(path))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stderr
    acknowledged = done.stdout.split()
    assert len(acknowledged) == 100
    db = sqlite3.connect(path)                                 # recovers from the WAL the killed process left
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = {r for (r,) in db.execute("SELECT request_id FROM predictions")}
    assert set(acknowledged) <= stored


def test_feedback_upserts_and_refuses_unknown_ids_and_labels(tmp_path):
    with writer(tmp_path / "log.sqlite") as (w, _):
        committed(w, [row("a"), row("b", "sad"), row("t", endpoint="/timeline"),
                      row("refused", None, status=422, kind="no_face")])
    log = open_log(tmp_path / "log.sqlite")
    first = log.add_feedback("a", "sad", "api")
    assert (first.label, first.source, first.predicted) == ("sad", "api", "happy")
    latest = log.add_feedback("a", "neutral", "label-studio")          # the latest label wins
    assert [(r.request_id, r.label, r.source, r.labelled_at) for r in log.labelled()] == \
        [("a", "neutral", "label-studio", latest.time)]
    with pytest.raises(UnknownRequest, match="'nope'"):
        log.add_feedback("nope", "sad", "api")
    with pytest.raises(UnknownLabel, match="'fear' is not a class .* happy, sad, neutral"):
        log.add_feedback("b", "fear", "api")
    with pytest.raises(UnknownLabel, match="'fear'"):                    # a timeline's classes are its windows'
        log.add_feedback("t", "fear", "api")
    # A refused request lists no classes: those of the model that answered it, when the caller knows them.
    with pytest.raises(UnknownLabel):
        log.add_feedback("refused", "fear", "api", {SHA: CLASSES})
    assert log.add_feedback("refused", "sad", "api", {SHA: CLASSES}).predicted is None
    with pytest.raises(ValueError, match="source"):
        log.add_feedback("b", "sad", "email")
    db = sqlite3.connect(tmp_path / "log.sqlite")
    assert db.execute("SELECT request_id, label, source FROM feedback ORDER BY request_id").fetchall() == \
        [("a", "neutral", "label-studio"), ("refused", "sad", "api")]


def test_labelled_and_unlabelled_are_what_readers_get(tmp_path):
    with writer(tmp_path / "log.sqlite") as (w, _):
        committed(w, [row("p1", "happy", time="2026-12-01T00:00:00+00:00"),
                      row("p2", "sad", time="2026-12-02T00:00:00+00:00"),
                      row("p3", "neutral", time="2026-12-03T00:00:00+00:00"),
                      row("t1", endpoint="/timeline", time="2026-12-04T00:00:00+00:00"),
                      row("x1", None, status=413, kind="too_many_frames", time="2026-12-05T00:00:00+00:00")])
    log = open_log(tmp_path / "log.sqlite")
    log.add_feedback("p2", "happy", "api")
    log.add_feedback("t1", "sad", "api")
    [labelled] = log.labelled()
    assert (labelled.request_id, labelled.label, labelled.predicted, labelled.model_version, labelled.time) == \
        ("p2", "happy", "sad", "v1", "2026-12-02T00:00:00+00:00")
    assert labelled.probabilities == {"happy": 0.15, "sad": 0.7, "neutral": 0.15} and labelled.crops_dir is None
    assert [r.request_id for r in log.labelled(endpoint=None)] == ["p2", "t1"]
    unlabelled = log.unlabelled()
    assert [(r.request_id, r.label, r.margin, r.filename) for r in unlabelled] == \
        [("p1", "happy", 0.55, "p1.mp4"), ("p3", "neutral", 0.55, "p3.mp4")]   # no refusal, no timeline
    assert unlabelled[0].probabilities["happy"] == 0.7 and unlabelled[0].crops_dir is None
    assert log.unlabelled("/timeline") == []                                    # t1 is labelled


def _colour(rgb) -> np.ndarray:
    return np.tile(np.array(rgb, np.uint8), (24, 24, 1))


def test_kept_crops_are_jpeg_files_and_go_after_their_retention(tmp_path):
    path = tmp_path / "logs/predictions.sqlite"
    crops = [_colour((220, 20, 20)), _colour((20, 220, 20))]                    # RGB: red, green
    old = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=40)).isoformat()
    with writer(path, keep_crops=True) as (w, failures):
        assert committed(w, [row("new", crops=crops), row("old", "sad", time=old, crops=crops),
                             row("none", "sad")]) == [None] * 3
    assert failures == []
    log = open_log(path)
    by_id = {r.request_id: r for r in log.unlabelled()}
    new, old_row, none = by_id["new"], by_id["old"], by_id["none"]
    assert new.crops_dir == path.parent / "crops" / new.time[:10] / "new" and none.crops_dir is None
    assert sorted(p.name for p in new.crops_dir.iterdir()) == ["frame_00.jpg", "frame_01.jpg"]
    red = cv2.cvtColor(cv2.imread(str(new.crops_dir / "frame_00.jpg")), cv2.COLOR_BGR2RGB)
    assert red.shape == (24, 24, 3) and red[..., 0].mean() > 200 and red[..., 1].mean() < 40   # RGB kept
    assert old_row.crops_dir is not None
    # The retention: the old day's folder is deleted and its row keeps everything but the crops.
    assert log.purge_crops(30) == [old[:10]]
    assert not old_row.crops_dir.exists() and new.crops_dir.is_dir()
    stored = sqlite3.connect(path).execute("SELECT request_id, crops_dir FROM predictions ORDER BY request_id")
    assert stored.fetchall() == [("new", f"crops/{new.time[:10]}/new"), ("none", None), ("old", None)]
    # A writer purges at its start too, and keeps no crops unless told to.
    log.add_feedback("new", "sad", "api")
    with writer(path, keep_crops=False, retention=1) as (w, _):
        committed(w, [row("later", crops=crops)])
    assert open_log(path).labelled()[0].crops_dir.is_dir()                     # today's: within 1 day
    assert open_log(path).get("later")["crops_dir"] is None
    assert open_log(path).purge_crops(1, datetime.date.today() + datetime.timedelta(days=2)) == [new.time[:10]]


def test_each_kind_of_write_failure_is_counted_told_once_and_never_raised(tmp_path, caplog):
    metrics = ServiceMetrics()
    cfg = PredictionLogConfig(enabled=True, path=str(tmp_path / "a_file/predictions.sqlite"), url=None,
                              commit_timeout_ms=5000, synchronous="full", keep_crops=False, crop_retention_days=30)
    (tmp_path / "a_file").write_text("a file where the log's folder should be")
    recorder = Recorder(cfg, metrics)
    caplog.set_level(logging.WARNING, "a3lign_dfer.serving")

    async def three():
        recorder.start()
        try:
            return [await recorder.record(row(f"u{i}")) for i in range(3)]
        finally:
            await recorder.stop()

    assert asyncio.run(three()) == [False] * 3
    text = metrics.render().decode()
    # One failure told at start (the crop purge cannot open the log) and one per row; told once.
    assert 'a3lign_prediction_log_failures_total{reason="unwritable"} 4.0' in text
    told = [r for r in caplog.records if "prediction log (unwritable)" in r.getMessage()]
    assert len(told) == 1 and "a_file" in told[0].getMessage()

    # Locked: another process holds the write lock longer than the writer waits; the writer recovers after.
    path = tmp_path / "log.sqlite"
    open_log(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    with writer(path, busy_timeout_s=0.1) as (w, failures):
        assert committed(w, [row("while-locked")]) == ["locked"]
        holder.execute("ROLLBACK")
        assert committed(w, [row("after")]) == [None]
        # Full: the database may not grow (as on a full disk); the rows fail, the next ones do not.
        w.call(lambda log: log.db.conn.execute(f"PRAGMA max_page_count = "
                                               f"{log.db.conn.execute('PRAGMA page_count').fetchone()[0]}")).result()
        big = row("big")
        big.filename = "x" * 100_000
        assert committed(w, [big]) == ["disk_full"]
    # (the first: opening the log at the writer's start, to purge old crops)
    assert [reason for reason, _ in failures] == ["locked", "locked", "disk_full"]
    assert {r for (r,) in sqlite3.connect(path).execute("SELECT request_id FROM predictions")} == {"after"}


def test_a_row_not_committed_in_time_is_counted_and_still_written(tmp_path):
    metrics = ServiceMetrics()
    cfg = PredictionLogConfig(enabled=True, path=str(tmp_path / "log.sqlite"), url=None, commit_timeout_ms=50,
                              synchronous="normal", keep_crops=False, crop_retention_days=30)
    recorder = Recorder(cfg, metrics)
    gate = threading.Event()

    async def late():
        recorder.start()
        try:
            recorder.writer.call(lambda log: gate.wait(30))        # a commit far slower than the 50 ms allowed
            return await recorder.record(row("late"))
        finally:
            gate.set()
            await recorder.stop()

    assert asyncio.run(late()) is False
    assert 'a3lign_prediction_log_failures_total{reason="timeout"} 1.0' in metrics.render().decode()
    assert open_log(tmp_path / "log.sqlite").get("late")["label"] == "happy"


def test_a_server_database_by_sqlalchemy_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'server.sqlite'}"
    with writer(url, folder=tmp_path) as (w, failures):       # open_log(url, folder=...)
        assert committed(w, [row("s1"), row("s2", "sad")]) == [None, None]
    assert failures == []
    log = open_log(url, tmp_path)
    log.add_feedback("s1", "sad", "api")
    log.add_feedback("s1", "neutral", "api")
    with pytest.raises(UnknownRequest):
        log.add_feedback("s3", "sad", "api")
    assert [(r.request_id, r.label, r.predicted) for r in log.labelled()] == [("s1", "neutral", "happy")]
    assert [r.request_id for r in log.unlabelled()] == ["s2"]


# -- the app in-process, around a stand-in model ----------------------------------------------------------------


class StandIn:
    """What create_app needs of a Service, with a real Recorder: every upload is predicted `happy` unless it says
    `fail`; /timeline has no split graphs."""

    def __init__(self, tmp_path: Path, enabled: bool = True):
        self.cfg = SimpleNamespace(max_upload_mb=1, metrics_need_key=False)
        self.metrics = ServiceMetrics()
        self.uploads = tmp_path / "uploads"
        self.uploads.mkdir()
        self.model = SimpleNamespace(artifact=SimpleNamespace(version="v7", manifest_sha256=SHA))
        self.recorder = Recorder(PredictionLogConfig(enabled=enabled, path=str(tmp_path / "logs/log.sqlite"),
                                                     url=None, commit_timeout_ms=5000, synchronous="normal",
                                                     keep_crops=False, crop_retention_days=30), self.metrics)
        self.recorder.classes_by_build[SHA] = CLASSES
        self.ready = True

    async def start(self):
        self.recorder.start()

    async def stop(self):
        await self.recorder.stop()

    @contextlib.contextmanager
    def model_for_request(self):
        yield self.model

    async def predict(self, model, path, name, with_crops, request_id):
        if path.read_bytes() == b"fail":
            raise RequestError("no_face", f"{name}: no face found")
        return Answer(Prediction(request_id=request_id, filename=name, label="happy",
                                 probabilities={"happy": 0.6, "sad": 0.3, "neutral": 0.1}, frames_decoded=3,
                                 frames_used=[0, 1, 2], frame_size=(48, 64), face_boxes=[(1, 2, 3, 3)] * 3,
                                 detection_rate=1.0, model=ModelVersion(version="v7", stage=None,
                                                                        manifest_sha256=SHA),
                                 backend="onnxruntime", precision="fp32"))

    async def timeline(self, model, path, name, request_id):
        raise RequestError("no_timeline", "this stand-in has no split graphs")


def test_every_answer_and_refusal_is_logged_under_the_id_it_returned(tmp_path):
    service = StandIn(tmp_path)
    with TestClient(create_app(service)) as client:
        video = b"\x00\x01 a video " * 100
        ok = client.post("/predict", content=video, headers={"x-filename": "clip.mp4"})
        refused = client.post("/predict", files={"file": ("wall.mp4", b"fail")})
        empty = client.post("/predict", files={"file": ("empty.mp4", b"")})
        invalid = client.post("/predict?crops=maybe", content=video)
        no_timeline = client.post("/timeline", content=video)
        not_logged = client.get("/health")
    assert ok.status_code == 200 and ok.json()["request_id"] == ok.headers["x-request-id"]
    assert [r.status_code for r in (refused, empty, invalid, no_timeline)] == [422, 400, 422, 501]
    assert "x-request-id" not in not_logged.headers
    log = sqlite3.connect(tmp_path / "logs/log.sqlite")
    log.row_factory = sqlite3.Row
    rows = {r["request_id"]: dict(r) for r in log.execute("SELECT * FROM predictions")}
    assert len(rows) == 5
    answered = rows[ok.headers["x-request-id"]]
    assert answered == {**answered, "endpoint": "/predict", "status": 200, "error_kind": None, "model_version": "v7",
                        "artifact_sha256": SHA, "filename": "clip.mp4",
                        "input_sha256": hashlib.sha256(video).hexdigest(), "input_bytes": len(video), "label": "happy", "margin": 0.3, "windows": None, "crops_dir": None}
    assert json.loads(answered["probabilities"]) == {"happy": 0.6, "sad": 0.3, "neutral": 0.1}
    assert answered["duration_ms"] > 0 and answered["time"].endswith("+00:00")
    by_kind = {r["error_kind"]: r for r in rows.values() if r["error_kind"]}
    assert {kind: (r["status"], r["endpoint"]) for kind, r in by_kind.items()} == {
        "no_face": (422, "/predict"), "empty_video": (400, "/predict"), "invalid_request": (422, "/predict"),
        "no_timeline": (501, "/timeline")}
    assert by_kind["no_face"]["input_sha256"] == hashlib.sha256(b"fail").hexdigest()   # read, then refused
    assert by_kind["empty_video"]["input_sha256"] is None and by_kind["no_face"]["label"] is None
    assert refused.headers["x-request-id"] == by_kind["no_face"]["request_id"]
    assert invalid.headers["x-request-id"] == by_kind["invalid_request"]["request_id"]


def test_feedback_stores_a_label_or_refuses_by_kind(tmp_path):
    service = StandIn(tmp_path)
    with TestClient(create_app(service)) as client:
        request_id = client.post("/predict", content=b"video").json()["request_id"]
        stored = client.post("/feedback", json={"request_id": request_id, "label": "sad"})
        again = client.post("/feedback", json={"request_id": request_id, "label": "neutral"})
        unknown = client.post("/feedback", json={"request_id": "0" * 32, "label": "sad"})
        outside = client.post("/feedback", json={"request_id": request_id, "label": "fear"})
        malformed = client.post("/feedback", json={"request_id": request_id})
        metrics = client.get("/metrics").text
        schema = client.get("/openapi.json").json()
    assert stored.status_code == 200 and stored.json() == {**stored.json(), "request_id": request_id, "label": "sad",
                                                            "source": "api", "predicted": "happy"}
    assert again.json()["label"] == "neutral"
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_request")
    assert (outside.status_code, outside.json()["error"]) == (422, "unknown_label")
    assert "happy, sad, neutral" in outside.json()["detail"]
    assert (malformed.status_code, malformed.json()["error"]) == (422, "invalid_request")
    assert 'a3lign_errors_total{kind="unknown_request"} 1.0' in metrics
    assert open_log(tmp_path / "logs/log.sqlite").labelled()[0].label == "neutral"
    documented = {s: a["description"] for s, a in schema["paths"]["/feedback"]["post"]["responses"].items()}
    assert documented["404"] == "unknown_request" and documented["422"] == "unknown_label, invalid_request"
    assert "artifact_refused" in schema["paths"]["/admin/reload"]["post"]["responses"]["422"]["description"]


def test_without_the_log_predictions_still_get_an_id_and_feedback_says_why_not(tmp_path):
    service = StandIn(tmp_path, enabled=False)
    with TestClient(create_app(service)) as client:
        answer = client.post("/predict", content=b"video")
        feedback = client.post("/feedback", json={"request_id": answer.json()["request_id"], "label": "sad"})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == answer.json()["request_id"]
    assert (feedback.status_code, feedback.json()["error"]) == (501, "no_prediction_log")
    assert not (tmp_path / "logs").exists()
