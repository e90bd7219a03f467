"""Test harness: the `engine` marker, and cleanup of everything engine tests create.

Tests marked `engine` need a running Docker engine. On a developer machine without one they skip;
under CI (CI=true) a missing engine fails the run instead, so they can never be skipped silently.
"""

from __future__ import annotations

import os

import pytest

from dockyard import engine
from dockyard.config import effective_environment
from dockyard.errors import DockyardError


def _engine_problem() -> str | None:
    try:
        engine.connect(os.environ.get("DOCKYARD_DOCKER") or _machine_docker())
    except DockyardError as exc:
        return exc.message
    return None


def _machine_docker() -> str | None:
    return effective_environment().get("DOCKYARD_DOCKER")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_engine = [item for item in items if item.get_closest_marker("engine")]
    if not needs_engine:
        return
    problem = _engine_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise pytest.UsageError(f"CI=true but engine tests cannot run: {problem}")
    skip = pytest.mark.skip(reason=f"no Docker engine: {problem}")
    for item in needs_engine:
        item.add_marker(skip)


# The fixtures are projects of their own (with their own tests and dependencies), not dockyard's tests.
collect_ignore = ["fixtures"]
