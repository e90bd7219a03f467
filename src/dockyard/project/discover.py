"""Which package is the service, and which Dockerfile, context and target make its image: discovered the
way uv, Compose and Docker find them, each with where it came from so every command can say so.

Configuration (`[tool.dockyard]`, or a command-line flag) always wins. Otherwise:

- the Dockerfile: `Dockerfile`, then `Containerfile` in the project's directory; then the compose
  service that builds this project (Compose's own file search, from the project up to the repository
  root); then `*.Dockerfile` and `docker/*` in the project; from a workspace root, the members'
  Dockerfiles. Several that fit equally are a usage error that lists them and says how to choose.
- the package: the member dockyard runs in; the one the Dockerfile installs (`uv sync --package X`,
  `--project DIR`); the member whose directory holds the compose build's Dockerfile or context; the
  root's own project; a workspace's only member.
- the context: the compose build's `context`; else the project's directory, or the workspace root when
  the Dockerfile copies files (uv.lock, say) that only the workspace root holds.

A context outside the git repository (or `/`) is refused unless configured explicitly. What discovery
could not decide is kept as a problem that only the commands needing it raise, so an ambiguous
Dockerfile stops `build` but not `verify IMAGE` or `verify-compose`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dockyard import git, process
from dockyard.errors import ConfigError, DockyardError
from dockyard.project import workspace as workspaces
from dockyard.project.dockerfile import Dockerfile, substitute
from dockyard.project.dockerfile import parse as parse_dockerfile
from dockyard.project.workspace import Package, SourceModules, Workspace

COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
COMPOSE_TIMEOUT = 60.0
_DOCKERFILE_NAME = re.compile(
    r"^(Dockerfile|Containerfile)([.-].+)?$|.+\.(Dockerfile|dockerfile|Containerfile)$"
)


@dataclass(frozen=True)
class Inferred:
    """One line of the `project:` header: a value and where it came from."""

    what: str  # project, workspace, package, lock, dockerfile, context, target, image, config
    value: str
    source: str  # "from config", "from --dockerfile", "discovered: ..."

    def line(self) -> str:
        return f"{self.what}: {self.value}" + (f" ({self.source})" if self.source else "")


@dataclass(frozen=True)
class Choice:
    """A value given by configuration or a flag, with how it was given."""

    value: Any
    source: str  # "from config", "from --context", ...


@dataclass(frozen=True)
class Requested:
    """What configuration and flags say about the layout (None: discover it)."""

    dockerfile: Choice | None = None  # Path
    context: Choice | None = None  # Path
    target: Choice | None = None  # str
    package: Choice | None = None  # str
    compose_files: tuple[Path, ...] = ()
    docker: str | None = None  # the docker CLI (for `docker compose config`)
    interpolation: Mapping[str, str] = field(default_factory=dict)  # extra variables for Compose


@dataclass(frozen=True)
class ComposeBuild:
    """A compose service's build, as far as finding the project's Dockerfile needs it."""

    service: str
    context: Path
    dockerfile: Path
    target: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)

    def key(self) -> tuple[Path, Path, str | None]:
        return (self.context, self.dockerfile, self.target)


@dataclass(frozen=True)
class ComposeFound:
    files: str  # as shown: "compose.yaml" or the configured files
    builds: tuple[ComposeBuild, ...] = ()
    problem: str | None = None  # why the compose model could not be read


@dataclass(frozen=True)
class Layout:
    """Everything discovery decided about the project, and what it could not decide."""

    project_dir: Path
    workspace: Workspace
    package: Package | None
    dockerfile: Path
    context: Path
    target: str | None
    build_args: Mapping[str, str]  # the compose build's args (configuration's win over them)
    context_explicit: bool
    repository: Path | None  # the git work tree holding the project
    modules: SourceModules
    notes: tuple[Inferred, ...]
    problems: Mapping[str, str] = field(default_factory=dict)  # dockerfile/package/context -> why
    # When the Dockerfile is undecided, every build that could be the project's: each build of the
    # compose file (with its args), or each Dockerfile found (doctor lists what all of them pull).
    candidates: tuple[ComposeBuild, ...] = ()


def shown(path: Path, base: Path) -> str:
    """`path` relative to `base` when it is inside it, else absolute."""
    if path == base:
        return "."
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


# --- compose --------------------------------------------------------------------------------------


def compose_directory(start: Path, stop: Path) -> Path | None:
    """The directory Compose would take its file from, searching `start` and its parents up to `stop`."""
    for directory in (start, *start.parents):
        if any((directory / name).is_file() for name in COMPOSE_NAMES):
            return directory
        if directory == stop or not directory.is_relative_to(stop):
            break
    return None


def read_compose(
    docker: str | None, directory: Path, files: Sequence[Path], env: Mapping[str, str]
) -> ComposeFound:
    """The builds of the compose model in `directory` (or `files`), as `docker compose config` resolves
    them; variables Compose cannot interpolate are left as written rather than failing discovery."""
    where = ", ".join(shown(f, directory) for f in files) or next(
        (n for n in COMPOSE_NAMES if (directory / n).is_file()), "compose.yaml"
    )
    try:
        cli = docker or _docker_cli()
    except DockyardError as exc:
        return ComposeFound(where, problem=exc.message)
    argv = [cli, "compose", *[a for f in files for a in ("--file", str(f))], "config", "--format", "json"]
    extra = {k: v for k, v in env.items() if k not in os.environ}
    problem = ""
    for attempt in (argv, [*argv, "--no-interpolate"]):
        try:
            done = process.run(attempt, cwd=directory, env=extra, timeout=COMPOSE_TIMEOUT, check=False)
        except DockyardError as exc:
            return ComposeFound(where, problem=exc.message)
        if done.returncode == 0:
            try:
                return ComposeFound(where, tuple(_builds(json.loads(done.stdout), directory)))
            except (ValueError, TypeError, AttributeError) as exc:
                return ComposeFound(where, problem=f"`docker compose config` printed no usable model: {exc}")
        problem = problem or _last_line(done.stderr or done.stdout)
    return ComposeFound(where, problem=problem)


def _docker_cli() -> str:
    from dockyard import engine  # noqa: PLC0415 - only when a compose file is there to read

    return engine.discover_cli().path


def _builds(doc: Mapping[str, Any], directory: Path) -> list[ComposeBuild]:
    builds = []
    for name, service in (doc.get("services") or {}).items():
        build = service.get("build") if isinstance(service, dict) else None
        if not isinstance(build, dict) or "dockerfile_inline" in build:
            continue
        context_text = str(build.get("context", "."))
        if "://" in context_text or context_text.startswith("git@"):
            continue
        context = Path(os.path.normpath(directory / context_text))
        dockerfile = Path(os.path.normpath(context / str(build.get("dockerfile") or "Dockerfile")))
        raw_args = build.get("args") or {}
        args = (
            {str(k): str(v) for k, v in raw_args.items() if v is not None}
            if isinstance(raw_args, dict)
            else {}
        )
        builds.append(
            ComposeBuild(
                service=str(name),
                context=context,
                dockerfile=dockerfile,
                target=str(build["target"]) if build.get("target") else None,
                args=args,
            )
        )
    return builds


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# --- what a Dockerfile says -------------------------------------------------------------------------


def _split(rest: str) -> tuple[dict[str, str], list[str]]:
    """An instruction's `--flag=value` options and its arguments (JSON array or shell words)."""
    flags: dict[str, str] = {}
    text = rest.strip()
    while text.startswith("--"):
        word, _, text = text.partition(" ")
        key, _, value = word[2:].partition("=")
        flags[key] = value
        text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
            if isinstance(items, list):
                return flags, [str(i) for i in items]
        except ValueError:
            pass
    try:
        return flags, shlex.split(text, comments=False)
    except ValueError:
        return flags, text.split()


