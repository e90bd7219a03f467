"""`dockyard init`'s plan: which files change and how, shown (`--dry-run`) or written atomically.

All or nothing: every file is rendered and compared first. A file that exists and differs from what
init would write stops the run before anything changes, unless `--force`; identical files are left
alone, so a second run changes nothing. tasks.py and noxfile.py that exist without dockyard get a few
lines appended (never rewritten), and pyproject.toml gets `[tool.dockyard]` appended when it has none
(an existing table is configuration, and configuration wins).

dockyard itself is added to the project's development dependencies with `uv add --dev`, from where
the running dockyard came (PEP 610's direct_url.json: a path, a git URL, a wheel, else PyPI).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from rich.console import Console
from rich.markup import escape

from dockyard import __version__, config, fsutil, git, process
from dockyard.errors import CommandError, DockyardError, UsageError
from dockyard.init import infer, render
from dockyard.init import project as projects
from dockyard.init.model import DockyardSource, Inference, Options
from dockyard.init.project import Project, canonical

LARGE_UNTRACKED = 5_000_000  # bytes: an untracked file this big inside the context is left out


class InitConflict(DockyardError):
    """Files exist and differ from what init would write; nothing was changed."""


@dataclass(frozen=True)
class FileChange:
    path: Path
    old: str | None  # None: the file does not exist
    new: str
    how: str  # create, unchanged, replace, append

    @property
    def changes(self) -> bool:
        return self.how != "unchanged"


@dataclass(frozen=True)
class Plan:
    inference: Inference
    files: tuple[FileChange, ...]
    commands: tuple[tuple[str, ...], ...]  # uv add / uv lock, run before the files are written
    conflicts: tuple[FileChange, ...]


# --- where dockyard comes from ----------------------------------------------------------------------


def running_source(environ_version: str = __version__) -> DockyardSource:
    """How to add the running dockyard to a project: the same path, git URL or wheel, else PyPI."""
    try:
        text = metadata.distribution("dockyard").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        text = None
    info = json.loads(text) if text else {}
    return source_from_direct_url(info, environ_version)


def source_from_direct_url(info: dict[str, object], version: str) -> DockyardSource:
    url = str(info.get("url", ""))
    uv_add = ("uv", "add", "--dev", "--no-sync")
    if not url:
        return DockyardSource(
            (*uv_add, f"dockyard[nox]>={version}"), "registry", f"PyPI, dockyard>={version}"
        )
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict):
        revision = vcs.get("requested_revision") or vcs.get("commit_id")
        ref = f"git+{url}" + (f"@{revision}" if revision else "")
        return DockyardSource((*uv_add, f"dockyard[nox] @ {ref}"), "git", ref)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = unquote(parsed.path)
        dir_info = info.get("dir_info")
        if isinstance(dir_info, dict):
            editable = ("--editable",) if dir_info.get("editable") else ()
            return DockyardSource((*uv_add, *editable, path, "--extra", "nox"), "path", path)
        return DockyardSource((*uv_add, path, "--extra", "nox"), "wheel", path)
    return DockyardSource((*uv_add, f"dockyard[nox] @ {url}"), "url", url)


def _requirement_names(items: object) -> set[str]:
    names: set[str] = set()
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            names.add(canonical(re.split(r"[\s<>=!~;\[(@]", item.strip(), maxsplit=1)[0]))
    return names


def declares_dockyard(project: Project) -> bool:
    """Whether the project (or its workspace root) already depends on dockyard in any way."""
    tables = [project.data]
    if project.workspace and project.workspace.root != project.directory:
        root = project.workspace.root / "pyproject.toml"
        tables.append(tomllib.loads(root.read_text()))
    for data in tables:
        names: set[str] = set()
        proj = data.get("project", {})
        names |= _requirement_names(proj.get("dependencies"))
        for extra in (proj.get("optional-dependencies") or {}).values():
            names |= _requirement_names(extra)
        for group in (data.get("dependency-groups") or {}).values():
            names |= _requirement_names(group)
        names |= _requirement_names(data.get("tool", {}).get("uv", {}).get("dev-dependencies"))
        if "dockyard" in names:
            return True
    return False


# --- the plan ---------------------------------------------------------------------------------------


def _large_untracked(project: Project, allowed: Sequence[str]) -> list[str]:
    """Untracked files over LARGE_UNTRACKED inside what the .dockerignore lets in."""
    try:
        done = process.run(
            ["git", "-C", str(project.context), "ls-files", "-z", "--others", "--ignored",
             "--exclude-standard", "--", *[a.rstrip("/") for a in allowed if a.endswith("/")]],
            timeout=60, check=False,
        )  # fmt: skip
    except CommandError:
        return []
    if done.returncode != 0:
        return []
    found = []
    for name in done.stdout.split("\0"):
        if not name or "__pycache__" in name or name.endswith((".pyc", ".pyo")):
            continue
        path = project.context / name
        if path.is_file() and not path.is_symlink() and path.stat().st_size > LARGE_UNTRACKED:
            found.append(name)
    return sorted(found)


def _ignore_file(project: Project) -> Path:
    """.dockerignore at the context root, or `<Dockerfile>.dockerignore` beside a workspace member's
    Dockerfile (BuildKit's per-Dockerfile ignore file), so members do not fight over one file."""
    if project.workspace:
        return project.directory / "Dockerfile.dockerignore"
    return project.directory / ".dockerignore"


def _mentions_dockyard(text: str) -> bool:
    return re.search(r"^\s*(from|import)\s+dockyard\b", text, re.MULTILINE) is not None


def _tasks_change(path: Path) -> FileChange:
    if not path.is_file():
        return FileChange(path, None, render.tasks_py(), "create")
    old = path.read_text()
    if _mentions_dockyard(old):
        return FileChange(path, old, old, "unchanged")
    match = re.search(r"^(ns|namespace)\s*=", old, re.MULTILINE)
    appendix = render.TASKS_APPENDIX_NS.format(ns=match.group(1)) if match else render.TASKS_APPENDIX
    return FileChange(path, old, old.rstrip("\n") + "\n" + appendix, "append")


def _noxfile_change(path: Path, compose: bool) -> FileChange:
    if not path.is_file():
        return FileChange(path, None, render.noxfile_py(compose), "create")
    old = path.read_text()
    if _mentions_dockyard(old):
        return FileChange(path, old, old, "unchanged")
    prefix = "" if re.search(r"^import nox\b", old, re.MULTILINE) else "\nimport nox  # noqa: E402\n"
    return FileChange(path, old, old.rstrip("\n") + "\n" + prefix + render.NOXFILE_APPENDIX, "append")


def _file(path: Path, new: str) -> FileChange:
    if not path.exists():
        return FileChange(path, None, new, "create")
    if not path.is_file():
        raise UsageError(f"{path} exists and is not a file: move it away, then run init again")
    old = path.read_text()
    return FileChange(path, old, new, "unchanged" if old == new else "replace")


def plan(
    directory: Path,
    options: Options,
    *,
    force: bool = False,
    source: DockyardSource | None = None,
    add: bool = True,
) -> Plan:
    """Read, infer, render and compare; nothing is written."""
    project = projects.read_project(directory)
    adding: DockyardSource | None = None
    if add and canonical(project.name) != "dockyard" and not declares_dockyard(project):
        adding = source or running_source()
    files = projects.tree_files(project.directory)
    docker = config.effective_environment().get("DOCKYARD_DOCKER")
    compose, compose_note = infer.read_compose(project, docker)
    inference = infer.infer(
        project, options, files, adding=adding, compose=compose, compose_note=compose_note
    )
    changes = [
        _file(project.directory / "Dockerfile", render.dockerfile(inference)),
        _file(
            _ignore_file(project),
            render.dockerignore(inference, _large_untracked(project, inference.context_paths)),
        ),
    ]
    if project.dockyard_table is None:
        pyproject = project.directory / "pyproject.toml"
        new = render.with_dockyard_table(project, render.dockyard_table(inference))
        changes.append(FileChange(pyproject, project.text, new, "append"))
    changes.append(_tasks_change(project.directory / "tasks.py"))
    changes.append(_noxfile_change(project.directory / "noxfile.py", options.compose))
    if options.compose:
        changes.append(_file(project.directory / "compose.yaml", render.compose_yaml(inference)))
    commands: list[tuple[str, ...]] = []
    if adding is not None:
        commands.append(adding.argv)
    elif project.lock is None:
        commands.append(("uv", "lock"))
    conflicts = tuple(c for c in changes if c.how == "replace" and not force)
    return Plan(inference, tuple(changes), tuple(commands), conflicts)


# --- showing and writing ----------------------------------------------------------------------------


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


def diff(change: FileChange, base: Path) -> str:
    name = _shown(change.path, base)
    old = (change.old or "").splitlines(keepends=True)
    new = change.new.splitlines(keepends=True)
    before = "/dev/null" if change.old is None else f"a/{name}"
    return "".join(difflib.unified_diff(old, new, before, f"b/{name}"))


def show_inference(inference: Inference, console: Console) -> None:
    project = inference.project
    console.print(f"[bold]dockyard init[/] {escape(str(project.directory))}")
    width = max(len(f.what) for f in inference.facts)
    for fact in inference.facts:
        console.print(f"  {fact.what:<{width}}  [bold]{escape(fact.value)}[/]  [dim]{escape(fact.why)}[/]")
    for note in inference.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}")
    if inference.dockyard is not None:
        console.print(
            f"  dockyard: added as a development dependency from {escape(inference.dockyard.shown)}"
        )


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory and rename it over `path` (keeping an
    existing file's mode), so a reader never sees half a file and a failure leaves the old one:
    dockyard's one atomic write, `fsutil.atomic_write`."""
    fsutil.atomic_write(path, text)


def _check_writable(changes: Sequence[FileChange]) -> None:
    for change in changes:
        if not change.changes:
            continue
        target = change.path if change.path.exists() else change.path.parent
        if not os.access(target, os.W_OK):
            raise UsageError(f"cannot write {change.path}: permission denied; nothing was changed")


def run(
    directory: Path,
    options: Options,
    console: Console,
    *,
    force: bool = False,
    dry_run: bool = False,
    source: DockyardSource | None = None,
    add: bool = True,
) -> Plan:
    """`dockyard init`: show what was inferred, then show (--dry-run) or write the files."""
    first = plan(directory, options, force=force, source=source, add=add)
    project = first.inference.project
    show_inference(first.inference, console)
    if dry_run:  # every file or diff, the conflicting ones marked; then the conflict, if any
        _print_dry_run(first, console)
        if first.conflicts:
            raise _conflict(first, project.directory, "nothing was written")
        return first
    if first.conflicts:
        for change in first.conflicts:
            console.print(diff(change, project.directory), markup=False, highlight=False, end="")
        raise _conflict(first, project.directory, "nothing was changed")
    _check_writable(first.files)
    done = first
    if first.commands:
        for argv in first.commands:
            console.print(f"  running: {' '.join(argv)}", markup=False)
            try:
                process.run(list(argv), cwd=project.directory, timeout=900, what=" ".join(argv[:4]))
            except CommandError as exc:
                raise DockyardError(
                    f"`{' '.join(argv)}` failed: {exc.message}; no file was written", detail=exc.output
                ) from None
        # uv changed pyproject.toml and uv.lock: render again from what is there now.
        done = plan(directory, options, force=force, source=source, add=add)
        done = replace(done, commands=first.commands)
    for change in done.files:
        if change.changes and (change.how != "replace" or force):
            write_atomically(change.path, change.new)
    _print_summary(done, console)
    return done


def _conflict(result: Plan, base: Path, outcome: str) -> InitConflict:
    names = ", ".join(_shown(c.path, base) for c in result.conflicts)
    verbs = "exists and differs" if len(result.conflicts) == 1 else "exist and differ"
    return InitConflict(f"{names} {verbs} from what init writes (diff above): {outcome}; --force overwrites")


def _print_dry_run(result: Plan, console: Console) -> None:
    base = result.inference.project.directory
    for argv in result.commands:
        console.print(f"would run: {' '.join(argv)}", markup=False)
    for change in result.files:
        if not change.changes:
            console.print(f"unchanged: {_shown(change.path, base)}", markup=False)
            continue
        if change in result.conflicts:
            console.print(f"differs (--force would replace it): {_shown(change.path, base)}", markup=False)
        else:
            console.print(f"would {change.how}: {_shown(change.path, base)}", markup=False)
        console.print(diff(change, base), markup=False, highlight=False, end="")
    if result.commands:
        console.print(
            "(uv.lock changes with the commands above; the files are rendered again from it)", markup=False
        )


def _print_summary(result: Plan, console: Console) -> None:
    base = result.inference.project.directory
    for change in result.files:
        verb = {"create": "created", "replace": "replaced", "append": "appended to", "unchanged": "unchanged"}
        console.print(f"  {verb[change.how]}: {_shown(change.path, base)}", markup=False)
    if not any(c.changes for c in result.files) and not result.commands:
        console.print("[green]nothing to change[/]: the project already has what init writes")
        return
    if git.toplevel(base) is None:
        console.print("[yellow]note:[/] not a git repository: `git init` and commit, so images are tagged by")
        console.print("  commit and verify's lock-current check can see uv.lock committed")
    console.print("[bold green]ready[/]: commit these files, then")
    console.print("  uv run invoke build            # build the image", markup=False)
    console.print("  uv run nox -s verify-image     # build it and run the checklist", markup=False)
