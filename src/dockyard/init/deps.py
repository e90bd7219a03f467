"""What the locked dependencies ask of the image: the lock flag, system libraries, a size budget.

All of it is read from uv.lock for the image's Python on Linux: the runtime closure (markers
evaluated), whether each package has a wheel for that target (else it is built from source and may
need a compiler and headers), and the wheels' sizes.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from dockyard.errors import ConfigError, UsageError
from dockyard.init.model import DockyardSource, Fact, SystemPackage
from dockyard.init.project import LockedPackage, Project, canonical
from dockyard.project import lock as locks

GLIBC_MINOR = 41  # Debian trixie, under today's python:*-slim images
BASE_ESTIMATE = 130_000_000  # python:3.x-slim, uncompressed, rounded up
UNPACKED_FACTOR = 3  # a wheel's installed size (with byte-code) against its compressed size
SYSTEM_PACKAGE_ESTIMATE = 10_000_000
BUDGET_STEP = 50_000_000

# Packages that need Debian libraries: (runtime packages, build-time packages) when built from source.
_SYSTEM_LIBRARIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "psycopg2": (("libpq5",), ("gcc", "libc6-dev", "libpq-dev")),
    "mysqlclient": (("libmariadb3",), ("gcc", "libc6-dev", "pkg-config", "libmariadb-dev")),
    "pillow": (("libjpeg62-turbo", "zlib1g"), ("gcc", "libc6-dev", "libjpeg62-turbo-dev", "zlib1g-dev")),
    "lxml": (("libxml2", "libxslt1.1"), ("gcc", "libc6-dev", "libxml2-dev", "libxslt1-dev")),
}


def requirement_name(text: str) -> str:
    return canonical(re.split(r"[\s<>=!~;\[(@]", text.strip(), maxsplit=1)[0])


def target_tags(python: str, machine: str | None = None) -> set[Tag]:
    """Wheel tags a CPython `python` ("3.13") on glibc Linux of this machine's architecture accepts."""
    major, minor = (int(part) for part in python.split("."))
    raw = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(raw, raw)
    platforms = [f"manylinux_2_{m}_{arch}" for m in range(GLIBC_MINOR, 4, -1)]
    platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", f"linux_{arch}"]
    tags = set(cpython_tags((major, minor), platforms=platforms))
    tags |= set(compatible_tags((major, minor), platforms=platforms))
    return tags


def wheel_for(package: LockedPackage, tags: set[Tag]) -> tuple[str, int] | None:
    """The locked wheel (file name, size) the target installs; None: built from the sdist."""
    for filename, size in package.wheels:
        try:
            _, _, _, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        if wheel_tags & tags:
            return filename, size
    return None


def runtime_set(project: Project, python: str) -> dict[str, str]:
    """The locked runtime closure (canonical name -> version) for the image's Python, the project's
    own package included; the direct dependencies when there is no lock yet."""
    if project.lock is None:
        names = {requirement_name(d): "" for d in project.dependencies}
        return {canonical(project.name): project.version or "", **names}
    environment = locks.marker_environment(f"{python}.0", platform.machine() or "x86_64")
    try:
        return locks.locked_sets(project.lock.path, project.name, environment=environment).runtime
    except ConfigError:
        raise UsageError(
            f"{project.lock.path} has no package {project.name!r}: it is stale; run `uv lock` first"
        ) from None