def uv_sync_targets(dockerfile: Dockerfile) -> list[tuple[str, str]]:
    """(`--package`, name) and (`--project`/`--directory`, path) given to `uv sync` in RUN steps."""
    found: list[tuple[str, str]] = []
    for keyword, rest in dockerfile.instructions:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|\|\||;|\n", rest):
            words = command.split()
            if "uv" not in words or "sync" not in words:
                continue
            for index, word in enumerate(words):
                for flag in ("--package", "--project", "--directory"):
                    if word == flag and index + 1 < len(words):
                        found.append((flag, words[index + 1].strip("\"'")))
                    elif word.startswith(flag + "="):
                        found.append((flag, word.split("=", 1)[1].strip("\"'")))
    return found


def context_sources(dockerfile: Dockerfile) -> list[str]:
    """Paths the Dockerfile reads from the build context: COPY/ADD sources and bind-mount sources."""
    sources: list[str] = []
    for keyword, rest in dockerfile.instructions:
        if keyword in ("COPY", "ADD"):
            flags, items = _split(rest)
            if "from" not in flags and len(items) >= 2:
                sources += items[:-1]
        elif keyword == "RUN":
            for mount in re.findall(r"--mount=(\S+)", rest):
                options = dict(part.partition("=")[::2] for part in mount.split(","))
                if options.get("type") == "bind" and "from" not in options and options.get("source"):
                    sources.append(options["source"])
    return [s for s in sources if "$" not in s and not any(c in s for c in "*?[") and "://" not in s]


