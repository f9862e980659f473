"""The SQLite registry of datasets, jobs (with their events and metrics) and models.

This module holds all of the project's SQL. Only the TrainingManager writes to
it; everything else asks the manager.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Optional

from pydantic import BaseModel

from forge.job_schemas import JobEvent
from forge.schemas import JobProgress, JobStatus, ModelFiles, utc_iso

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    filename     TEXT PRIMARY KEY,
    format       TEXT,
    num_examples INTEGER NOT NULL,
    size_bytes   INTEGER NOT NULL,
    uploaded_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id        TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    request       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    finished_at   TEXT,
    message       TEXT,
    progress      REAL NOT NULL DEFAULT 0,
    current_epoch REAL NOT NULL DEFAULT 0,
    total_epochs  INTEGER NOT NULL DEFAULT 0,
    current_step  INTEGER NOT NULL DEFAULT 0,
    total_steps   INTEGER NOT NULL DEFAULT 0,
    loss          REAL,
    learning_rate REAL,
    eval_loss     REAL,
    model_id      INTEGER,
    started_at    TEXT,
    options       TEXT,
    estimated_finish TEXT,
    queued_at     TEXT
);
CREATE TABLE IF NOT EXISTS job_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL REFERENCES jobs(job_id),
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_metrics (
    job_id TEXT NOT NULL REFERENCES jobs(job_id),
    step   INTEGER NOT NULL,
    at     TEXT NOT NULL,
    data   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    base_model      TEXT NOT NULL,
    task            TEXT NOT NULL,
    provider        TEXT NOT NULL,
    strategy        TEXT NOT NULL,
    training_params TEXT NOT NULL,
    metrics         TEXT NOT NULL,
    path            TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    job_id          TEXT,
    description     TEXT
);
"""

# Columns added after the first release: a registry written before them gains them, empty,
# when it is opened (SQLite adds a column in place; old rows read NULL).
_ADDED_COLUMNS = {"jobs": {"started_at": "TEXT", "options": "TEXT", "estimated_finish": "TEXT", "queued_at": "TEXT"},
                  # Every model registered before merging existed is a LoRA adapter.
                  "models": {"description": "TEXT", "kind": "TEXT NOT NULL DEFAULT 'adapter'"}}


class DatasetRecord(BaseModel):
    filename: str
    format: Optional[str]
    num_examples: int
    size_bytes: int
    uploaded_at: str


class JobRecord(JobProgress):
    """A row of the jobs table: the job's progress plus what only the registry keeps."""

    job_id: str
    status: JobStatus
    request: dict[str, Any]
    created_at: str
    updated_at: str
    finished_at: Optional[str] = None
    started_at: Optional[str] = None
    # The options the worker used after hardware substitutions (forge.training.options.ResolvedOptions),
    # as of the job's latest start; None for jobs registered before it was kept.
    options: Optional[dict[str, Any]] = None
    # When it last joined the queue (its start, or a resume): its place in line.
    queued_at: Optional[str] = None


class ModelRecord(BaseModel):
    id: int
    name: str
    base_model: str
    task: str
    provider: str
    strategy: str
    training_params: dict[str, Any]
    metrics: dict[str, Any]
    path: str
    size_bytes: int
    created_at: str
    job_id: Optional[str] = None
    description: Optional[str] = None
    kind: ModelFiles = "adapter"


_JOB_COLUMNS = tuple(JobRecord.model_fields)
_JSON_COLUMNS = {"request", "training_params", "metrics", "options"}


