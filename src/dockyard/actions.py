"""What each command does, with its human output; the CLI, the Invoke tasks and the Nox sessions are
thin doors over these functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import humanize
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dockyard import build as builds
from dockyard import config, engine, lock
from dockyard.build import BuildResult


@dataclass(frozen=True)
class BuildOptions:
    tags: Sequence[str] = ()
    build_args: Mapping[str, str] | None = None
    no_cache: bool = False
    target: str | None = None
    platform: str | None = None
    quiet: bool = False


def build_image(settings: config.Settings, options: BuildOptions, console: Console) -> BuildResult:
    """Build the project's image and print a summary."""
    request = builds.request_for(
        settings,
        tags=options.tags,
        build_args=options.build_args,
        no_cache=options.no_cache,
        target=options.target,
        platform=options.platform,
    )
    docker = engine.connect(settings.docker)
    console.print(f"[bold]dockyard build[/] {escape(str(settings.dockerfile))} with {docker.cli.describe()}")
    if request.build_args:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(request.build_args.items()))
        console.print(f"  build args: {shown}", markup=False)
    if request.secrets:
        secrets = ", ".join(f"{k} ({v})" for k, v in request.secrets.items())
        console.print(f"  secrets: {secrets}", markup=False)

    def echo(line: str) -> None:
        if not options.quiet:
            console.out(f"  {line}", highlight=False)

    result = builds.build(docker, request, on_line=echo)
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_row("tags", ", ".join(result.tags))
    table.add_row("image", result.image_id.removeprefix("sha256:")[:12])
    table.add_row("size", humanize.naturalsize(result.size))
    table.add_row("steps", f"{len(result.steps)} ({result.cached_steps} from cache)")
    table.add_row("time", f"{result.seconds:.1f}s")
    console.print("[bold green]built[/]")
    console.print(table)
    return result


def update_lock(settings: config.Settings, *, check: bool, console: Console) -> None:
    """`uv lock`, or with `check`, fail unless uv.lock is current and committed."""
    if check:
        console.print(f"[green]ok[/] {lock.check(settings.project_dir)}")
    else:
        console.print(lock.lock(settings.project_dir))
