"""What the image of a uv project needs, each decision with its reason.

Flags win over inference, and an existing `[tool.dockyard]` wins where it says something (its ports).
Every decision is a `Fact` (what, value, why) that the Dockerfile's header shows, so a reader knows
what was guessed and from what. A project whose image could not start (an ASGI app with no server
among its dependencies, nothing to run at all, a runtime dependency from a path outside the build
context) is refused with one line saying what to add. The parts: `deps` (what the lock asks for),
`runs` (what the sources run); this module adds the Python, uv, ports, compose and the checklist.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from dockyard import process
from dockyard.errors import CommandError, UsageError
from dockyard.init import DEFAULT_UV_VERSION, deps, runs
from dockyard.init import project as projects
from dockyard.init.model import (
    APP_UID,
    ComposeFacts,
    DockyardSource,
    Fact,
    Inference,
    Options,
    Run,
    WheelSource,
)
from dockyard.init.project import Project, canonical

# CPython versions with official `python:X.Y-slim` images. DEFAULT_PYTHON is chosen when the project
# allows it (it is the version of the machine's base-image stand-in), else the closest it allows.
KNOWN_PYTHONS = ((3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14))
DEFAULT_PYTHON = (3, 13)
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def _dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _version_tuple(text: str) -> tuple[int, int] | None:
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def infer_python(
    project: Project, override: str | None, *, source_builds: Callable[[str], list[str]] | None = None
) -> Fact:
    """--python, else .python-version (what uv runs the project with), else requires-python: the
    version closest to the default that it allows and for which uv.lock has every wheel it has for any
    Python (`source_builds(version)` names the packages that would be built from source instead)."""
    if override:
        wanted = _version_tuple(override)
        if wanted is None:
            raise UsageError(f"--python {override!r}: give a version such as 3.13")
        return Fact("python", _dotted(wanted), "--python")
    pinned = _version_tuple(project.python_version_file or "")
    if pinned:
        return Fact("python", _dotted(pinned), f".python-version says {project.python_version_file}")
    if not project.requires_python:
        return Fact("python", _dotted(DEFAULT_PYTHON), "no requires-python or .python-version: the default")
    try:
        spec = SpecifierSet(project.requires_python)
    except InvalidSpecifier:
        raise UsageError(
            f"requires-python {project.requires_python!r} is not a version specifier: fix pyproject.toml"
        ) from None
    allowed = [v for v in KNOWN_PYTHONS if spec.contains(f"{_dotted(v)}.0", prereleases=True)]
    if not allowed:
        known = ", ".join(_dotted(v) for v in KNOWN_PYTHONS)
        raise UsageError(
            f"requires-python {project.requires_python!r} allows no Python with an official slim image "
            f"({known}): pass --python X.Y"
        )
    ranked = sorted(allowed, key=lambda v: abs(v[1] - DEFAULT_PYTHON[1]))  # stable: older first on ties
    chosen = ranked[0]
    rule = "the default" if chosen == DEFAULT_PYTHON else "the closest to the default it allows"
    built = source_builds(_dotted(chosen)) if source_builds else []
    for candidate in ranked[1:] if built else ():
        if not source_builds or source_builds(_dotted(candidate)):
            continue
        why = (
            f'requires-python "{project.requires_python}": the closest to the default for which uv.lock '
            f"has every wheel ({_dotted(chosen)} would build {', '.join(built)} from source)"
        )
        return Fact("python", _dotted(candidate), why)
    return Fact("python", _dotted(chosen), f'requires-python "{project.requires_python}" ({rule})')


def infer_uv(project: Project) -> Fact:
    """The uv of the image: `[tool.uv] required-version` when it pins one, else dockyard's pin."""
    required = project.uv_required_version
    if not required:
        return Fact("uv", DEFAULT_UV_VERSION, "dockyard's pin (set [tool.uv] required-version to choose)")
    pinned = re.fullmatch(r"\s*==\s*(\d+\.\d+\.\d+)\s*", required)
    if pinned:
        return Fact("uv", pinned.group(1), f'[tool.uv] required-version "{required}"')
    try:
        allowed = SpecifierSet(required).contains(DEFAULT_UV_VERSION)
    except InvalidSpecifier:
        allowed = False
    if allowed:
        return Fact("uv", DEFAULT_UV_VERSION, f'dockyard\'s pin, within required-version "{required}"')
    raise UsageError(
        f'[tool.uv] required-version "{required}" excludes uv {DEFAULT_UV_VERSION}: pin one uv with '
        '"==X.Y.Z" so the image uses it'
    )


