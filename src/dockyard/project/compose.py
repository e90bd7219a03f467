"""The compose model: resolved with `docker compose config`, read into services and their builds.

Compose resolves the model (interpolation, profiles, `extends`, several files), so dockyard reads it
exactly as `docker compose up` would. Services whose builds are identical (context, Dockerfile,
target, args, labels, platform, secrets) form one `BuildGroup`.

Compose interpolation sees dockyard's settings: each build arg as a variable of the same name
(`PYTHON_IMAGE`), and the CA bundle as `CA_BUNDLE` (whatever `ca-secret-id` is). The real environment
wins over both, as it does for Compose itself.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dockyard import process
from dockyard.config import Settings
from dockyard.engine import Engine
from dockyard.errors import EngineUnavailable, UsageError
from dockyard.project.discover import COMPOSE_NAMES, confine_compose

CONFIG_TIMEOUT = 120.0


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
    environment: Mapping[str, str] = field(default_factory=dict)  # variables set (null ones dropped)
    healthcheck: Mapping[str, Any] | None = None  # the resolved `healthcheck:`, as Compose prints it
    ports: tuple[str, ...] = ()  # container ports from `ports:` and `expose:`, as `8000/tcp`


@dataclass(frozen=True)
class ComposeModel:
    project: str
    files: tuple[Path, ...]  # empty: Compose's own default file in the project directory
    services: tuple[Service, ...]
    warnings: tuple[str, ...] = ()  # what Compose warned about while resolving ("variable is not set")

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


def _ports(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """The container ports a service publishes (`ports:`) or exposes (`expose:`), as `8000/tcp`."""
    found = []
    for entry in raw.get("ports") or []:
        if isinstance(entry, dict) and entry.get("target"):
            found.append(f"{entry['target']}/{entry.get('protocol') or 'tcp'}")
    for entry in raw.get("expose") or []:
        port, _, protocol = str(entry).partition("/")
        found.append(f"{port}/{protocol or 'tcp'}")
    return tuple(dict.fromkeys(found))


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
        healthcheck = raw.get("healthcheck")
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
                environment=_table(environment, f"service {name!r} environment"),
                healthcheck=healthcheck if isinstance(healthcheck, dict) else None,
                ports=_ports(raw),
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
        derived["CA_BUNDLE"] = str(settings.ca_bundle)
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
        where = ", ".join(f.name for f in files) or _default_file(settings.project_dir)
        raise UsageError(
            f"{where} is not a valid compose model: {reason}; fix it (`docker compose config` checks it)"
        )
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise UsageError(f"`docker compose config` printed no JSON: {_last_line(done.stdout)}") from None
    model = parse_model(doc, files)
    contexts = {s.name: s.build.context for s in model.services if s.build is not None}
    confine_compose(contexts, settings.project_dir, settings.workspace_dir, settings.compose.allow_contexts)
    return replace(model, warnings=compose_warnings(done.stderr))


_WARNING = re.compile(r'level=warn(?:ing)?\s+msg="((?:[^"\\]|\\.)*)"')


def compose_warnings(stderr: str) -> tuple[str, ...]:
    """Compose's warnings (`level=warning msg="The \\"X\\" variable is not set..."`), each once, unquoted."""
    found: list[str] = []
    for line in stderr.splitlines():
        if match := _WARNING.search(line):
            text = match.group(1).replace('\\"', '"').replace("\\\\", "\\")
        elif line.strip().upper().startswith("WARN"):
            text = line.strip()
        else:
            continue
        if text not in found:
            found.append(text)
    return tuple(found)


def _default_file(project_dir: Path) -> str:
    """The file Compose reads when none is named: the first of its names in the project's directory or
    the nearest one above it (as Compose looks)."""
    for directory in (project_dir, *project_dir.parents):
        for name in COMPOSE_NAMES:
            if (directory / name).is_file():
                return str(directory / name)
    return f"the compose file in {project_dir}"


def _shown(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
