"""Compose stacks: resolve the model with `docker compose config`, build each distinct build once, and
check that every service's command exists in its image and is runnable by its user.

Compose resolves the model (interpolation, profiles, `extends`, several files), so dockyard reads it
exactly as `docker compose up` would. dockyard then builds the images itself, through the same code
path as `invoke build` (`dockyard.build.build`: BuildKit discovery, progress, failing-step output):
services whose builds are identical (context, Dockerfile, target, args, labels, platform, secrets)
form one group that is built once and tagged with every member's image name (`image:`, or Compose's
default `<project>-<service>`). `docker compose build` would build such a stack once per service.

Compose interpolation sees dockyard's settings: each build arg as a variable of the same name
(`PYTHON_IMAGE`), and the CA bundle as the upper-cased secret id (`CA_BUNDLE`). The real environment
wins over both, as it does for Compose itself.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import humanize
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dockyard import build as builds
from dockyard import images, probing, process, verify
from dockyard.build import BuildRequest, BuildResult
from dockyard.config import Settings
from dockyard.engine import LABEL_MANAGED, Engine
from dockyard.errors import DockyardError, EngineUnavailable, UsageError
from dockyard.results import CheckResult, Outcome, Report

CONFIG_TIMEOUT = 120.0
CHECK_TIMEOUT = 60.0

# `build:` keys dockyard passes on (`pull` only decides when base images are refreshed, so it is
# accepted and left to the engine); anything else would silently change the image, so it is refused.
_BUILD_KEYS = frozenset(
    {"context", "dockerfile", "args", "target", "labels", "secrets", "platforms", "cache_from", "cache_to",
     "tags", "no_cache", "pull"}
)  # fmt: skip


# --- the model --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretSource:
    """A top-level `secrets:` entry as a build reads it: a file, or an environment variable."""

    file: Path | None = None
    environment: str | None = None


@dataclass(frozen=True)
class BuildSpec:
    """A service's resolved `build:` section."""

    context: Path
    dockerfile: Path  # absolute
    args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, SecretSource] = field(default_factory=dict)  # BuildKit secret id -> source
    platform: str | None = None
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # `build.tags`: extra names for the image
    no_cache: bool = False

    def key(self) -> tuple[object, ...]:
        """What decides the image: two services with equal keys get one build (cache options do not)."""
        return (
            self.context,
            self.dockerfile,
            self.target,
            tuple(sorted(self.args.items())),
            tuple(sorted(self.labels.items())),
            self.platform,
            tuple(sorted(self.secrets.items(), key=lambda item: item[0])),
        )


@dataclass(frozen=True)
class Service:
    name: str
    image: str  # `image:`, or Compose's default `<project>-<service>`
    build: BuildSpec | None
    command: tuple[str, ...] | None  # None: the image's CMD
    entrypoint: tuple[str, ...] | None  # None: the image's ENTRYPOINT
    user: str | None = None
    working_dir: str | None = None
    path: str | None = None  # PATH from the service's `environment:`


@dataclass(frozen=True)
class ComposeModel:
    project: str
    files: tuple[Path, ...]  # empty: Compose's own default file in the project directory
    services: tuple[Service, ...]

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)


@dataclass(frozen=True)
class BuildGroup:
    """Services sharing one build, in model order; the first one names the build."""

    spec: BuildSpec
    services: tuple[Service, ...]

    @property
    def tags(self) -> tuple[str, ...]:
        names = [with_tag(s.image) for s in self.services]
        names += [with_tag(t) for s in self.services if s.build for t in s.build.tags]
        return tuple(dict.fromkeys(names))


def with_tag(ref: str) -> str:
    """`name` as Docker stores it: `name:latest` when no tag or digest is given."""
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last or "@" in ref else f"{ref}:latest"


# --- reading Compose's resolved model ---------------------------------------------------------------


