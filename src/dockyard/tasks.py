"""dockyard's Invoke tasks, as one namespace `ns` for a project's tasks.py to import.

    from dockyard.tasks import ns  # in your tasks.py: `invoke build`, `invoke lock --check`, ...

Value options default to None and flags to False; both fall back to the `dockyard` section of
Invoke's configuration (`ns.configure` holds the defaults, an invoke.yaml may set them); the image
itself is configured in `[tool.dockyard]`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from dockyard import actions, config, interrupt
from dockyard.cli import interrupted, interruptible, make_console, report_error
from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.build import stack as stacks

F = TypeVar("F", bound=Callable[..., Any])


def _door(body: F) -> F:
    """Map dockyard's errors to Invoke's exit, printing one clear line and no traceback; Ctrl-C and
    SIGTERM stop the task promptly with its cleanup done (exit 130), as on the command line."""

    @wraps(body)
    def run(c: Context, *args: Any, **kwargs: Any) -> Any:
        interrupt.reset()
        with interruptible():
            try:
                return body(c, *args, **kwargs)
            except DockyardError as exc:
                code = interrupted() if interrupt.cancelled() else report_error(exc)
                raise Exit(code=code) from None
            except KeyboardInterrupt:
                raise Exit(code=interrupted()) from None

    return run  # type: ignore[return-value]


def _option(c: Context, name: str, value: Any) -> Any:
    """A task option, else the `dockyard` section of Invoke's configuration (flags: either turns it on)."""
    if isinstance(value, bool):
        return value or bool(c.config.dockyard[name])
    return c.config.dockyard[name] if value is None else value


def _settings(
    c: Context, dockerfile: str | None = None, context: str | None = None, target: str | None = None
) -> config.Settings:
    """The project: `dockyard.project` in Invoke's config, else where Invoke found tasks.py (so
    `invoke -r DIR ...` works on DIR), else the current directory. Advice names `invoke` commands."""
    project = c.config.dockyard.project or getattr(c.config, "_project_prefix", None)
    overrides = config.Overrides(
        dockerfile=Path(dockerfile) if dockerfile else None,
        context=Path(context) if context else None,
        target=target,
    )
    return config.load(Path(project) if project else None, overrides=overrides, door="invoke")


_LAYOUT_HELP = {
    "dockerfile": "Dockerfile to build (default: discovered; see the README's Project layouts)",
    "context": "build context directory (default: discovered)",
    "target": "Dockerfile stage to build",
}


@task(
    iterable=["tag", "build_arg", "cache_from", "cache_to"],
    help={
        "builder": "buildx builder (e.g. a remote BuildKit)",
        "cache-from": "import a registry cache REF (repeatable)",
        "cache-to": "export a registry cache to REF (buildx: mode=max; built-in BuildKit: inline, pushed)",
        "tag": "tag to apply instead of <image>:<version> and <image>:<sha> (repeatable)",
        "build-arg": "KEY=VALUE build arg (repeatable), over [tool.dockyard] build-args",
        "no-cache": "build without BuildKit's cache",
        **_LAYOUT_HELP,
        "platform": "target platform, e.g. linux/amd64",
        "quiet": "hide the live build progress",
    },
)
@_door
def build(
    c: Context,
    tag: list[str] | None = None,
    build_arg: list[str] | None = None,
    no_cache: bool = False,
    target: str | None = None,
    platform: str | None = None,
    quiet: bool = False,
    builder: str | None = None,
    cache_from: list[str] | None = None,
    cache_to: list[str] | None = None,
    dockerfile: str | None = None,
    context: str | None = None,
) -> None:
    """Build the project's image with BuildKit: tags, labels, build args, CA secret."""
    args = dict(item.partition("=")[::2] for item in build_arg or [])
    options = actions.BuildOptions(
        tags=tag or [],
        build_args=args,
        no_cache=_option(c, "no_cache", no_cache),
        platform=platform,
        quiet=_option(c, "quiet", quiet),
        builder=builder,
        cache_from=cache_from or [],
        cache_to=cache_to or [],
    )
    actions.build_image(_settings(c, dockerfile, context, target), options, make_console())


