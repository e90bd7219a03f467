"""BuildKit builds of a project's Dockerfile: tags, labels, build args, secrets, and what happened.

`build_argv` is pure (argv assembly is unit-tested); `build` runs it through `dockyard.process`,
streams BuildKit's plain progress, and on failure extracts the failing step's output.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dockyard import git, process, registry
from dockyard.build import push
from dockyard.config import Settings
from dockyard.engine import LABEL_MANAGED, BuildkitPath, Cli, Engine
from dockyard.errors import BaseImageUnavailable, BuildFailed, UsageError
from dockyard.image import metadata as images
from dockyard.project import dockerfile


@dataclass(frozen=True)
class BuildRequest:
    dockerfile: Path
    context: Path
    tags: tuple[str, ...]
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Path] = field(default_factory=dict)  # id -> file
    target: str | None = None
    platform: str | None = None
    no_cache: bool = False
    builder: str | None = None
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    number: int
    name: str  # e.g. "[builder 3/7] RUN uv sync ..."
    cached: bool
    error: bool
    log: tuple[str, ...] = ()  # the step's own output lines

    @property
    def installed_packages(self) -> int:
        """How many Python packages this step installed, from uv's or pip's own summary."""
        count = 0
        for line in self.log:
            if match := _UV_INSTALLED.search(line):
                count += int(match.group(1))
            elif match := _PIP_INSTALLED.search(line):
                count += len(match.group(1).split())
        return count

    @property
    def installed(self) -> tuple[tuple[str, bool], ...]:
        """(name, from a local path) of each package uv listed as installed (` + name==version`)."""
        found = []
        for line in self.log:
            if match := _UV_ADDED.search(line):
                found.append((match.group(1), "file://" in match.group(2)))
        return tuple(found)

    @property
    def installs_dependencies(self) -> bool:
        """Whether this step installed dependencies, not just the project's own packages.

        From uv's list of what it installed (a package from a local path, such as a workspace member,
        is the project's own), else the step's summary (more than one package: the project alone is
        one); a step whose log went to another build that shared it (BuildKit merges identical
        concurrent steps) is judged by its command instead.
        """
        if listed := self.installed:
            return any(not local for _, local in listed)
        if self.installed_packages:
            return self.installed_packages > 1
        return bool(_INSTALL_COMMAND.search(self.name)) and "--no-deps" not in self.name


_INSTALL_COMMAND = re.compile(r"\b(uv sync|uv pip install|pip3? install|poetry install|pdm install)\b")
_UV_INSTALLED = re.compile(r"\bInstalled (\d+) packages? in ")
_UV_ADDED = re.compile(r"(?:^|\s)\+ ([A-Za-z0-9][A-Za-z0-9._-]*)(?:==| @ )(.*)$")
_PIP_INSTALLED = re.compile(r"\bSuccessfully installed (.+)$")


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tags: tuple[str, ...]
    seconds: float
    size: int
    steps: tuple[Step, ...]
    output: str
    layers: tuple[tuple[str, int], ...] = ()  # (diff_id, size) of the image's layers, oldest first
    cache_pushed: tuple[str, ...] = ()  # built-in BuildKit's cache-to: the digest-pinned refs pushed
    cache_missed: tuple[str, ...] = ()  # one line per cache-from the builder could not import, and why

    @property
    def cached_steps(self) -> int:
        return sum(1 for s in self.steps if s.cached)

    def ran(self, pattern: str) -> list[Step]:
        """Steps whose name matches `pattern` and that were executed, not taken from the cache."""
        return [s for s in self.steps if re.search(pattern, s.name) and not s.cached]


def image_tags(image: str, version: str | None, state: git.GitState) -> tuple[str, ...]:
    """`image:version` and `image:<short sha>[-dirty]`; `image:latest` when neither is known."""
    tags = []
    if version:
        tags.append(f"{image}:{version}")
    if state.revision_tag:
        tags.append(f"{image}:{state.revision_tag}")
    return tuple(tags) or (f"{image}:latest",)


def created_time(state: git.GitState, environ: Mapping[str, str]) -> datetime:
    """SOURCE_DATE_EPOCH, else the commit time of a clean tree (reproducible), else now."""
    if epoch := environ.get("SOURCE_DATE_EPOCH"):
        return datetime.fromtimestamp(int(epoch), UTC)
    if state.commit_time is not None and not state.dirty:
        return datetime.fromtimestamp(state.commit_time, UTC)
    return datetime.now(UTC).replace(microsecond=0)


def oci_labels(
    settings: Settings, state: git.GitState, created: datetime, source: str | None, base: str | None = None
) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.title": settings.project_name,
        "org.opencontainers.image.created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        LABEL_MANAGED: "true",
    }
    if settings.project_version:
        labels["org.opencontainers.image.version"] = settings.project_version
    if state.sha:
        labels["org.opencontainers.image.revision"] = state.revision_tag or state.sha
    if source:
        labels["org.opencontainers.image.source"] = source
    if base:  # what the image really starts from (a stand-in says so), for size-report's grouping
        labels[images.BASE_LABEL] = base
    labels.update(settings.labels)
    return labels


def request_for(
    settings: Settings,
    *,
    state: git.GitState | None = None,
    tags: Sequence[str] = (),
    build_args: Mapping[str, str] | None = None,
    no_cache: bool = False,
    target: str | None = None,
    platform: str | None = None,
    source: str | None = None,
    builder: str | None = None,
    cache_from: Sequence[str] = (),
    cache_to: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> BuildRequest:
    """The build request for a project's image, from its settings and the git state."""
    environ = os.environ if environ is None else environ
    if not settings.has_project:
        raise UsageError("no project to build: run dockyard in a uv project, or pass --project DIR")
    settings.require_layout("dockerfile", "context")
    if not settings.dockerfile.is_file():
        raise UsageError(
            f"Dockerfile {settings.dockerfile} does not exist: fix --dockerfile or `dockerfile` in "
            "[tool.dockyard]"
        )
    if not settings.context.is_dir():
        raise UsageError(
            f"build context {settings.context} is not a directory: fix --context or `context` in "
            "[tool.dockyard]"
        )
    state = state or git.state(settings.build_root)
    secrets = {settings.ca_secret_id: settings.ca_bundle} if settings.ca_bundle else {}
    args = {**settings.build_args, **(build_args or {})}
    base = dockerfile.parse(settings.dockerfile).final_base(args)
    return BuildRequest(
        dockerfile=settings.dockerfile,
        context=settings.context,
        tags=tuple(tags) or image_tags(settings.image, settings.project_version, state),
        build_args=args,
        labels=oci_labels(
            settings,
            state,
            created_time(state, environ),
            source or git.source_url(settings.project_dir),
            base,
        ),
        secrets=secrets,
        target=target or settings.target,
        platform=platform or settings.platform,
        no_cache=no_cache,
        builder=builder or settings.builder,
        cache_from=tuple(cache_from) or settings.cache_from,
        cache_to=tuple(cache_to) or settings.cache_to,
    )


