"""What `dockyard init` reads from a uv project: pyproject.toml, the workspace, uv.lock and the sources.

Read the way uv reads them: a project is packaged when `[tool.uv] package` says so or it has a
`[build-system]`; a workspace member's lock and build context are at the workspace root; the package's
import name follows the build backend's settings (`[tool.uv.build-backend] module-name`) or the
normalised project name. Nothing here decides what the image needs: that is `dockyard.init.infer`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard import git
from dockyard.errors import DockyardError, UsageError
from dockyard.project import workspace as workspaces

# Directories that never hold the application's own importable code (nor go into the image).
NOT_SOURCE = frozenset(
    {"tests", "test", "testing", "docs", "doc", "examples", "example", "bench", "benchmarks", "build",
     "dist", "node_modules", "site-packages", "venv", "env", "htmlcov", "__pycache__", "typings", "stubs"}
)  # fmt: skip
# Top-level modules of a virtual project that are tooling, not the application.
NOT_APP_MODULES = frozenset({"noxfile.py", "tasks.py", "conftest.py", "setup.py", "fabfile.py"})


@dataclass(frozen=True)
class LockedPackage:
    """One `[[package]]` of uv.lock, as far as init needs it."""

    name: str  # canonical (PEP 503)
    version: str
    source: Mapping[str, Any]
    wheels: tuple[tuple[str, int], ...]  # (file name, size in bytes)
    has_sdist: bool

    @property
    def source_kind(self) -> str:
        """registry, git, url, path, directory, editable, virtual or workspace (`editable`/`virtual`
        of the workspace's own members are reported by the lock the same way)."""
        for kind in ("registry", "git", "url", "path", "directory", "editable", "virtual"):
            if kind in self.source:
                return kind
        return "unknown"


@dataclass(frozen=True)
class Lock:
    path: Path
    members: tuple[str, ...]  # `[manifest] members`: the workspace's packages (canonical names)
    packages: Mapping[str, tuple[LockedPackage, ...]]

    def get(self, name: str) -> LockedPackage | None:
        found = self.packages.get(canonical(name))
        return found[0] if found else None


@dataclass(frozen=True)
class Workspace:
    root: Path
    members: tuple[Path, ...]  # absolute member directories, sorted (the root itself when it is one)


@dataclass(frozen=True)
class Project:
    directory: Path
    data: Mapping[str, Any]  # the parsed pyproject.toml
    text: str  # pyproject.toml as written
    name: str
    version: str | None
    description: str | None
    requires_python: str | None
    python_version_file: str | None  # first line of .python-version (project, else workspace root)
    packaged: bool
    build_backend: str | None
    module_name: str | None  # the importable package of a packaged project
    module_root: str | None  # directory holding it, relative to the project ("src" or ".")
    readme: str | None  # relative path the build backend reads
    license_files: tuple[str, ...]
    scripts: Mapping[str, str]
    dependencies: tuple[str, ...]
    workspace: Workspace | None
    lock: Lock | None
    uv_sources: Mapping[str, Any] = field(default_factory=dict)
    dockyard_table: Mapping[str, Any] | None = None
    uv_required_version: str | None = None
    urls: Mapping[str, str] = field(default_factory=dict)

    @property
    def context(self) -> Path:
        """The build context: the workspace root for a member, else the project itself."""
        return self.workspace.root if self.workspace else self.directory

    @property
    def lock_path(self) -> Path:
        return self.context / "uv.lock"

    @property
    def relative(self) -> str:
        """The project's directory relative to the context ("." for a project of its own)."""
        rel = self.directory.relative_to(self.context).as_posix()
        return rel or "."

    @property
    def import_name(self) -> str:
        return self.module_name or canonical(self.name).replace("-", "_")

    def in_context(self, path: str) -> str:
        """A project-relative path as the context sees it."""
        return path if self.relative == "." else f"{self.relative}/{path}"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _load_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML ({exc}): fix it first") from None


def read_lock(path: Path) -> Lock | None:
    if not path.is_file():
        return None
    data, _ = _load_toml(path)
    packages: dict[str, list[LockedPackage]] = {}
    for raw in data.get("package", []):
        wheels = tuple(
            (
                str(w.get("url", w.get("path", w.get("filename", "")))).rsplit("/", 1)[-1],
                int(w.get("size", 0)),
            )
            for w in raw.get("wheels", ())
        )
        package = LockedPackage(
            name=canonical(raw["name"]),
            version=str(raw.get("version", "")),
            source=raw.get("source", {}),
            wheels=wheels,
            has_sdist="sdist" in raw,
        )
        packages.setdefault(package.name, []).append(package)
    members = tuple(canonical(m) for m in data.get("manifest", {}).get("members", ()))
    return Lock(
        path=path,
        members=members,
        packages={k: tuple(v) for k, v in packages.items()},
    )


def find_workspace(directory: Path) -> Workspace | None:
    """The uv workspace `directory` belongs to, as uv finds it (`dockyard.project.workspace.find`);
    None for a project of its own, or a workspace whose only member is the project itself."""
    try:
        found = workspaces.find(directory)
    except DockyardError:
        return None
    members = tuple(sorted(m.directory for m in found.members))
    if not found.declared or members == (directory,):
        return None
    return Workspace(found.root, members)


def _python_version_file(directory: Path, workspace: Workspace | None) -> str | None:
    for where in (directory, workspace.root if workspace else None):
        if where is None:
            continue
        path = where / ".python-version"
        if path.is_file():
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if lines and not lines[0].startswith("#"):
                return lines[0]
    return None


def _module(directory: Path, data: Mapping[str, Any], name: str) -> tuple[str | None, str | None]:
    """(import name, directory holding it) of a packaged project's own package."""
    tool = data.get("tool", {})
    backend = tool.get("uv", {}).get("build-backend", {})
    normalized = canonical(name).replace("-", "_")
    if isinstance(backend, dict) and (backend.get("module-name") or backend.get("module-root") is not None):
        module = backend.get("module-name") or normalized
        root = backend.get("module-root", "src")
        module = module if isinstance(module, str) else str(module[0])
        return module.split(".")[0], (root or ".")
    hatch = tool.get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {}).get("packages")
    if isinstance(hatch, list) and hatch:
        path = Path(str(hatch[0]))
        return path.name, (path.parent.as_posix() if path.parent != Path() else ".")
    for root in ("src", "."):
        if (directory / root / normalized).is_dir():
            return normalized, root
    src = directory / "src"
    if src.is_dir():
        packages = sorted(p.name for p in src.iterdir() if (p / "__init__.py").is_file())
        if len(packages) == 1:
            return packages[0], "src"
    return None, None


