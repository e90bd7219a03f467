"""The HTTP service: a health endpoint for the HEALTHCHECK, and the queue's counters."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from worker_stack import __version__, jobs


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


async def queue(request: Request) -> JSONResponse:
    return JSONResponse(jobs.counts())


async def submit(request: Request) -> JSONResponse:
    body = await request.json()
    job_id = jobs.enqueue(str(body.get("kind", "echo")), dict(body.get("payload", {})))
    return JSONResponse({"id": job_id}, status_code=202)


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/jobs", queue, methods=["GET"]),
        Route("/jobs", submit, methods=["POST"]),
    ]
)
