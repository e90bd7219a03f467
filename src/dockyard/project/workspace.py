"""The uv project and its workspace, found the way uv finds them, and the modules a package's source holds.

uv's rules (`uv-workspace`): the project is the nearest directory at or above the start holding a
pyproject.toml. It is a workspace root when it declares `[tool.uv.workspace]` (with or without a
`[project]` of its own); otherwise the first pyproject.toml above it decides: a workspace root whose
`members` globs include it (and whose `exclude` globs do not) makes it a member, anything else makes
it a project of its own. One uv.lock serves the whole workspace, at its root. A package is virtual
(never installed, only its dependencies) when `tool.uv.package = false`, or when it has no
`[build-system]` and does not say `tool.uv.package = true`.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import ConfigError

PYPROJECT = "pyproject.toml"
_TABLES = ("project", "tool", "build-system", "dependency-groups")


def canonical(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pyproject(path: Path) -> dict[str, Any]:
    """A pyproject.toml as a table, with one clear line for every way it can be unreadable."""
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory, not a pyproject.toml") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}): save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for key in _TABLES:
        if key in data and not isinstance(data[key], dict):
            raise ConfigError(f"{path}: `{key}` must be a table ([{key}]), not {type(data[key]).__name__}")
    for key in ("uv", "dockyard", "hatch", "setuptools", "pdm", "poetry", "flit"):
        value = data.get("tool", {}).get(key)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{path}: [tool.{key}] must be a table, not {type(value).__name__}")
    workspace = data.get("tool", {}).get("uv", {}).get("workspace")
    if workspace is not None and not isinstance(workspace, dict):
        raise ConfigError(f"{path}: [tool.uv.workspace] must be a table")
    return data


def _table(data: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        value = data.get(key)
        if not isinstance(value, dict):
            return {}
        data = value
    return data


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


@dataclass(frozen=True)
class Package:
    """A uv project: the workspace root's own, or a member's."""

    name: str  # as written in [project] name
    directory: Path
    version: str | None
    virtual: bool  # uv installs only its dependencies, never the project itself
    data: Mapping[str, Any]  # its pyproject.toml

    @property
    def key(self) -> str:
        return canonical(self.name)


@dataclass(frozen=True)
class Workspace:
    """The workspace a project belongs to; a project outside any workspace is its own one-member one."""

    root: Path
    members: tuple[Package, ...]  # the root's own package first, when it has one
    declared: bool  # the root declares [tool.uv.workspace]
    root_data: Mapping[str, Any]  # the root's pyproject.toml

    @property
    def lock_file(self) -> Path:
        return self.root / "uv.lock"

    @property
    def root_package(self) -> Package | None:
        return next((m for m in self.members if m.directory == self.root), None)

    def member(self, name: str) -> Package | None:
        return next((m for m in self.members if m.key == canonical(name)), None)

    def member_holding(self, path: Path) -> Package | None:
        """The member whose directory holds `path` (the deepest one: members may nest in the root)."""
        holding = [m for m in self.members if path == m.directory or path.is_relative_to(m.directory)]
        return max(holding, key=lambda m: len(m.directory.parts), default=None)

    def names(self) -> str:
        return ", ".join(f"{m.name} ({_shown(m.directory, self.root)})" for m in self.members) or "none"


def _shown(path: Path, base: Path) -> str:
    if path == base:
        return "."
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def package_of(directory: Path, data: Mapping[str, Any]) -> Package | None:
    """The [project] of a pyproject.toml as a Package; None when it has no [project] table."""
    project = data.get("project")
    if not isinstance(project, dict):
        return None
    name = project.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{directory / PYPROJECT}: [project] name is missing or not a string")
    version = project.get("version")
    flag = _table(data, "tool", "uv").get("package")
    virtual = (not flag) if isinstance(flag, bool) else "build-system" not in data
    return Package(name, directory, version if isinstance(version, str) else None, virtual, data)


def nearest_project(start: Path) -> Path | None:
    """The nearest directory at or above `start` holding a pyproject.toml, as uv looks for one."""
    for directory in (start, *start.parents):
        if (directory / PYPROJECT).is_file():
            return directory
    return None


def _matches(root: Path, patterns: Iterable[str]) -> set[Path]:
    found: set[Path] = set()
    for pattern in patterns:
        if not pattern or Path(pattern).is_absolute():
            continue
        found.update(hit.resolve() for hit in root.glob(pattern) if hit.is_dir())
    return found


def _includes(root: Path, table: Mapping[str, Any], directory: Path) -> bool:
    members = _matches(root, _strings(table.get("members")))
    excluded = _matches(root, _strings(table.get("exclude")))
    return directory in members and directory not in excluded


def find(project_dir: Path, data: Mapping[str, Any] | None = None) -> Workspace:
    """The workspace of the project at `project_dir` (whose pyproject.toml is `data`), as uv finds it."""
    data = read_pyproject(project_dir / PYPROJECT) if data is None else data
    uv = _table(data, "tool", "uv")
    if uv.get("managed") is False:  # uv leaves the project alone: so does workspace discovery
        own = package_of(project_dir, data)
        return Workspace(project_dir, (own,) if own else (), False, data)
    if isinstance(uv.get("workspace"), dict):
        return _collect(project_dir, data)
    own = package_of(project_dir, data)
    if own is None:
        raise ConfigError(
            f"{project_dir / PYPROJECT} has neither [project] nor [tool.uv.workspace]: it is not a uv "
            "project; run dockyard in the project's directory, or pass --project DIR"
        )
    for directory in project_dir.parents:
        if not (directory / PYPROJECT).is_file():
            continue
        above = read_pyproject(directory / PYPROJECT)
        table = _table(above, "tool", "uv").get("workspace")
        if isinstance(table, dict) and _includes(directory, table, project_dir):
            return _collect(directory, above)
        break  # uv stops at the first pyproject.toml above: another project, or a workspace without us
    return Workspace(project_dir, (own,), False, data)


def _collect(root: Path, data: Mapping[str, Any]) -> Workspace:
    table = _table(data, "tool", "uv", "workspace")
    members: list[Package] = []
    own = package_of(root, data)
    if own is not None:
        members.append(own)
    excluded = _matches(root, _strings(table.get("exclude")))
    for directory in sorted(_matches(root, _strings(table.get("members"))) - excluded):
        if directory == root or not (directory / PYPROJECT).is_file():
            continue
        member = package_of(directory, read_pyproject(directory / PYPROJECT))
        if member is not None:
            members.append(member)
    return Workspace(root, tuple(members), True, data)


# --- the modules a package's source holds -----------------------------------------------------------

# Files beside pyproject.toml that are tools' entry points, not the app's modules.
_TOOL_FILES = frozenset(
    {"setup", "conftest", "noxfile", "tasks", "fabfile", "manage", "dodo", "hatch_build", "build"}
)
# Directories beside pyproject.toml that are never the app's own package.
_NOT_PACKAGES = frozenset(
    {"tests", "test", "testing", "docs", "doc", "examples", "example", "scripts", "bench", "benchmarks",
     "build", "dist", "node_modules", "migrations", "alembic", "site-packages", "venv"}
)  # fmt: skip


@dataclass(frozen=True)
class SourceModule:
    """A top-level module or package of a project's source."""

    name: str  # the import name
    path: Path  # the package directory or the module file


