"""Engine fixtures of the hostile suite: a small project that builds without the network, and the weird
images the rows run against, each built once per session and removed at its end.

Everything the suite creates on the engine carries the label `dev.dockyard.hostile-run` with a value
starting with this session's `RUN`: the session's images `<RUN>-session`, what a row's builds make
`<RUN>-<row>`. Rows that need the engine carry the `engine` marker and the `hostile-engine` xdist
group, so they run one after another in one worker and never see each other's containers.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import docker.errors as docker_errors
import pytest

from dockyard import engine
from dockyard.build import buildkit
from dockyard.config import effective_environment
from tests.hostile.harness import LABEL, LEAK_MARK, make_repo

RUN = uuid.uuid4().hex[:10]
SESSION = f"{RUN}-session"

APP_PYPROJECT = """\
[project]
name = "plainapp"
version = "0.1.0"
description = "A project that builds without the network, for the hostile-input suite."
requires-python = ">=3.11"
dependencies = []

[tool.dockyard]
service = false
size-budget = "500MB"

[tool.dockyard.verify]
user = "app"
imports = ["plainapp"]
smoke = [{ command = ["python3", "-m", "plainapp"], expect = "plainapp ok" }]
"""

APP_DOCKERFILE = """\
ARG PYTHON_IMAGE=python:3.13-slim
FROM ${PYTHON_IMAGE}
ARG HOSTILE_RUN=none
ARG SLOW=0
LABEL dev.dockyard.hostile-run=${HOSTILE_RUN}
RUN useradd --system --uid 10001 --no-create-home --home-dir /app app
WORKDIR /app
COPY . /app
RUN python3 /app/check_no_leak.py && sleep ${SLOW}
ENV PYTHONPATH=/app/src PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
CMD ["python3", "-m", "plainapp"]
"""

CHECK_NO_LEAK = '''\
"""Fail the build when bytes of a file outside the project reached the image."""
import os
import sys

mark = ("HOSTILE" + "-LEAK-" + "MARK").encode()
for dirpath, _, filenames in os.walk("/app"):
    for name in filenames:
        path = os.path.join(dirpath, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as handle:
            if mark in handle.read():
                sys.exit(f"bytes from outside the project reached the image: {path}")
'''

COMPOSE = """\
services:
  web:
    build:
      context: .
      args:
        PYTHON_IMAGE: "${PYTHON_IMAGE:-python:3.13-slim}"
        HOSTILE_RUN: "${HOSTILE_RUN:-none}"
    image: "dockyard-hostile/compose-web:${HOSTILE_RUN:-none}"
    command: ["python3", "-m", "plainapp"]
  worker:
    build:
      context: .
      args:
        PYTHON_IMAGE: "${PYTHON_IMAGE:-python:3.13-slim}"
        HOSTILE_RUN: "${HOSTILE_RUN:-none}"
    image: "dockyard-hostile/compose-web:${HOSTILE_RUN:-none}"
    command: ["python3", "-c", "print('worker')"]
"""

# The weird images, as Dockerfiles over the machine's Python base (PYTHON) or uv image (UV).
WEIRD_IMAGES: dict[str, str] = {
    "scratch": "FROM scratch\nCOPY hello.txt /hello.txt\n",
    # uv's image holds one static binary and nothing else: no shell, no Python
    "nopython": 'ARG UV_IMAGE\nFROM ${UV_IMAGE}\nENTRYPOINT ["/uv"]\n',
    "hanging": """\
        ARG PYTHON_IMAGE
        FROM ${PYTHON_IMAGE}
        RUN useradd --uid 10001 app
        USER 10001
        HEALTHCHECK --interval=1s --timeout=600s CMD ["python3", "-c", "import time; time.sleep(3600)"]
        ENTRYPOINT ["sleep", "infinity"]
        """,
    "weird": """\
        ARG PYTHON_IMAGE
        FROM ${PYTHON_IMAGE}
        RUN mkdir -p /app/loops /app/private \\
            && ln -s /app/loops /app/loops/self && ln -s a /app/loops/b && ln -s b /app/loops/a \\
            && echo secret > /app/private/inside && chmod 000 /app/private \\
            && mkdir "$(printf '/app/nasty\\200')" && echo TOKEN=x > "$(printf '/app/nasty\\200/.env')" \\
            && mkfifo /app/pipe && useradd --uid 10001 app
        RUN rm -f "$(printf '/app/nasty\\200/.env')" && echo TOKEN=y > "$(printf '/app/nasty\\200/.env')"
        USER 10001
        CMD ["python3", "-c", "print('weird')"]
        """,
    "many": """\
        ARG PYTHON_IMAGE
        FROM ${PYTHON_IMAGE}
        RUN python3 -c "import os; [os.makedirs(f'/data/{i // 1000}', exist_ok=True) or \\
            open(f'/data/{i // 1000}/{i}', 'w').write('x') for i in range(200000)]"
        RUN rm -rf /data/1*
        RUN useradd --uid 10001 app
        USER 10001
        """,
}


def app_files(outside: Path) -> dict[str, str | bytes]:
    return {
        "pyproject.toml": APP_PYPROJECT,
        "Dockerfile": APP_DOCKERFILE,
        ".dockerignore": ".git\n",
        "check_no_leak.py": CHECK_NO_LEAK,
        "compose.yaml": COMPOSE,
        "src/plainapp/__init__.py": 'def main() -> None:\n    print("plainapp ok")\n',
        "src/plainapp/__main__.py": "from plainapp import main\n\nmain()\n",
        "assets/outside": f"->{outside}",  # absolute: out of the tree
        "assets/outside-relative": "->../../outside/host-secret",  # relative: out of the tree too
    }


@pytest.fixture(scope="session")
def machine() -> dict[str, str]:
    return effective_environment()


@pytest.fixture(scope="session")
def docker(machine: Mapping[str, str]) -> Iterator[engine.Engine]:
    made = engine.connect(machine.get("DOCKYARD_DOCKER"))
    yield made
    remove_labelled(made, RUN)


def labelled(docker: engine.Engine, value: str) -> tuple[list[str], list[str]]:
    """(container ids, image ids) carrying the suite's label with exactly `value`."""
    filters = {"label": f"{LABEL}={value}"}
    containers = [str(c["Id"]) for c in docker.client.api.containers(all=True, filters=filters)]
    images = [str(i["Id"]) for i in docker.client.api.images(filters=filters)]
    return containers, images