def context_paths(dockerfile: Dockerfile, build_args: Mapping[str, str]) -> list[tuple[str, str]]:
    """Where the final image holds the build context's paths: (context path, image path) pairs, the
    context path relative ("." for the whole context), following COPY --from between stages."""
    values = {k: v for k, v in dockerfile.global_args.items() if v is not None} | dict(build_args)
    names: dict[str, int] = {}
    stage_maps: list[list[tuple[str, str]]] = []
    workdirs: list[str] = []
    for keyword, rest in dockerfile.instructions:
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            base = substitute(words[0], values).lower() if words else ""
            parent = names.get(base)
            stage_maps.append(list(stage_maps[parent]) if parent is not None else [])
            workdirs.append(workdirs[parent] if parent is not None else "/")
            if len(words) >= 3 and words[1].upper() == "AS":
                names[words[2].lower()] = len(stage_maps) - 1
            continue
        if not stage_maps:
            continue
        if keyword == "WORKDIR":
            workdirs[-1] = str(PurePosixPath(workdirs[-1]) / substitute(rest.strip(), values))
        elif keyword in ("COPY", "ADD"):
            flags, items = _split(rest)
            if len(items) < 2:
                continue
            dest_text = substitute(items[-1], values)
            dest = PurePosixPath(workdirs[-1]) / dest_text
            for source in items[:-1]:
                stage_maps[-1] += _mapped(flags, source, dest, dest_text.endswith("/"), names, stage_maps)
    return stage_maps[-1] if stage_maps else []


def _mapped(
    flags: Mapping[str, str],
    source: str,
    dest: PurePosixPath,
    into: bool,
    names: Mapping[str, int],
    stage_maps: Sequence[list[tuple[str, str]]],
) -> list[tuple[str, str]]:
    if "$" in source or any(c in source for c in "*?["):
        return []
    origin = flags.get("from")
    if origin is None:
        relative = os.path.normpath(source.lstrip("/")) if source not in (".", "./", "/") else "."
        is_file = "." in PurePosixPath(relative).name and relative != "."
        target = dest / PurePosixPath(relative).name if (into and is_file) else dest
        return [(relative, str(target))]
    index = names.get(origin.lower())
    if index is None:
        return []
    copied = PurePosixPath(source)
    out = []
    for context_path, image_path in stage_maps[index]:
        held = PurePosixPath(image_path)
        if held == copied or held.is_relative_to(copied):
            out.append((context_path, str(dest / held.relative_to(copied))))
        elif copied.is_relative_to(held):
            inner = copied.relative_to(held)
            out.append((str(PurePosixPath(context_path) / inner), str(dest)))
    return out


def image_path(context_relative: str, mapping: Sequence[tuple[str, str]]) -> str | None:
    """Where the image holds a context path, by the most specific mapping that covers it."""
    best: tuple[int, str] | None = None
    wanted = PurePosixPath(context_relative)
    for source, target in mapping:
        base = PurePosixPath(source)
        if source == "." or wanted == base or wanted.is_relative_to(base):
            rest = wanted if source == "." else wanted.relative_to(base)
            depth = 0 if source == "." else len(base.parts)
            if best is None or depth >= best[0]:
                best = (depth, str(PurePosixPath(target) / rest) if str(rest) != "." else target)
    return best[1] if best else None