@dataclass(frozen=True)
class SourceModules:
    modules: tuple[SourceModule, ...]
    how: str  # where the list came from, for the user


def _module_at(path: Path) -> SourceModule | None:
    if path.is_dir() and path.name.isidentifier():
        return SourceModule(path.name, path)
    if path.suffix == ".py" and path.is_file() and path.stem.isidentifier():
        return SourceModule(path.stem, path)
    return None


def _named(directory: Path, names: Iterable[str], root: Path) -> list[SourceModule]:
    """Modules named `a`, `a.b` (whose top is `a`) or `a.py`, looked for in `directory`."""
    found = []
    for name in names:
        top = name.split(".")[0] if not name.endswith(".py") else name[:-3]
        path = directory / top
        if not path.exists() and path.with_suffix(".py").is_file():
            path = path.with_suffix(".py")
        if (module := _module_at(path)) is not None and path.resolve().is_relative_to(root):
            found.append(module)
    return found


def _has_python(directory: Path) -> bool:
    return any(directory.rglob("*.py"))


def _tool_or_test(stem: str) -> bool:
    return stem in _TOOL_FILES or stem.startswith("test_") or stem.endswith("_test")


def layout_modules(directory: Path, *, namespaces: bool) -> list[SourceModule]:
    """Top-level packages (and modules) directly in `directory`."""
    found = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith((".", "_")) or path.name in _NOT_PACKAGES:
            continue
        if path.is_dir() and path.name.isidentifier():
            if (path / "__init__.py").is_file() or (namespaces and _has_python(path)):
                found.append(SourceModule(path.name, path))
        elif path.suffix == ".py" and path.stem.isidentifier() and not _tool_or_test(path.stem):
            found.append(SourceModule(path.stem, path))
    return found


