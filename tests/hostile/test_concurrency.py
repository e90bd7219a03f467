"""Runs at the same time: eight size-reports keep eight history entries, and two verifies of one
project each finish cleanly, leaving nothing behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard import engine, state
from dockyard.sizes import history
from tests.hostile.conftest import RUN, SESSION, Images, labelled, remove_labelled
from tests.hostile.harness import ANSI, Untouched, check_no_temp, environment

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("hostile-engine")]


def _start(project: Path, argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dockyard", *argv], cwd=project, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
    )  # fmt: skip


def test_eight_size_reports_at_once_keep_eight_entries(
    app: Callable[..., Path], images: Images, docker: engine.Engine, tmp_path: Path
) -> None:
    project = app()
    image = docker.client.images.get(images["app"])
    names = [f"dockyard-hostile/concurrent-{n}-{RUN}" for n in range(8)]
    for name in names:
        image.tag(name, "1")
    temp, state_home = tmp_path / "tmp", tmp_path / "state"
    temp.mkdir()
    untouched = Untouched.of(project)
    env = environment(temp, state_home, machine=True)
    try:
        runs = [_start(project, ["size-report", f"{name}:1"], env) for name in names]
        outputs = [run.communicate(timeout=300) for run in runs]
    finally:
        for name in names:
            docker.client.images.remove(f"{name}:1", noprune=True)
    for run, (stdout, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, ANSI.sub("", stdout + stderr)[-2000:]
        assert "Traceback" not in stdout + stderr
    path = state.project_state_dir(project, {"XDG_STATE_HOME": str(state_home)}) / "size-history.json"
    recorded = history.read_history(path)
    assert sorted(recorded) == sorted(names), "every run kept its entry"
    assert not list(path.parent.glob("*.tmp")), "no temp file of an atomic write left"
    untouched.check()
    check_no_temp(temp)


def test_two_verifies_of_one_project_at_once_both_finish_cleanly(
    app: Callable[..., Path], images: Images, docker: engine.Engine, tmp_path: Path
) -> None:
    project = app()
    label = f"{RUN}-two-verifies"
    temp, state_home = tmp_path / "tmp", tmp_path / "state"
    temp.mkdir()
    untouched = Untouched.of(project)
    env = environment(temp, state_home, {"DOCKYARD_BUILD_ARG_HOSTILE_RUN": label}, machine=True)
    argv = ["verify", images["app"], "--only", "layer-cache", "--only", "non-root", "--only", "smoke"]
    try:
        runs = [_start(project, argv, env) for _ in range(2)]
        outputs = [run.communicate(timeout=300) for run in runs]
        for run, (stdout, stderr) in zip(runs, outputs, strict=True):
            assert run.returncode == 0, ANSI.sub("", stdout + stderr)[-2000:]
            assert "Traceback" not in stdout + stderr
        untouched.check()
        check_no_temp(temp)
        assert labelled(docker, label) == ([], []), "scratch images and containers are removed"
        assert labelled(docker, SESSION)[0] == []
    finally:
        remove_labelled(docker, label)
