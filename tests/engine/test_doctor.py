"""`dockyard doctor` on this (ready) machine, and the provisioning that first use and `--fix` run.

Provisioning runs for real: on a machine whose engine answers it finds every step done and says so,
and it writes its machine file to a temporary path, never the machine's own. It never starts a second
engine: step 1 asks the engine on the default socket first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard import config
from dockyard.errors import EngineUnavailable
from dockyard.machine import doctor, provisioning
from tests.engine.conftest import ROOT
from tests.unit.trees import git_init


def test_doctor_lists_every_item_and_this_machine_is_ready() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "doctor"],
        cwd=ROOT, env={**os.environ, "COLUMNS": "250"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for item in doctor.ORDER:
        assert f" {item} " in done.stdout, item
    assert "FIX" not in done.stdout
    assert "ready (" in done.stdout


def test_fix_on_a_ready_machine_does_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "doctor", "--fix"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing for --fix to do" in done.stdout


def _provision_env(tmp_path: Path) -> dict[str, str]:
    return {"DOCKYARD_MACHINE_FILE": str(tmp_path / "machine.env")}


@pytest.mark.skipif(os.geteuid() != 0, reason="provisioning runs as root")
def test_provisioning_finds_a_ready_machine_ready_and_writes_its_machine_file(tmp_path: Path) -> None:
    lines: list[str] = []
    provisioning.provision(lines.append, _provision_env(tmp_path))
    assert any(line.startswith("provision: engine: answers") for line in lines), lines
    assert any(line.startswith("provision: compose:") for line in lines), lines
    assert any(line.startswith("provision: buildkit:") for line in lines), lines
    machine = (tmp_path / "machine.env").read_text()
    assert "DOCKYARD_" in machine


def test_first_use_provisions_where_it_may_and_says_why_elsewhere(tmp_path: Path) -> None:
    """The engine check fails once (as on a bare machine); what happens next is what `decide` says for
    this machine: provision, printing each step, then check again; or one line with the fix."""
    env = {**os.environ, **_provision_env(tmp_path)}
    decision = provisioning.decide_here(env)
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise EngineUnavailable("no Docker engine answers (as on a bare machine)")

    said: list[str] = []
    if decision.provision:
        assert provisioning.ensure_engine(check, said.append, env) is True
        assert said[0] == "dockyard: no Docker engine answers (as on a bare machine)"
        assert said[1].startswith("dockyard: provisioning this machine (root on ")
        assert "DOCKYARD_NO_PROVISION=1 turns this off" in said[1]
        assert any(line.startswith("  provision: ") for line in said)
        assert said[-1] == "dockyard: machine ready"
        assert len(calls) == 2
    else:
        with pytest.raises(EngineUnavailable, match="To ready this machine: "):
            provisioning.ensure_engine(check, said.append, env)
        assert said == []


def test_the_opt_out_is_honoured(tmp_path: Path) -> None:
    env = {**os.environ, **_provision_env(tmp_path), "DOCKYARD_NO_PROVISION": "1"}

    def check() -> None:
        raise EngineUnavailable("no Docker engine answers (as on a bare machine)")

    with pytest.raises(EngineUnavailable, match=r"doctor --fix|install"):
        provisioning.ensure_engine(check, lambda line: None, env)
    assert not (tmp_path / "machine.env").exists()


def _project(root: Path, dockerfile_text: str) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "acme"\nversion = "0.1.0"\ndependencies = []\n')
    (root / "Dockerfile").write_text(dockerfile_text)
    return root


def test_base_images_are_what_the_projects_dockerfile_pulls(tmp_path: Path) -> None:
    # A public project's Dockerfile names its images outright (`FROM python:3.12-slim-bullseye`,
    # `COPY --from=ghcr.io/astral-sh/uv`): where no registry answers, its build cannot start, whatever
    # stand-ins the machine has. The fix points at what to change; an ARG-named base gets its variable.
    hardcoded = _project(
        tmp_path / "hardcoded",
        "ARG RUNTIME=registry.invalid/acme/python:3.12\n"
        "FROM ${RUNTIME}\nCOPY --from=registry.invalid/acme/uv:1 /uv /bin/uv\n",
    )
    line = next(entry for entry in doctor.diagnose(hardcoded) if entry.item == "base images")
    assert line.status == doctor.FIX, line
    assert "registry.invalid/acme/python:3.12" in line.detail
    assert "registry.invalid/acme/uv:1" in line.detail
    assert "DOCKYARD_BUILD_ARG_RUNTIME=<a local image>" in line.fix
    assert "make registry.invalid/acme/uv:1 a build arg" in line.fix
    # The same Dockerfile pointed at images the engine has (the machine's stand-ins, as build args) is OK.
    env = config.effective_environment(None)
    python = env.get("DOCKYARD_BUILD_ARG_PYTHON_IMAGE", "python:3.12-slim")  # else pullable from here
    uv = env.get("DOCKYARD_BUILD_ARG_UV_IMAGE", "ghcr.io/astral-sh/uv:latest")
    ready = _project(
        tmp_path / "ready",
        "ARG PYTHON_IMAGE=python:3.12-slim\nARG UV_IMAGE=ghcr.io/astral-sh/uv:latest\n"
        "FROM ${UV_IMAGE} AS uv\nFROM ${PYTHON_IMAGE}\nCOPY --from=uv /uv /bin/uv\n",
    )
    line = next(entry for entry in doctor.diagnose(ready) if entry.item == "base images")
    assert line.status == doctor.OK, line
    assert python in line.detail
    assert uv in line.detail


def test_base_images_of_two_compose_builds_are_what_both_dockerfiles_pull(tmp_path: Path) -> None:
    # dataset-processor: a web and a worker, each with its own Dockerfile in docker/, named by a
    # compose file one directory up. The Dockerfile is undecided, so the line lists what every build
    # of the compose file pulls, each with its own args, not the machine's stand-ins.
    repo = tmp_path / "repo"
    project = repo / "api"
    (project / "docker").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "api"\nversion = "0.1.0"\ndependencies = []\n')
    (project / "docker" / "api.Dockerfile").write_text(
        "ARG RUNTIME=registry.invalid/acme/python:3.12\nFROM ${RUNTIME}\n"
        "COPY --from=registry.invalid/acme/uv:1 /uv /bin/uv\nRUN uv sync\n"
    )
    (project / "docker" / "worker.Dockerfile").write_text(
        "ARG BASE=registry.invalid/acme/python:3.12\nFROM ${BASE} AS build\n"
        "FROM registry.invalid/acme/worker-base:2\nCOPY --from=build /app /app\nRUN uv sync\n"
    )
    (repo / "docker-compose.yml").write_text(
        "services:\n"
        "  api:\n    build:\n      context: ./api\n      dockerfile: docker/api.Dockerfile\n"
        "  worker:\n    build:\n      context: ./api\n      dockerfile: docker/worker.Dockerfile\n"
        "      args:\n        BASE: registry.invalid/acme/python:3.11\n"
        "  db:\n    image: postgres:16\n"
    )
    git_init(repo)  # Compose's file is searched up to the repository's root
    line = next(entry for entry in doctor.diagnose(project) if entry.item == "base images")
    assert line.status == doctor.FIX, line
    assert line.detail.startswith(
        "docker/api.Dockerfile, docker/worker.Dockerfile pull what cannot be pulled"
    )
    for image in (
        "registry.invalid/acme/python:3.12",  # api's default
        "registry.invalid/acme/uv:1",
        "registry.invalid/acme/python:3.11",  # the worker's compose args win over its ARG's default
        "registry.invalid/acme/worker-base:2",
    ):
        assert image in line.detail, (image, line.detail)
    assert "dockyard-standin" not in line.detail
    assert "postgres" not in line.detail, "an image a service runs without building is no base image"
    assert "DOCKYARD_BUILD_ARG_RUNTIME=<a local image>" in line.fix
    assert "DOCKYARD_BUILD_ARG_BASE" not in line.fix, "the compose file's args win over dockyard's"
    assert "point worker's build.args.BASE in the compose file at a local image" in line.fix
    assert "make registry.invalid/acme/uv:1, registry.invalid/acme/worker-base:2 a build arg" in line.fix
