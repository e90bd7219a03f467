"""The Docker engine: which CLI builds, how BuildKit is reached, and the SDK client that inspects and runs.

BuildKit is discovered, not assumed: `docker buildx build --load` where buildx exists, otherwise the
engine's built-in BuildKit through a docker CLI older than 23 (newer CLIs need buildx for BuildKit).
Everything dockyard creates on the engine carries `LABEL_MANAGED`, and containers also carry the run's
`LABEL_RUN`, so cleanup removes exactly what this run made and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.images import Image

from dockyard import interrupt, process
from dockyard.errors import CommandError, CommandTimeout, ConfigError, EngineUnavailable, ImageNotFound

LABEL_MANAGED = "dev.dockyard.managed"
LABEL_RUN = "dev.dockyard.run"

_VERSION = re.compile(r"version (\d+)\.(\d+)")


class BuildkitPath(StrEnum):
    BUILDX = "buildx"  # docker buildx build --load
    BUILTIN = "builtin"  # DOCKER_BUILDKIT=1 docker build, through the engine's own BuildKit


@dataclass(frozen=True)
class Cli:
    path: str
    version: tuple[int, int]
    buildkit: BuildkitPath | None

    def describe(self) -> str:
        how = {
            BuildkitPath.BUILDX: "buildx",
            BuildkitPath.BUILTIN: "built-in BuildKit",
            None: "no BuildKit",
        }[self.buildkit]
        return f"{self.path} ({self.version[0]}.{self.version[1]}, {how})"


def inspect_cli(path: str) -> Cli | None:
    """What a docker CLI can do, without asking the engine; None when it is not a docker CLI."""
    try:
        done = process.run([path, "--version"], timeout=15, check=False)
    except CommandError:
        return None
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or not match:
        return None
    version = (int(match.group(1)), int(match.group(2)))
    buildx = process.run([path, "buildx", "version"], timeout=15, check=False).returncode == 0
    if buildx:
        return Cli(path, version, BuildkitPath.BUILDX)
    # CLIs from 23 on send BuildKit builds to buildx only; older ones speak to the engine's BuildKit.
    return Cli(path, version, BuildkitPath.BUILTIN if version[0] < 23 else None)


def _candidates() -> list[str]:
    found: list[str] = []
    seen: set[Path] = set()
    on_path = shutil.which("docker")
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    for candidate in [on_path, *(str(Path(d) / "docker") for d in dirs), "/usr/bin/docker"]:
        if not candidate or not Path(candidate).is_file():
            continue
        real = Path(candidate).resolve()
        if real not in seen:
            seen.add(real)
            found.append(candidate)
    return found


def discover_cli(explicit: str | None = None) -> Cli:
    """The docker CLI to build with: `explicit` when given, else the first with a BuildKit path."""
    if explicit:
        path = shutil.which(explicit) or explicit
        cli = inspect_cli(path)
        if cli is None:
            raise ConfigError(
                f"DOCKYARD_DOCKER/docker setting names {explicit!r}, which is not a docker CLI: "
                "point it at one (a path or a name on PATH), or unset it"
            )
        if cli.buildkit is None:
            raise ConfigError(
                f"{path} ({cli.version[0]}.{cli.version[1]}) has no BuildKit path: install the buildx "
                "plugin (docker-buildx-plugin), or point DOCKYARD_DOCKER at a CLI older than 23"
            )
        return cli
    clis = [cli for path in _candidates() if (cli := inspect_cli(path))]
    for cli in clis:
        if cli.buildkit is not None:
            return cli
    if not clis:
        raise EngineUnavailable("no docker CLI found: install Docker (`dockyard doctor` says how)")
    raise EngineUnavailable(
        f"no BuildKit build path: {', '.join(c.describe() for c in clis)}; install the buildx "
        "plugin (docker-buildx-plugin), or run `dockyard doctor --fix`"
    )


@dataclass(frozen=True)
class RunResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


@dataclass
class Engine:
    """A reachable Docker engine, the CLI that builds for it, and an SDK client."""

    docker_cli: str | None = None  # the CLI asked for (DOCKYARD_DOCKER / `docker`), else discovered
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @cached_property
    def cli(self) -> Cli:
        """The CLI that builds, discovered on first use: checking an image needs none."""
        return discover_cli(self.docker_cli)

    @cached_property
    def client(self) -> docker.DockerClient:
        try:
            client = docker.from_env(timeout=120)
            client.ping()
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(
                f"no Docker engine answers ({first_line(exc)}): start dockerd, or run `dockyard doctor --fix`"
            ) from None
        return client

    @property
    def labels(self) -> dict[str, str]:
        """Labels for everything this run creates on the engine."""
        return {LABEL_MANAGED: "true", LABEL_RUN: self.run_id}

    def server_version(self) -> str:
        return str(self.client.version().get("Version", "?"))

    def docker(
        self, args: list[str], *, timeout: float = 300, check: bool = True, what: str | None = None
    ) -> process.Completed:
        """Run the docker CLI (the one that builds) with args."""
        return process.run([self.cli.path, *args], timeout=timeout, check=check, what=what)

    def image(self, ref: str) -> Image:
        try:
            return self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            raise ImageNotFound(
                f"no image {ref!r} on this engine: build it first (invoke build) or check the name"
            ) from None
        except docker.errors.APIError as exc:
            raise EngineUnavailable(f"inspecting {ref}: {first_line(exc)}") from None

    def image_exists(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        return True

    @contextlib.contextmanager
    def container(self, image: str, **kwargs: Any) -> Iterator[Container]:
        """A labelled container, removed on leaving the block whatever happened (Ctrl-C included)."""
        labels = {**kwargs.pop("labels", {}), **self.labels}
        interrupt.check()
        try:
            made = self.client.containers.create(image, labels=labels, **kwargs)
        except docker.errors.ImageNotFound:
            raise ImageNotFound(f"no image {image!r} on this engine") from None
        except docker.errors.APIError as exc:
            raise EngineUnavailable(f"creating a container of {image}: {first_line(exc)}") from None
        try:
            # An interrupt removes it at once, which also ends a wait on it in any thread.
            with interrupt.on_interrupt(lambda: remove_container(made)):
                yield made
        finally:
            remove_container(made)

    def run_once(
        self, image: str, command: list[str] | None = None, *, timeout: float = 60, **kwargs: Any
    ) -> RunResult:
        """Run a labelled container to completion; it is removed afterwards, whatever happens."""
        with self.container(image, command=command, **kwargs) as made:
            try:
                made.start()
            except docker.errors.APIError as exc:
                raise EngineUnavailable(f"starting a container of {image}: {first_line(exc)}") from None
            try:
                status = made.wait(timeout=timeout)
            except Exception as exc:  # requests' ReadTimeout and friends
                raise CommandTimeout(
                    f"a container of {image} did not finish within {timeout:g} s ({first_line(exc)})"
                ) from None
            return RunResult(
                code=int(status.get("StatusCode", -1)),
                stdout=made.logs(stdout=True, stderr=False).decode(errors="replace"),
                stderr=made.logs(stdout=False, stderr=True).decode(errors="replace"),
            )

    def remove_run_leftovers(self) -> int:
        """Remove containers of this run that escaped their block (a killed thread, say). Summaries, not
        `containers.list`, whose per-container inspect fails on one its own block removes meanwhile."""
        leftovers = self.client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={self.run_id}"})
        for leftover in leftovers:
            remove_container(self.client.containers.prepare_model({"Id": leftover["Id"]}))
        return len(leftovers)


def remove_container(made: Container) -> None:
    for _ in range(3):
        try:
            made.remove(force=True, v=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:  # "removal already in progress": retry shortly
            time.sleep(0.2)
        else:
            return


_ENGINES: dict[str | None, Engine] = {}


def connect(docker_cli: str | None = None) -> Engine:
    """The engine for this process (discovered once), after checking that it answers."""
    if docker_cli not in _ENGINES:
        engine = Engine(docker_cli)
        if docker_cli:
            _ = engine.cli  # a configured CLI that cannot build is a configuration error (exit 2), now
        _ = engine.client  # fail early, with one clear line, when no engine answers
        _ENGINES[docker_cli] = engine
    return _ENGINES[docker_cli]


_OCI_PREFIX = re.compile(r"^.*?unable to start container process: ")


def first_line(exc: BaseException) -> str:
    """One line for a person: the engine's own explanation of an API error (not the HTTP request and
    runc's layers of wrapping: `exec: "python": executable file not found in $PATH`), else the first
    line of the exception."""
    explanation = getattr(exc, "explanation", None) if isinstance(exc, docker.errors.APIError) else None
    if explanation:
        text = _OCI_PREFIX.sub("", str(explanation)).removesuffix(": unknown").strip().splitlines()
    else:
        text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