@dataclass(frozen=True)
class CachePlan:
    """How `cache-from`/`cache-to` are carried out on a build path.

    buildx: registry caches (`type=registry,ref=REF,mode=max`: every stage's layers, in a cache
    manifest of their own at REF). The built-in BuildKit: `cache-to REF` is an inline cache (the final
    stage's layers, marked in the image's own config) in an image tagged REF and pushed there after
    the build; `cache-from REF` imports such an image. A plain REF means the registry cache on both.
    """

    args: tuple[str, ...] = ()  # build argv additions
    tags: tuple[str, ...] = ()  # extra tags: the inline cache's images
    push: tuple[str, ...] = ()  # refs to push after the build (built-in BuildKit's cache-to)
    notes: tuple[str, ...] = ()  # what was inferred, for the build's header


def cache_spec(text: str) -> dict[str, str]:
    """`type=registry,ref=X,mode=max` as a dict; a plain reference X is `type=registry,ref=X`."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if parts and all("=" in part for part in parts):
        spec = dict(part.split("=", 1) for part in parts)
        spec.setdefault("type", "registry" if "ref" in spec else "")
        return spec
    return {"type": "registry", "ref": text.strip()}


def cache_plan(cli: Cli, request: BuildRequest) -> CachePlan:
    """The cache options of `request` for `cli`'s build path (pure; UsageError for what it cannot do)."""
    args: list[str] = []
    if cli.buildkit is BuildkitPath.BUILDX:
        for text in request.cache_from:
            spec = cache_spec(text)
            args += ["--cache-from", ",".join(f"{k}={v}" for k, v in spec.items())]
        for text in request.cache_to:
            spec = cache_spec(text)
            if spec["type"] == "registry":
                spec.setdefault("mode", "max")
            args += ["--cache-to", ",".join(f"{k}={v}" for k, v in spec.items())]
        return CachePlan(args=tuple(args))
    tags: list[str] = []
    notes: list[str] = []
    for text in request.cache_from:
        spec = cache_spec(text)
        if spec["type"] != "registry" or not spec.get("ref"):
            raise UsageError(
                f"cache-from {text!r}: the built-in BuildKit imports only an image's inline cache "
                "(cache-from REF); other cache types need docker buildx"
            )
        args += ["--cache-from", str(registry.parse_reference(spec["ref"]))]
    for text in request.cache_to:
        spec = cache_spec(text)
        if spec["type"] not in ("registry", "inline") or (spec["type"] == "registry" and not spec.get("ref")):
            raise UsageError(
                f"cache-to {text!r}: the built-in BuildKit exports only an inline cache (cache-to REF, "
                "pushed with the image to REF); other cache types need docker buildx"
            )
        if spec.get("mode") == "max":
            notes.append("built-in BuildKit: the inline cache holds the final stage only (mode=min)")
        if ref := spec.get("ref"):
            registry.pushable(ref, what="cache-to")
            tags.append(ref)
    if request.cache_to:
        args += ["--build-arg", "BUILDKIT_INLINE_CACHE=1"]
    if tags:
        notes.append(f"cache-to: an inline cache in the image, pushed to {', '.join(tags)} after the build")
    extra = tuple(tag for tag in dict.fromkeys(tags) if tag not in request.tags)
    return CachePlan(args=tuple(args), tags=extra, push=tuple(dict.fromkeys(tags)), notes=tuple(notes))