# --- discovery ------------------------------------------------------------------------------------


@dataclass
class _State:
    project_dir: Path
    workspace: Workspace
    bound: Path
    repository: Path | None
    requested: Requested
    notes: list[Inferred] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    compose: ComposeFound | None = None
    compose_read: bool = False
    candidates: list[ComposeBuild] = field(default_factory=list)

    def show(self, path: Path) -> str:
        return shown(path, self.project_dir)


def discover(project_dir: Path, workspace: Workspace, requested: Requested) -> Layout:
    """The layout of the project at `project_dir` (a directory holding pyproject.toml)."""
    repository = git.toplevel(project_dir)
    bound = repository or workspace.root
    state = _State(project_dir, workspace, bound, repository, requested)
    package, package_source = _early_package(state)
    dockerfile, build, how = _dockerfile(state, package)
    if package is None:
        package, package_source = _late_package(state, dockerfile, build)
    context, context_source, explicit = _context(state, dockerfile, build)
    target = requested.target or (Choice(build.target, how) if build and build.target else None)
    args = dict(build.args) if build else {}
    _confine(state, context, explicit, context_source)
    modules = workspaces.source_modules(package) if package else SourceModules((), "no package")
    _note_all(state, package, package_source, dockerfile, how, context, context_source, target)
    return Layout(
        project_dir=project_dir,
        workspace=workspace,
        package=package,
        dockerfile=dockerfile,
        context=context,
        target=target.value if target else None,
        build_args=args,
        context_explicit=explicit,
        repository=repository,
        modules=modules,
        notes=tuple(state.notes),
        problems=dict(state.problems),
        candidates=tuple(state.candidates) if "dockerfile" in state.problems else (),
    )


def _early_package(state: _State) -> tuple[Package | None, str]:
    ws, wanted = state.workspace, state.requested.package
    if wanted is not None:
        member = ws.member(str(wanted.value))
        if member is None:
            close = difflib.get_close_matches(str(wanted.value), [m.name for m in ws.members], n=1)
            hint = f" Perhaps you meant {close[0]!r}?" if close else ""
            raise ConfigError(
                f"package {wanted.value!r} ({wanted.source}) is not a member of the workspace at "
                f"{ws.root}.{hint} Members: {ws.names()}"
            )
        return member, wanted.source
    here = ws.member_holding(state.project_dir)
    if here is not None and here.directory == state.project_dir and here.directory != ws.root:
        return here, "discovered: the workspace member dockyard runs in"
    if not ws.declared and here is not None:
        return here, "discovered: [project] in pyproject.toml"
    return None, ""


def _compose(state: _State) -> ComposeFound | None:
    if not state.compose_read:
        state.compose_read = True
        requested = state.requested
        files = requested.compose_files
        directory = files[0].parent if files else compose_directory(state.project_dir, state.bound)
        if directory is not None:
            state.compose = read_compose(requested.docker, directory, files, requested.interpolation)
    return state.compose


def _fits(state: _State, build: ComposeBuild, package: Package | None) -> bool:
    """Whether a compose build builds this project (or, from a workspace root, one of its members)."""
    if package is not None and package.directory != state.workspace.root:
        inside = build.dockerfile.is_relative_to(package.directory) or build.context == package.directory
        return inside or _installs(build.dockerfile, package)
    home = state.project_dir
    return build.context.is_relative_to(home) or build.dockerfile.is_relative_to(home)


def _best(builds: dict[Any, ComposeBuild], ws: Workspace) -> dict[Any, ComposeBuild]:
    """The builds most clearly of this uv project: those tied to a workspace member (in its directory,
    or installing it with `uv sync --package`), then those that run uv at all, then the rest."""

    def score(build: ComposeBuild) -> int:
        for path in (build.dockerfile.parent, build.context):
            member = ws.member_holding(path)
            if member is not None and member.directory != ws.root:
                return 2
        parsed = _parse_quietly(build.dockerfile)
        if parsed is None:
            return 0
        if any(flag == "--package" and ws.member(v) for flag, v in uv_sync_targets(parsed)):
            return 2
        runs_uv = any(
            k == "RUN" and re.search(r"\buv\s+(sync|pip)\b", rest) for k, rest in parsed.instructions
        )
        reads_lock = any(
            PurePosixPath(s).name in ("uv.lock", "pyproject.toml") for s in context_sources(parsed)
        )
        return 1 if runs_uv or reads_lock else 0

    if len(builds) < 2:
        return builds
    scores = {key: score(build) for key, build in builds.items()}
    top = max(scores.values())
    return {key: build for key, build in builds.items() if scores[key] == top}