# --- compose ----------------------------------------------------------------------------------------


def _compose_files(project: Project) -> list[Path]:
    configured = (project.dockyard_table or {}).get("compose", {})
    names = list(configured.get("files", [])) if isinstance(configured, dict) else []
    if names:
        return [project.directory / n for n in names if (project.directory / n).is_file()]
    return [project.directory / n for n in COMPOSE_FILES if (project.directory / n).is_file()][:1]


def read_compose(project: Project, docker: str | None) -> tuple[ComposeFacts | None, str | None]:
    """Ports and named-volume paths of the compose services built from this project's Dockerfile,
    as `docker compose config` resolves them; (None, note) when there is no file or no compose."""
    files = _compose_files(project)
    if not files:
        return None, None
    shown = ", ".join(f.name for f in files)
    cli = docker or shutil.which("docker")
    if cli is None:
        return None, f"{shown} not read (no docker CLI for `docker compose config`)"
    argv = [cli, "compose", *(a for f in files for a in ("--file", str(f))), "config", "--format", "json"]
    try:
        done = process.run(argv, cwd=project.directory, timeout=60, check=False)
    except CommandError as exc:
        return None, f"{shown} not read ({exc.message})"
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        return None, f"{shown} not read by `docker compose config`: {reason[-1] if reason else 'failed'}"
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        return None, f"{shown}: `docker compose config` printed no JSON"
    return compose_facts(project, doc, shown), None


def compose_facts(project: Project, doc: Mapping[str, Any], shown: str) -> ComposeFacts:
    """The container ports and named-volume targets of the services built from the project."""
    dockerfile = (project.directory / "Dockerfile").resolve()
    ports: set[int] = set()
    volumes: set[str] = set()
    services = doc.get("services")
    for raw in services.values() if isinstance(services, dict) else []:
        build = raw.get("build") or {}
        context = Path(str(build.get("context", project.directory))).resolve()
        file = Path(str(build.get("dockerfile", "Dockerfile")))
        file = file if file.is_absolute() else context / file
        if not build or context != project.context or file.resolve() != dockerfile:
            continue
        ports |= {
            p["target"]
            for p in raw.get("ports") or []
            if isinstance(p, dict) and isinstance(p.get("target"), int)
        }
        ports |= {
            int(str(p).split("/")[0]) for p in raw.get("expose") or [] if str(p).split("/")[0].isdigit()
        }
        volumes |= {
            str(v["target"])
            for v in raw.get("volumes") or []
            if isinstance(v, dict) and v.get("type") == "volume" and v.get("target")
        }
    return ComposeFacts(shown, tuple(sorted(ports)), tuple(sorted(volumes)))


# --- ports, wheels, checklist -----------------------------------------------------------------------


def _configured_ports(project: Project) -> tuple[int, ...] | None:
    verify = (project.dockyard_table or {}).get("verify", {})
    ports = verify.get("ports") if isinstance(verify, dict) else None
    if isinstance(ports, list) and all(isinstance(p, int) and not isinstance(p, bool) for p in ports):
        return tuple(ports)
    return None


