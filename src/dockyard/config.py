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
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dockyard.errors import ConfigError

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
    """A command run inside the image that must exit 0 (and print `expect`, when given)."""

    command: tuple[str, ...]
    expect: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class VerifySettings:
    skip: tuple[str, ...] = ()
    user: str | None = None
    dev_packages: tuple[str, ...] = ()
    imports: tuple[str, ...] | None = None  # None: the project's own top-level package
    smoke: tuple[SmokeCommand, ...] = ()
    healthcheck_timeout: float = 60.0
    env: Mapping[str, str] = field(
        default_factory=lambda: {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    )
    ports: tuple[int, ...] | None = None  # None: exposed ports are not checked
    forbidden: tuple[str, ...] = ()
    secrets: tuple[Path, ...] = ()  # files whose content must appear in no layer or metadata
    timeout: float = 120.0
    clean_checkout: bool = False
    layer_cache_max_changed: int = 10_000_000
    layer_cache_touch: str | None = None  # source file changed for the layer-cache check


@dataclass(frozen=True)
class SizeSettings:
    top: int = 10
    growth_threshold: float = 0.10
    history: Path = Path(".dockyard/size-history.json")


@dataclass(frozen=True)
class ComposeSettings:
    files: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    project_name: str
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
    service: bool = True
    docker: str | None = None
    builder: str | None = None
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    verify: VerifySettings = field(default_factory=VerifySettings)
    size: SizeSettings = field(default_factory=SizeSettings)
    compose: ComposeSettings = field(default_factory=ComposeSettings)

    def relocated(self, root: Path) -> Settings:
        """The same settings for a copy of the project at `root` (a scratch or clean checkout)."""
        return replace(
            self,
            project_dir=root,
            context=root / self.context.relative_to(self.project_dir),
            dockerfile=root / self.dockerfile.relative_to(self.project_dir),
        )

    @property
    def package(self) -> str:
        """The project's import name (the default module for the imports check)."""
        return re.sub(r"[-.]+", "_", self.project_name).lower()


# --- strict reading ---------------------------------------------------------------------------------

Reader = Callable[[Any, str], Any]


def _type_error(key: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"[tool.dockyard] {key}: expected {expected}, got {type(value).__name__} {value!r}")


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise _type_error(key, "a string", value)
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(key, "true or false", value)
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _type_error(key, "a non-negative number", value)
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
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _type_error(key, "a size such as 500MB", value)
    return parse_size(value, what=f"[tool.dockyard] {key}")


def _percent(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _type_error(key, "a percentage such as 10%", value)
    return parse_percent(value, what=f"[tool.dockyard] {key}")


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


_SMOKE_KEYS: dict[str, tuple[str, Reader]] = {
    "command": ("command", _str_list),
    "expect": ("expect", _str),
    "timeout": ("timeout", _number),
}

_VERIFY_KEYS: dict[str, tuple[str, Reader]] = {
    "skip": ("skip", _str_list),
    "user": ("user", lambda v, k: str(_int(v, k)) if isinstance(v, int) else _str(v, k)),
    "dev-packages": ("dev_packages", _str_list),
    "imports": ("imports", _str_list),
    "smoke": ("smoke", _smoke),
    "healthcheck-timeout": ("healthcheck_timeout", _number),
    "env": ("env", _str_table),
    "ports": ("ports", _int_list),
    "forbidden": ("forbidden", _str_list),
    "secrets": ("secrets", lambda v, k: tuple(Path(p) for p in _str_list(v, k))),
    "timeout": ("timeout", _number),
    "clean-checkout": ("clean_checkout", _bool),
    "layer-cache-max-changed": ("layer_cache_max_changed", _size),
    "layer-cache-touch": ("layer_cache_touch", _str),
}

_SIZE_KEYS: dict[str, tuple[str, Reader]] = {
    "top": ("top", _int),
    "growth-threshold": ("growth_threshold", _percent),
    "history": ("history", lambda v, k: Path(_str(v, k))),
}

_COMPOSE_KEYS: dict[str, tuple[str, Reader]] = {
    "files": ("files", _str_list),
    "profiles": ("profiles", _str_list),
}


def _section(keys: dict[str, tuple[str, Reader]], factory: Callable[..., Any]) -> Reader:
    def read(value: Any, key: str) -> Any:
        if not isinstance(value, dict):
            raise _type_error(key, "a table", value)
        return factory(**_read_table(value, key, keys))

    return read


_TOP_KEYS: dict[str, tuple[str, Reader]] = {
    "image": ("image", _str),
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


def read_machine_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments ignored. A missing file is empty."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
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
    """The nearest directory at or above `start` holding a pyproject.toml."""
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return directory
    raise ConfigError(
        f"no pyproject.toml in {start} or above: run dockyard inside a project, or pass --project DIR"
    )


def load(project_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `[tool.dockyard]` of the project's pyproject.toml, then apply the environment."""
    project_dir = find_project((project_dir or Path.cwd()).resolve())
    pyproject = project_dir / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: not valid TOML: {exc}") from None
    project = data.get("project", {})
    name = project.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"{pyproject}: [project] name is missing; dockyard names images after it")
    version = project.get("version")
    table = data.get("tool", {}).get("dockyard", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.dockyard] must be a table")
    fields = _read_table(table, "", _TOP_KEYS)
    env = effective_environment(environ)
    return _apply(project_dir, name, version if isinstance(version, str) else None, fields, env)


def _apply(
    project_dir: Path,
    name: str,
    version: str | None,
    fields: dict[str, Any],
    env: Mapping[str, str],
) -> Settings:
    build_args = dict(fields.pop("build_args", {}))
    for key, value in env.items():
        if key.startswith("DOCKYARD_BUILD_ARG_") and len(key) > len("DOCKYARD_BUILD_ARG_"):
            build_args[key.removeprefix("DOCKYARD_BUILD_ARG_")] = value
    overrides = {
        "image": env.get("DOCKYARD_IMAGE"),
        "docker": env.get("DOCKYARD_DOCKER"),
        "ca_bundle": env.get("DOCKYARD_CA_BUNDLE"),
        "builder": env.get("DOCKYARD_BUILDER"),
        "platform": env.get("DOCKYARD_PLATFORM"),
    }
    fields.update({k: v for k, v in overrides.items() if v})
    if budget := env.get("DOCKYARD_SIZE_BUDGET"):
        fields["size_budget"] = parse_size(budget, what="DOCKYARD_SIZE_BUDGET")
    image = fields.pop("image", name)
    if not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?([a-z0-9._/-]*)", image):
        raise ConfigError(f"[tool.dockyard] image: {image!r} is not a valid image name (lowercase, no tag)")
    ca_bundle = fields.pop("ca_bundle", None)
    ca_path = (project_dir / ca_bundle) if ca_bundle else None
    if ca_path is not None and not ca_path.is_file():
        raise ConfigError(f"CA bundle {ca_path} does not exist: fix ca-bundle / DOCKYARD_CA_BUNDLE")
    return Settings(
        project_dir=project_dir,
        project_name=name,
        project_version=version,
        image=image,
        dockerfile=project_dir / fields.pop("dockerfile", "Dockerfile"),
        context=project_dir / fields.pop("context", "."),
        build_args=build_args,
        ca_bundle=ca_path,
        **fields,
    )
