"""`worker-stack-worker`: runs queued jobs one at a time, with a /health endpoint on port 8001."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from worker_stack import __version__, jobs

log = logging.getLogger("worker_stack.worker")
_stop = threading.Event()
_last_loop = time.monotonic()


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        # Healthy while the job loop keeps turning: a stuck job makes the container unhealthy.
        alive = self.path == "/health" and time.monotonic() - _last_loop < 60
        body = json.dumps({"status": "ok" if alive else "stuck"}).encode()
        self.send_response(200 if alive else 503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # a probe every few seconds is noise


def run(job: jobs.Job) -> None:
    log.info("job %s (%s): %s", job.id, job.kind, job.payload)


def _terminate(signum: int, frame: FrameType | None) -> None:
    _stop.set()


def main(argv: list[str] | None = None) -> int:
    global _last_loop  # noqa: PLW0603 - one heartbeat shared with the health thread
    parser = argparse.ArgumentParser(prog="worker-stack-worker")
    parser.add_argument("--version", action="version", version=f"worker-stack {__version__}")
    parser.add_argument("--port", type=int, default=8001, help="health endpoint port")
    parser.add_argument("--idle", type=float, default=1.0, help="seconds to wait when the queue is empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    server = ThreadingHTTPServer(("", args.port), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log.info("worker %s up; health on :%s", __version__, args.port)
    while not _stop.is_set():
        _last_loop = time.monotonic()
        job = jobs.claim()
        if job is None:
            _stop.wait(args.idle)
            continue
        run(job)
        jobs.finish(job.id)
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
