"""The Invoke door: flags parse as flags, errors end in one line and an exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.tasks import ns

FLAGS = {
    "build": {"no_cache", "quiet"},
    "lock": {"check"},
    "size-report": {"deep"},
    "compose-build": {"no_cache", "quiet", "fail_fast"},
    "verify-compose": {"no_cache"},
}


@pytest.mark.parametrize(("name", "flags"), FLAGS.items())
def test_boolean_options_are_flags_not_values(name: str, flags: set[str]) -> None:
    arguments = {arg.name: arg for arg in ns.tasks[name].get_arguments()}
    assert {n for n, arg in arguments.items() if arg.kind is bool} == flags


def test_every_command_of_the_brief_is_a_task() -> None:
    assert {"lock", "build", "size-report", "compose-build", "verify", "verify-compose"} <= set(ns.task_names)


def _invoke(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKYARD_MACHINE_FILE": "/nonexistent"}
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text("from dockyard.tasks import ns\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "1.0"\nrequires-python = ">=3.11"\ndependencies = []\n'
    )
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def test_lock_check_flag_fails_with_one_line_when_untracked(project: Path) -> None:
    assert _invoke(project, "lock").returncode == 0
    done = _invoke(project, "lock", "--check")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "dockyard: error: uv.lock is not tracked by git: run `git add uv.lock` and commit it"
    )


def test_bad_configuration_exits_2_without_traceback(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "[tool.dockyard]\nsize-budgte = '1GB'\n")
    done = _invoke(project, "build", "--no-cache")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "unknown key 'size-budgte'. Perhaps you meant 'size-budget'?" in done.stderr


def test_search_root_names_the_project(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    done = _invoke(elsewhere, "-r", str(project), "lock")
    assert done.returncode == 0, done.stderr
    assert (project / "uv.lock").is_file()
    assert not (elsewhere / "uv.lock").exists()


def test_lock_advice_names_the_invoke_door(project: Path) -> None:
    assert _invoke(project, "lock").returncode == 0
    subprocess.run(["git", "-C", str(project), "add", "."], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(project),
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "user.name=t",
            "commit",
            "-qm",
            "x",
        ],
        check=True,
    )
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = []", 'dependencies = ["six"]'))
    done = _invoke(project, "lock", "--check")
    assert done.returncode == 1
    assert "run `invoke lock` and commit uv.lock" in done.stderr
    assert "dockyard lock" not in done.stderr


@pytest.mark.parametrize("task", ["build", "verify"])
def test_layout_options_are_on_build_and_verify(task: str) -> None:
    arguments = {arg.name for arg in ns.tasks[task].get_arguments()}
    assert {"dockerfile", "context", "target"} <= arguments


def test_a_dockerfile_option_that_names_nothing_is_one_line(project: Path) -> None:
    done = _invoke(project, "build", "--dockerfile", "nope.Dockerfile")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "nope.Dockerfile does not exist: fix --dockerfile" in done.stderr


def test_the_nox_door_keeps_engine_request_logs_out_of_its_output(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nox sets the root logger to DEBUG: without this, every engine request dockyard's own client,
    # docker-py or urllib3 makes would be a line of `nox -s verify-image`'s output.
    import logging  # noqa: PLC0415
    from types import SimpleNamespace  # noqa: PLC0415

    from dockyard import cli, sessions  # noqa: PLC0415

    names = ("dockyard.engine", "docker", "urllib3")
    for name in names:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger(), "level", logging.DEBUG)
    monkeypatch.setattr(cli, "main", lambda argv: 0)
    sessions._run(SimpleNamespace(posargs=[], error=None), "verify")  # type: ignore[arg-type]
    assert [name for name in names if logging.getLogger(name).isEnabledFor(logging.DEBUG)] == []