def remove_labelled(docker: engine.Engine, prefix: str) -> None:
    """Remove every container and image whose suite label starts with `prefix`."""
    for container in docker.client.api.containers(all=True, filters={"label": LABEL}):
        if str(container["Labels"].get(LABEL, "")).startswith(prefix):
            with contextlib.suppress(docker_errors.NotFound):
                docker.client.api.remove_container(container["Id"], force=True, v=True)
    for image in docker.client.api.images(filters={"label": LABEL}):
        if str((image.get("Labels") or {}).get(LABEL, "")).startswith(prefix):
            for ref in [*(image.get("RepoTags") or []), image["Id"]]:
                with contextlib.suppress(docker_errors.NotFound, docker_errors.APIError):
                    docker.client.images.remove(ref, force=True, noprune=False)


@pytest.fixture(scope="session")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file outside every project the rows make, whose bytes must never reach an image."""
    secret = tmp_path_factory.mktemp("outside") / "host-secret"
    secret.write_text(f"{LEAK_MARK}: bytes of a file outside the project\n")
    return secret


@pytest.fixture(scope="session")
def lockfile(tmp_path_factory: pytest.TempPathFactory) -> str:
    """uv.lock of the app project (it has no dependencies: resolved offline)."""
    root = tmp_path_factory.mktemp("lock")
    (root / "pyproject.toml").write_text(APP_PYPROJECT)
    uv = shutil.which("uv")
    assert uv is not None, "uv runs the tests (uv run pytest), so it is on PATH"
    subprocess.run([uv, "lock", "--offline", "--quiet"], cwd=root, check=True)
    return (root / "uv.lock").read_text()


@pytest.fixture
def app(tmp_path: Path, outside: Path, lockfile: str) -> Callable[..., Path]:
    """A fresh copy of the app project in its own git repository: each line of `toml` replaces the line
    setting the same key, or is appended (pyproject.toml ends in [tool.dockyard.verify], so bare keys
    land there); `service` makes it a service."""

    def make(
        toml: str = "", *, service: bool = False, files: Mapping[str, str | bytes] | None = None
    ) -> Path:
        contents = app_files(outside)
        pyproject = str(contents["pyproject.toml"])
        for line in toml.splitlines(keepends=True):
            key = line.partition("=")[0].strip()
            replaced = re.sub(rf"(?m)^{re.escape(key)} = .*\n", line, pyproject) if key else pyproject
            pyproject = replaced if replaced != pyproject else pyproject + line
        contents["pyproject.toml"] = pyproject.replace("service = false", f"service = {str(service).lower()}")
        contents["uv.lock"] = lockfile
        return make_repo(tmp_path / "project", {**contents, **(files or {})})

    return make


class Images:
    """The session's images, each built on first use (the 200,000-file one takes a minute)."""

    def __init__(self, docker: engine.Engine, machine: Mapping[str, str], root: Path, outside: Path) -> None:
        self.docker = docker
        self.machine = machine
        self.root = root
        self.outside = outside
        self.built: dict[str, str] = {}
        self.lock = threading.Lock()

    def _request(self, name: str, context: Path, dockerfile: Path) -> buildkit.BuildRequest:
        args = {
            "PYTHON_IMAGE": self.machine.get("DOCKYARD_BUILD_ARG_PYTHON_IMAGE", "python:3.13-slim"),
            "UV_IMAGE": self.machine.get("DOCKYARD_BUILD_ARG_UV_IMAGE", "ghcr.io/astral-sh/uv:0.13.8"),
            "HOSTILE_RUN": SESSION,
        }
        return buildkit.BuildRequest(
            dockerfile=dockerfile,
            context=context,
            tags=(f"dockyard-hostile/{name}:{RUN}",),
            build_args=args,
            labels={LABEL: SESSION, engine.LABEL_MANAGED: "true"},
        )

    def __getitem__(self, name: str) -> str:
        with self.lock:
            if name not in self.built:
                context = self.root / name
                if name == "app":
                    make_repo(context, {**app_files(self.outside), "uv.lock": ""})
                else:
                    context.mkdir(parents=True)
                    (context / "hello.txt").write_text("hello\n")
                    (context / "Dockerfile").write_text(textwrap.dedent(WEIRD_IMAGES[name]))
                request = self._request(name, context, context / "Dockerfile")
                self.built[name] = buildkit.build(self.docker, request).tags[0]
            return self.built[name]


@pytest.fixture(scope="session")
def images(
    docker: engine.Engine, machine: Mapping[str, str], tmp_path_factory: pytest.TempPathFactory, outside: Path
) -> Images:
    return Images(docker, machine, tmp_path_factory.mktemp("images"), outside)