def _strings(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: expected a list of strings from `docker compose config`, got {value!r}")
    return tuple(value)


def _table(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: expected a mapping from `docker compose config`, got {value!r}")
    return {str(k): str(v) for k, v in value.items() if v is not None}  # null: not set, as Compose says


def _secret_sources(doc: Mapping[str, Any]) -> dict[str, SecretSource]:
    sources = {}
    for name, entry in (doc.get("secrets") or {}).items():
        if not isinstance(entry, dict):
            continue
        file = entry.get("file")
        env = entry.get("environment")
        sources[name] = SecretSource(Path(file) if file else None, str(env) if env else None)
    return sources


def _build_spec(service: str, raw: Any, secrets: Mapping[str, SecretSource]) -> BuildSpec:
    where = f"service {service!r}"
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: `build` must be a mapping in the resolved model, got {raw!r}")
    unsupported = sorted(k for k in raw if k not in _BUILD_KEYS and not k.startswith("x-"))
    if unsupported:
        raise UsageError(
            f"{where}: dockyard cannot build with build.{unsupported[0]}: remove it, or build this "
            "service with `docker compose build`"
        )
    context_text = str(raw.get("context", "."))
    if "://" in context_text or context_text.startswith("git@"):
        raise UsageError(f"{where}: build context {context_text} is remote; dockyard builds local contexts")
    context = Path(context_text)
    platforms = _strings(raw.get("platforms"), f"{where} build.platforms") or ()
    if len(platforms) > 1:
        raise UsageError(
            f"{where}: build.platforms lists {len(platforms)} platforms; a local image has one: keep one"
        )
    wanted: dict[str, SecretSource] = {}
    for item in raw.get("secrets") or []:
        source = str(item.get("source") if isinstance(item, dict) else item)
        secret_id = (item.get("target") if isinstance(item, dict) else None) or source
        if source not in secrets:
            raise UsageError(f"{where}: build secret {source!r} is not declared under top-level `secrets:`")
        wanted[str(secret_id)] = secrets[source]
    return BuildSpec(
        context=context,
        dockerfile=context / str(raw.get("dockerfile") or "Dockerfile"),
        args=_table(raw.get("args"), f"{where} build.args"),
        target=raw.get("target") or None,
        labels=_table(raw.get("labels"), f"{where} build.labels"),
        secrets=wanted,
        platform=platforms[0] if platforms else None,
        cache_from=_strings(raw.get("cache_from"), f"{where} build.cache_from") or (),
        cache_to=_strings(raw.get("cache_to"), f"{where} build.cache_to") or (),
        tags=_strings(raw.get("tags"), f"{where} build.tags") or (),
        no_cache=bool(raw.get("no_cache")),
    )


def parse_model(doc: Mapping[str, Any], files: Sequence[Path] = ()) -> ComposeModel:
    """The model from `docker compose config --format json` output."""
    project = doc.get("name")
    if not isinstance(project, str) or not project:
        raise UsageError("`docker compose config` gave no project name: set `name:` in the compose file")
    secrets = _secret_sources(doc)
    services = []
    for name, raw in (doc.get("services") or {}).items():
        build = _build_spec(name, raw["build"], secrets) if raw.get("build") else None
        environment = raw.get("environment") or {}
        services.append(
            Service(
                name=name,
                image=str(raw.get("image") or f"{project}-{name}"),
                build=build,
                command=_strings(raw.get("command"), f"service {name!r} command"),
                entrypoint=_strings(raw.get("entrypoint"), f"service {name!r} entrypoint"),
                user=str(raw["user"]) if raw.get("user") else None,
                working_dir=raw.get("working_dir") or None,
                path=environment.get("PATH") if isinstance(environment, dict) else None,
            )
        )
    return ComposeModel(project, tuple(files), tuple(services))


def select(model: ComposeModel, names: Sequence[str]) -> ComposeModel:
    """Only the named services (all when none are named); an unknown name is a usage error."""
    known = [s.name for s in model.services]
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Perhaps you meant {close[0]!r}?" if close else ""
            raise UsageError(f"no service {name!r} in the compose model.{hint} Services: {', '.join(known)}")
    if not names:
        return model
    return replace(model, services=tuple(s for s in model.services if s.name in names))


def build_groups(model: ComposeModel) -> list[BuildGroup]:
    """The distinct builds of the model, each with the services it serves."""
    members: dict[tuple[object, ...], list[Service]] = {}
    for service in model.services:
        if service.build is not None:
            members.setdefault(service.build.key(), []).append(service)
    groups = []
    for found in members.values():
        # Compose sorts services by name; the build is named after a service running the image's own
        # command (the web service, typically), the others reuse it.
        services = sorted(found, key=lambda s: s.command is not None or s.entrypoint is not None)
        specs = [s.build for s in services if s.build is not None]
        spec = replace(
            specs[0],
            no_cache=any(s.no_cache for s in specs),
            cache_from=tuple(dict.fromkeys(ref for s in specs for ref in s.cache_from)),
            cache_to=tuple(dict.fromkeys(ref for s in specs for ref in s.cache_to)),
        )
        groups.append(BuildGroup(spec, tuple(services)))
    owners: dict[str, BuildGroup] = {}
    for group in groups:
        for tag in group.tags:
            other = owners.setdefault(tag, group)
            if other is not group:
                raise UsageError(
                    f"services {other.services[0].name!r} and {group.services[0].name!r} both name image "
                    f"{tag} but build it differently: give one of them another `image:`"
                )
    return groups


# --- running `docker compose config` ----------------------------------------------------------------


def interpolation_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """What dockyard adds for Compose's interpolation: build args and the CA bundle, unless already set."""
    derived = dict(settings.build_args)
    if settings.ca_bundle is not None:
        derived[settings.ca_secret_id.upper()] = str(settings.ca_bundle)
    return {k: v for k, v in derived.items() if k not in environ}


def compose_files(settings: Settings, given: Sequence[Path | str] = ()) -> tuple[Path, ...]:
    """Files given on the command line (relative to the current directory), else the configured ones
    (relative to the project); none means Compose's own default in the project directory."""
    if given:
        files = tuple(Path(f).resolve() for f in given)
    else:
        files = tuple(settings.project_dir / f for f in settings.compose.files)
    for file in files:
        if not file.is_file():
            raise UsageError(
                f"compose file {file} does not exist: fix [tool.dockyard.compose] files or --file"
            )
    return files


def config_argv(
    docker_cli: str, files: Sequence[Path], profiles: Sequence[str], project_name: str | None
) -> list[str]:
    argv = [docker_cli, "compose"]
    for file in files:
        argv += ["--file", str(file)]
    for profile in profiles:
        argv += ["--profile", profile]
    if project_name:
        argv += ["--project-name", project_name]
    return [*argv, "config", "--format", "json"]


def resolve(
    engine: Engine,
    settings: Settings,
    files: Sequence[Path],
    *,
    profiles: Sequence[str] = (),
    project_name: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ComposeModel:
    """The model as Compose resolves it; a file Compose rejects is a usage error (exit 2)."""
    environ = os.environ if environ is None else environ
    argv = config_argv(engine.cli.path, files, profiles, project_name)
    env = interpolation_environment(settings, environ)
    done = process.run(argv, cwd=settings.project_dir, env=env, timeout=CONFIG_TIMEOUT, check=False)
    if done.returncode != 0:
        reason = _last_line(done.stderr or done.stdout)
        if "is not a docker command" in reason or "unknown command" in reason:
            raise EngineUnavailable(
                f"{engine.cli.path} has no `compose` command: install the Compose v2 plugin "
                "(docker-compose-plugin), or run scripts/provision-engine"
            )
        if not files and "no configuration file provided" in reason:
            raise UsageError(
                f"no compose file in {settings.project_dir}: add compose.yaml, set "
                "[tool.dockyard.compose] files, or pass --file"
            )
        where = ", ".join(f.name for f in files) or f"the compose file in {settings.project_dir}"
        raise UsageError(
            f"{where} is not a valid compose model: {reason}; fix it (`docker compose config` checks it)"
        )
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise UsageError(f"`docker compose config` printed no JSON: {_last_line(done.stdout)}") from None
    return parse_model(doc, files)


def _shown(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# --- building ---------------------------------------------------------------------------------------


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
def _secret_files(group: BuildGroup, environ: Mapping[str, str]) -> Iterator[dict[str, Path]]:
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
        with _secret_files(group, compose_env) as secrets:
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


# --- the command check ------------------------------------------------------------------------------

# Runs in the image with its own interpreter and user (Python 3.8+, standard library only). For each
# query it finds the executable as execvp would (the first runnable match on PATH, or the path
# itself), and for a script also its `#!` interpreter, which breaks when a venv was built elsewhere.
COMMAND_SNIPPET = r"""
import json, os, pwd, stat, sys
def find(q):
    name = q["name"]
    cwd = q.get("cwd") or os.getcwd()
    if "/" in name:
        files = [os.path.normpath(os.path.join(cwd, name))]
        searched = [os.path.dirname(files[0])]
    else:
        searched = (q.get("path") or os.environ.get("PATH") or os.defpath).split(os.pathsep)
        files = [os.path.join(d or ".", name) for d in searched]
    files = [f for f in files if os.path.isfile(f)]
    runnable = [f for f in files if os.access(f, os.X_OK)]
    chosen = (runnable or files or [None])[0]
    out = {"name": name, "path": chosen, "executable": bool(runnable), "searched": searched,
           "mode": None, "interpreter": None, "interpreter_ok": None}
    if chosen:
        out["mode"] = "%04o" % stat.S_IMODE(os.stat(chosen).st_mode)
    if runnable:
        try:
            with open(chosen, "rb") as handle:
                head = handle.read(256)
        except OSError:
            head = b""
        if head.startswith(b"#!") and head[2:].split(b"\n")[0].split():
            interpreter = head[2:].split(b"\n")[0].split()[0].decode("utf-8", "replace")
            out["interpreter"] = interpreter
            out["interpreter_ok"] = os.path.isfile(interpreter) and os.access(interpreter, os.X_OK)
    return out
try:
    user = pwd.getpwuid(os.getuid()).pw_name
except KeyError:
    user = None
print(json.dumps({"uid": os.getuid(), "user": user, "found": [find(q) for q in json.loads(sys.argv[1])]}))
"""

COMMAND_TITLE = "the service's command exists in its image and is runnable by its user"


@dataclass(frozen=True)
class Finding:
    """What the snippet found for one executable name."""

    name: str
    path: str | None
    executable: bool
    uid: int
    user: str | None = None
    mode: str | None = None
    interpreter: str | None = None
    interpreter_ok: bool | None = None
    searched: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], uid: int, user: str | None) -> Finding:
        return cls(
            name=str(raw["name"]),
            path=raw.get("path"),
            executable=bool(raw.get("executable")),
            uid=uid,
            user=user,
            mode=raw.get("mode"),
            interpreter=raw.get("interpreter"),
            interpreter_ok=raw.get("interpreter_ok"),
            searched=tuple(raw.get("searched") or ()),
        )


def effective_command(service: Service, info: images.ImageInfo) -> tuple[str, ...]:
    """The argv a container of the service runs, merged as the engine merges it with the image."""
    entrypoint = service.entrypoint if service.entrypoint is not None else info.entrypoint or ()
    if service.entrypoint:  # a new entrypoint drops the image's CMD
        return (*entrypoint, *(service.command or ()))
    return (*entrypoint, *(service.command or info.cmd or ()))


def command_result(
    service: str, image: str, argv: Sequence[str], finding: Finding | None, seconds: float = 0.0
) -> CheckResult:
    """Judge one service's command from what the snippet found (None: the command is empty)."""

    def result(outcome: Outcome, evidence: str, *details: str) -> CheckResult:
        shown = f"command: {' '.join(argv)}" if argv else "command: (none)"
        return CheckResult(
            "command", COMMAND_TITLE, outcome, evidence, (shown, *details), seconds, subject=service
        )

    if finding is None:
        return result(Outcome.FAIL, f"no command: the service sets none and {image} has no CMD or ENTRYPOINT")
    who = f"uid {finding.uid}" + (f" ({finding.user})" if finding.user else "")
    searched = f"searched: {os.pathsep.join(finding.searched)}"
    if finding.path is None:
        where = "on PATH" if "/" not in finding.name else "at that path"
        return result(Outcome.FAIL, f"{finding.name} not found {where} in {image}", searched)
    if not finding.executable:
        return result(
            Outcome.FAIL,
            f"{finding.name} -> {finding.path} is not runnable by {who} (mode {finding.mode})",
            searched,
        )
    if finding.interpreter is not None and not finding.interpreter_ok:
        return result(
            Outcome.FAIL,
            f"{finding.name} -> {finding.path}, but its interpreter {finding.interpreter} is missing or "
            f"not runnable by {who}",
        )
    return result(Outcome.PASS, f"{finding.name} -> {finding.path} (runnable by {who})")


@dataclass(frozen=True)
class _Answer:
    uid: int
    user: str | None
    found: tuple[Mapping[str, Any], ...]
    interpreter: str


def _run_snippet(
    engine: Engine,
    image: str,
    user: str | None,
    queries: Sequence[Mapping[str, str | None]],
    interpreters: Sequence[str] = probing.INTERPRETERS,
) -> _Answer:
    """One container of `image` that answers every query, with the first interpreter it has."""
    answer, interpreter = probing.run_python(
        engine,
        image,
        COMMAND_SNIPPET,
        list(queries),
        what="the command check",
        user=user,
        timeout=CHECK_TIMEOUT,
        interpreters=interpreters,
    )
    return _Answer(int(answer["uid"]), answer.get("user"), tuple(answer["found"]), interpreter)


def check_commands(engine: Engine, stack: StackBuild) -> list[CheckResult]:
    """Each service's command, checked in ONE container per distinct image (and `user:` override)."""
    results: dict[str, CheckResult] = {}
    runs: dict[tuple[str, str | None], list[tuple[Service, ServiceBuild, tuple[str, ...]]]] = {}
    infos: dict[str, images.ImageInfo] = {}
    for item in stack.services:
        service = stack.model.service(item.service)
        if item.image_id not in infos:
            attrs = engine.image(item.image_id).attrs
            infos[item.image_id] = images.ImageInfo.from_inspect(item.image, attrs, ())
        argv = effective_command(service, infos[item.image_id])
        if not argv:
            results[service.name] = command_result(service.name, item.image, argv, None)
            continue
        runs.setdefault((item.image_id, service.user), []).append((service, item, argv))
    interpreters: dict[str, str] = {}  # image id -> the interpreter that answered: no failed start twice
    for (image_id, user), members in runs.items():
        start = time.monotonic()
        info = infos[image_id]
        queries = [
            {"name": argv[0], "path": service.path, "cwd": service.working_dir or info.working_dir or None}
            for service, _, argv in members
        ]
        known = interpreters.get(image_id)
        try:
            answer = _run_snippet(
                engine, image_id, user, queries, (known,) if known else probing.INTERPRETERS
            )
        except DockyardError as exc:
            for service, _, argv in members:
                results[service.name] = CheckResult(
                    "command", COMMAND_TITLE, Outcome.ERROR, exc.message,
                    (f"command: {' '.join(argv)}",), time.monotonic() - start, subject=service.name,
                )  # fmt: skip
            continue
        interpreters[image_id] = answer.interpreter
        seconds = time.monotonic() - start
        for (service, item, argv), raw in zip(members, answer.found, strict=True):
            finding = Finding.from_json(raw, answer.uid, answer.user)
            results[service.name] = command_result(service.name, item.image, argv, finding, seconds)
    return [results[item.service] for item in stack.services]


# --- verify-compose ---------------------------------------------------------------------------------


def _built_result(item: ServiceBuild) -> CheckResult:
    size = humanize.naturalsize(item.size)
    how = f"same build as {item.built_for}" if item.reused else f"built in {item.seconds:.1f}s"
    return CheckResult(
        "built",
        "the service's image is built (a shared build once)",
        Outcome.PASS,
        f"{item.image}, {size}, {how}",
        seconds=0.0 if item.reused else item.seconds,
        subject=item.service,
    )


def image_settings(settings: Settings, group: BuildGroup, secrets: Mapping[str, Path]) -> Settings:
    """The project's settings describing one build of the stack, for verify-image's checks: its
    Dockerfile, context and args, and every build secret (none may show up in the image)."""
    spec = group.spec
    others = tuple(path for secret_id, path in secrets.items() if secret_id != settings.ca_secret_id)
    return replace(
        settings,
        dockerfile=spec.dockerfile,
        context=spec.context,
        target=spec.target,
        platform=spec.platform,
        build_args=dict(spec.args),
        ca_bundle=secrets.get(settings.ca_secret_id),
        verify=replace(settings.verify, secrets=(*settings.verify.secrets, *others)),
    )


def _verify_images(
    engine: Engine,
    settings: Settings,
    stack: StackBuild,
    options: verify.VerifyOptions,
    environ: Mapping[str, str],
) -> list[CheckResult]:
    """verify-image on each distinct image of the stack, its results' subject being the image."""
    results: list[CheckResult] = []
    for group, built in zip(stack.groups, stack.builds, strict=True):
        ref = built.tags[0]
        skip = options.skip
        if not group.spec.context.is_relative_to(settings.project_dir):
            skip = (*skip, "layer-cache")  # the scratch rebuild copies the project directory only
        with _secret_files(group, environ) as secrets:
            scoped = image_settings(settings, group, secrets)
            report = verify.verify_image(engine, scoped, ref, replace(options, skip=skip, build=built))
        results += [replace(r, subject=ref) for r in report.results]
    return results


COMPOSE_CHECK_IDS = ("built", "command")  # the checks of services; every other id is verify-image's


def verify_compose(
    engine: Engine,
    settings: Settings,
    files: Sequence[Path | str] = (),
    *,
    console: Console,
    options: ComposeOptions | None = None,
    checks: verify.VerifyOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """compose-build, the command check of every service, and verify-image on each distinct image.

    `checks.skip` / `checks.only` take verify-image's check ids and `command` (`built` always shows).
    """
    start = time.monotonic()
    environ = os.environ if environ is None else environ
    checks = checks or verify.VerifyOptions()
    image_checks = replace(
        checks,
        skip=tuple(i for i in checks.skip if i not in COMPOSE_CHECK_IDS),
        only=tuple(i for i in checks.only if i not in COMPOSE_CHECK_IDS),
    )
    verify.selected_checks(settings, image_checks)  # reject unknown check ids before building
    run_commands = "command" not in checks.skip and (not checks.only or "command" in checks.only)
    run_images = not checks.only or bool(image_checks.only)
    stack = compose_build(engine, settings, files, console=console, options=options, environ=environ)
    results = [_built_result(item) for item in stack.services]
    if run_commands:
        results += check_commands(engine, stack)
    if run_images:
        compose_env = {**environ, **interpolation_environment(settings, environ)}
        results += _verify_images(engine, settings, stack, image_checks, compose_env)
    meta = {
        "project": stack.model.project,
        "files": ", ".join(str(f) for f in stack.model.files),
        "services": str(len(stack.services)),
        "builds": str(len(stack.builds)),
        "images": ", ".join(b.tags[0] for b in stack.builds),
        "engine": engine.server_version(),
    }
    return Report(f"verify-compose {stack.model.project}", tuple(results), time.monotonic() - start, meta)