def lock_flag(
    project: Project, runtime: Mapping[str, str], adding: DockyardSource | None
) -> tuple[Fact, list[SystemPackage]]:
    """--locked, unless uv.lock holds a path the build cannot see (then --frozen, and why); refuse a
    runtime dependency the build could not install; `git` for runtime git sources."""
    own = {*(project.lock.members if project.lock else ()), canonical(project.name)}
    invisible: list[str] = []
    build: list[SystemPackage] = []
    for name, packages in (project.lock.packages if project.lock else {}).items():
        for package in packages:
            kind = package.source_kind
            if name in own or kind in ("registry", "virtual"):
                continue
            where = next(iter(package.source.values()), "?")
            if kind in ("path", "directory", "editable"):
                if name in runtime:
                    raise UsageError(
                        f"runtime dependency {name} comes from the path {where}, which the image cannot "
                        "build from the lock alone: make it a workspace member or publish it"
                    )
                invisible.append(f"{name} ({where})")
            elif kind == "git" and name in runtime:
                build.append(SystemPackage("git", f"uv fetches {name} from git"))
    if adding is not None and adding.kind in ("path", "wheel"):
        invisible.append(f"dockyard ({adding.shown})")
    if invisible:
        why = (
            f"uv.lock holds {', '.join(sorted(invisible))}, a path the build cannot see: --frozen installs "
            "exactly the lock, and `invoke lock --check` keeps it current"
        )
        return Fact("lock", "uv.lock, --frozen", why), build
    where = "at the workspace root" if project.workspace else "next to pyproject.toml"
    return Fact("lock", "uv.lock, --locked", f"{where}; the build fails if it is stale"), build


def system_packages(
    project: Project, runtime: Mapping[str, str], python: str
) -> tuple[list[SystemPackage], list[SystemPackage], list[str]]:
    """(runtime, build-time) Debian packages the locked dependencies need, and notes."""
    runtime_pkgs: list[SystemPackage] = []
    build_pkgs: list[SystemPackage] = []
    notes: list[str] = []
    if "psycopg" in runtime and not ({"psycopg-binary", "psycopg-c"} & set(runtime)):
        runtime_pkgs.append(
            SystemPackage("libpq5", "psycopg without its binary extra loads libpq at runtime")
        )
    if project.lock is None:
        return runtime_pkgs, build_pkgs, notes
    tags = target_tags(python)
    for name in sorted(runtime):
        package = project.lock.get(name)
        if package is None or package.source_kind != "registry" or not package.has_sdist:
            continue
        if wheel_for(package, tags) is not None:
            continue
        why = f"uv.lock has no {name} wheel for CPython {python} on Linux, so it is built from source"
        if name in _SYSTEM_LIBRARIES:
            run, build = _SYSTEM_LIBRARIES[name]
            runtime_pkgs += [SystemPackage(p, f"{name} links it (built from source)") for p in run]
            build_pkgs += [SystemPackage(p, why) for p in build]
        elif package.wheels:  # it has wheels, none for this target: likely compiled code
            notes.append(f"{why}; if it compiles code, the dependency step needs gcc")
    return unique(runtime_pkgs), unique(build_pkgs), notes


def source_builds(project: Project, python: str) -> list[str]:
    """Runtime packages uv.lock has wheels for, but none for CPython `python` on Linux: built from
    source there, most likely compiled code (needing gcc and headers the slim base lacks)."""
    if project.lock is None:
        return []
    tags = target_tags(python)
    built = []
    for name in sorted(runtime_set(project, python)):
        package = project.lock.get(name)
        if package is None or package.source_kind != "registry" or not package.has_sdist:
            continue
        if package.wheels and wheel_for(package, tags) is None:
            built.append(name)
    return built


def unique(packages: list[SystemPackage]) -> list[SystemPackage]:
    seen: dict[str, SystemPackage] = {}
    for package in packages:
        seen.setdefault(package.name, package)
    return list(seen.values())


def size_budget(project: Project, runtime: Mapping[str, str], python: str, system_count: int) -> Fact:
    """A budget with headroom: the base, the locked wheels' installed size, 25% more, rounded up."""
    tags = target_tags(python)
    wheels = 0
    counted = 0
    for name in runtime:
        package = project.lock.get(name) if project.lock else None
        if package is None:
            continue
        best = wheel_for(package, tags) or (package.wheels[0] if package.wheels else None)
        if best:
            wheels += best[1]
            counted += 1
    installed = wheels * UNPACKED_FACTOR + system_count * SYSTEM_PACKAGE_ESTIMATE
    total = (BASE_ESTIMATE + installed) * 1.25
    budget = int(-(-total // BUDGET_STEP) * BUDGET_STEP)
    base_mb = BASE_ESTIMATE // 1_000_000
    why = f"base ~{base_mb} MB + {counted} locked wheels ~{installed // 1_000_000} MB installed, +25%"
    return Fact("size budget", f"{budget // 1_000_000}MB", why)
