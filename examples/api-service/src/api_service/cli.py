"""`api-service`: serve the API with uvicorn until SIGTERM or SIGINT, then shut down gracefully.

On either signal uvicorn stops accepting connections and lets in-flight requests finish, for at most
`GRACEFUL_SHUTDOWN_SECONDS`: below the 10 s `docker stop` waits before it kills the process.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from api_service import __version__
from api_service.app import app

DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - in a container, the published port reaches every interface
DEFAULT_PORT = 8000
GRACEFUL_SHUTDOWN_SECONDS = 8
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(prog="api-service", description="Serve the api-service HTTP API.")
    made.add_argument("--version", action="version", version=f"api-service {__version__}")
    made.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    made.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    made.add_argument("--log-level", default="info", choices=LOG_LEVELS, help="uvicorn's log level")
    return made


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )
