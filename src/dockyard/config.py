"""`[tool.dockyard]` in pyproject.toml, read strictly.

Unknown keys are rejected with a "did you mean" suggestion, wrong types are named with the key and the
expected type. DOCKYARD_* environment variables override the file (the README lists them), and the
machine file that `scripts/provision-engine` writes (KEY=VALUE lines, default
`~/.config/dockyard/machine.env`) supplies machine defaults below the real environment: which docker
CLI builds, which base-image stand-ins to use.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dockyard import fsutil, reference
from dockyard.errors import ConfigError, UsageError
from dockyard.project import discover as discovery
from dockyard.project import workspace as workspaces
from dockyard.project.discover import Inferred
from dockyard.project.workspace import SourceModule

_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
    "k": 1000, "m": 1000**2, "g": 1000**3,
}  # fmt: skip


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Bytes from `500MB`, `1.5GiB`, `1200` (MB and GB are decimal, as `docker images` prints)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise ConfigError(f"{what}: {text!r} is not a size; write it like 500MB, 1.5GiB or 1200")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_percent(text: str | float, *, what: str) -> float:
    """A fraction from `10%` or `0.1`."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*", str(text))
    if not match:
        raise ConfigError(f"{what}: {text!r} is not a percentage; write it like 10%")
    return float(match.group(1)) / 100


@dataclass(frozen=True)
class SmokeCommand:
    """A command run inside the image that must exit 0, and print a line equal to `expect` (surrounding
    whitespace ignored) and output matching `expect_regex` (`re.search`, `^`/`$` at each line), when given."""

    command: tuple[str, ...]
    expect: str | None = None
    timeout: float = 30.0
    expect_regex: str | None = None


@dataclass(frozen=True)
class CredentialWaiver:
    """A no-credentials finding that is known and accepted: its path (a glob over the image path,
    or `ENV NAME` / `LABEL key` / `history*` for metadata), its rule id (or "*"), and why."""

    path: str
    rule: str
    reason: str


@dataclass(frozen=True)
class VerifySettings:
    skip: tuple[str, ...] = ()
    user: str | None = None
    dev_packages: tuple[str, ...] = ()
    imports: tuple[str, ...] | None = None  # None: the project's own top-level package
    smoke: tuple[SmokeCommand, ...] = ()
    healthcheck_timeout: float = 60.0
    # Seconds a container must stay running and healthy after its first `healthy`; None: three more
    # probes of the accelerated health probing and at least 2 s; 0: no settle window.
    healthcheck_settle: float | None = None
    env: Mapping[str, str] = field(
        default_factory=lambda: {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    )
    ports: tuple[int, ...] | None = None  # None: exposed ports are not checked
    forbidden: tuple[str, ...] = ()
    secrets: tuple[Path, ...] = ()  # files whose content must appear in no layer or metadata
    credentials_allow: tuple[CredentialWaiver, ...] = ()  # no-credentials findings accepted, with a reason
    timeout: float = 120.0
    clean_checkout: bool = False
    layer_cache_max_changed: int = 10_000_000
    layer_cache_touch: str | None = None  # source file changed for the layer-cache check
    build_tools_allow: tuple[str, ...] = ()  # globs of build tools the runtime image may ship
    # Where the layer content checks read layers: "auto" reads overlay2's layer directories when the
    # engine is local and they are readable, else the export; "export" always exports the image.
    layer_source: str = "auto"


@dataclass(frozen=True)
class SizeSettings:
    top: int = 10
    growth_threshold: float = 0.10
    history: Path | None = None  # None: the project's file in dockyard's state directory


@dataclass(frozen=True)
class ComposeSettings:
    files: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    allow_contexts: tuple[str, ...] = ()  # build contexts outside the repository compose may use
    cache_from: tuple[str, ...] = ()  # registry cache prefixes: each build's is PREFIX/<service>:buildcache
    cache_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    project_dir: Path  # the directory of the pyproject.toml dockyard runs in (a workspace root, or not)
    project_name: str  # the service package's name (a workspace member's, in a workspace)
    project_version: str | None
    image: str
    dockerfile: Path
    context: Path
    target: str | None = None
    platform: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    ca_bundle: Path | None = None
    ca_secret_id: str = "ca_bundle"
    size_budget: int = 500_000_000
    service: bool | None = None  # None: inferred from the image (EXPOSE, HEALTHCHECK, a server command)
    docker: str | None = None
    builder: str | None = None
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    verify: VerifySettings = field(default_factory=VerifySettings)
    size: SizeSettings = field(default_factory=SizeSettings)
    compose: ComposeSettings = field(default_factory=ComposeSettings)
    # The project's layout, as discovered (dockyard.project.discover); defaults describe a lone project.
    workspace_root: Path | None = None  # None: project_dir
    package_dir: Path | None = None  # the service package's directory; None: project_dir
    virtual: bool = False  # uv installs only the package's dependencies, never the package itself
    modules: tuple[SourceModule, ...] | None = None  # None: the package's import name
    modules_how: str = ""  # where `modules` came from
    context_explicit: bool = True  # the context was configured, not discovered
    repository: Path | None = None  # the git work tree holding the project
    problems: Mapping[str, str] = field(default_factory=dict)  # what discovery could not decide
    candidates: tuple[discovery.ComposeBuild, ...] = ()  # undecided Dockerfile: the builds it could be
    inferred: tuple[Inferred, ...] = ()  # the `project:` header lines
    has_project: bool = True  # False: `dockyard verify IMAGE` outside any project
    door: str = "dockyard"  # how the user runs dockyard's commands: "dockyard" (CLI) or "invoke"

    @property
    def workspace_dir(self) -> Path:
        """The uv workspace root (the project itself when it is no workspace's member)."""
        return self.workspace_root or self.project_dir

    @property
    def lock_file(self) -> Path:
        """The workspace's one uv.lock."""
        return self.workspace_dir / "uv.lock"

    @property
    def package_path(self) -> Path:
        return self.package_dir or self.project_dir

    @property
    def lock_command(self) -> str:
        """The command that updates uv.lock, through the door the user came in by."""
        return f"{self.door} lock"

    def relocated(self, root: Path, source: Path | None = None) -> Settings:
        """The same settings for a copy at `root` of the tree at `source` (default: the project): a
        scratch or clean checkout. Paths outside `source` stay as they are."""
        source = source or self.project_dir

        def moved(path: Path) -> Path:
            return root / path.relative_to(source) if path.is_relative_to(source) else path

        return replace(
            self,
            project_dir=moved(self.project_dir),
            context=moved(self.context),
            dockerfile=moved(self.dockerfile),
            workspace_root=moved(self.workspace_root) if self.workspace_root else None,
            package_dir=moved(self.package_dir) if self.package_dir else None,
            modules=tuple(replace(m, path=moved(m.path)) for m in self.modules) if self.modules else None,
            repository=moved(self.repository) if self.repository else None,
        )

    @property
    def package(self) -> str:
        """The project's import name (the default module for the imports check)."""
        return re.sub(r"[-.]+", "_", self.project_name).lower()

    @property
    def build_root(self) -> Path:
        """The smallest directory holding the context, the Dockerfile and the package: what a scratch
        or clean checkout must copy."""
        paths = [self.context, self.dockerfile.parent, self.package_path]
        return Path(os.path.commonpath([str(p) for p in paths]))

    def require_layout(self, *what: str) -> None:
        """Raise what discovery could not decide about `what` (dockerfile, package, context)."""
        for key in what or ("dockerfile", "package", "context"):
            if problem := self.problems.get(key):
                raise UsageError(problem)


# --- strict reading ---------------------------------------------------------------------------------

Reader = Callable[[Any, str], Any]


def _type_error(key: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"[tool.dockyard] {key}: expected {expected}, got {type(value).__name__} {value!r}")


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _type_error(key, "a string", value)
    return value


LAYER_SOURCES = ("auto", "export")


def _choice(value: Any, key: str, choices: Sequence[str]) -> str:
    text = _str(value, key)
    if text not in choices:
        close = difflib.get_close_matches(text, list(choices), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"[tool.dockyard] {key}: {text!r} is not one of {', '.join(choices)}{hint}")
    return text


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(key, "true or false", value)
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _type_error(key, "a non-negative number", value)
    return float(value)


def _positive_number(value: Any, key: str) -> float:
    """A duration in seconds: more than 0 (a zero timeout could never be met)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _type_error(key, "a number of seconds above 0", value)
    if value == float("inf"):
        raise _type_error(key, "a finite number of seconds", value)
    return float(value)


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _type_error(key, "a non-negative integer", value)
    return value


def _str_list(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _type_error(key, "a list of strings", value)
    return tuple(value)


def _int_list(value: Any, key: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise _type_error(key, "a list of port numbers", value)
    return tuple(value)


def _ports(value: Any, key: str) -> tuple[int, ...]:
    ports = _int_list(value, key)
    for port in ports:
        if not 1 <= port <= 65535:
            raise ConfigError(f"[tool.dockyard] {key}: {port} is not a port number (1-65535)")
    return ports


def _str_table(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _type_error(key, "a table of strings", value)
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise _type_error(f"{key}.{k}", "a string", v)
        out[k] = str(v)
    return out


def _size(value: Any, key: str) -> int:
    """A size above 0 (a budget of 0 bytes fails every image; a negative one is no size)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _type_error(key, "a size such as 500MB", value)
    size = parse_size(value, what=f"[tool.dockyard] {key}")
    if size <= 0:
        raise ConfigError(f"[tool.dockyard] {key}: {value!r} must be more than 0 bytes; write it like 500MB")
    return size


MAX_GROWTH = 10.0  # 1000%: beyond that, a threshold flags nothing and is surely a typo


def _image_name_value(value: str, what: str) -> str:
    return reference.check_name(value, what, error=ConfigError)


def _percent(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _type_error(key, "a percentage such as 10%", value)
    fraction = parse_percent(value, what=f"[tool.dockyard] {key}")
    if not 0 <= fraction <= MAX_GROWTH:
        raise ConfigError(
            f"[tool.dockyard] {key}: {value!r} is outside 0%-{MAX_GROWTH:.0%}; write it like 10%"
        )
    return fraction


def _smoke(value: Any, key: str) -> tuple[SmokeCommand, ...]:
    if not isinstance(value, list):
        raise _type_error(key, "a list of tables {command = [...], expect = '...'}", value)
    commands = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise _type_error(where, "a table {command = [...], expect = '...'}", item)
        fields = _read_table(item, where, _SMOKE_KEYS)
        if "command" not in fields or not fields["command"]:
            raise ConfigError(f"[tool.dockyard] {where}: `command` is required (a list of strings)")
        commands.append(SmokeCommand(**fields))
    return tuple(commands)


def _credentials_allow(value: Any, key: str) -> tuple[CredentialWaiver, ...]:
    from dockyard.credentials.rules import RULES  # noqa: PLC0415 - only a config that waives needs it

    if not isinstance(value, list):
        raise _type_error(key, 'a list of tables {path = "...", rule = "...", reason = "..."}', value)
    waivers = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise _type_error(where, 'a table {path = "...", rule = "...", reason = "..."}', item)
        fields = _read_table(item, where, _WAIVER_KEYS)
        for required in ("path", "rule", "reason"):
            if not str(fields.get(required, "")).strip():
                raise ConfigError(f"[tool.dockyard] {where}: `{required}` is required (a non-empty string)")
        rule = fields["rule"]
        if rule != "*" and rule not in RULES:
            close = difflib.get_close_matches(rule, list(RULES), n=1)
            hint = f" Perhaps you meant {close[0]!r}?" if close else ""
            raise ConfigError(
                f"[tool.dockyard] {where}.rule: unknown rule {rule!r}.{hint} Rules: {', '.join(RULES)}, *"
            )
        waivers.append(CredentialWaiver(**fields))
    return tuple(waivers)


_WAIVER_KEYS: dict[str, tuple[str, Reader]] = {
    "path": ("path", _str),
    "rule": ("rule", _str),
    "reason": ("reason", _str),
}


def _regex(value: Any, key: str) -> str:
    text = _str(value, key)
    try:
        re.compile(text)
    except re.error as exc:
        raise ConfigError(
            f"[tool.dockyard] {key}: not a valid regular expression ({exc}): {text!r}"
        ) from None
    return text


_SMOKE_KEYS: dict[str, tuple[str, Reader]] = {
    "command": ("command", _str_list),
    "expect": ("expect", _str),
    "expect-regex": ("expect_regex", _regex),
    "timeout": ("timeout", _positive_number),
}

_VERIFY_KEYS: dict[str, tuple[str, Reader]] = {
    "skip": ("skip", _str_list),
    "user": ("user", lambda v, k: str(_int(v, k)) if isinstance(v, int) else _str(v, k)),
    "dev-packages": ("dev_packages", _str_list),
    "imports": ("imports", _str_list),
    "smoke": ("smoke", _smoke),
    "healthcheck-timeout": ("healthcheck_timeout", _positive_number),
    "healthcheck-settle": ("healthcheck_settle", _number),
    "env": ("env", _str_table),
    "ports": ("ports", _ports),
    "forbidden": ("forbidden", _str_list),
    "secrets": ("secrets", lambda v, k: tuple(Path(p) for p in _str_list(v, k))),
    "credentials-allow": ("credentials_allow", _credentials_allow),
    "timeout": ("timeout", _positive_number),
    "clean-checkout": ("clean_checkout", _bool),
    "layer-cache-max-changed": ("layer_cache_max_changed", _size),
    "layer-cache-touch": ("layer_cache_touch", _str),
    "build-tools-allow": ("build_tools_allow", _str_list),
    "layer-source": ("layer_source", lambda v, k: _choice(v, k, LAYER_SOURCES)),
}

_SIZE_KEYS: dict[str, tuple[str, Reader]] = {
    "top": ("top", _int),
    "growth-threshold": ("growth_threshold", _percent),
    "history": ("history", lambda v, k: Path(_str(v, k))),
}

_COMPOSE_KEYS: dict[str, tuple[str, Reader]] = {
    "files": ("files", _str_list),
    "profiles": ("profiles", _str_list),
    "allow-contexts": ("allow_contexts", _str_list),
    "cache-from": ("cache_from", _str_list),
    "cache-to": ("cache_to", _str_list),
}


def _section(keys: dict[str, tuple[str, Reader]], factory: Callable[..., Any]) -> Reader:
    def read(value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            raise _type_error(key, "a table", value)
        return factory(**_read_table(value, key, keys))

    return read


_TOP_KEYS: dict[str, tuple[str, Reader]] = {
    "image": ("image", lambda v, k: _image_name_value(_str(v, k), f"[tool.dockyard] {k}")),
    "package": ("package", _str),
    "dockerfile": ("dockerfile", _str),
    "context": ("context", _str),
    "target": ("target", _str),
    "platform": ("platform", _str),
    "build-args": ("build_args", _str_table),
    "labels": ("labels", _str_table),
    "ca-bundle": ("ca_bundle", _str),
    "ca-secret-id": ("ca_secret_id", _str),
    "size-budget": ("size_budget", _size),
    "service": ("service", _bool),
    "docker": ("docker", _str),
    "builder": ("builder", _str),
    "cache-from": ("cache_from", _str_list),
    "cache-to": ("cache_to", _str_list),
    "verify": ("verify", _section(_VERIFY_KEYS, VerifySettings)),
    "size": ("size", _section(_SIZE_KEYS, SizeSettings)),
    "compose": ("compose", _section(_COMPOSE_KEYS, ComposeSettings)),
}


def _read_table(
    table: Mapping[str, Any], where: str, keys: Mapping[str, tuple[str, Reader]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in keys:
            close = difflib.get_close_matches(key, list(keys), n=1)
            hint = f" Perhaps you meant {close[0]!r}?" if close else ""
            valid = ", ".join(sorted(keys))
            raise ConfigError(f"[tool.dockyard] {where}: unknown key {key!r}.{hint} Valid: {valid}")
        name, reader = keys[key]
        out[name] = reader(value, f"{where}.{key}" if where else key)
    return out


# --- environment ------------------------------------------------------------------------------------


def machine_file(environ: Mapping[str, str]) -> Path:
    if path := environ.get("DOCKYARD_MACHINE_FILE"):
        return Path(path)
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dockyard" / "machine.env"


def read_text_file(path: Path, what: str) -> str:
    """A text file dockyard reads (the machine file) as UTF-8, with one clear ConfigError for anything
    else: a directory, an unreadable file, bytes that are not UTF-8."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{what} {path}:{line}: byte 0x{data[exc.start]:02x} is not UTF-8; save the file as UTF-8"
        ) from None


def read_machine_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored. A missing file is empty."""
    if not path.exists():
        return {}
    text = read_text_file(path, "machine file")
    values = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        values[key.strip()] = value.strip()
    return values


def effective_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The real environment laid over the machine file's DOCKYARD_* defaults."""
    real = dict(os.environ if environ is None else environ)
    merged = {k: v for k, v in read_machine_file(machine_file(real)).items() if k.startswith("DOCKYARD_")}
    merged.update(real)
    return merged


# --- loading ----------------------------------------------------------------------------------------


def find_project(start: Path) -> Path:
    """The nearest directory at or above `start` holding a pyproject.toml (as uv finds its project)."""
    found = workspaces.nearest_project(start)
    if found is None:
        raise ConfigError(
            f"no pyproject.toml in {start} or above: run dockyard inside a project, or pass --project DIR"
        )
    return found


@dataclass(frozen=True)
class Overrides:
    """Layout values given on the command line; they win over `[tool.dockyard]` and discovery. Paths
    are relative to the current directory, as `docker build -f` takes them."""

    dockerfile: Path | None = None
    context: Path | None = None
    target: str | None = None


def load(
    project_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Overrides | None = None,
    door: str = "dockyard",
) -> Settings:
    """Read `[tool.dockyard]` of the project's pyproject.toml, apply the environment, and discover the
    layout (workspace, package, lock, Dockerfile, context) for what configuration leaves open."""
    start = (project_dir or Path.cwd()).resolve()
    if start.is_file() and start.name == workspaces.PYPROJECT:
        start = start.parent
    found = find_project(start)
    pyproject = found / workspaces.PYPROJECT
    data = workspaces.read_pyproject(pyproject)
    ws = workspaces.find(found, data)
    table = data.get("tool", {}).get("dockyard", {})
    fields = _read_table(table, "", _TOP_KEYS)
    env = effective_environment(environ)
    _environment_overrides(fields, env)
    overrides = overrides or Overrides()
    requested = _requested(found, fields, overrides, env)
    layout = discovery.discover(found, ws, requested)
    return _settings(found, fields, layout, table, env, door)


def _environment_overrides(fields: dict[str, Any], env: Mapping[str, str]) -> None:
    build_args = dict(fields.get("build_args", {}))
    for key, value in env.items():
        if key.startswith("DOCKYARD_BUILD_ARG_") and len(key) > len("DOCKYARD_BUILD_ARG_"):
            build_args[key.removeprefix("DOCKYARD_BUILD_ARG_")] = value
    fields["build_args"] = build_args
    overrides = {
        "image": env.get("DOCKYARD_IMAGE"),
        "docker": env.get("DOCKYARD_DOCKER"),
        "ca_bundle": env.get("DOCKYARD_CA_BUNDLE"),
        "builder": env.get("DOCKYARD_BUILDER"),
        "platform": env.get("DOCKYARD_PLATFORM"),
    }
    if env.get("DOCKYARD_IMAGE"):
        fields["image_source"] = "from DOCKYARD_IMAGE"
    elif "image" in fields:
        fields["image_source"] = "from config"
    fields.update({k: v for k, v in overrides.items() if v})
    if budget := env.get("DOCKYARD_SIZE_BUDGET"):
        fields["size_budget"] = parse_size(budget, what="DOCKYARD_SIZE_BUDGET")
        if fields["size_budget"] <= 0:
            raise ConfigError(f"DOCKYARD_SIZE_BUDGET: {budget!r} must be more than 0 bytes")
    if from_env := env.get("DOCKYARD_IMAGE"):
        reference.check_name(from_env, "DOCKYARD_IMAGE", error=ConfigError)
    if source := env.get("DOCKYARD_LAYER_SOURCE"):
        if source not in LAYER_SOURCES:
            raise ConfigError(f"DOCKYARD_LAYER_SOURCE: {source!r} is not one of {', '.join(LAYER_SOURCES)}")
        fields["verify"] = replace(fields.get("verify") or VerifySettings(), layer_source=source)


def _requested(
    project_dir: Path, fields: Mapping[str, Any], overrides: Overrides, env: Mapping[str, str]
) -> discovery.Requested:
    def choice(flag: Any, key: str, *, path: bool) -> discovery.Choice | None:
        if flag is not None:
            value = Path(flag).resolve() if path else flag
            return discovery.Choice(value, f"from --{key}")
        if key in fields:
            value = (project_dir / fields[key]).resolve() if path else fields[key]
            return discovery.Choice(value, "from config")
        return None

    ca_bundle = fields.get("ca_bundle")
    interpolation = dict(fields.get("build_args", {}))
    if ca_bundle:
        interpolation["CA_BUNDLE"] = str(project_dir / ca_bundle)
    compose = fields.get("compose")
    files = tuple((project_dir / f).resolve() for f in compose.files) if compose else ()
    return discovery.Requested(
        dockerfile=choice(overrides.dockerfile, "dockerfile", path=True),
        context=choice(overrides.context, "context", path=True),
        target=choice(overrides.target, "target", path=False),
        package=choice(None, "package", path=False),
        compose_files=tuple(f for f in files if f.is_file()),
        docker=fields.get("docker") or env.get("DOCKYARD_DOCKER"),
        interpolation=interpolation,
    )


def _settings(
    project_dir: Path,
    fields: dict[str, Any],
    layout: discovery.Layout,
    table: Mapping[str, Any],
    env: Mapping[str, str],
    door: str,
) -> Settings:
    package = layout.package
    name = package.name if package else project_dir.name
    for key in ("dockerfile", "context", "target", "package"):
        fields.pop(key, None)
    build_args = {**layout.build_args, **fields.pop("build_args", {})}
    image_source = fields.pop("image_source", "discovered: the package's name")
    image = fields.pop("image", None) or _image_name_value(
        _image_name(name), f"the image name from the package's name {name!r} (set [tool.dockyard] image)"
    )
    _confine_paths(project_dir, fields)
    ca_bundle = fields.pop("ca_bundle", None)
    ca_path = (project_dir / ca_bundle) if ca_bundle else None
    if ca_path is not None and not ca_path.is_file():
        raise ConfigError(f"CA bundle {ca_path} does not exist: fix ca-bundle / DOCKYARD_CA_BUNDLE")
    config_line = "[tool.dockyard] in pyproject.toml" if table else "none: zero configuration"
    inferred = (
        *layout.notes,
        discovery.Inferred("image", image, image_source),
        discovery.Inferred("config", config_line, ""),
    )
    return Settings(
        project_dir=project_dir,
        project_name=name,
        project_version=package.version if package else None,
        image=image,
        dockerfile=layout.dockerfile,
        context=layout.context,
        target=layout.target,
        build_args=build_args,
        ca_bundle=ca_path,
        workspace_root=layout.workspace.root,
        package_dir=package.directory if package else None,
        virtual=package.virtual if package else False,
        modules=layout.modules.modules if package else None,
        modules_how=layout.modules.how,
        context_explicit=layout.context_explicit,
        repository=layout.repository,
        problems=layout.problems,
        candidates=layout.candidates,
        inferred=inferred,
        door=door,
        **fields,
    )


def for_build(settings: Settings, dockerfile: Path, context: Path) -> Settings:
    """The settings of one build of the project (a compose service's): its Dockerfile and context, and
    the package it makes an image of (in a workspace, the member it installs or lives in)."""
    problems = {k: v for k, v in settings.problems.items() if k not in ("dockerfile", "context", "package")}
    moved = replace(
        settings, dockerfile=dockerfile, context=context, context_explicit=True, problems=problems
    )
    if not settings.has_project:
        return moved
    ws = workspaces.find(settings.project_dir)
    package, _ = discovery.package_for_build(ws, settings.project_dir, dockerfile, context)
    if package is None:
        return replace(moved, problems={**problems, "package": settings.problems.get("package", "")})
    modules = workspaces.source_modules(package)
    return replace(
        moved,
        project_name=package.name,
        project_version=package.version,
        package_dir=package.directory,
        virtual=package.virtual,
        modules=modules.modules,
        modules_how=modules.how,
    )


def _confine_paths(project_dir: Path, fields: Mapping[str, Any]) -> None:
    """Files dockyard writes that the project names must be inside the project (the layer-cache touch
    file is checked against the build context, before verify starts: `verify.gather.preflight`)."""
    size = fields.get("size")
    if size is not None and size.history is not None:
        fsutil.confined(project_dir, size.history, "[tool.dockyard.size] history")


def _image_name(name: str) -> str:
    """A valid image name from a project name: lowercase, runs of other characters as one dash."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "app"


def image_only(
    image: str, environ: Mapping[str, str] | None = None, *, start: Path | None = None, door: str = "dockyard"
) -> Settings:
    """Settings for checking an image outside any project (`dockyard verify IMAGE`): the machine file
    and the environment apply; what needs the project is skipped by the checks."""
    start = (start or Path.cwd()).resolve()
    fields: dict[str, Any] = {}
    env = effective_environment(environ)
    _environment_overrides(fields, env)
    fields.pop("image_source", None)
    fields.pop("image", None)
    ca_bundle = fields.pop("ca_bundle", None)
    ca_path = Path(ca_bundle) if ca_bundle else None
    if ca_path is not None and not ca_path.is_file():
        raise ConfigError(f"CA bundle {ca_path} does not exist: fix DOCKYARD_CA_BUNDLE")
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0] or "image"
    note = f"none (no pyproject.toml in {start} or above): checks that need the project are skipped"
    return Settings(
        project_dir=start,
        project_name=name,
        project_version=None,
        image=image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image,
        dockerfile=start / "Dockerfile",
        context=start,
        build_args=fields.pop("build_args", {}),
        ca_bundle=ca_path,
        modules=(),
        modules_how="no project",
        has_project=False,
        inferred=(discovery.Inferred("project", note, ""),),
        door=door,
        **fields,
    )
