"""compose-build: build each distinct build of a compose stack once, through the same BuildKit path as
`dockyard build`, and tag the image for every service that shares it.

Every build gets what `dockyard build` gives a build: the machine's build args (those the Dockerfile
declares; the compose file's own `args:` win), the CA bundle as the BuildKit secret `ca-secret-id`
(unless the compose file passes a secret of that id itself), and the same OCI labels (title, created,
version, revision, source, base.name; the compose file's `labels:` win).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import humanize
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dockyard import fsutil, git, registry
from dockyard.build import buildkit as builds
from dockyard.build.buildkit import BuildRequest, BuildResult
from dockyard.config import Settings
from dockyard.engine import LABEL_MANAGED, Engine
from dockyard.errors import BaseImageUnavailable, BuildFailed, DockyardError, UsageError
from dockyard.project import dockerfile
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
class FailedBuild:
    """A build of the stack that did not produce an image."""

    group: BuildGroup
    error: DockyardError  # BuildFailed: the build ran and failed; anything else: it could not run

    @property
    def outcome(self) -> str:
        """FAIL when the build ran and a step failed (the Dockerfile's finding); ERROR when it could not
        run at all (an image it pulls could not be had, a secret file missing...)."""
        failed = isinstance(self.error, BuildFailed) and not isinstance(self.error, BaseImageUnavailable)
        return "FAIL" if failed else "ERROR"

    def evidence(self, service: str) -> str:
        """The one line a row of `service` shows: the error, and whose build it was when shared."""
        first = self.group.services[0].name
        return self.error.message + ("" if first == service else f" (the build of {first}, shared)")


@dataclass(frozen=True)
class StackBuild:
    model: ComposeModel
    services: tuple[ServiceBuild, ...]  # services with `build:` that built, in model order
    builds: tuple[BuildResult, ...]  # one per distinct build that built
    groups: tuple[BuildGroup, ...]  # the groups of `builds`, in the same order
    seconds: float
    failed: tuple[FailedBuild, ...] = ()


@dataclass(frozen=True)
class ComposeOptions:
    profiles: tuple[str, ...] = ()  # none: [tool.dockyard.compose] profiles
    services: tuple[str, ...] = ()  # none: every service
    project_name: str | None = None  # none: Compose decides (`name:`, COMPOSE_PROJECT_NAME, directory)
    no_cache: bool = False
    quiet: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)  # extra labels for every image built
    fail_fast: bool = False  # stop at the first build that fails (docker compose build's way)
    cache_from: tuple[str, ...] = ()  # none: [tool.dockyard.compose] cache-from; see `cache_refs`
    cache_to: tuple[str, ...] = ()  # none: [tool.dockyard.compose] cache-to


@contextlib.contextmanager
def secret_files(group: BuildGroup, environ: Mapping[str, str]) -> Iterator[dict[str, Path]]:
    """The group's secrets as files; `environment:` secrets are written to a private scratch file."""
    with tempfile.TemporaryDirectory(prefix="dockyard-secrets-") as scratch:
        files: dict[str, Path] = {}
        for secret_id, source in sorted(group.spec.secrets.items()):
            who = f"build secret {secret_id!r} of service {group.services[0].name!r}"
            if source.file is not None:
                _check_secret_file(who, source.file)
                files[secret_id] = source.file
            elif source.environment is not None:
                if source.environment not in environ:
                    raise UsageError(f"{who}: environment variable {source.environment} is not set")
                path = Path(scratch) / secret_id
                path.touch(mode=0o600)
                path.write_text(environ[source.environment])
                files[secret_id] = path
        yield files


def _check_secret_file(who: str, path: Path) -> None:
    """A secret's `file:` must be a regular file: say exactly what it is when it is not."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(
            f"{who}: {path} does not exist; fix its `file:` under top-level `secrets:` (or the variable "
            "it interpolates)"
        ) from None
    except OSError as exc:
        raise UsageError(f"{who}: cannot read {path} ({exc.strerror}); fix its `file:`") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise UsageError(
            f"{who}: {path} is {kind}, not a regular file; a build secret's `file:` must name a file "
            "holding the secret"
        )


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


@contextlib.contextmanager
def build_secrets(
    settings: Settings, group: BuildGroup, environ: Mapping[str, str]
) -> Iterator[dict[str, Path]]:
    """What a build of the group gets as BuildKit secrets: the compose file's own, and the CA bundle as
    `ca-secret-id` unless the compose file passes a secret of that id itself (as `dockyard build`)."""
    with secret_files(group, environ) as files:
        if settings.ca_bundle is not None and settings.ca_secret_id not in files:
            files[settings.ca_secret_id] = settings.ca_bundle
        yield files


def declared_args(path: Path) -> set[str]:
    """The build args a Dockerfile declares (ARG, global or in any stage)."""
    names: set[str] = set()
    for keyword, rest in dockerfile.parse(path).instructions:
        if keyword == "ARG":
            names.update(item.partition("=")[0] for item in rest.split())
    return names


def build_args(settings: Settings, group: BuildGroup) -> dict[str, str]:
    """The machine's and the project's build args that the Dockerfile declares, under the compose
    file's own `args:`."""
    declared = declared_args(group.spec.dockerfile)
    return {**{k: v for k, v in settings.build_args.items() if k in declared}, **group.spec.args}


@dataclass(frozen=True)
class Provenance:
    """What the OCI labels of every build of one compose-build say: the project, its commit, the time."""

    state: git.GitState
    created: datetime
    source: str | None = None

    @classmethod
    def of(cls, settings: Settings, environ: Mapping[str, str]) -> Provenance:
        state = git.state(settings.project_dir)
        return cls(state, builds.created_time(state, environ), git.source_url(settings.project_dir))


CACHE_TAG = "buildcache"
SERVICE_PLACEHOLDER = "{service}"


def _component(service: str) -> str:
    """A compose service name as one repository path component (lowercase; `[a-z0-9]` at both ends)."""
    text = re.sub(r"[^a-z0-9._-]+", "-", service.lower())
    text = re.sub(r"[._-]{2,}", "-", text).strip("._-")
    return text or "service"


def cache_ref(text: str, service: str, what: str) -> str:
    """The cache reference of the build named after `service` for a compose-build `--cache-from` /
    `--cache-to` (or [tool.dockyard.compose] `cache-from`/`cache-to`) value.

    `HOST/PATH[:TAG]` is a prefix: the build's cache is `HOST/PATH/<service>:TAG` (TAG defaults to
    `buildcache`), one repository per build, so builds never overwrite each other's cache.
    `type=registry,ref=PREFIX,...` is the same with BuildKit's other keys kept (`mode=max`). A value
    holding `{service}` is taken as written with the service's name put in
    (`HOST/team/{service}:cache`). Other cache types are per service in the compose file's own
    `build.cache_from`/`cache_to`: refused here with one line."""
    name = _component(service)
    spec = builds.cache_spec(text.replace(SERVICE_PLACEHOLDER, name))
    plain = "=" not in text
    if spec.get("type") != "registry" or not spec.get("ref"):
        raise UsageError(
            f"{what} {text!r}: compose-build takes a registry reference prefix (HOST/PATH, each build's "
            "cache at HOST/PATH/<service>:buildcache) or type=registry,ref=PREFIX; set other cache "
            "types per service in the compose file (build.cache_from / build.cache_to)"
        )
    ref = registry.parse_reference(spec["ref"])
    if ref.digest:
        raise UsageError(f"{what} {text!r}: a cache prefix names a repository, not a digest")
    if SERVICE_PLACEHOLDER not in text:
        ref = registry.Reference(ref.host, f"{ref.repository}/{name}", ref.tag or CACHE_TAG)
    if what == "cache-to":  # pushed: only to a registry the name spells out, never Docker Hub by default
        registry.pushable(str(ref), what="cache-to", fix=" (the prefix of every build's cache)")
    if plain:
        return str(ref)
    return ",".join(f"{k}={str(ref) if k == 'ref' else v}" for k, v in spec.items())


def cache_refs(
    settings: Settings, options: ComposeOptions, group: BuildGroup
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(cache-from, cache-to) the command line or [tool.dockyard.compose] gives the group's build,
    named after the service the build is named after (the command line wins over configuration)."""
    name = group.services[0].name
    froms = options.cache_from or settings.compose.cache_from
    tos = options.cache_to or settings.compose.cache_to
    return (
        tuple(cache_ref(text, name, "cache-from") for text in froms),
        tuple(cache_ref(text, name, "cache-to") for text in tos),
    )


def request_for(
    settings: Settings,
    group: BuildGroup,
    secrets: Mapping[str, Path],
    options: ComposeOptions,
    provenance: Provenance,
) -> BuildRequest:
    spec = group.spec
    if not spec.context.is_dir():
        raise UsageError(
            f"service {group.services[0].name!r}: build context {spec.context} is not a directory"
        )
    if not spec.dockerfile.is_file():
        raise UsageError(f"service {group.services[0].name!r}: Dockerfile {spec.dockerfile} does not exist")
    args = build_args(settings, group)
    base = dockerfile.parse(spec.dockerfile).final_base(args)
    oci = builds.oci_labels(settings, provenance.state, provenance.created, provenance.source, base)
    cache_from, cache_to = cache_refs(settings, options, group)
    return BuildRequest(
        dockerfile=spec.dockerfile,
        context=spec.context,
        tags=group.tags,
        build_args=args,
        labels={**oci, **spec.labels, **options.labels, LABEL_MANAGED: "true"},
        secrets=dict(secrets),
        target=spec.target,
        platform=spec.platform,
        no_cache=options.no_cache or spec.no_cache,
        cache_from=tuple(dict.fromkeys((*spec.cache_from, *cache_from))),
        cache_to=tuple(dict.fromkeys((*spec.cache_to, *cache_to))),
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
    """Resolve the stack, build each distinct build once, tag it for its services, print a table.

    A build that fails is recorded in `StackBuild.failed` and the other builds go on (the table has a
    FAIL or ERROR row for each of its services; verify-compose reports them as rows of its own), unless
    `options.fail_fast`: then the first failure raises."""
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
    for warning in model.warnings:  # "The "TAG" variable is not set": the user must see it
        console.print(f"[yellow]compose warning:[/] {escape(warning)}")
    if env := interpolation_environment(settings, environ):
        console.print("  compose environment: " + ", ".join(f"{k}={v}" for k, v in env.items()), markup=False)
    if not groups:
        raise UsageError(f"no service of {model.project} has a `build:` section: nothing to build")

    def echo(line: str) -> None:
        if not options.quiet:
            console.out(f"    {line}", highlight=False)

    results: list[BuildResult] = []
    built: list[ServiceBuild] = []
    made: list[BuildGroup] = []
    failed: list[FailedBuild] = []
    compose_env = {**environ, **interpolation_environment(settings, environ)}
    provenance = Provenance.of(settings, environ)
    for group in groups:  # bad input (a context, a secret, a cache reference): exit 2 before any build
        with build_secrets(settings, group, compose_env) as secrets:
            builds.cache_plan(engine.cli, request_for(settings, group, secrets, options, provenance))
    for number, group in enumerate(groups, 1):
        names = ", ".join(s.name for s in group.services)
        console.print(f"build {number}/{len(groups)}: {names} -> {', '.join(group.tags)}", markup=False)
        try:
            result = _build_group(engine, settings, group, options, provenance, compose_env, console, echo)
        except DockyardError as exc:
            if options.fail_fast:
                raise
            console.print(f"  [red]failed:[/] {escape(exc.message)}")
            failed.append(FailedBuild(group, exc))
            continue
        results.append(result)
        made.append(group)
        first = group.services[0].name
        built += [
            ServiceBuild(s.name, with_tag(s.image), result.image_id, result.size, result.seconds, first)
            for s in group.services
        ]
    order = {s.name: i for i, s in enumerate(model.services)}
    built.sort(key=lambda b: order[b.service])
    stack = StackBuild(
        model, tuple(built), tuple(results), tuple(made), time.monotonic() - start, tuple(failed)
    )
    print_stack(stack, console)
    return stack


def _build_group(
    engine: Engine,
    settings: Settings,
    group: BuildGroup,
    options: ComposeOptions,
    provenance: Provenance,
    compose_env: Mapping[str, str],
    console: Console,
    echo: Callable[[str], None],
) -> BuildResult:
    with build_secrets(settings, group, compose_env) as secrets:
        request = request_for(settings, group, secrets, options, provenance)
        if request.build_args:
            args = ", ".join(f"{k}={v}" for k, v in sorted(request.build_args.items()))
            console.print(f"  build args: {args}", markup=False)
        if request.secrets:
            console.print(
                "  secrets: " + ", ".join(f"{k} ({v})" for k, v in request.secrets.items()), markup=False
            )
        for what, refs in (("cache-from", request.cache_from), ("cache-to", request.cache_to)):
            if refs:
                console.print(f"  {what}: {', '.join(refs)}", markup=False)
        result = builds.build(engine, request, on_line=echo)
    for missed in result.cache_missed:  # BuildKit takes it as a miss and says nothing: say it
        console.print(f"  [yellow]warning:[/] {escape(fsutil.printable(missed))}", soft_wrap=True)
    return result


def print_stack(stack: StackBuild, console: Console) -> None:
    """The table: a row per service with `build:` in the model's order, PASS with its image, FAIL with
    the failing step or ERROR naming what could not be had; then each failed step's output."""
    table = Table(title=f"compose-build {stack.model.project}", title_justify="left")
    for column in ("Service", "Result", "Image", "Size"):
        table.add_column(column, justify="right" if column == "Size" else "left")
    table.add_column("Time", justify="right")
    table.add_column("Build", overflow="fold")
    built = {item.service: item for item in stack.services}
    failures = {s.name: failure for failure in stack.failed for s in failure.group.services}
    for service in stack.model.services:
        if (item := built.get(service.name)) is not None:
            how = (
                f"same build as {item.built_for}"
                if item.reused
                else item.image_id.removeprefix("sha256:")[:12]
            )
            size, seconds = humanize.naturalsize(item.size), f"{item.seconds:.1f}s"
            table.add_row(item.service, Text("PASS", "green"), item.image, size, seconds, Text(how))
        elif (failure := failures.get(service.name)) is not None:
            style = "red" if failure.outcome == "FAIL" else "bold red"
            evidence = Text(fsutil.printable(failure.evidence(service.name)))
            table.add_row(
                service.name, Text(failure.outcome, style), with_tag(service.image), "", "", evidence
            )
    console.print(table)
    for failure in stack.failed:
        if failure.error.detail:
            names = ", ".join(s.name for s in failure.group.services)
            style = "red" if failure.outcome == "FAIL" else "bold red"
            console.print(Text(f"{failure.outcome} build of {names}", style))
            for line in failure.error.detail.splitlines():
                console.print(Text(f"    {fsutil.printable(line)}"))
    services = len(stack.services)
    failed = ""
    if stack.failed:
        listed = ", ".join(f"{f.group.services[0].name} ({f.outcome})" for f in stack.failed)
        failed = f"; {len(stack.failed)} of {len(stack.groups) + len(stack.failed)} build(s) failed: {listed}"
    console.print(
        f"{services} service image(s) from {len(stack.groups)} build(s) in {stack.seconds:.1f}s{failed}",
        markup=False,
    )


class StackFailed(DockyardError):
    """Builds of the stack failed; the table saying which and why has been printed (exit 1)."""


def failure_error(stack: StackBuild) -> StackFailed | None:
    """What compose-build raises once the table is printed: exit 1 naming every build that failed."""
    if not stack.failed:
        return None
    total = len(stack.groups) + len(stack.failed)
    listed = ", ".join(f"{', '.join(s.name for s in f.group.services)} ({f.outcome})" for f in stack.failed)
    return StackFailed(
        f"{len(stack.failed)} of {total} build(s) of {stack.model.project} failed: {listed}; "
        "the table above says why"
    )