@task(
    iterable=["to"],
    help={
        "image": "local image to push (default: the project's latest build, under its tags)",
        "to": "push under this reference instead (repeatable), e.g. 127.0.0.1:5000/team/app:1.0",
        "json": "write the push report as JSON to this path",
        "markdown": "write it as Markdown to this path",
    },
)
@_door
def push(
    c: Context,
    image: str | None = None,
    to: list[str] | None = None,
    json: str | None = None,
    markdown: str | None = None,
) -> None:
    """Push the project's latest build to its registry: bytes moved per layer, the digest to deploy."""
    options = actions.PushOptions(
        image=image,
        to=to or [],
        json_path=Path(json) if json else None,
        markdown_path=Path(markdown) if markdown else None,
    )
    actions.push(_settings(c), options, make_console())


@task(
    iterable=["skip", "only"],
    help={
        "image": "verify this image instead of building the project's",
        "skip": "check id to skip (repeatable)",
        "only": "run only this check id (repeatable)",
        "json": "write the results as JSON to this path",
        "junit": "write JUnit XML to this path",
        "markdown": "write a Markdown summary to this path",
        **_LAYOUT_HELP,
    },
)
@_door
def verify(
    c: Context,
    image: str | None = None,
    skip: list[str] | None = None,
    only: list[str] | None = None,
    json: str | None = None,
    junit: str | None = None,
    markdown: str | None = None,
    dockerfile: str | None = None,
    context: str | None = None,
    target: str | None = None,
) -> None:
    """Run the image checklist on the project's image (built first) or on --image."""
    request = actions.VerifyRequest(
        image=image,
        skip=tuple(skip or ()),
        only=tuple(only or ()),
        json_path=Path(json) if json else None,
        junit_path=Path(junit) if junit else None,
        markdown_path=Path(markdown) if markdown else None,
    )
    actions.verify(_settings(c, dockerfile, context, target), request, make_console())


@task(
    help={
        "image": "image (default: the project's image, latest build)",
        "deep": "also find wasted space: files later layers overwrite or delete",
        "json": "write the report as JSON to this path",
        "markdown": "write it as Markdown to this path",
        "base": "base image whose layers are grouped apart",
    }
)
@_door
def size_report(
    c: Context,
    image: str | None = None,
    deep: bool = False,
    json: str | None = None,
    markdown: str | None = None,
    base: str | None = None,
) -> None:
    """Where the image's bytes are: layers, base vs. added, largest distributions, delta, --deep waste."""
    options = actions.SizeReportOptions(
        image=image,
        deep=_option(c, "deep", deep),
        json_path=Path(json) if json else None,
        markdown_path=Path(markdown) if markdown else None,
        base=base,
    )
    actions.size_report(_settings(c), options, make_console())


_STACK_HELP = {
    "file": "compose file (repeatable; default: [tool.dockyard.compose] files, else Compose's own)",
    "profile": "compose profile to enable (repeatable)",
    "service": "only this service (repeatable)",
    "project-name": "compose project name",
    "no-cache": "build without BuildKit's cache",
    "cache-from": "import each build's registry cache from REF/<service>:buildcache (repeatable)",
    "cache-to": "export each build's registry cache to REF/<service>:buildcache (repeatable)",
}


def _stack_options(
    c: Context,
    profile: list[str] | None,
    service: list[str] | None,
    project_name: str | None,
    no_cache: bool | None,
    quiet: bool,
    cache: tuple[list[str] | None, list[str] | None] = (None, None),
    fail_fast: bool = False,
) -> stacks.ComposeOptions:
    from dockyard.build import stack as stacks  # noqa: PLC0415

    return stacks.ComposeOptions(
        profiles=tuple(profile or ()),
        services=tuple(service or ()),
        project_name=project_name,
        no_cache=_option(c, "no_cache", no_cache),
        quiet=quiet,
        fail_fast=fail_fast,
        cache_from=tuple(cache[0] or ()),
        cache_to=tuple(cache[1] or ()),
    )