def build_argv(cli: Cli, request: BuildRequest, iidfile: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and extra environment that build `request` with `cli`'s BuildKit path."""
    if cli.buildkit is None:
        raise UsageError(f"{cli.describe()} cannot build with BuildKit: install the buildx plugin")
    buildx = cli.buildkit is BuildkitPath.BUILDX
    if not buildx and request.builder:
        raise UsageError(
            "`builder` needs docker buildx, which this machine lacks: "
            "install the buildx plugin or drop the setting"
        )
    cache = cache_plan(cli, request)
    argv = [cli.path, "buildx", "build", "--load"] if buildx else [cli.path, "build"]
    env = {} if buildx else {"DOCKER_BUILDKIT": "1"}
    if buildx and request.builder:
        argv += ["--builder", request.builder]
    argv += ["--progress=plain", "--file", str(request.dockerfile), "--iidfile", str(iidfile)]
    for tag in (*request.tags, *cache.tags):
        argv += ["--tag", tag]
    for key, value in sorted(request.build_args.items()):
        argv += ["--build-arg", f"{key}={value}"]
    for key, value in sorted(request.labels.items()):
        argv += ["--label", f"{key}={value}"]
    for secret_id, path in sorted(request.secrets.items()):
        argv += ["--secret", f"id={secret_id},src={path}"]
    if request.target:
        argv += ["--target", request.target]
    if request.platform:
        argv += ["--platform", request.platform]
    if request.no_cache:
        argv.append("--no-cache")
    argv += cache.args
    argv.append(str(request.context))
    return argv, env


_STEP_LINE = re.compile(r"^#(\d+) (.*)$")


def parse_steps(output: str) -> tuple[Step, ...]:
    """The build steps BuildKit's plain progress reports, with cache hits and errors."""
    names: dict[int, str] = {}
    cached: set[int] = set()
    errors: set[int] = set()
    logs: dict[int, list[str]] = {}
    for line in output.splitlines():
        match = _STEP_LINE.match(line)
        if not match:
            continue
        number, text = int(match.group(1)), match.group(2)
        if number not in names and text.startswith("["):
            names[number] = text
        elif text == "CACHED":
            cached.add(number)
        elif text.startswith("ERROR"):
            errors.add(number)
        else:
            logs.setdefault(number, []).append(text)
    return tuple(
        Step(n, names[n], n in cached, n in errors, tuple(logs.get(n, ())))
        for n in sorted(names)
        if names[n].startswith("[") and not names[n].startswith("[internal]")
    )


_METADATA = re.compile(r"\[internal\] load metadata for (\S+)")
_LLB_PREFIX = re.compile(r"^(failed to solve with frontend \S+: )?(failed to create LLB definition: )?")


def unpullable(output: str) -> str | None:
    """The image whose metadata BuildKit could not load (its registry unreachable, the name unknown,
    access refused), from plain progress; None when the build failed otherwise."""
    names: dict[int, str] = {}
    for line in output.splitlines():
        if match := _STEP_LINE.match(line):
            number, text = int(match.group(1)), match.group(2)
            if found := _METADATA.match(text):
                names[number] = found.group(1)
            elif text.startswith("ERROR") and number in names:
                return names[number]
    return None


_CACHE_IMPORT = re.compile(r"importing cache manifest from (\S+)")


def cache_import_failures(output: str) -> tuple[str, ...]:
    """One line per `cache-from` the builder could not import, from plain progress.

    BuildKit treats such a cache as a miss and builds on (so a first build, before any cache-to,
    works): without these lines a refused login or a registry that is down would cost a full
    rebuild in silence.
    """
    refs: dict[int, str] = {}
    failed: dict[str, str] = {}
    for line in output.splitlines():
        if not (match := _STEP_LINE.match(line)):
            continue
        number, text = int(match.group(1)), match.group(2)
        if found := _CACHE_IMPORT.match(text):
            refs[number] = found.group(1).rstrip(":")
        elif text.startswith("ERROR") and number in refs:
            failed.setdefault(refs[number], text.removeprefix("ERROR").lstrip(": ").strip())
    return tuple(_cache_miss(ref, why) for ref, why in failed.items())


def _cache_miss(ref: str, why: str) -> str:
    try:
        host = registry.parse_reference(ref).host
    except UsageError:
        host = None
    lowered = why.replace(ref, "").replace(host or ref, "").lower()  # a port may read 401...
    if host and re.search(r"\b40[13]\b|unauthorized|denied|forbidden", lowered):
        fix = f"{host} refused access ({why.rsplit(': ', 1)[-1]}): run `docker login {host}`"
    elif "not found" in lowered:
        fix = "no such image there yet (a build with --cache-to REF exports it)"
    elif host and any(mark in lowered for mark in ("connection refused", "no such host", "dial tcp")):
        fix = f"registry {host} does not answer"
    else:
        fix = why
    return f"cache-from {ref} was not imported (only this builder's own cache served the build): {fix}"


def failing_step(output: str, *, limit: int = 40) -> tuple[str, str]:
    """(one-line reason, the failing step's output) from BuildKit's plain progress."""
    lines = output.splitlines()
    failed = {int(m.group(1)) for line in lines if (m := _STEP_LINE.match(line))
              and m.group(2).startswith("ERROR")}  # fmt: skip
    step_lines = [line for line in lines if (m := _STEP_LINE.match(line)) and int(m.group(1)) in failed]
    reason = next(
        (line.split("error:", 1)[-1].strip() for line in reversed(lines)
         if line.lower().startswith(("error:", "error ", "failed to solve"))),
        "",
    )  # fmt: skip
    if not reason:
        reason = next((ln for ln in reversed(lines) if "ERROR" in ln), "the build failed")
    shown = step_lines[-limit:] if step_lines else lines[-limit:]
    return reason.removeprefix("failed to solve: ").strip(), "\n".join(shown)


def build(
    engine: Engine,
    request: BuildRequest,
    *,
    on_line: Callable[[str], None] | None = None,
    timeout: float = 1800,
) -> BuildResult:
    """Build `request`, streaming progress lines to `on_line`; raise BuildFailed on failure."""
    with tempfile.TemporaryDirectory(prefix="dockyard-build-") as scratch:
        iidfile = Path(scratch) / "iid"
        argv, env = build_argv(engine.cli, request, iidfile)
        start = time.monotonic()
        done = process.stream(argv, env=env, on_line=on_line or (lambda _line: None), timeout=timeout)
        seconds = time.monotonic() - start
        if done.returncode != 0 or not iidfile.is_file():
            reason, detail = failing_step(done.stdout)
            if image := unpullable(done.stdout):
                why = _LLB_PREFIX.sub("", reason)
                raise BaseImageUnavailable(
                    f"build of {request.dockerfile} could not start: {image} could not be pulled ({why})",
                    argv=argv, returncode=done.returncode, output=detail,
                )  # fmt: skip
            raise BuildFailed(
                f"build of {request.dockerfile} failed: {reason}",
                argv=argv, returncode=done.returncode, output=detail,
            )  # fmt: skip
        image_id = iidfile.read_text().strip()
    info = images.inspect_image(engine, image_id)
    pushed: tuple[str, ...] = ()
    if refs := cache_plan(engine.cli, request).push:
        pushed = tuple(result.pinned for result in push.push_refs(engine, refs))
    return BuildResult(
        image_id=image_id,
        tags=request.tags,
        cache_pushed=pushed,
        cache_missed=cache_import_failures(done.stdout),
        seconds=seconds,
        size=info.size,
        steps=parse_steps(done.stdout),
        output=done.stdout,
        layers=tuple((layer.diff_id, layer.size) for layer in info.layers()),
    )