def infer_ports(
    project: Project, options: Options, compose: ComposeFacts | None, kind: str
) -> tuple[tuple[int, ...], Fact | None]:
    """--port, else compose's ports, else the server's; a configured `verify.ports` that says
    otherwise wins (one that agrees keeps the inferred reason, so a second run changes nothing)."""
    inferred: tuple[int, ...] = ()
    fact = None
    if options.port:
        inferred, fact = (options.port,), Fact("ports", str(options.port), "--port")
    elif compose and compose.ports:
        shown = " ".join(map(str, compose.ports))
        inferred, fact = compose.ports, Fact("ports", shown, f"the services {compose.file} builds from it")
    elif kind == "web":
        inferred, fact = (
            (runs.DEFAULT_PORT,),
            Fact("ports", str(runs.DEFAULT_PORT), "what the server command listens on"),
        )
    configured = _configured_ports(project)
    if options.port is None and configured is not None and configured != inferred:
        return configured, Fact(
            "ports", " ".join(map(str, configured)) or "none", "[tool.dockyard.verify] ports"
        )
    return inferred, fact


def image_name(project: Project) -> str:
    configured = (project.dockyard_table or {}).get("image")
    if isinstance(configured, str) and configured:
        return configured
    return re.sub(r"[^a-z0-9._-]+", "-", project.name.lower()).strip("-._") or "app"


def wheel_source(project: Project, relative: str) -> WheelSource:
    """What a packaged project's build backend reads: pyproject.toml, readme, licenses, the package."""

    def at(path: str) -> str:
        return path if relative == "." else f"{relative}/{path}"

    files = ["pyproject.toml", *([project.readme] if project.readme else []), *project.license_files]
    root = project.module_root or "."
    if root != ".":
        return WheelSource(relative, tuple(at(f) for f in dict.fromkeys(files)), (at(root.split("/")[0]),))
    if (project.directory / project.import_name).is_dir():
        return WheelSource(relative, tuple(at(f) for f in dict.fromkeys(files)), (at(project.import_name),))
    files.append(f"{project.import_name}.py")
    return WheelSource(relative, tuple(at(f) for f in dict.fromkeys(files)), ())


def wheels_and_mounts(
    project: Project, runtime: dict[str, str]
) -> tuple[tuple[WheelSource, ...], tuple[str, ...]]:
    """(the wheels the image installs: the project and the workspace members it depends on; the files
    the dependency step bind-mounts: the lock and every member's pyproject.toml, as --locked needs)."""
    if not project.workspace:
        return (wheel_source(project, "."),), ("pyproject.toml", "uv.lock")
    root = project.workspace.root
    mounts = ["pyproject.toml", "uv.lock"]
    wheels = [wheel_source(project, project.relative)]
    for member in project.workspace.members:
        relative = member.relative_to(root).as_posix() or "."
        if relative != ".":
            mounts.append(f"{relative}/pyproject.toml")
        if member == project.directory:
            continue
        try:
            other = projects.read_project(member)
        except UsageError:
            continue
        if canonical(other.name) in runtime and other.packaged:
            wheels.append(wheel_source(other, relative))
    return tuple(wheels), tuple(mounts)


def checklist(
    project: Project, run: Run, found: runs.Sources, app_paths: tuple[str, ...]
) -> tuple[tuple[str, ...], str | None]:
    """`verify.imports` (the package or modules, and the app's module) and, where verify's default
    would not find one, the file the layer-cache check edits."""
    imports: list[str] = []
    if project.packaged:
        imports.append(project.import_name)
    else:
        for path in app_paths:
            leaf = path.removeprefix(f"{project.relative}/") if project.relative != "." else path
            imports.append(leaf.removesuffix(".py").replace("/", "."))
    module = runs.app_module(run)
    if module and module not in imports:
        imports.append(module)
    if not project.packaged:
        modules = sorted(found.paths.values())
        first = "main.py" if "main.py" in modules else (modules[0] if modules else None)
        return tuple(imports), project.in_context(first) if first else None
    init = f"{project.module_root}/{project.import_name}/__init__.py".removeprefix("./")
    found_by_default = (
        project.import_name == canonical(project.name).replace("-", "_")
        and (project.directory / init).is_file()
    )
    if found_by_default and not project.workspace:
        return tuple(imports), None
    candidates = [init] if (project.directory / init).is_file() else sorted(found.paths.values())
    return tuple(imports), project.in_context(candidates[0]) if candidates else None