@task(
    iterable=["file", "profile", "service", "cache_from", "cache_to"],
    help={
        **_STACK_HELP,
        "quiet": "hide the live build progress",
        "fail-fast": "stop at the first build that fails",
    },
)
@_door
def compose_build(
    c: Context,
    file: list[str] | None = None,
    profile: list[str] | None = None,
    service: list[str] | None = None,
    project_name: str | None = None,
    no_cache: bool = False,
    quiet: bool = False,
    cache_from: list[str] | None = None,
    cache_to: list[str] | None = None,
    fail_fast: bool = False,
) -> None:
    """Build every `build:` service of a compose file; services sharing a build get one image."""
    options = _stack_options(
        c,
        profile,
        service,
        project_name,
        no_cache,
        _option(c, "quiet", quiet),
        (cache_from, cache_to),
        fail_fast,
    )
    actions.compose_build(_settings(c), file or [], options, make_console())


@task(
    iterable=["file", "profile", "service", "skip", "only", "cache_from", "cache_to"],
    help={
        **_STACK_HELP,
        "skip": "check id to skip (repeatable; `command` included)",
        "only": "run only this check id (repeatable)",
        "json": "write the results as JSON to this path",
        "junit": "write JUnit XML to this path",
        "markdown": "write a Markdown summary to this path",
    },
)
@_door
def verify_compose(
    c: Context,
    file: list[str] | None = None,
    profile: list[str] | None = None,
    service: list[str] | None = None,
    project_name: str | None = None,
    no_cache: bool = False,
    skip: list[str] | None = None,
    only: list[str] | None = None,
    json: str | None = None,
    junit: str | None = None,
    markdown: str | None = None,
    cache_from: list[str] | None = None,
    cache_to: list[str] | None = None,
) -> None:
    """compose-build, every service's command, and the image checklist on each distinct image."""
    options = _stack_options(c, profile, service, project_name, no_cache, True, (cache_from, cache_to))
    request = actions.VerifyRequest(
        skip=tuple(skip or ()),
        only=tuple(only or ()),
        json_path=Path(json) if json else None,
        junit_path=Path(junit) if junit else None,
        markdown_path=Path(markdown) if markdown else None,
    )
    actions.verify_compose(_settings(c), file or [], options, request, make_console())


@task(help={"check": "fail unless uv.lock is current and committed (no changes made)"})
@_door
def lock(c: Context, check: bool = False) -> None:
    """Run `uv lock`; with --check, fail when uv.lock is stale or not committed."""
    actions.update_lock(_settings(c), check=_option(c, "check", check), console=make_console())


def _project_dir(c: Context) -> Path | None:
    project = c.config.dockyard.project or getattr(c.config, "_project_prefix", None)
    return Path(project) if project else None


@task(
    help={
        "directory": "the uv project (default: where tasks.py is, else the current one)",
        "app": "MODULE:ATTR of the web (ASGI/WSGI) app to serve",
        "worker": "MODULE:ATTR of the Celery/arq/Dramatiq/RQ app to run",
        "port": "the port the server listens on (default 8000)",
        "python": "the Python (X.Y) of the base image",
        "compose": "also write compose.yaml, one service per role",
        "force": "overwrite files that differ",
        "dry-run": "print what would change; write nothing",
        "no-add": "do not add dockyard to the dev dependencies (it runs from elsewhere)",
    }
)
@_door
def init(
    c: Context,
    directory: str | None = None,
    app: str | None = None,
    worker: str | None = None,
    port: int | None = None,
    python: str | None = None,
    compose: bool = False,
    force: bool = False,
    dry_run: bool = False,
    no_add: bool = False,
) -> None:
    """Adopt a uv project: Dockerfile, .dockerignore, [tool.dockyard], tasks.py and noxfile.py."""
    options = actions.InitOptions(
        app=app,
        worker=worker,
        port=port,
        python=python,
        compose=compose,
        force=force,
        dry_run=dry_run,
        add=not no_add,
    )
    actions.init_project(Path(directory) if directory else _project_dir(c), options, make_console())


@task(help={"fix": "provision what can be (as root, asking nothing), then check again"})
@_door
def doctor(c: Context, fix: bool = False) -> None:
    """Is this machine ready for dockyard? One line per item, each with the command that fixes it."""
    actions.doctor(_project_dir(c), make_console(), fix=fix)


ns = Collection(build, push, lock, verify, size_report, compose_build, verify_compose, init, doctor)
ns.configure(
    {"dockyard": {"project": None, "no_cache": False, "quiet": False, "check": False, "deep": False}}
)
