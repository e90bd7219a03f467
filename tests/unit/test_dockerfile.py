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