def _readme(data: Mapping[str, Any]) -> str | None:
    readme = data.get("project", {}).get("readme")
    if isinstance(readme, str):
        return readme
    if isinstance(readme, dict) and isinstance(readme.get("file"), str):
        return str(readme["file"])
    return None


def _license_files(directory: Path, data: Mapping[str, Any]) -> tuple[str, ...]:
    project = data.get("project", {})
    found: list[str] = []
    license_field = project.get("license")
    if isinstance(license_field, dict) and isinstance(license_field.get("file"), str):
        found.append(license_field["file"])
    for pattern in project.get("license-files", []) or []:
        found.extend(sorted(p.relative_to(directory).as_posix() for p in directory.glob(pattern)))
    return tuple(dict.fromkeys(found))


def read_project(directory: Path) -> Project:
    """The uv project in `directory`; a directory that is not one is refused with one line."""
    directory = directory.resolve()
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    pyproject = directory / "pyproject.toml"
    if not pyproject.is_file():
        raise UsageError(f"{directory} has no pyproject.toml: not a uv project; run `uv init` there first")
    data, text = _load_toml(pyproject)
    project = data.get("project")
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        if isinstance(data.get("tool", {}).get("uv", {}).get("workspace"), dict):
            raise UsageError(
                f"{pyproject} is a workspace root with no [project]: run `dockyard init MEMBER` on the "
                "member to containerize"
            )
        raise UsageError(
            f"{pyproject} has no [project] table with a name: not a uv project; run `uv init` first "
            "(or convert it, e.g. `uvx migrate-to-uv`)"
        )
    tool = data.get("tool", {})
    uv = tool.get("uv", {}) if isinstance(tool.get("uv"), dict) else {}
    explicit = uv.get("package")
    packaged = bool(explicit) if isinstance(explicit, bool) else "build-system" in data
    name = project["name"]
    module_name, module_root = _module(directory, data, name) if packaged else (None, None)
    workspace = find_workspace(directory)
    lock = read_lock((workspace.root if workspace else directory) / "uv.lock")
    scripts = project.get("scripts", {})
    dockyard_table = tool.get("dockyard")
    required = uv.get("required-version")
    if workspace and workspace.root != directory and not required:
        root_data, _ = _load_toml(workspace.root / "pyproject.toml")
        required = root_data.get("tool", {}).get("uv", {}).get("required-version")
    return Project(
        directory=directory,
        data=data,
        text=text,
        name=name,
        version=project.get("version") if isinstance(project.get("version"), str) else None,
        description=project.get("description") if isinstance(project.get("description"), str) else None,
        requires_python=project.get("requires-python"),
        python_version_file=_python_version_file(directory, workspace),
        packaged=packaged,
        build_backend=data.get("build-system", {}).get("build-backend"),
        module_name=module_name,
        module_root=module_root,
        readme=_readme(data),
        license_files=_license_files(directory, data),
        scripts={str(k): str(v) for k, v in scripts.items()} if isinstance(scripts, dict) else {},
        dependencies=tuple(str(d) for d in project.get("dependencies", []) or []),
        workspace=workspace,
        lock=lock,
        uv_sources=uv.get("sources", {}) if isinstance(uv.get("sources"), dict) else {},
        dockyard_table=dockyard_table if isinstance(dockyard_table, dict) else None,
        uv_required_version=required if isinstance(required, str) else None,
        urls={str(k): str(v) for k, v in (project.get("urls") or {}).items()},
    )