# --- the decision -----------------------------------------------------------------------------------


def infer(
    project: Project,
    options: Options,
    files: list[str],
    *,
    adding: DockyardSource | None = None,
    compose: ComposeFacts | None = None,
    compose_note: str | None = None,
) -> Inference:
    """Decide everything the image needs; flags first, then configuration, then the project."""
    python = infer_python(
        project, options.python, source_builds=lambda version: deps.source_builds(project, version)
    )
    uv = infer_uv(project)
    runtime = deps.runtime_set(project, python.value)
    lock, git_build = deps.lock_flag(project, runtime, adding)
    facts = [python, uv, _project_fact(project), lock]

    found = runs.scan(project, files)
    run = runs.decide(project, options, found, runtime, options.port or runs.DEFAULT_PORT)
    facts.append(run.fact)
    ports, ports_fact = infer_ports(project, options, compose, run.kind)
    facts += [ports_fact] if ports_fact else []

    healthcheck = None
    if run.kind == "web":
        port = options.port or (ports[0] if ports else runs.DEFAULT_PORT)
        path = runs.health_path(found, run.routes_module) if run.routes_module else None
        healthcheck = runs.healthcheck_command(port, path)
        why = (
            f"a {path} route in the app's package" if path else "no health route found: any answer below 500"
        )
        facts.append(Fact("healthcheck", f"GET {path or '/'} on {port}", why))

    run_pkgs, build_pkgs, notes = deps.system_packages(project, runtime, python.value)
    build_pkgs = deps.unique([*git_build, *build_pkgs])
    if run_pkgs or build_pkgs:
        why = "; ".join(dict.fromkeys(p.why for p in [*run_pkgs, *build_pkgs]))
        facts.append(Fact("system libraries", ", ".join(p.name for p in run_pkgs) or "build only", why))
    data_dirs = compose.volumes if compose else ()
    if compose and data_dirs:
        facts.append(
            Fact("data dirs", " ".join(data_dirs), f"volumes in {compose.file}, owned by uid {APP_UID}")
        )
    budget = deps.size_budget(project, runtime, python.value, len(run_pkgs))
    facts.append(budget)

    wheel_sources, mounts = wheels_and_mounts(project, runtime)
    app_paths = tuple(project.in_context(p.rstrip("/")) for p in projects.app_paths(project, files))
    if not project.packaged and not app_paths:
        raise UsageError(
            f"{project.directory} has no Python modules to put in the image (main.py, a package)"
        )
    imports, touch = checklist(project, run, found, app_paths)
    return Inference(
        project=project,
        facts=tuple(facts),
        python=python.value,
        uv_version=uv.value,
        lock_flag=lock.value.split()[-1],
        run=run,
        ports=ports,
        healthcheck=healthcheck,
        roles=runs.roles(project, run, found, runtime),
        runtime_packages=tuple(run_pkgs),
        build_packages=tuple(build_pkgs),
        data_dirs=data_dirs,
        wheel_sources=wheel_sources if project.packaged else (),
        mounts=mounts,
        app_paths=() if project.packaged else app_paths,
        imports=imports,
        smoke=runs.smoke(project, run, found),
        layer_cache_touch=touch,
        size_budget=budget.value,
        image=image_name(project),
        notes=(*([compose_note] if compose_note else []), *notes),
        dockyard=adding,
        compose=compose,
        writes_compose=options.compose or compose is not None,
    )


def _project_fact(project: Project) -> Fact:
    if not project.packaged:
        return Fact("project", "virtual", "no build system: its modules are copied into /app")
    backend = (project.build_backend or "setuptools").split(".")[0]
    if not project.module_name:
        raise UsageError(
            f"cannot find the package of {project.name}: expected src/{project.import_name}/ or "
            f"{project.import_name}/; set [tool.uv.build-backend] module-name"
        )
    member = ", a workspace member" if project.workspace else ""
    return Fact(
        "project",
        f"packaged ({backend}){member}",
        "a wheel built in the `project` stage, installed --no-deps",
    )
