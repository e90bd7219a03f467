"""The root probe's walk over the whole filesystem, and what it makes of what it saw: stray files,
other environments, setuid files, build tools, source trees."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: never evaluated at runtime, so fine on Python 3.8
    from collections.abc import Iterable

    PycCache = dict[str, dict[str, list[tuple[str, int]]]]  # directory -> {stem: [(pyc, size)]}

# probe: parts (these imports are dropped when source() joins the parts into one program)
from dockyard.verify.probe.common import (
    DIST_SUFFIXES,
    LIST_LIMIT,
    READ_CHUNK,
    SITE_DIR_NAMES,
    _elapsed,
    _Matcher,
    _sha256_b64,
    _within,
)
from dockyard.verify.probe.distributions import (
    _dist_name,
    _listed,
    environment,
    find_distributions,
    interpreter_ok,
)
from dockyard.verify.probe.resolve import (
    privilege,
)

# probe: end parts

# The probe runs in images of ~20k files: os.path strings, not a pathlib object per entry.
# ruff: noqa: PTH110, PTH112, PTH113, PTH116, PTH118, PTH119, PTH120, PTH123, PTH208

PRIVATE_KEY_MARKER = b"PRIVATE KEY-----"  # cheap pre-filter for PRIVATE_KEY_BLOCK


# A PEM block's header line followed by key material (base64 or an encryption header), so source
# code that merely names the marker in a string constant is not reported.
PRIVATE_KEY_BLOCK = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[ \t]*\r?\n[ \t]*(?:[A-Za-z0-9+/=]{16}|Proc-Type:)"
)


ELF_MAGIC = b"\x7fELF"
KEY_WINDOW = 512  # bytes kept around a marker so a block split across reads is still seen
FIRST_READ = 1 << 16  # most files end within it; an ELF file is known by it


REASON_PRIVATE_KEY = "private key"


REASON_HOST_VENV = "host virtual environment"


# Build tools found by name: executables that compile, link, build or install.
BUILD_TOOL_NAME = re.compile(
    r"^(?:(?P<installer>uvx?|pip(?:\d+(?:\.\d+)*)?|pipx|poetry|pdm)"
    r"|(?P<compiler>(?:[a-z0-9_]+-linux-gnu-)?(?:gcc|g\+\+|c\+\+|cc|cpp|clang|clang\+\+|gfortran)"
    r"(?:-\d+(?:\.\d+)*)?|rustc|cargo|go)"
    r"|(?P<build>make|gmake|cmake|ninja|meson|autoconf|automake|libtool)"
    r"|(?P<binutils>(?:[a-z0-9_]+-linux-gnu-)?(?:ld|ld\.bfd|ld\.gold|as)))$"
)


BACKUP_SUFFIX = re.compile(r"^(.+)\.(?:swp|swo|swn|swx|bak|orig|old|save|tmp)$", re.IGNORECASE)


class Walk:
    """What one pass over the filesystem found (the ``walk`` section plus raw material)."""

    def __init__(
        self,
        *,
        deadline: float,
        names: _Matcher,
        paths: _Matcher,
        exclude: _Matcher,
        skip: set[str],  # mount points: not the image's content
        sniff: bool,
        project_trees: dict[str, list[Any]],
        privileges: bool = True,  # note setuid/setgid-root files and file capabilities
        toolchain: bool = True,  # note build tools, C headers and uv projects
    ) -> None:
        self.deadline = deadline
        self.names = names
        self.paths = paths
        self.exclude = exclude
        self.skip = skip
        self.sniff = sniff
        self.project_trees = project_trees
        self.privileges = privileges
        self.toolchain = toolchain
        self.files = self.dirs = self.unreadable = 0
        self.unreadable_paths: list[str] = []
        self.truncated = False
        self.seconds = 0.0
        self.site_dirs: list[str] = []
        self.dist_parents: set[str] = set()
        self.venv_roots: list[str] = []
        self.pyprojects: list[str] = []
        self.headers: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []
        self.privileged: list[dict[str, Any]] = []
        self.strays: list[dict[str, Any]] = []
        self.sources: dict[str, frozenset[str]] = {}  # folder -> its names, listed once

    def summary(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "dirs": self.dirs,
            "unreadable": self.unreadable,
            "unreadable_paths": self.unreadable_paths[:LIST_LIMIT],
            "seconds": self.seconds,
            "truncated": self.truncated,
        }

    def expired(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.truncated = True
        return self.truncated

    def cannot_read(self, path: str) -> None:
        self.unreadable += 1
        if len(self.unreadable_paths) < LIST_LIMIT:
            self.unreadable_paths.append(path)


def name_variants(name: str) -> list[str]:
    """The name, and the name an editor backup or swap file is a copy of (``.env~``, ``#.env#``,
    ``.#.env``, ``.env.swp``, ``.id_rsa.swp``, ``id_rsa.old``)."""
    found = [name]
    base = name
    if base.endswith("~") and len(base) > 1:
        base = base[:-1]
        found.append(base)
    if len(base) > 2 and base.startswith("#") and base.endswith("#"):
        base = base[1:-1]
        found.append(base)
    if base.startswith(".#") and len(base) > 2:
        found.append(base[2:])
    match = BACKUP_SUFFIX.match(base)
    if match:
        stem = match.group(1)
        found.append(stem)
        if stem.startswith(".") and len(stem) > 1:
            found.append(stem[1:])
    return found


def has_private_key(path: str, walk: Walk) -> bool:
    """Whether a PEM private key block is anywhere in the file (see :func:`_key_in`)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        walk.cannot_read(path)
        return False
    try:
        return _key_in(fd, path, walk)
    finally:
        os.close(fd)


def _key_in(fd: int, path: str, walk: Walk) -> bool:
    """Whether a PEM private key block is anywhere in the open file, streamed in chunks, whatever its
    size.

    Compiled programs and libraries (ELF) are not read past their first bytes: a build leaks keys as
    files and text, and the large native libraries of an image would cost most of the walk's time.
    The first read is small (most files end within it; an ELF file is known by its first bytes), later
    ones large; no buffered file object is made for what is read once.
    """
    try:
        size = FIRST_READ
        tail = b""
        while not walk.expired():
            chunk = os.read(fd, size)
            if not chunk or (not tail and chunk.startswith(ELF_MAGIC)):
                return False
            size = READ_CHUNK
            data = tail + chunk
            at = data.find(PRIVATE_KEY_MARKER)
            if at >= 0:
                if len(data) - at < KEY_WINDOW:
                    data += os.read(fd, KEY_WINDOW)
                if PRIVATE_KEY_BLOCK.search(data, max(0, at - 64)) is not None:
                    return True
            tail = data[-KEY_WINDOW:]
    except OSError:
        walk.cannot_read(path)
    return False


def _compiled_from_source(path: str, walk: Walk) -> bool:
    """A ``__pycache__`` file whose ``.py`` is beside it: its constants are in the source, which is
    read (a ``.pyc`` without its source is read like any file). The source folder is listed once."""
    if not path.endswith(".pyc"):
        return False
    folder, name = os.path.split(path)
    if os.path.basename(folder) != "__pycache__":
        return False
    parent = os.path.dirname(folder)
    names = walk.sources.get(parent)
    if names is None:
        try:
            with os.scandir(parent) as entries:  # what exists, as os.path.exists says
                names = frozenset(e.name for e in entries if not e.is_symlink() or os.path.exists(e.path))
        except OSError:
            names = frozenset()
        walk.sources[parent] = names
    return name.split(".", 1)[0] + ".py" in names


def tree_size(path: str, walk: Walk, *, linked: bool = True) -> int:
    """Bytes of the regular files below ``path`` (no symlinks followed), bounded by the deadline;
    without ``linked``, files with other hard links (their bytes are someone else's too) are left out."""
    total = 0
    stack = [path]
    while stack and not walk.expired():
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        total += st.st_size if linked or st.st_nlink == 1 else 0
        except OSError:
            walk.cannot_read(directory)
    return total


def project_tree_match(path: str, markers: list[Any]) -> str | None:
    """The first of the project's files found at the same place below ``path``, when the folder is
    the project's: two of (a file at the same relative path, a file of the same size) at least."""
    score = 0
    first = None
    for marker in markers:
        if not (isinstance(marker, list) and len(marker) == 2):
            continue
        relative, size = str(marker[0]), marker[1]
        try:
            st = os.lstat(os.path.join(path, relative))
        except OSError:
            continue
        score += 1 + (1 if st.st_size == size else 0)
        first = first or relative
        if score >= 2:
            return first
    return None


# Installers' download caches (path globs sent by the check): stray when they hold something.
PACKAGE_CACHES = ("/.cache/uv", "/.cache/pip")


def _stray_reason(walk: Walk, name: str, path: str, is_dir: bool) -> str | None:
    for variant in name_variants(name):
        reason = walk.names.match(variant)
        if reason is not None:
            return reason
    reason = walk.paths.match(path)
    if reason is None and is_dir and name in walk.project_trees:
        found = project_tree_match(path, walk.project_trees[name])
        if found is not None:
            reason = f"the project's {name}/ (holds {name}/{found})"
    return reason


def _report_stray(walk: Walk, path: str, reason: str, st: os.stat_result, is_dir: bool) -> None:
    if reason == ".git" and stat.S_ISREG(st.st_mode) and st.st_size == 0:
        return  # an empty marker (uv writes one in its cache), not a repository's pointer
    size = tree_size(path, walk) if is_dir else st.st_size
    if reason.endswith(PACKAGE_CACHES):
        if size == 0:
            return  # the empty mount point a `--mount=type=cache` leaves: nothing cached ships
        own = tree_size(path, walk, linked=False)  # uv hard-links installed files to its cache
        reason = f"the {reason.rsplit('/', 1)[-1]} package cache" + (
            "; files hard-linked to installed ones not counted" if own < size else ""
        )
        size = own
    walk.strays.append({"path": path, "reason": reason, "size": size})


def _visit(walk: Walk, entry: os.DirEntry[str], stack: list[str]) -> None:
    """Look at one directory entry: report it, queue it, note it, or sniff it. The directory's own
    listing tells a folder and a symlink apart: only regular files (and strays) are stat'ed."""
    path, name = entry.path, entry.name
    if path in walk.skip:
        return
    is_dir = entry.is_dir(follow_symlinks=False)
    if is_dir:
        walk.dirs += 1
    else:
        walk.files += 1
    reason = _stray_reason(walk, name, path, is_dir)
    if reason is not None:  # reported once (unless it holds nothing that matters), never descended into
        _report_stray(walk, path, reason, entry.stat(follow_symlinks=False), is_dir)
        return
    if is_dir:
        if walk.exclude.match(path) is None:
            if name in SITE_DIR_NAMES:
                walk.site_dirs.append(path)
            elif name.endswith(DIST_SUFFIXES):
                walk.dist_parents.add(os.path.dirname(path))
            stack.append(path)
    elif entry.is_symlink():
        if walk.toolchain and BUILD_TOOL_NAME.match(name):
            _note_tool(walk, name, path, None)
    elif entry.is_file(follow_symlinks=False):
        _visit_regular(walk, entry)


def _visit_regular(walk: Walk, entry: os.DirEntry[str]) -> None:
    """A regular file: opened first when it is to be sniffed, so its status comes from the open file
    (no second lookup of its path)."""
    path = entry.path
    fd = None
    refused = False
    if walk.sniff and not _compiled_from_source(path, walk):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            refused = True
    try:
        st = os.fstat(fd) if fd is not None else entry.stat(follow_symlinks=False)
        if refused and st.st_size > 0:  # what the sniff could not read
            walk.cannot_read(path)
        _visit_file(walk, entry.name, path, st, fd)
    finally:
        if fd is not None:
            os.close(fd)


def _visit_file(walk: Walk, name: str, path: str, st: os.stat_result, fd: int | None = None) -> None:
    """Note what a regular file tells (a venv, a project, headers, metadata, privileges, tools) and,
    given it open, sniff it for a private key."""
    mode = st.st_mode
    if name == "pyvenv.cfg":
        walk.venv_roots.append(os.path.dirname(path))
    elif name == "pyproject.toml":
        walk.pyprojects.append(os.path.dirname(path))
    elif name == "Python.h":
        if walk.toolchain:
            walk.headers.append({"path": path, "size": st.st_size})
    elif name.endswith(".egg-info"):
        walk.dist_parents.add(os.path.dirname(path))
    if mode & (stat.S_ISUID | stat.S_ISGID | 0o111):
        if walk.toolchain and mode & 0o111 and BUILD_TOOL_NAME.match(name):
            _note_tool(walk, name, path, st)
        raised = privilege(path, st) if walk.privileges else None
        if raised is not None:
            walk.privileged.append(raised)
    if fd is not None and st.st_size > 0 and _key_in(fd, path, walk):
        walk.strays.append({"path": path, "reason": REASON_PRIVATE_KEY, "size": st.st_size})


def _note_tool(walk: Walk, name: str, path: str, st: os.stat_result | None) -> None:
    real = os.path.realpath(path)
    try:
        target = st if st is not None else os.stat(real)
    except OSError:  # a dangling link runs nothing
        return
    if not stat.S_ISREG(target.st_mode) or not target.st_mode & 0o111:
        return
    match = BUILD_TOOL_NAME.match(name)
    kind = next((k for k, v in (match.groupdict() if match else {}).items() if v), "tool")
    walk.tools.append({"name": name, "kind": kind, "path": path, "real": real, "size": target.st_size})


def walk_tree(roots: list[str], walk: Walk) -> None:
    """Depth-first over ``roots`` with an explicit stack (no recursion limit to hit)."""
    start = time.monotonic()
    stack = [os.path.normpath(root) for root in reversed(roots)]
    while stack and not walk.expired():
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        _visit(walk, entry, stack)
                    except OSError:  # vanished or unreadable entry
                        walk.cannot_read(entry.path)
        except OSError:
            walk.cannot_read(directory)
    walk.seconds = _elapsed(start)


def mount_points(volumes: Iterable[str], mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    """Mount points of this container other than / and the image's VOLUMEs (whose content is the
    image's, copied in): /etc/hosts, /etc/resolv.conf, /etc/hostname, /dev/shm and the like."""
    found: set[str] = set()
    keep = {os.path.normpath(v) for v in volumes}
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                parts = line.split()
                if len(parts) > 4:
                    point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4])
                    if point != "/" and point not in keep:
                        found.add(point)
    except OSError:  # not Linux, or no /proc: nothing to leave out
        return set()
    return found


def other_environments(walk: Walk, app_paths: Iterable[str], footprint: bool = True) -> list[dict[str, Any]]:
    """Every place the walk found distributions in that is not on the app's sys.path."""
    seen = {os.path.realpath(p or ".") for p in app_paths}
    found = []
    for path in sorted(set(walk.site_dirs) | walk.dist_parents):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append(environment(path, active=False, footprint=footprint))
    return found


def host_venvs(walk: Walk, own_prefix: str | None) -> list[dict[str, Any]]:
    """Venvs whose interpreter does not exist here: built elsewhere and copied into the image."""
    own = os.path.realpath(own_prefix) if own_prefix else None
    strays: list[dict[str, Any]] = []
    for root in sorted(set(walk.venv_roots)):
        if os.path.realpath(root) != own and not interpreter_ok(root):
            strays.append({"path": root, "reason": REASON_HOST_VENV, "size": tree_size(root, walk)})
    return strays


class _Owners:
    """Which installed distribution lists a file in its RECORD, with the hash it recorded."""

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots = sorted({os.path.normpath(r) for r in roots if r}, key=len, reverse=True)
        self.index: dict[str, dict[str, tuple[str, str, str]]] = {}

    def _load(self, root: str) -> dict[str, tuple[str, str, str]]:
        if root not in self.index:
            files: dict[str, tuple[str, str, str]] = {}
            for dist in find_distributions(root):
                with contextlib.suppress(Exception):
                    _, rows, _ = _listed(dist)
                    label = f"{_dist_name(dist)} {dist.version}"
                    for path, digest, _size in rows:
                        files[path] = (str(_dist_name(dist)), label, digest)
            self.index[root] = files
        return self.index[root]

    def owner(self, path: str) -> dict[str, Any] | None:
        """The distribution that installed ``path`` (a file, or every file below a folder), and
        whether the files still hold the bytes it recorded."""
        root = next((r for r in self.roots if _within(path, r) and r != path), None)
        if root is None:
            return None
        files = self._load(root)
        if os.path.isdir(path) and not os.path.islink(path):  # noqa: PTH114
            members: list[str] = []
            for directory, _dirs, names in os.walk(path):
                members.extend(os.path.join(directory, n) for n in names)
                if len(members) > 500:
                    return None
        else:
            members = [path]
        owners = {files[m][0] for m in members if m in files}
        if len(owners) != 1 or any(m not in files for m in members if not m.endswith(".pyc")):
            return None
        name, label, _ = files[next(m for m in members if m in files)]
        verified = True
        for member in members:
            digest = files.get(member, ("", "", ""))[2]
            if digest.startswith("sha256="):
                try:
                    verified = verified and _sha256_b64(member) == digest[len("sha256=") :]
                except OSError:
                    verified = False
        return {"name": name, "label": label, "verified": verified}


def _records(path: str) -> list[str]:
    """A package database's records (blank-line separated); none when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().split("\n\n")
    except OSError:
        return []


def _dpkg_status(path: str = "/var/lib/dpkg/status") -> dict[str, int]:
    """Installed dpkg packages and their Installed-Size in bytes."""
    found: dict[str, int] = {}
    for block in _records(path):
        fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", block, re.MULTILINE))
        if "Package" in fields and "installed" in fields.get("Status", "").split()[-1:]:
            size = fields.get("Installed-Size", "0")
            found[fields["Package"]] = int(size) * 1024 if size.isdigit() else 0
    return found


def _apk_installed(path: str = "/lib/apk/db/installed") -> dict[str, int]:
    """Installed Alpine packages and their installed size in bytes."""
    found: dict[str, int] = {}
    for block in _records(path):
        fields = dict(re.findall(r"^([A-Za-z]):(.*)$", block, re.MULTILINE))
        if "P" in fields:
            found[fields["P"]] = int(fields["I"]) if fields.get("I", "").isdigit() else 0
    return found


def _dpkg_owners(paths: Iterable[str], info: str = "/var/lib/dpkg/info") -> dict[str, str]:
    """{path: dpkg package} for the paths some package's file list names (/bin and /usr/bin alike)."""
    wanted: dict[str, str] = {}
    for path in paths:
        wanted[path] = path
        if path.startswith("/usr/"):
            wanted[path[4:]] = path
        else:
            wanted["/usr" + path] = path
    owners: dict[str, str] = {}
    try:
        names = sorted(n for n in os.listdir(info) if n.endswith(".list"))
    except OSError:
        return owners
    for name in names:
        try:
            with open(os.path.join(info, name), encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    original = wanted.get(line.rstrip("\n"))
                    if original is not None:
                        owners.setdefault(original, name[: -len(".list")].split(":")[0])
        except OSError:
            continue
    return owners


def build_tools(walk: Walk, app_python: dict[str, Any], path_dirs: list[str]) -> dict[str, Any]:
    """The build toolchain the image ships: installers, compilers, build systems, -dev packages and
    C headers; each marked with its package (dpkg) and whether it belongs to the base interpreter's
    own installation (its prefix, e.g. /usr/local of the python:3.x images) or a virtual environment."""
    base_prefix = str(app_python.get("base_prefix") or "")
    prefix = str(app_python.get("prefix") or "")
    dpkg = _dpkg_status()
    apk = _apk_installed()
    tools = sorted(walk.tools, key=lambda t: t["path"])
    owners = (
        _dpkg_owners(
            [t["path"] for t in tools] + [t["real"] for t in tools] + [h["path"] for h in walk.headers]
        )
        if dpkg
        else {}
    )
    on_path = [os.path.normpath(d) for d in path_dirs if d]
    for tool in tools:
        package = owners.get(tool["path"]) or owners.get(tool["real"])
        tool["package"] = package
        tool["package_size"] = dpkg.get(package or "", None) if package else None
        tool["on_path"] = os.path.dirname(tool["path"]) in on_path
        tool["in_venv"] = bool(prefix and prefix != base_prefix and _within(tool["path"], prefix))
        # python:3.x images install pip under their prefix, never uv or another installer: those got
        # there from a Dockerfile (`COPY --from=uv /uv /usr/local/bin/`) or a base made for it.
        foreign = tool.get("kind") == "installer" and not str(tool.get("name", "")).startswith("pip")
        tool["in_base_python"] = bool(
            base_prefix not in ("", "/usr")
            and _within(tool["path"], base_prefix)
            and not package
            and not foreign
        )
    headers = []
    for header in walk.headers:
        header["package"] = owners.get(header["path"])
        header["in_base_python"] = bool(
            base_prefix
            and _within(header["path"], os.path.join(base_prefix, "include"))
            and not header["package"]
        )
        headers.append(header)
    dev = [
        {"name": name, "size": size, "manager": "dpkg"}
        for name, size in sorted(dpkg.items())
        if name.endswith("-dev")
    ] + [
        {"name": name, "size": size, "manager": "apk"}
        for name, size in sorted(apk.items())
        if name.endswith("-dev")
    ]
    return {"tools": tools, "headers": headers, "dev_packages": dev}


def source_trees(
    walk: Walk, app_paths: list[str], workdir: str, import_origins: list[str]
) -> list[dict[str, Any]]:
    """uv projects (pyproject.toml beside uv.lock) in the image, and whether the app runs from them:
    the working directory is in one, or one of the app's sys.path entries or imports is."""
    found = []
    touching = [os.path.realpath(p) for p in [*app_paths, *import_origins] if p]
    work = os.path.realpath(workdir or "/")
    for folder in sorted(set(walk.pyprojects)):
        if not os.path.isfile(os.path.join(folder, "uv.lock")):
            continue
        if any(part in SITE_DIR_NAMES for part in folder.split("/")):
            continue
        real = os.path.realpath(folder)
        app = (
            _within(work, real)
            or (_within(real, work) and work != "/")
            or any(_within(p, real) for p in touching)
        )
        found.append(
            {
                "path": folder,
                "app": bool(app),
                "size": tree_size(folder, walk),
                "holds": sorted(
                    n
                    for n in ("pyproject.toml", "uv.lock", "src", ".git")
                    if os.path.exists(os.path.join(folder, n))
                ),
            }
        )
    return found
