"""uv.lock: keeping it current and committed, and reading which packages it says the runtime needs.

The runtime set is the closure of the project's own dependencies (plus the extras and groups the
image installs), with markers evaluated for the image's interpreter; the dev-only set is what the
project's dependency groups and other extras add on top. Both come from the lock, never from a list.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker

from dockyard import git, process
from dockyard.errors import CommandError, ConfigError, DockyardError


def canonical(name: str) -> str:
    """PEP 503 normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class LockStale(DockyardError):
    """uv.lock is missing, out of date, or not committed."""


def lock(project_dir: Path) -> str:
    """Run `uv lock`; returns uv's summary line."""
    done = process.run(["uv", "lock"], cwd=project_dir, timeout=600, what="uv lock")
    return done.output.splitlines()[-1] if done.output else "uv.lock written"


def check(project_dir: Path) -> str:
    """Raise LockStale unless uv.lock exists, matches pyproject.toml, is tracked and committed."""
    lock_file = project_dir / "uv.lock"
    if not lock_file.is_file():
        raise LockStale(f"{lock_file} does not exist: run `invoke lock` and commit uv.lock")
    try:
        process.run(["uv", "lock", "--check"], cwd=project_dir, timeout=600, what="uv lock --check")
    except CommandError as exc:
        if exc.returncode == 127:
            raise
        raise LockStale(
            "uv.lock is out of date with pyproject.toml: run `invoke lock` and commit uv.lock",
            detail=exc.output,
        ) from None
    if not git.is_tracked(project_dir, "uv.lock"):
        raise LockStale("uv.lock is not tracked by git: run `git add uv.lock` and commit it")
    if git.has_uncommitted_changes(project_dir, "uv.lock"):
        raise LockStale("uv.lock has uncommitted changes: commit it so builds are reproducible")
    return "uv.lock is current and committed"


@dataclass(frozen=True)
class LockedPackage:
    name: str  # canonical
    version: str
    dependencies: tuple[dict[str, Any], ...] = ()
    optional: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    groups: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    is_project: bool = False  # the workspace's own (editable/virtual/directory) package


@dataclass(frozen=True)
class LockedSets:
    runtime: dict[str, str]  # canonical name -> version the image must have
    dev_only: dict[str, str]  # canonical name -> version: in the lock, but not for the runtime


def read_lock(lock_file: Path) -> dict[str, list[LockedPackage]]:
    try:
        data = tomllib.loads(lock_file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{lock_file} does not exist: run `invoke lock`") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{lock_file}: not valid TOML ({exc}): run `invoke lock`") from None
    packages: dict[str, list[LockedPackage]] = {}
    for raw in data.get("package", []):
        source = raw.get("source", {})
        package = LockedPackage(
            name=canonical(raw["name"]),
            version=str(raw.get("version", "")),
            dependencies=tuple(raw.get("dependencies", ())),
            optional={k: tuple(v) for k, v in raw.get("optional-dependencies", {}).items()},
            groups={k: tuple(v) for k, v in raw.get("dev-dependencies", {}).items()},
            is_project=any(k in source for k in ("editable", "virtual", "directory")),
        )
        packages.setdefault(package.name, []).append(package)
    return packages


def locked_sets(
    lock_file: Path,
    project: str,
    *,
    environment: Mapping[str, str],
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
) -> LockedSets:
    """The runtime and dev-only package sets for `project`, for an interpreter described by
    `environment` (PEP 508 marker variables such as python_full_version, sys_platform)."""
    packages = read_lock(lock_file)
    roots = packages.get(canonical(project))
    if not roots:
        raise ConfigError(f"{lock_file} has no package {project!r}: run `invoke lock`")
    root = roots[0]
    runtime_edges = list(root.dependencies)
    for extra in extras:
        runtime_edges += root.optional.get(extra, ())
    for group in groups:
        runtime_edges += root.groups.get(group, ())
    runtime = _closure(packages, runtime_edges, environment)
    runtime[root.name] = root.version
    every_edge = list(runtime_edges)
    for edges in (*root.optional.values(), *root.groups.values()):
        every_edge += edges
    everything = _closure(packages, every_edge, environment)
    dev_only = {name: v for name, v in everything.items() if name not in runtime}
    return LockedSets(runtime=runtime, dev_only=dev_only)


def _applies(edge: Mapping[str, Any], environment: Mapping[str, str], extra: str = "") -> bool:
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
