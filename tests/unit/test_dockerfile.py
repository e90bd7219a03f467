from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import UsageError
from dockyard.project import dockerfile

TEXT = """\
# comment
ARG PYTHON_IMAGE=python:3.13-slim
ARG UV_IMAGE
FROM ${UV_IMAGE:-ghcr.io/astral-sh/uv:0.13.8} AS uv
FROM $PYTHON_IMAGE AS deps
RUN echo a \\
    && echo b
FROM deps AS project
FROM ${PYTHON_IMAGE} AS runtime
COPY --from=project /staging /app
"""


def test_final_base_follows_args_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(TEXT)
    parsed = dockerfile.parse(path)
    assert [s.name for s in parsed.stages] == ["uv", "deps", "project", "runtime"]
    assert parsed.final_base({}) == "python:3.13-slim"
    assert parsed.final_base({"PYTHON_IMAGE": "standin/python"}) == "standin/python"
    assert ("RUN", "echo a  && echo b") in parsed.instructions


def test_final_stage_from_another_stage_resolves_to_its_base(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM alpine:3 AS base\nFROM base\n")
    assert dockerfile.parse(path).final_base({}) == "alpine:3"


def test_missing_and_empty_dockerfiles_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        dockerfile.parse(tmp_path / "Dockerfile")
    (tmp_path / "Dockerfile").write_text("# nothing\n")
    with pytest.raises(UsageError, match="no FROM"):
        dockerfile.parse(tmp_path / "Dockerfile")


PULLS = """\
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:latest
FROM ${UV_IMAGE} AS uv
FROM node:22-alpine AS assets
FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/
COPY --from=ghcr.io/astral-sh/uv:0.9.26 /uvx /bin/
RUN --mount=type=bind,from=assets,source=/dist,target=/dist \\
    --mount=type=cache,from=busybox:1,target=/c true
FROM builder
COPY --from=0 /x /x
COPY --from=uv /uv /bin/uv
FROM scratch AS empty
"""


def test_every_image_the_build_pulls_is_found_with_the_arg_that_names_it(tmp_path: Path) -> None:
    # A real project's Dockerfile (uv's multistage example) pulls images by ARG, by name in FROM and in
    # COPY --from / RUN --mount=from: a stage name, a stage index and scratch pull nothing.
    path = tmp_path / "Dockerfile"
    path.write_text(PULLS)
    parsed = dockerfile.parse(path)
    assert parsed.external_images({}) == (
        dockerfile.Pulled("ghcr.io/astral-sh/uv:latest", "UV_IMAGE"),
        dockerfile.Pulled("node:22-alpine"),
        dockerfile.Pulled("python:3.12-slim-bookworm", "PYTHON_IMAGE"),
        dockerfile.Pulled("ghcr.io/astral-sh/uv:0.9.26"),
        dockerfile.Pulled("busybox:1"),
    )
    # Build args replace the defaults of the ARGs declared before the first FROM, and nothing else.
    given = parsed.external_images({"PYTHON_IMAGE": "local/python:3.12", "NODE": "x"})
    references = [p.reference for p in given]
    assert references[:3] == ["ghcr.io/astral-sh/uv:latest", "node:22-alpine", "local/python:3.12"]