def source_modules(package: Package) -> SourceModules:
    """The top-level modules `package`'s source really holds: the build backend's own list where it is
    simple to read (uv_build, hatchling, setuptools, pdm, poetry, flit), else the src or flat layout."""
    root, data = package.directory, package.data
    tool = _table(data, "tool")
    backend = str(_table(data, "build-system").get("build-backend", ""))
    declared: list[SourceModule] = []
    how = ""
    if backend.startswith("uv_build"):
        config = _table(tool, "uv", "build-backend")
        module_root = root / str(config.get("module-root", "src"))
        names = _strings(config.get("module-name")) or [package.name.replace("-", "_").replace(".", "_")]
        declared, how = _named(module_root, names, root), "uv_build's module-name"
    elif backend.startswith("hatchling"):
        wheel = _table(tool, "hatch", "build", "targets", "wheel")
        paths = _strings(wheel.get("packages")) or _strings(wheel.get("only-include"))
        declared = [m for p in paths if (m := _module_at(root / p)) is not None]
        how = "hatch's wheel packages"
    elif backend.startswith("setuptools"):
        config = _table(tool, "setuptools")
        package_dir = _table(config, "package-dir").get("", "")
        base = root / str(package_dir)
        names = _strings(config.get("packages")) + _strings(config.get("py-modules"))
        declared = _named(base, names, root)
        find = _table(config, "packages", "find")
        if not declared and find:
            for where in _strings(find.get("where")) or ["."]:
                include = _strings(find.get("include")) or ["*"]
                candidates = layout_modules(root / where, namespaces=bool(find.get("namespaces", True)))
                declared += [m for m in candidates if any(fnmatch.fnmatch(m.name, p) for p in include)]
        how = "setuptools' packages"
    elif backend.startswith("pdm"):
        config = _table(tool, "pdm", "build")
        base = root / str(config.get("package-dir", "src" if (root / "src").is_dir() else "."))
        declared = _named(base, _strings(config.get("includes")), root)
        how = "pdm's includes"
    elif backend.startswith("poetry"):
        for item in _table(tool, "poetry").get("packages", []) or []:
            if isinstance(item, dict) and isinstance(item.get("include"), str):
                declared += _named(root / str(item.get("from", ".")), [item["include"]], root)
        how = "poetry's packages"
    elif backend.startswith("flit"):
        name = _table(tool, "flit", "module").get("name") or package.name.replace("-", "_")
        declared, how = _named(root / "src", [str(name)], root) or _named(root, [str(name)], root), "flit"
    if declared:
        return SourceModules(tuple(dict.fromkeys(declared)), how)
    return _layout(root)


def _layout(root: Path) -> SourceModules:
    src = root / "src"
    if src.is_dir() and not (src / "__init__.py").is_file():
        found = layout_modules(src, namespaces=True)
        if found:
            return SourceModules(tuple(found), "the src layout")
    found = layout_modules(root, namespaces=False)
    if found:
        return SourceModules(tuple(found), "the packages beside pyproject.toml")
    return SourceModules((), "no package or module in the source")
