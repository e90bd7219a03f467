"""The job queue: one SQLite file on a volume shared by the web service, the worker and the scheduler.

No broker to run: SQLite serialises writers, and a job is claimed by one atomic UPDATE ... RETURNING.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    created REAL NOT NULL,
    finished REAL
)
"""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]


def database() -> Path:
    return Path(os.environ.get("WORKER_STACK_DB", "/data/jobs.sqlite3"))


def connect(path: Path | None = None) -> sqlite3.Connection:
    connection = sqlite3.connect(path or database(), timeout=10, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")  # readers never block the worker's writes
    connection.execute(_SCHEMA)
    return connection


def enqueue(kind: str, payload: dict[str, Any], path: Path | None = None) -> int:
    with closing(connect(path)) as db:
        cursor = db.execute(
            "INSERT INTO jobs (kind, payload, created) VALUES (?, ?, ?)",
            (kind, json.dumps(payload), time.time()),
        )
        return int(cursor.lastrowid or 0)


def claim(path: Path | None = None) -> Job | None:
    """The oldest pending job, now marked running; None when there is none."""
    with closing(connect(path)) as db:
        row = db.execute(
            "UPDATE jobs SET state = 'running' WHERE id = "
            "(SELECT id FROM jobs WHERE state = 'pending' ORDER BY id LIMIT 1) "
            "RETURNING id, kind, payload"
        ).fetchone()
    return Job(row[0], row[1], json.loads(row[2])) if row else None


def finish(job_id: int, path: Path | None = None) -> None:
    with closing(connect(path)) as db:
        db.execute("UPDATE jobs SET state = 'done', finished = ? WHERE id = ?", (time.time(), job_id))


def counts(path: Path | None = None) -> dict[str, int]:
    with closing(connect(path)) as db:
        rows = db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
    return {"pending": 0, "running": 0, "done": 0, **dict(rows)}