# --- the sources ------------------------------------------------------------------------------------


def tree_files(directory: Path) -> list[str]:
    """Files of the project (relative, POSIX): the ones git knows and does not ignore, else a walk
    that skips hidden directories, virtual environments and caches."""
    try:
        return sorted(git.list_files(directory))
    except DockyardError:
        pass
    found = []
    for path in _walk(directory):
        found.append(path.relative_to(directory).as_posix())
    return sorted(found)


def _walk(directory: Path) -> Iterator[Path]:
    for entry in sorted(directory.iterdir()):
        if entry.is_symlink():
            continue
        if entry.is_dir():
            if entry.name.startswith(".") or entry.name in NOT_SOURCE or (entry / "pyvenv.cfg").exists():
                continue
            yield from _walk(entry)
        elif entry.is_file():
            yield entry


def app_paths(project: Project, files: list[str]) -> list[str]:
    """What a virtual project's image holds: its top-level modules and packages (project-relative;
    packages end in "/"), not tests, docs, tooling or hidden files."""
    top: dict[str, None] = {}
    for name in files:
        first, sep, rest = name.partition("/")
        if not sep:
            if name.endswith(".py") and name not in NOT_APP_MODULES and not name.startswith("test_"):
                top[name] = None
        elif not first.startswith(".") and first not in NOT_SOURCE and rest.endswith(".py"):
            top[f"{first}/"] = None
    return sorted(top)


def python_sources(project: Project, files: list[str]) -> list[str]:
    """The application's Python files (project-relative), the ones inference reads."""
    if project.packaged and project.module_name:
        prefix = "" if project.module_root in (None, ".") else f"{project.module_root}/"
        package = f"{prefix}{project.module_name}/"
        single = f"{prefix}{project.module_name}.py"
        return [f for f in files if (f.startswith(package) and f.endswith(".py")) or f == single]
    roots = app_paths(project, files)
    return [
        f
        for f in files
        if f.endswith(".py") and any(f == r or (r.endswith("/") and f.startswith(r)) for r in roots)
    ]


def module_of(path: str, project: Project) -> str:
    """`src/pkg/web/main.py` -> `pkg.web.main` (relative to the module root)."""
    parts = Path(path).with_suffix("").parts
    if project.packaged and project.module_root not in (None, "."):
        root_parts = Path(str(project.module_root)).parts
        parts = parts[len(root_parts) :]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)
