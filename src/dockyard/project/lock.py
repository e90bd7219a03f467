"""uv.lock: keeping it current and committed, and reading which packages it says the runtime needs.

The runtime set is the closure of the project's own dependencies (plus the extras and groups the
image installs), with markers evaluated for the image's interpreter; the dev-only set is what the
project's dependency groups and other extras add on top. Both come from the lock, never from a list.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import git, process
from dockyard.errors import CommandError, CommandTimeout, ConfigError, DockyardError

if TYPE_CHECKING:  # packaging is imported where a marker or a specifier is read
    from packaging.specifiers import SpecifierSet


def canonical(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class LockStale(DockyardError):
    """uv.lock is missing, out of date, or not committed (the lock's fault: a check FAILs)."""


class LockCheckFailed(DockyardError):
    """uv could not tell whether uv.lock is current (no interpreter, no network, a refusing shim...):
    not the lock's fault, so a check reports an ERROR with uv's own reason."""


# Run uv from a directory of no project: a pyenv or asdf shim for `uv` reads `.python-version` from its
# working directory and refuses to start when that version is not installed. uv itself is pointed at
# the project with `--directory`.
_NEUTRAL_CWD = Path("/")
UV_TIMEOUT = 600.0
_STALE = re.compile(
    r"needs to be updated|lockfile at .* needs to be updated|missing.*lockfile", re.IGNORECASE
)
_OFFLINE = re.compile(r"network (was|is) disabled|--offline|offline mode", re.IGNORECASE)
_NETWORK = re.compile(
    r"error sending request|dns error|failed to lookup address|could not connect|connection refused"
    r"|client error \(connect\)|timed out|operation timed out|network is unreachable|tls handshake"
    r"|certificate|failed to fetch|request failed after",
    re.IGNORECASE,
)
_INTERPRETER = re.compile(
    r"no interpreter found|failed to inspect python interpreter|is incompatible with the project's python"
    r"|pyenv: |no python .* found|python interpreter",
    re.IGNORECASE,
)
_UNRESOLVABLE = re.compile(r"no solution found|requirements are unsatisfiable", re.IGNORECASE)


def uv_binary() -> str:
    """The uv to run: DOCKYARD_UV, else `uv` on PATH."""
    return os.environ.get("DOCKYARD_UV") or shutil.which("uv") or "uv"


def _uv(
    root: Path, args: Sequence[str], *, python: str | None = None, timeout: float = UV_TIMEOUT
) -> process.Completed:
    argv = [uv_binary(), "--directory", str(root), *args, "--no-python-downloads"]
    if python:
        argv += ["--python", python]
    env = {"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    return process.run(argv, cwd=_NEUTRAL_CWD, env=env, timeout=timeout, check=False)


def _reason(done: process.Completed) -> str:
    """uv's own error, on one line: its `error:` line and the causes under it."""
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    picked = [ln for ln in lines if ln.lower().startswith(("error:", "cause:", "caused by:", "pyenv:"))]
    text = "; ".join(ln.removeprefix("error: ") for ln in (picked or lines[-3:])[:4])
    return text or f"uv exited {done.returncode} with no output"


def _run_uv(
    root: Path, args: Sequence[str], *, offline: bool, network: bool = True, timeout: float = UV_TIMEOUT
) -> process.Completed:
    """`uv ARGS` for the workspace at `root`, as independent of this machine as uv allows: offline
    first (falling back to the network only when uv needs it, and `network` allows it), no Python
    downloads, and another interpreter when the one uv finds (`.python-version`, a shim) cannot be
    used. `timeout` bounds each uv run."""
    python: str | None = None

    def attempt(arguments: list[str]) -> process.Completed:
        nonlocal python
        done = _uv(root, arguments, python=python, timeout=timeout)
        if done.returncode != 0 and python is None and _INTERPRETER.search(done.stderr + done.stdout):
            python = _compatible_python(root, done.stderr + done.stdout)
            if python is not None:
                done = _uv(root, arguments, python=python, timeout=timeout)
        return done

    if offline:
        done = attempt([*args, "--offline"])
        text = done.stderr + done.stdout
        if done.returncode == 0 or not network or not (_OFFLINE.search(text) or _NETWORK.search(text)):
            return done
    return attempt(list(args))


def lock(project_dir: Path) -> str:
    """Run `uv lock` for the workspace at `project_dir`; returns uv's summary line."""
    done = _run_uv(project_dir, ["lock"], offline=False)
    if done.returncode != 0:
        raise CommandError(f"uv lock failed: {_reason(done)}", argv=done.argv, returncode=done.returncode,
                           output=done.output)  # fmt: skip
    return done.output.splitlines()[-1] if done.output else "uv.lock written"


def check(project_dir: Path, *, lock_command: str = "dockyard lock") -> str:
    """Raise LockStale unless the workspace's uv.lock exists, matches pyproject.toml, is tracked and
    committed; LockCheckFailed when uv could not tell. `lock_command` is the advice's command."""
    current(project_dir, lock_command=lock_command)
    if not git.is_tracked(project_dir, "uv.lock"):
        raise LockStale("uv.lock is not tracked by git: run `git add uv.lock` and commit it")
    if git.has_uncommitted_changes(project_dir, "uv.lock"):
        raise LockStale("uv.lock has uncommitted changes: commit it so builds are reproducible")
    return "uv.lock is current and committed"


def current(
    project_dir: Path,
    *,
    lock_command: str = "dockyard lock",
    network: bool = True,
    timeout: float = UV_TIMEOUT,
) -> str:
    """Raise LockStale unless the workspace's uv.lock exists and matches pyproject.toml (uv's verdict,
    run as independently of this machine as uv allows: see `_run_uv`); LockCheckFailed when uv could
    not tell (no interpreter, no network when it needs one, `network=False` and it needs one, slower
    than `timeout`). Whether uv.lock is committed is `check`'s business."""
    lock_file = project_dir / "uv.lock"
    if not lock_file.is_file():
        raise LockStale(f"{lock_file} does not exist: run `{lock_command}` and commit uv.lock")
    try:
        done = _run_uv(project_dir, ["lock", "--check"], offline=True, network=network, timeout=timeout)
    except CommandError as exc:  # uv is not installed
        raise LockCheckFailed(f"uv could not check uv.lock: {exc.message}") from None
    except CommandTimeout:
        raise LockCheckFailed(f"uv could not check uv.lock within {timeout:.0f} s") from None
    text = done.stderr + done.stdout
    if done.returncode != 0:
        reason = _reason(done)
        if _STALE.search(text):
            raise LockStale(
                f"uv.lock is out of date with pyproject.toml: run `{lock_command}` and commit uv.lock"
            )
        if _UNRESOLVABLE.search(text) and not (_NETWORK.search(text) or _OFFLINE.search(text)):
            raise LockStale(
                f"uv.lock does not match pyproject.toml, and uv cannot resolve it anew ({reason}): fix "
                f"the requirements, then run `{lock_command}`"
            )
        raise LockCheckFailed(f"uv could not check uv.lock: {reason}")
    return "uv.lock matches pyproject.toml"


def _compatible_python(root: Path, message: str = "") -> str | None:
    """An interpreter satisfying the workspace's requires-python (pyproject.toml's, the lock's, and any
    uv's message names), found without shims: this Python, then python3.X on PATH (shim directories
    skipped), then pyenv's, uv's and asdf's own installations."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet  # noqa: PLC0415

    wanted = SpecifierSet()
    texts = re.findall(r"requirement: `([^`]+)`", message)
    for path, keys in ((root / "pyproject.toml", ("project", "requires-python")), (root / "uv.lock", ())):
        try:
            data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for key in keys or ("requires-python",):
            data = data.get(key, {}) if isinstance(data, dict) else {}
        if isinstance(data, str):
            texts.append(data)
    for text in texts:
        try:
            wanted &= SpecifierSet(text)
        except InvalidSpecifier:
            continue
    for candidate, named in _python_candidates():
        if named is not None and not _may_satisfy(named, wanted):
            continue  # its name says the version: no need to start it
        version = _python_version(candidate)
        if version is not None and wanted.contains(version, prereleases=True):
            return candidate
    return None


def _may_satisfy(named: str, wanted: SpecifierSet) -> bool:
    """Whether some release of `named` (3.13, or 3.13.0) can satisfy `wanted`."""
    if named.count(".") >= 2:
        return wanted.contains(named, prereleases=True)
    return any(wanted.contains(f"{named}.{patch}", prereleases=True) for patch in range(0, 40))


def _python_candidates() -> list[tuple[str, str | None]]:
    """Interpreters to try, with the version their path names (None: unknown until started)."""
    found: list[tuple[str, str | None]] = [(sys.executable, None)]
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or "shims" in Path(directory).parts:
            continue
        for path in sorted(Path(directory).glob("python3.*"), reverse=True):
            if match := re.fullmatch(r"python(3\.\d+)", path.name):
                found.append((str(path), match.group(1)))
    homes = [
        Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions",
        Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or Path.home() / ".local/share/uv/python"),
        Path.home() / ".asdf/installs/python",
    ]
    for home in homes:
        if home.is_dir():
            for path in sorted(home.glob("*/bin/python3"), reverse=True):
                match = re.search(r"(\d+\.\d+(\.\d+)?)", path.parent.parent.name)
                found.append((str(path), match.group(1) if match else None))
    return list(dict.fromkeys(found))


def _python_version(path: str) -> str | None:
    try:
        done = process.run(
            [path, "-c", "import platform; print(platform.python_version())"], timeout=15, check=False
        )
    except DockyardError:
        return None
    text = done.stdout.strip()
    return text if done.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\S*", text) else None


@dataclass(frozen=True)
class LockedPackage:
    name: str  # canonical
    version: str
    dependencies: tuple[dict[str, Any], ...] = ()
    optional: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    groups: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    is_project: bool = False  # the workspace's own (editable/virtual/directory) package
    virtual: bool = False  # a virtual project: uv installs its dependencies, never itself
    path: str | None = None  # a workspace package's directory, relative to the workspace root


@dataclass(frozen=True)
class LockedSets:
    runtime: dict[str, str]  # canonical name -> version the image must have
    dev_only: dict[str, str]  # canonical name -> version: in the lock, but not for the runtime


@dataclass(frozen=True)
class Lock:
    """What uv.lock says: its packages, and the dependency groups of a workspace root with no project."""

    packages: dict[str, list[LockedPackage]]
    root_groups: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)

    @property
    def root_project(self) -> LockedPackage | None:
        """The workspace root's own package (source path "."), when the root is a project."""
        return next((p for ps in self.packages.values() for p in ps if p.path == "."), None)


def read_lock(lock_file: Path, *, lock_command: str = "dockyard lock") -> Lock:
    try:
        data = tomllib.loads(lock_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{lock_file} does not exist: run `{lock_command}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{lock_file}: cannot read it ({exc}): run `{lock_command}`") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{lock_file}: not valid TOML ({exc}): run `{lock_command}`") from None
    packages: dict[str, list[LockedPackage]] = {}
    for raw in data.get("package", []):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ConfigError(f"{lock_file}: a [[package]] entry has no name: run `{lock_command}`")
        source = raw.get("source", {}) if isinstance(raw.get("source"), dict) else {}
        local = next((str(source[k]) for k in ("editable", "virtual", "directory") if k in source), None)
        package = LockedPackage(
            name=canonical(raw["name"]),
            version=str(raw.get("version", "")),
            dependencies=tuple(raw.get("dependencies", ())),
            optional={k: tuple(v) for k, v in raw.get("optional-dependencies", {}).items()},
            groups={k: tuple(v) for k, v in raw.get("dev-dependencies", {}).items()},
            is_project=local is not None,
            virtual="virtual" in source,
            path=local,
        )
        packages.setdefault(package.name, []).append(package)
    manifest = data.get("manifest", {}) if isinstance(data.get("manifest"), dict) else {}
    groups = manifest.get("dependency-groups", {})
    root_groups = {k: tuple(v) for k, v in groups.items()} if isinstance(groups, dict) else {}
    return Lock(packages, root_groups)


def locked_sets(
    lock_file: Path,
    project: str,
    *,
    environment: Mapping[str, str],
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
    lock_command: str = "dockyard lock",
    locked: Lock | None = None,
) -> LockedSets:
    """The runtime and dev-only package sets of `project` (a workspace member, read from the
    workspace's one lock), for an interpreter described by `environment` (PEP 508 marker variables).

    Runtime: the package itself (unless virtual: uv never installs a virtual project) and the closure
    of its dependencies, plus the extras and groups the image installs. Dev-only: what any other group
    or extra of the package adds, and the workspace root's own groups, which `uv sync` installs by
    default from the root. `locked` is the lock file already read, if it was.
    """
    if locked is None:
        locked = read_lock(lock_file, lock_command=lock_command)
    packages = locked.packages
    roots = packages.get(canonical(project))
    if not roots:
        raise ConfigError(f"{lock_file} has no package {project!r}: run `{lock_command}`")
    root = roots[0]
    runtime_edges = list(root.dependencies)
    for extra in extras:
        runtime_edges += root.optional.get(extra, ())
    for group in groups:
        runtime_edges += root.groups.get(group, ())
    runtime = _closure(packages, runtime_edges, environment)
    if not root.virtual:
        runtime[root.name] = root.version
    every_edge = list(runtime_edges)
    for edges in (*root.optional.values(), *root.groups.values(), *locked.root_groups.values()):
        every_edge += edges
    workspace_root = locked.root_project
    if workspace_root is not None and workspace_root.name != root.name:
        for edges in workspace_root.groups.values():
            every_edge += edges
    everything = _closure(packages, every_edge, environment)
    dev_only = {name: v for name, v in everything.items() if name not in runtime}
    return LockedSets(runtime=runtime, dev_only=dev_only)


def _applies(edge: Mapping[str, Any], environment: Mapping[str, str], extra: str = "") -> bool:
    from packaging.markers import InvalidMarker, Marker  # noqa: PLC0415

    text = edge.get("marker")
    if not text:
        return True
    try:
        return Marker(text).evaluate({**environment, "extra": extra})
    except InvalidMarker:
        return True  # keep the package: a wrong guess shows as a finding, not a silent gap


def _closure(
    packages: Mapping[str, list[LockedPackage]],
    edges: Iterable[Mapping[str, Any]],
    environment: Mapping[str, str],
) -> dict[str, str]:
    found: dict[str, str] = {}
    pending = [dict(edge) for edge in edges]
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    while pending:
        edge = pending.pop()
        if not _applies(edge, environment):
            continue
        name = canonical(edge["name"])
        candidates = packages.get(name, [])
        if "version" in edge:
            candidates = [p for p in candidates if p.version == edge["version"]] or candidates
        if not candidates:
            continue
        package = candidates[0]
        key = (package.name, package.version, tuple(edge.get("extra", ())))
        if key in seen:
            continue
        seen.add(key)
        if not package.virtual:  # uv installs a virtual package's dependencies, never the package
            found[package.name] = package.version
        pending += package.dependencies
        for extra in edge.get("extra", ()):
            pending += package.optional.get(extra, ())
    return found


def marker_environment(python_version: str, machine: str = "x86_64") -> dict[str, str]:
    """PEP 508 marker variables of a Linux CPython `python_version` (e.g. "3.13.5")."""
    major_minor = ".".join(python_version.split(".")[:2])
    return {
        "python_version": major_minor,
        "python_full_version": python_version,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": python_version,
        "os_name": "posix",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": machine,
        "platform_release": "",
        "platform_version": "",
    }
