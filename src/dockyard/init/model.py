"""The values `dockyard init` passes between reading, inferring and rendering (no logic here)."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.init.project import Project

APP_UID = 10001  # the image's non-root user (and group), created by the Dockerfile


@dataclass(frozen=True)
class Fact:
    """One decision, as the Dockerfile's header shows it: what, the value chosen, and why."""

    what: str
    value: str
    why: str


@dataclass(frozen=True)
class Options:
    """`dockyard init`'s flags: each overrides the matching inference."""

    app: str | None = None  # MODULE:ATTR of the web (ASGI/WSGI) application
    worker: str | None = None  # MODULE:ATTR of a Celery/arq/Dramatiq/RQ worker app
    port: int | None = None
    python: str | None = None  # X.Y
    compose: bool = False


@dataclass(frozen=True)
class DockyardSource:
    """How init adds dockyard to the project's development dependencies (`uv add --dev ...`)."""

    argv: tuple[str, ...]  # the `uv add` command
    kind: str  # registry, git, path, wheel, url
    shown: str  # where from, for people


@dataclass(frozen=True)
class Role:
    """A compose service: the image's own command (None) or another one."""

    name: str  # web, worker, scheduler (or app)
    command: tuple[str, ...] | None


@dataclass(frozen=True)
class SystemPackage:
    """A Debian package the dependencies need, and why."""

    name: str
    why: str


@dataclass(frozen=True)
class WheelSource:
    """A packaged project whose wheel the image installs, as the `project` stage copies it."""

    directory: str  # context-relative ("." for the project at the context's root)
    files: tuple[str, ...]  # context-relative files its build backend reads: pyproject.toml, readme...
    trees: tuple[str, ...]  # context-relative directories holding its package


@dataclass(frozen=True)
class ComposeFacts:
    """What a compose file says about the services built from this project's Dockerfile."""

    file: str
    ports: tuple[int, ...]
    volumes: tuple[str, ...]  # container paths of named volumes


@dataclass(frozen=True)
class Run:
    """What the image runs, and how that was decided."""

    kind: str  # web, worker, cli, job
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    fact: Fact
    routes_module: str | None = None  # the module whose package's routes name the health path
    server: str | None = None  # the server executable the command starts (uvicorn...)


@dataclass(frozen=True)
class Inference:
    """Everything the templates need, decided."""

    project: Project
    facts: tuple[Fact, ...]
    python: str  # "3.13"
    uv_version: str
    lock_flag: str  # --locked or --frozen
    run: Run
    ports: tuple[int, ...]
    healthcheck: tuple[str, ...] | None
    roles: tuple[Role, ...]
    runtime_packages: tuple[SystemPackage, ...]
    build_packages: tuple[SystemPackage, ...]
    data_dirs: tuple[str, ...]
    wheel_sources: tuple[WheelSource, ...]  # packaged projects: the wheels the image installs
    mounts: tuple[str, ...]  # context-relative files the dependency step bind-mounts
    app_paths: tuple[str, ...]  # virtual projects: context-relative modules and packages copied
    imports: tuple[str, ...]
    smoke: tuple[tuple[str, ...], ...]
    layer_cache_touch: str | None
    size_budget: str
    image: str
    notes: tuple[str, ...] = ()
    dockyard: DockyardSource | None = None
    compose: ComposeFacts | None = None
    writes_compose: bool = False  # `[tool.dockyard.compose]` is written (--compose, or a file exists)

    @property
    def kind(self) -> str:
        return self.run.kind

    @property
    def service(self) -> bool:
        return self.run.kind == "web"

    @property
    def context_paths(self) -> tuple[str, ...]:
        """What the build reads from the context (directories end in "/"): the .dockerignore's list."""
        paths = list(self.mounts)
        if self.project.packaged:
            for source in self.wheel_sources:
                paths += [*source.files, *(f"{tree}/" for tree in source.trees)]
        else:
            paths += [p if p.endswith(".py") else f"{p}/" for p in self.app_paths]
        return tuple(dict.fromkeys(paths))
