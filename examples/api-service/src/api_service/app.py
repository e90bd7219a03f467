"""The ASGI application: `/health` for the image's HEALTHCHECK, and `/version`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api_service import __version__


async def health(request: Request) -> JSONResponse:
    """Liveness: answers as soon as the server accepts connections."""
    return JSONResponse({"status": "ok"})


async def version(request: Request) -> JSONResponse:
    """The running build, for deploy checks."""
    return JSONResponse({"name": "api-service", "version": __version__})


app = Starlette(
    routes=[
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
    ]
)
