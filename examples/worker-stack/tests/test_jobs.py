from __future__ import annotations

import asyncio
import json
from pathlib import Path

from starlette.requests import Request

from worker_stack import jobs, web


def test_a_job_is_claimed_once_and_finished(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    job_id = jobs.enqueue("echo", {"n": 1}, db)
    job = jobs.claim(db)
    assert job is not None
    assert (job.id, job.kind, job.payload) == (job_id, "echo", {"n": 1})
    assert jobs.claim(db) is None
    jobs.finish(job_id, db)
    assert jobs.counts(db) == {"pending": 0, "running": 0, "done": 1}


def test_health_answers_without_the_queue() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/health", "headers": []})
    response = asyncio.run(web.health(request))
    assert response.status_code == 200
    assert json.loads(bytes(response.body))["status"] == "ok"
