"""The prediction log: every answered /predict and /timeline request, and the true labels people send back.

SQLite in WAL mode by default (one file beside the service: readers never block its writer, and a committed row
survives the service being killed), or a server database by SQLAlchemy URL where several replicas serve one log.
The tables are a contract (docs/serving.md "The prediction log"): the feedback export, the annotation round trip
and the release gate read them through `open_log`. Only the service writes predictions (serving/log_writer.py,
one thread); feedback comes from POST /feedback and from annotators.

    log = open_log("logs/predictions.sqlite")
    log.add_feedback(request_id, "sad", "api")
    [(r.request_id, r.label, r.predicted) for r in log.labelled()]
"""
from __future__ import annotations

import datetime
import errno
import json
import shutil
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from a3lign_dfer.errors import MissingInput, UserError

CROPS = "crops"                  # under the log's folder: crops/<UTC day>/<request_id>/frame_00.jpg ...
BUSY_TIMEOUT_S = 5.0             # how long a write waits for another process's write lock (e.g. an import)
SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}     # params serve.prediction_log.synchronous: SQLite's pragma
SOURCES = ("api", "label-studio")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS predictions (
      request_id TEXT PRIMARY KEY,
      time TEXT NOT NULL,
      endpoint TEXT NOT NULL,
      status INTEGER NOT NULL,
      error_kind TEXT,
      model_version TEXT,
      artifact_sha256 TEXT NOT NULL,
      filename TEXT,
      input_sha256 TEXT,
      input_bytes INTEGER,
      label TEXT,
      probabilities TEXT,
      margin REAL,
      windows TEXT,
      duration_ms REAL NOT NULL,
      crops_dir TEXT)""",
    """CREATE TABLE IF NOT EXISTS feedback (
      request_id TEXT PRIMARY KEY REFERENCES predictions(request_id),
      label TEXT NOT NULL,
      source TEXT NOT NULL,
      time TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS predictions_time ON predictions (time)",
)
COLUMNS = ("request_id", "time", "endpoint", "status", "error_kind", "model_version", "artifact_sha256", "filename",
           "input_sha256", "input_bytes", "label", "probabilities", "margin", "windows", "duration_ms", "crops_dir")
INSERT = f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"
UPSERT_FEEDBACK = ("INSERT INTO feedback (request_id, label, source, time) "
                   "VALUES (:request_id, :label, :source, :time) ON CONFLICT (request_id) "
                   "DO UPDATE SET label = excluded.label, source = excluded.source, time = excluded.time")


class UnknownRequest(UserError, LookupError):
    """Feedback for a request id the log does not hold."""


class UnknownLabel(UserError, ValueError):
    """Feedback naming a class the model that answered does not have."""


def now() -> str:
    """ISO 8601 UTC with microseconds, the log's time format (sorts as text)."""
    return datetime.datetime.now(datetime.UTC).isoformat()


@dataclass(frozen=True)
class LoggedPrediction:
    """An answered request without a true label: what annotators are asked about."""

    request_id: str
    label: str | None                      # the predicted class (None for a timeline)
    probabilities: dict[str, float] | None
    margin: float | None                   # top-1 minus top-2 probability: low is uncertain
    crops_dir: Path | None                 # the kept face crops (frame_00.jpg ...), None when not kept or purged
    filename: str | None
    time: str
    model_version: str | None
    artifact_sha256: str


@dataclass(frozen=True)
class LabelledRequest:
    """A logged request with the true label someone gave it (the latest one)."""

    request_id: str
    label: str                             # the true label
    predicted: str | None                  # what the model said
    probabilities: dict[str, float] | None
    crops_dir: Path | None
    model_version: str | None
    time: str                              # when the request was answered
    artifact_sha256: str
    source: str                            # api | label-studio
    labelled_at: str


@dataclass(frozen=True)
class Feedback:
    request_id: str
    label: str
    source: str
    time: str
    predicted: str | None


