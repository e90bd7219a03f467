"""`worker-stack-scheduler`: enqueues a periodic job, and touches a heartbeat file for its healthcheck."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from worker_stack import __version__, jobs

log = logging.getLogger("worker_stack.scheduler")
HEARTBEAT = Path("/tmp/worker-stack-scheduler.heartbeat")  # noqa: S108 - the container's own /tmp
_stop = threading.Event()


def _terminate(signum: int, frame: FrameType | None) -> None:
    _stop.set()


def healthy(max_age: float = 120.0) -> bool:
    """True while the scheduler's loop has beaten within `max_age` seconds."""
    try:
        return time.time() - HEARTBEAT.stat().st_mtime < max_age
    except FileNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker-stack-scheduler")
    parser.add_argument("--version", action="version", version=f"worker-stack {__version__}")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between jobs")
    parser.add_argument("--check", action="store_true", help="exit 0 when a running scheduler is healthy")
    args = parser.parse_args(argv)
    if args.check:
        return 0 if healthy(max_age=max(120.0, 2 * args.every)) else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    log.info("scheduler %s up; a job every %gs", __version__, args.every)
    while not _stop.is_set():
        HEARTBEAT.touch()
        job_id = jobs.enqueue("tick", {"at": time.time()})
        log.info("enqueued job %s", job_id)
        _stop.wait(args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