class Registry:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The manager is one asyncio actor: a single connection, used from its loop.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL syncs at checkpoints, not at every commit: a killed process loses
        # nothing committed and the file stays consistent; only a power cut may lose the last
        # commits. A write per training step no longer waits on the disk.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Everything written inside is one transaction (one commit for a batch of progress reports)."""
        with self._transaction():
            yield

    @staticmethod
    def _row(row: sqlite3.Row) -> dict[str, Any]:
        return {k: json.loads(row[k]) if k in _JSON_COLUMNS and row[k] is not None else row[k] for k in row.keys()}

    # ---------------------------------------------------------------- datasets

    def add_dataset(self, record: DatasetRecord) -> None:
        self._db.execute(
            "INSERT INTO datasets VALUES (:filename, :format, :num_examples, :size_bytes, :uploaded_at)",
            record.model_dump(),
        )

    def get_dataset(self, filename: str) -> Optional[DatasetRecord]:
        row = self._db.execute("SELECT * FROM datasets WHERE filename = ?", (filename,)).fetchone()
        return DatasetRecord(**self._row(row)) if row else None

    def delete_dataset(self, filename: str) -> bool:
        return self._db.execute("DELETE FROM datasets WHERE filename = ?", (filename,)).rowcount > 0

    def list_datasets(self) -> list[DatasetRecord]:
        rows = self._db.execute("SELECT * FROM datasets ORDER BY uploaded_at, filename").fetchall()
        return [DatasetRecord(**self._row(r)) for r in rows]

    # -------------------------------------------------------------------- jobs

    def add_job(self, job_id: str, request: dict[str, Any], status: str) -> JobRecord:
        now = utc_iso()
        queued_at = now if status == "queued" else None
        record = JobRecord(job_id=job_id, status=status, request=request, created_at=now, updated_at=now,
                           queued_at=queued_at)
        self._db.execute(
            "INSERT INTO jobs (job_id, status, request, created_at, updated_at, queued_at) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, status, json.dumps(request), now, now, queued_at),
        )
        return record

    def update_job(self, job_id: str, **fields: Any) -> None:
        unknown = set(fields) - set(_JOB_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job columns: {sorted(unknown)}")
        fields.setdefault("updated_at", utc_iso())
        fields = {k: json.dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in fields.items()}
        assignments = ", ".join(f"{name} = :{name}" for name in fields)
        self._db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = :job_id", {**fields, "job_id": job_id})

    def get_job(self, job_id: str) -> Optional[JobRecord]:
        row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return JobRecord(**self._row(row)) if row else None

    def latest_job(self) -> Optional[JobRecord]:
        row = self._db.execute("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
        return JobRecord(**self._row(row)) if row else None

    def list_jobs(self, statuses: Collection[str] = (), limit: int = 20,
                  before: Optional[tuple[str, str]] = None) -> list[JobRecord]:
        """Newest first (by creation, then id): up to `limit` jobs with one of `statuses` (any when empty).

        `before` is the (created_at, job_id) of the last job of the previous page: the page
        starts after it, so pages stay stable while new jobs arrive.
        """
        where, params = [], []
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params += list(statuses)
        if before is not None:
            where.append("(created_at, job_id) < (?, ?)")
            params += list(before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, job_id DESC LIMIT ?", (*params, limit))
        return [JobRecord(**self._row(r)) for r in rows.fetchall()]

    def jobs_with_status(self, statuses: set[str]) -> list[JobRecord]:
        """The jobs in one of `statuses`, in the order they last joined the queue (else were created)."""
        marks = ", ".join("?" for _ in statuses)
        rows = self._db.execute(f"SELECT * FROM jobs WHERE status IN ({marks}) "
                                "ORDER BY COALESCE(queued_at, created_at), created_at", tuple(statuses))
        return [JobRecord(**self._row(r)) for r in rows.fetchall()]

    def add_event(self, job_id: str, kind: str, message: str) -> None:
        self._db.execute(
            "INSERT INTO job_events (job_id, at, kind, message) VALUES (?, ?, ?, ?)",
            (job_id, utc_iso(), kind, message),
        )

    def events(self, job_id: str, offset: int = 0, limit: int = -1) -> list[JobEvent]:
        """The job's events, oldest first: `limit` of them (-1: all) from the `offset`-th."""
        rows = self._db.execute("SELECT at, kind, message FROM job_events WHERE job_id = ? ORDER BY id "
                                "LIMIT ? OFFSET ?", (job_id, limit, offset))
        return [JobEvent(**dict(r)) for r in rows.fetchall()]

    def add_metrics(self, job_id: str, step: int, data: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO job_metrics (job_id, step, at, data) VALUES (?, ?, ?, ?)",
            (job_id, step, utc_iso(), json.dumps(data)),
        )

    def forget_metrics_after(self, job_id: str, step: int) -> None:
        """Drop the history past `step`: a run resumed from there redoes those steps."""
        self._db.execute("DELETE FROM job_metrics WHERE job_id = ? AND step > ?", (job_id, step))

    def metrics(self, job_id: str, offset: int = 0, limit: int = -1) -> list[dict[str, Any]]:
        """The job's metric history by step, each step's in the order logged: `limit` entries (-1: all) from
        the `offset`-th. (Steps filled in from a checkpoint are logged after later ones.)"""
        rows = self._db.execute(
            "SELECT step, data FROM job_metrics WHERE job_id = ? ORDER BY step, rowid LIMIT ? OFFSET ?",
            (job_id, limit, offset))
        return [{"step": r["step"], **json.loads(r["data"])} for r in rows.fetchall()]

    def metric_steps(self, job_id: str, key: str) -> set[int]:
        """The steps of the job's history that have a value of metric `key`."""
        rows = self._db.execute("SELECT step FROM job_metrics WHERE job_id = ? AND json_extract(data, '$.' || ?) "
                                "IS NOT NULL", (job_id, key))
        return {r["step"] for r in rows.fetchall()}

    def last_metric(self, job_id: str, key: str) -> Optional[float]:
        """The latest logged value of metric `key` for the job (None when it never logged one)."""
        row = self._db.execute(
            "SELECT json_extract(data, '$.' || ?) AS value FROM job_metrics WHERE job_id = ? "
            "AND json_extract(data, '$.' || ?) IS NOT NULL ORDER BY step DESC, rowid DESC LIMIT 1",
            (key, job_id, key)).fetchone()
        return row["value"] if row else None

    def delete_job(self, job_id: str) -> bool:
        """Forget a job: its row, events and metrics, at once (its models stay)."""
        with self._transaction() as db:
            db.execute("DELETE FROM job_metrics WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))
            return db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,)).rowcount > 0

    # ------------------------------------------------------------------ models

    def add_model(
        self, *, place_files: Callable[[int], str], size_bytes: Callable[[str], int], **fields: Any
    ) -> ModelRecord:
        """Insert a model and move its files into place in one transaction.

        `place_files(model_id)` moves the files and returns their final location; if
        it raises, the row is rolled back, so no model is registered without files.
        """
        now = utc_iso()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO models (name, base_model, task, provider, strategy, training_params, metrics,"
                " path, size_bytes, created_at, job_id, description, kind)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, '', 0, ?, ?, ?, ?)",
                (
                    fields["name"], fields["base_model"], fields["task"], fields["provider"], fields["strategy"],
                    json.dumps(fields["training_params"]), json.dumps(fields["metrics"]), now, fields.get("job_id"),
                    fields.get("description"), fields.get("kind", "adapter"),
                ),
            )
            model_id = int(cursor.lastrowid)
            path = place_files(model_id)
            db.execute(
                "UPDATE models SET path = ?, size_bytes = ? WHERE id = ?", (str(path), size_bytes(path), model_id)
            )
        model = self.get_model(model_id)
        assert model is not None
        return model

    def get_model(self, model_id: int) -> Optional[ModelRecord]:
        row = self._db.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        return ModelRecord(**self._row(row)) if row else None

    def list_models(self) -> list[ModelRecord]:
        return [ModelRecord(**self._row(r)) for r in self._db.execute("SELECT * FROM models ORDER BY id").fetchall()]

    def model_named(self, name: str) -> Optional[ModelRecord]:
        row = self._db.execute("SELECT * FROM models WHERE name = ?", (name,)).fetchone()
        return ModelRecord(**self._row(row)) if row else None

    def update_model(self, model_id: int, **fields: Optional[str]) -> None:
        """Set a model's `name` and/or `description` (the fields a user may change)."""
        unknown = set(fields) - {"name", "description"}
        if unknown:
            raise ValueError(f"a model's {sorted(unknown)} cannot be changed")
        assignments = ", ".join(f"{name} = :{name}" for name in fields)
        self._db.execute(f"UPDATE models SET {assignments} WHERE id = :id", {**fields, "id": model_id})

    def delete_model(self, model_id: int) -> bool:
        return self._db.execute("DELETE FROM models WHERE id = ?", (model_id,)).rowcount > 0