def _installs(path: Path, package: Package) -> bool:
    try:
        targets = uv_sync_targets(parse_dockerfile(path))
    except DockyardError:
        return False
    return any(flag == "--package" and workspaces.canonical(v) == package.key for flag, v in targets)


def _dockerfile(state: _State, package: Package | None) -> tuple[Path, ComposeBuild | None, str]:
    """The Dockerfile, the compose build that uses it (if any), and where it came from."""
    requested, home = state.requested, state.project_dir
    if requested.dockerfile is not None:
        chosen = Path(requested.dockerfile.value)
        return chosen, _build_using(state, chosen), requested.dockerfile.source
    for name in ("Dockerfile", "Containerfile"):
        if (home / name).is_file():
            return home / name, _build_using(state, home / name), f"discovered: {name} in the project"
    compose = _compose(state)
    if compose is not None and compose.builds:
        fitting = [b for b in compose.builds if _fits(state, b, package) and b.dockerfile.is_file()]
        distinct = _best({b.key(): b for b in fitting}, state.workspace)
        if len(distinct) == 1:
            build = next(iter(distinct.values()))
            return build.dockerfile, build, f"discovered: {compose.files} service {build.service}"
        if len(distinct) > 1:
            listed = ", ".join(_describe(state, b) for b in distinct.values())
            state.candidates = [b for b in compose.builds if b.dockerfile.is_file()]
            state.problems["dockerfile"] = (
                f"{len(distinct)} compose builds fit this project: {listed}; choose one with --dockerfile "
                "PATH (or `dockerfile` in [tool.dockyard]), or check every service with "
                "`dockyard verify-compose`"
            )
            return home / "Dockerfile", None, ""
    loose = [*_dockerfiles_in(home), *_dockerfiles_in(home / "docker")]
    if not loose and home == state.workspace.root:
        loose = [
            m.directory / name
            for m in state.workspace.members
            if m.directory != home
            for name in ("Dockerfile", "Containerfile")
            if (m.directory / name).is_file()
        ][:20]
        if package is not None:
            loose = [p for p in loose if p.is_relative_to(package.directory)] or loose
    if len(loose) == 1:
        how = f"discovered: the only Dockerfile, {state.show(loose[0])}"
        return loose[0], _build_using(state, loose[0]), how
    if loose:
        state.candidates = [ComposeBuild("", home, path) for path in loose]
        listed = ", ".join(state.show(p) for p in loose)
        state.problems["dockerfile"] = (
            f"{len(loose)} Dockerfiles fit this project: {listed}; choose one with --dockerfile PATH "
            "(or `dockerfile` in [tool.dockyard])"
        )
    else:
        problem = f" ({compose.files}: {compose.problem})" if compose and compose.problem else ""
        state.problems["dockerfile"] = (
            f"no Dockerfile for {home}: looked for Dockerfile, Containerfile, a compose build{problem}, "
            "*.Dockerfile and docker/*; add one, or pass --dockerfile PATH (or set `dockerfile` in "
            "[tool.dockyard])"
        )
    return home / "Dockerfile", None, ""


def _describe(state: _State, build: ComposeBuild) -> str:
    target = f", target {build.target}" if build.target else ""
    return f"{state.show(build.dockerfile)} (service {build.service}{target})"


def _dockerfiles_in(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and _DOCKERFILE_NAME.match(p.name) and not p.name.endswith(".dockerignore")
    )


def _build_using(state: _State, dockerfile: Path) -> ComposeBuild | None:
    """The compose build (if any) that uses `dockerfile`: it tells the context, target and args."""
    compose = _compose(state)
    if compose is None:
        return None
    using = [b for b in compose.builds if b.dockerfile == dockerfile]
    return using[0] if len({b.key() for b in using}) == 1 else None


