"""compose-build: build each distinct build of a compose stack once, through the same BuildKit path as
`dockyard build`, and tag the image for every service that shares it."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import humanize
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dockyard.build import buildkit as builds
from dockyard.build.buildkit import BuildRequest, BuildResult
from dockyard.config import Settings
from dockyard.engine import LABEL_MANAGED, Engine
from dockyard.errors import UsageError
from dockyard.project.compose import (
    BuildGroup,
    ComposeModel,
    _shown,
    build_groups,
    compose_files,
    interpolation_environment,
    resolve,
    select,
    with_tag,
)


@dataclass(frozen=True)
class ServiceBuild:
    service: str
    image: str  # the service's image name, with its tag
    image_id: str
    size: int
    seconds: float  # the build's duration (shared by every service of the build)
    built_for: str  # the service the build is named after; another name means the image was reused

    @property
    def reused(self) -> bool:
        return self.built_for != self.service


@dataclass(frozen=True)
class StackBuild:
    model: ComposeModel
    services: tuple[ServiceBuild, ...]  # services with `build:`, in model order
    builds: tuple[BuildResult, ...]  # one per distinct build
    groups: tuple[BuildGroup, ...]
    seconds: float


@dataclass(frozen=True)
class ComposeOptions:
    profiles: tuple[str, ...] = ()  # none: [tool.dockyard.compose] profiles
    services: tuple[str, ...] = ()  # none: every service
    project_name: str | None = None  # none: Compose decides (`name:`, COMPOSE_PROJECT_NAME, directory)
    no_cache: bool = False
    quiet: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)  # extra labels for every image built


@contextlib.contextmanager
def secret_files(group: BuildGroup, environ: Mapping[str, str]) -> Iterator[dict[str, Path]]:
    """The group's secrets as files; `environment:` secrets are written to a private scratch file."""
    with tempfile.TemporaryDirectory(prefix="dockyard-secrets-") as scratch:
        files: dict[str, Path] = {}
        for secret_id, source in sorted(group.spec.secrets.items()):
            who = f"build secret {secret_id!r} of service {group.services[0].name!r}"
            if source.file is not None:
                if not source.file.is_file():
                    raise UsageError(
                        f"{who}: {source.file} does not exist; fix its `file:` under top-level "
                        "`secrets:` (or the variable it interpolates)"
                    )
                files[secret_id] = source.file
            elif source.environment is not None:
                if source.environment not in environ:
                    raise UsageError(f"{who}: environment variable {source.environment} is not set")
                path = Path(scratch) / secret_id
                path.touch(mode=0o600)
                path.write_text(environ[source.environment])
                files[secret_id] = path
        yield files


def request_for(group: BuildGroup, secrets: Mapping[str, Path], options: ComposeOptions) -> BuildRequest:
    spec = group.spec
    if not spec.context.is_dir():
        raise UsageError(
            f"service {group.services[0].name!r}: build context {spec.context} is not a directory"
        )
    if not spec.dockerfile.is_file():
        raise UsageError(f"service {group.services[0].name!r}: Dockerfile {spec.dockerfile} does not exist")
    return BuildRequest(
        dockerfile=spec.dockerfile,
        context=spec.context,
        tags=group.tags,
        build_args=dict(spec.args),
        labels={**spec.labels, **options.labels, LABEL_MANAGED: "true"},
        secrets=dict(secrets),
        target=spec.target,
        platform=spec.platform,
        no_cache=options.no_cache or spec.no_cache,
        cache_from=spec.cache_from,
        cache_to=spec.cache_to,
    )


def compose_build(
    engine: Engine,
    settings: Settings,
    files: Sequence[Path | str] = (),
    *,
    console: Console,
    options: ComposeOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> StackBuild:
    """Resolve the stack, build each distinct build once, tag it for its services, print a table."""
    options = options or ComposeOptions()
    environ = os.environ if environ is None else environ
    start = time.monotonic()
    paths = compose_files(settings, files)
    profiles = options.profiles or settings.compose.profiles
    model = resolve(
        engine, settings, paths, profiles=profiles, project_name=options.project_name, environ=environ
    )
    model = select(model, options.services)
    groups = build_groups(model)
    shown = ", ".join(_shown(p, settings.project_dir) for p in paths) or "default file"
    console.print(
        f"[bold]dockyard compose-build[/] {escape(model.project)} ({escape(shown)}) "
        f"with {escape(engine.cli.describe())}"
    )
    if env := interpolation_environment(settings, environ):
        console.print("  compose environment: " + ", ".join(f"{k}={v}" for k, v in env.items()), markup=False)
    if not groups:
        raise UsageError(f"no service of {model.project} has a `build:` section: nothing to build")

    def echo(line: str) -> None:
        if not options.quiet:
            console.out(f"    {line}", highlight=False)

    results: list[BuildResult] = []
    built: list[ServiceBuild] = []
    compose_env = {**environ, **interpolation_environment(settings, environ)}
    for number, group in enumerate(groups, 1):
        names = ", ".join(s.name for s in group.services)
        console.print(f"build {number}/{len(groups)}: {names} -> {', '.join(group.tags)}", markup=False)
        with secret_files(group, compose_env) as secrets:
            request = request_for(group, secrets, options)
            if request.build_args:
                args = ", ".join(f"{k}={v}" for k, v in sorted(request.build_args.items()))
                console.print(f"  build args: {args}", markup=False)
            if request.secrets:
                console.print(
                    "  secrets: " + ", ".join(f"{k} ({v})" for k, v in request.secrets.items()), markup=False
                )
            result = builds.build(engine, request, on_line=echo)
        results.append(result)
        first = group.services[0].name
        built += [
            ServiceBuild(s.name, with_tag(s.image), result.image_id, result.size, result.seconds, first)
            for s in group.services
        ]
    order = {s.name: i for i, s in enumerate(model.services)}
    built.sort(key=lambda b: order[b.service])
    stack = StackBuild(model, tuple(built), tuple(results), tuple(groups), time.monotonic() - start)
    print_stack(stack, console)
    return stack


def print_stack(stack: StackBuild, console: Console) -> None:
    table = Table(title=f"compose-build {stack.model.project}", title_justify="left")
    for column in ("Service", "Image", "Size", "Time", "Build"):
        table.add_column(column, justify="right" if column in ("Size", "Time") else "left")
    for item in stack.services:
        how = f"same build as {item.built_for}" if item.reused else item.image_id.removeprefix("sha256:")[:12]
        table.add_row(item.service, item.image, humanize.naturalsize(item.size), f"{item.seconds:.1f}s", how)
    console.print(table)
    services = len(stack.services)
    console.print(
        f"{services} service image(s) from {len(stack.builds)} build(s) in {stack.seconds:.1f}s",
        markup=False,
    )
