"""Test harness: the `engine` marker, and an engine for the engine tests, provisioned on first use.

Tests marked `engine` need a running Docker engine with a BuildKit path. When none answers at the start
of a run that includes them, the session readies the machine as `invoke build` does: root on
Debian/Ubuntu runs dockyard's provisioning (each step printed; `DOCKYARD_NO_PROVISION=1` turns it
off), elsewhere the reason names the command to run. Then, on a developer machine without an engine
the engine tests skip; under CI (CI=true) a missing engine fails the run instead, so they can never be
skipped silently.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard import engine
from dockyard.config import effective_environment
from dockyard.errors import DockyardError
from dockyard.machine import provisioning

HERE = Path(__file__).resolve().parent
_PROBLEM = pytest.StashKey[str | None]()


def in_ci() -> bool:
    """Whether this is CI (CI=true): there an engine test that cannot run fails instead of skipping."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _check() -> None:
    """An engine answers and a BuildKit path exists (what the engine tests build with)."""
    docker = os.environ.get("DOCKYARD_DOCKER") or effective_environment().get("DOCKYARD_DOCKER")
    _ = engine.connect(docker).cli


@pytest.fixture(autouse=True, scope="session")
def _private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """dockyard's state (size histories, locks) goes to a directory of the test session, never to the
    state directory of the person running the tests (subprocesses inherit it)."""
    state = tmp_path_factory.mktemp("xdg-state")
    before = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(state)
    yield state
    if before is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = before


def _engine_problem() -> str | None:
    try:
        _check()
    except DockyardError as exc:
        return exc.message
    return None


def _selects_engine_tests(config: pytest.Config) -> bool:
    """Whether the run's paths can reach tests/engine (a run of tests/unit alone needs no engine)."""
    unit = HERE / "unit"
    for arg in config.args or ["."]:
        path = Path(str(config.invocation_params.dir), arg.split("::", 1)[0]).resolve()
        if not path.is_relative_to(unit):
            return True
    return False


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or not _selects_engine_tests(config):
        return  # xdist workers find what the controller readied
    terminal = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if terminal is not None:
            terminal.write_line(line)
        else:
            print(line, file=sys.stderr)

    try:
        provisioning.ensure_engine(_check, say)
    except DockyardError as exc:
        config.stash[_PROBLEM] = exc.message
    else:
        config.stash[_PROBLEM] = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_engine = [item for item in items if item.get_closest_marker("engine")]
    if not needs_engine:
        return
    problem = config.stash[_PROBLEM] if _PROBLEM in config.stash else _engine_problem()
    if problem is None:
        return
    if in_ci():
        raise pytest.UsageError(f"CI=true but engine tests cannot run: {problem}")
    skip = pytest.mark.skip(reason=f"no Docker engine: {problem}")
    for item in needs_engine:
        item.add_marker(skip)


# The fixtures are projects of their own (with their own tests and dependencies), not dockyard's tests.
collect_ignore = ["fixtures"]