def _late_package(state: _State, dockerfile: Path, build: ComposeBuild | None) -> tuple[Package | None, str]:
    ws = state.workspace
    found = _package_from_build(state, dockerfile, build)
    if found[0] is not None:
        return found
    if ws.root_package is not None:
        return ws.root_package, "discovered: the workspace root's project"
    if len(ws.members) == 1:
        return ws.members[0], "discovered: the workspace's only member"
    if not ws.members:
        state.problems["package"] = f"the workspace at {ws.root} has no member: add one to its members"
    else:
        state.problems["package"] = (
            f"which workspace member is the service? {ws.names()}: set `package` in [tool.dockyard], "
            "or run dockyard in the member's directory"
        )
    return None, ""


def _package_from_build(
    state: _State, dockerfile: Path, build: ComposeBuild | None
) -> tuple[Package | None, str]:
    """The member the Dockerfile installs, or the compose build points into, or that holds it."""
    ws = state.workspace
    parsed = _parse_quietly(dockerfile)
    targets = uv_sync_targets(parsed) if parsed else []
    shown_file = state.show(dockerfile)
    for flag, value in targets:
        if flag == "--package" and (member := ws.member(value)) is not None:
            return member, f"discovered: `uv sync --package {value}` in {shown_file}"
    for path in (build.dockerfile.parent, build.context) if build else ():
        member = ws.member_holding(path)
        if member is not None and member.directory != ws.root:
            service = f"compose service {build.service}" if build and build.service else "the build"
            return member, f"discovered: {service} builds it"
    for flag, value in targets:
        if flag in ("--project", "--directory"):
            tail = PurePosixPath(value.rstrip("/"))
            for member in ws.members:
                relative = PurePosixPath(shown(member.directory, ws.root))
                if member.directory != ws.root and tail.parts[-len(relative.parts) :] == relative.parts:
                    return member, f"discovered: `uv sync {flag} {value}` in {shown_file}"
    holder = ws.member_holding(dockerfile.parent) if dockerfile.is_file() else None
    if holder is not None and holder.directory != ws.root:
        return holder, f"discovered: {shown_file} is in it"
    return None, ""


def package_for_build(
    workspace: Workspace, project_dir: Path, dockerfile: Path, context: Path
) -> tuple[Package | None, str]:
    """The package a given build (a compose service's, say) makes an image of, and why: the member it
    installs or lives in, else the project dockyard runs in, else the root's own or the only one."""
    state = _State(project_dir, workspace, workspace.root, None, Requested())
    build = ComposeBuild("", context, dockerfile)
    found = _package_from_build(state, dockerfile, build)
    if found[0] is not None:
        return found
    here = workspace.member_holding(project_dir)
    if here is not None:
        return here, "discovered: the project dockyard runs in"
    if workspace.root_package is not None:
        return workspace.root_package, "discovered: the workspace root's project"
    if len(workspace.members) == 1:
        return workspace.members[0], "discovered: the workspace's only member"
    return None, ""


def _parse_quietly(path: Path) -> Dockerfile | None:
    try:
        return parse_dockerfile(path) if path.is_file() else None
    except (DockyardError, OSError, UnicodeDecodeError):
        return None


def _context(state: _State, dockerfile: Path, build: ComposeBuild | None) -> tuple[Path, str, bool]:
    requested, home, root = state.requested, state.project_dir, state.workspace.root
    if requested.context is not None:
        return Path(requested.context.value), requested.context.source, True
    if build is not None:
        return build.context, f"discovered: compose service {build.service}", False
    parsed = _parse_quietly(dockerfile)
    if parsed is not None and home != root:
        sources = [s.lstrip("/") for s in context_sources(parsed) if s.strip("./")]
        missing = [s for s in sources if not (home / s).exists()]
        if missing and all((root / s).exists() for s in missing):
            how = f"discovered: {shown(dockerfile, home)} reads {missing[0]}, which the workspace root holds"
            return root, how, False
    return home, "discovered: the project's directory", False


def outside(context: Path, bound: Path) -> bool:
    """Whether a build context reaches beyond `bound` (the repository): `/`, or a directory not in it."""
    return context == Path("/") or not context.is_relative_to(bound)