class _Sqlite:
    """One SQLite connection in WAL mode. synchronous NORMAL: a commit is in the operating system's hands when it
    returns (it survives the process being killed; a power cut may undo the last ones, never corrupt the file);
    FULL: on the disk (a disk sync per commit)."""

    def __init__(self, path: Path, busy_timeout_s: float, synchronous: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={SYNCHRONOUS[synchronous]}")
        self.conn.execute("PRAGMA foreign_keys=ON")

    def write(self, statements: Iterable[tuple[str, Sequence[Mapping] | None]]) -> None:
        """Every statement (with its rows) in one transaction."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in statements:
                if rows is None:
                    self.conn.execute(sql)
                else:
                    self.conn.executemany(sql, rows)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    def rows(self, sql: str, params: Mapping | None = None) -> list[dict]:
        return [dict(row) for row in self.conn.execute(sql, params or {})]

    def close(self) -> None:
        self.conn.close()


class _Server:
    """A server database through SQLAlchemy (which Prefect's install brings; imported only for a URL)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine, text

        self.text = text
        self.engine = create_engine(url, pool_pre_ping=True)

    def write(self, statements: Iterable[tuple[str, Sequence[Mapping] | None]]) -> None:
        with self.engine.begin() as conn:
            for sql, rows in statements:
                if rows is None:
                    conn.execute(self.text(sql))
                elif rows:
                    conn.execute(self.text(sql), list(rows))

    def rows(self, sql: str, params: Mapping | None = None) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(self.text(sql), dict(params or {}))]

    def close(self) -> None:
        self.engine.dispose()


def is_url(path_or_url: str | Path) -> bool:
    return "://" in str(path_or_url)


def open_log(path_or_url: str | Path, folder: Path | None = None, create: bool = True,
             busy_timeout_s: float = BUSY_TIMEOUT_S, synchronous: str = "normal") -> PredictionLog:
    """The log at a SQLite path or a SQLAlchemy URL, its tables created where missing. `folder` holds the kept
    crops (default: the SQLite file's folder; required with a URL to find crops). `create=False`: MissingInput
    when the SQLite file is not there. `synchronous` (SQLite): normal or full, as _Sqlite says."""
    if is_url(path_or_url):
        return PredictionLog(_Server(str(path_or_url)), folder)
    path = Path(path_or_url)
    if not create and not path.is_file():
        raise MissingInput(f"no prediction log at {path} (serve.prediction_log.path): the service writes it")
    return PredictionLog(_Sqlite(path, busy_timeout_s, synchronous), folder if folder is not None else path.parent)


class PredictionLog:
    """The two tables, read and written with plain SQL that SQLite and PostgreSQL both run."""

    def __init__(self, db: _Sqlite | _Server, folder: Path | None) -> None:
        self.db, self.folder = db, folder
        db.write((sql, None) for sql in SCHEMA)

    def close(self) -> None:
        self.db.close()

    def insert(self, rows: Sequence[Mapping]) -> None:
        """Prediction rows (every column of COLUMNS; probabilities and windows as JSON text) in one commit."""
        if rows:
            self.db.write([(INSERT, rows)])

    def get(self, request_id: str) -> dict | None:
        found = self.db.rows("SELECT * FROM predictions WHERE request_id = :id", {"id": request_id})
        return found[0] if found else None

    def add_feedback(self, request_id: str, label: str, source: str,
                     model_classes: Mapping[str, Sequence[str]] | None = None) -> Feedback:
        """The true label of a logged request (the latest one wins). UnknownRequest for an id the log does not
        hold; UnknownLabel for a label outside the answering model's classes: those its answer listed, else
        `model_classes[artifact_sha256]` (a refused request lists none)."""
        if source not in SOURCES:
            raise ValueError(f"feedback source must be one of {SOURCES}, got {source!r}")
        row = self.get(request_id)
        if row is None:
            raise UnknownRequest(f"no logged request has the id {request_id!r}")
        classes = answer_classes(row) or list((model_classes or {}).get(row["artifact_sha256"], []))
        if classes and label not in classes:
            raise UnknownLabel(f"{label!r} is not a class of the model that answered {request_id} "
                               f"({row['model_version'] or row['artifact_sha256'][:12]}): {', '.join(classes)}")
        stored = Feedback(request_id, label, source, now(), row["label"])
        self.db.write([(UPSERT_FEEDBACK, [{"request_id": request_id, "label": label, "source": source,
                                           "time": stored.time}])])
        return stored

    def labelled(self, endpoint: str | None = "/predict") -> list[LabelledRequest]:
        """Requests with a true label, oldest first (every endpoint with endpoint=None)."""
        rows = self.db.rows(
            "SELECT p.request_id, f.label AS true_label, p.label, p.probabilities, p.crops_dir, p.model_version, "
            "p.time, p.artifact_sha256, f.source, f.time AS labelled_at FROM predictions p "
            "JOIN feedback f ON f.request_id = p.request_id "
            + ("WHERE p.endpoint = :endpoint " if endpoint is not None else "") + "ORDER BY p.time, p.request_id",
            {"endpoint": endpoint} if endpoint is not None else {})
        return [LabelledRequest(r["request_id"], r["true_label"], r["label"], _json(r["probabilities"]),
                                self._crops(r["crops_dir"]), r["model_version"], r["time"], r["artifact_sha256"],
                                r["source"], r["labelled_at"]) for r in rows]

    def unlabelled(self, endpoint: str = "/predict") -> list[LoggedPrediction]:
        """Answered requests (status 200) nobody has labelled yet, oldest first."""
        rows = self.db.rows(
            "SELECT p.* FROM predictions p LEFT JOIN feedback f ON f.request_id = p.request_id "
            "WHERE f.request_id IS NULL AND p.status = 200 AND p.endpoint = :endpoint "
            "ORDER BY p.time, p.request_id", {"endpoint": endpoint})
        return [LoggedPrediction(r["request_id"], r["label"], _json(r["probabilities"]), r["margin"],
                                 self._crops(r["crops_dir"]), r["filename"], r["time"], r["model_version"],
                                 r["artifact_sha256"]) for r in rows]

    def _crops(self, crops_dir: str | None) -> Path | None:
        if crops_dir is None or self.folder is None:
            return None
        path = self.folder / crops_dir
        return path if path.is_dir() else None

    def purge_crops(self, retention_days: int, today: datetime.date | None = None) -> list[str]:
        """Delete the kept crops of the UTC days more than `retention_days` before `today` (their rows keep
        everything else, crops_dir set to NULL); the days purged."""
        root = self.folder / CROPS if self.folder is not None else None
        if root is None or not root.is_dir():
            return []
        oldest = (today or datetime.datetime.now(datetime.UTC).date()) - datetime.timedelta(retention_days)
        purged = []
        for day in sorted(p for p in root.iterdir() if p.is_dir()):
            try:
                expired = datetime.date.fromisoformat(day.name) < oldest
            except ValueError:                      # not a day folder: not ours to delete
                continue
            if expired:
                self.db.write([("UPDATE predictions SET crops_dir = NULL WHERE crops_dir LIKE :prefix",
                                [{"prefix": f"{CROPS}/{day.name}/%"}])])
                shutil.rmtree(day, ignore_errors=True)
                purged.append(day.name)
        return purged


def answer_classes(row: Mapping) -> list[str]:
    """The classes a logged answer lists: its probabilities' keys (/predict) or its windows' (/timeline)."""
    probabilities = _json(row.get("probabilities"))
    if probabilities:
        return list(probabilities)
    for window in _json(row.get("windows")) or []:
        if window.get("probabilities"):
            return list(window["probabilities"])
    return []


def _json(text: str | None):
    return json.loads(text) if text else None


def failure_reason(err: BaseException) -> str:
    """Why a write failed, as a metrics label: locked, disk_full, unwritable or error."""
    if isinstance(err, OSError) and err.errno is not None:        # making the folder, writing crops
        if err.errno == errno.ENOSPC:
            return "disk_full"
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            return "unwritable"
    message = str(err).lower()                                    # SQLite's (and the server's) own messages
    if "locked" in message or "busy" in message:
        return "locked"
    if "full" in message or "no space" in message:
        return "disk_full"
    if any(words in message for words in ("readonly", "read-only", "unable to open", "permission denied")):
        return "unwritable"
    return "error"