def confine_compose(
    contexts: Mapping[str, Path], project_dir: Path, workspace_root: Path, allowed: Sequence[str]
) -> None:
    """Refuse compose build contexts (service -> context) outside the project's git repository (or
    workspace), or `/`, unless `[tool.dockyard.compose] allow-contexts` names them."""
    bound = git.toplevel(project_dir) or workspace_root
    permitted = {(project_dir / a).resolve() for a in allowed}
    for service, context in contexts.items():
        if outside(context, bound) and context.resolve() not in permitted:
            what = (
                "the git repository"
                if bound != workspace_root or git.toplevel(project_dir)
                else "the workspace"
            )
            raise ConfigError(
                f"service {service!r}: build context {context} is outside {what} at {bound}: dockyard "
                f"builds only what the repository holds; list it in [tool.dockyard.compose] allow-contexts "
                "to build it anyway"
            )


def _confine(state: _State, context: Path, explicit: bool, source: str) -> None:
    if not outside(context, state.bound) or explicit:
        return
    what = "the git repository" if state.repository else "the workspace"
    state.problems["context"] = (
        f"build context {context} ({source}) is outside {what} at {state.bound}: dockyard builds only what "
        "the repository holds; set `context` in [tool.dockyard] (or pass --context) to build it anyway"
    )


def _note_all(
    state: _State,
    package: Package | None,
    package_source: str,
    dockerfile: Path,
    how: str,
    context: Path,
    context_source: str,
    target: Choice | None,
) -> None:
    ws, home, notes = state.workspace, state.project_dir, state.notes
    kind = "workspace root" if home == ws.root and ws.declared else "workspace member" if ws.declared else ""
    kind = kind or "discovered: the nearest pyproject.toml"
    if home == ws.root and ws.declared and ws.root_package is None:
        kind += ", no [project]"
    notes.append(Inferred("project", str(home), kind))
    if ws.declared and ws.root != home:
        member_of = f"discovered: its [tool.uv.workspace] includes {home.name}"
        notes.append(Inferred("workspace", str(ws.root), member_of))
    if package is not None:
        version = f" {package.version}" if package.version else ""
        where = "" if package.directory == home else f" in {state.show(package.directory)}"
        virtual = ", virtual" if package.virtual else ""
        notes.append(Inferred("package", f"{package.name}{version}{where}{virtual}", package_source))
    else:
        notes.append(Inferred("package", "undecided", state.problems.get("package", "").split(":")[0]))
    lock = ws.lock_file
    lock_source = "discovered: the workspace root" if ws.root != home else "discovered: beside pyproject.toml"
    notes.append(Inferred("lock", state.show(lock) + ("" if lock.is_file() else " (missing)"), lock_source))
    if "dockerfile" in state.problems:
        notes.append(Inferred("dockerfile", "undecided", state.problems["dockerfile"].split(";")[0]))
    else:
        notes.append(Inferred("dockerfile", state.show(dockerfile), how))
    inside = context.is_relative_to(state.bound) and context != Path("/")
    outside = "" if inside else "; outside the repository"
    notes.append(Inferred("context", state.show(context), context_source + outside))
    if target is not None:
        notes.append(Inferred("target", str(target.value), target.source))


# --- the modules the image should import ----------------------------------------------------------


def exposed_modules(
    modules: Sequence[workspaces.SourceModule],
    context: Path,
    mapping: Sequence[tuple[str, str]],
    working_dir: str,
    pythonpath: str,
) -> tuple[list[str], list[str]]:
    """Which of a virtual project's modules the image puts on its path: its working directory (what
    `python -m` and most servers import from) or PYTHONPATH. Returns (exposed, not exposed) names,
    the latter with where the image holds them."""
    exposed_dirs = {str(PurePosixPath(working_dir or "/"))}
    exposed_dirs |= {str(PurePosixPath(p)) for p in pythonpath.split(":") if p.startswith("/")}
    exposed, hidden = [], []
    for module in modules:
        if not module.path.is_relative_to(context):
            hidden.append(f"{module.name} (outside the build context)")
            continue
        where = image_path(str(module.path.relative_to(context)), mapping)
        if where is None:
            hidden.append(f"{module.name} (not copied into the image)")
        elif str(PurePosixPath(where).parent) in exposed_dirs:
            exposed.append(module.name)
        else:
            hidden.append(f"{module.name} (at {where}, not on the working directory or PYTHONPATH)")
    return exposed, hidden
