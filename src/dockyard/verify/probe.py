"""The in-container probe: one process that collects what every in-image check needs.

dockyard reads this file's source (:func:`source`) and runs it once inside a container of the image
being verified, with the image's own interpreter and user::

    docker run --rm --entrypoint python IMAGE -c <source> <spec-json>

It prints exactly one JSON document to stdout and exits 0. It must run on Python 3.8 through 3.14
and use the standard library only, so: no ``match``, no runtime use of ``X | Y`` or ``list[str]``
(annotations are strings thanks to the ``__future__`` import), nothing newer than 3.8 at runtime.

Spec (a JSON object, every key optional):

* ``imports`` (list of module names): each imported in a subprocess of this interpreter, bounded by
  ``import_timeout`` seconds (default 20).
* ``commands`` (list of ``{"argv": [...], "timeout": seconds}``, timeout default 30): run without a
  shell, as the container's user and environment.
* ``forbidden_names`` (basename globs, e.g. ``.env``, ``*.key``): matched against every name the
  walk meets, except inside ``site-packages``/``dist-packages`` directories.
* ``forbidden_paths`` (absolute path globs, e.g. ``/app/tests``): matched against full paths,
  anywhere. Both use :func:`fnmatch.fnmatchcase`, anchored at both ends (``*`` also matches ``/``).
* ``sniff_private_keys`` (default true): regular files under 64 KiB outside site-packages whose
  content holds ``PRIVATE KEY-----`` are reported.
* ``walk_roots`` (default ``["/"]``), ``walk_exclude`` (default ``/proc /sys /dev /run /tmp``; a
  given list replaces it; globs matched against directory paths below the roots; a root is always
  walked). Symlinks are never followed.
* ``deadline_seconds`` (default 60): the walk, and the sizing of stray directories, stop when it has
  passed since the probe started, and the output says ``"truncated": true``.

Output keys: ``python``, ``user``, ``env``, ``cwd``, ``environments``, ``imports``, ``commands``,
``stray_files``, ``walk``, ``errors``, ``seconds``. Every section guards itself: a failing section
is recorded in ``errors`` (and as ``{"error": ...}`` for object sections) and never loses the
others.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import fnmatch
import json
import os
import platform
import re
import shutil
import signal
import site
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # annotations only: never evaluated at runtime, so fine on Python 3.8
    from collections.abc import Callable, Iterable

    PycCache = dict[str, dict[str, list[tuple[str, int]]]]  # directory -> {stem: [(pyc, size)]}

# The probe must stay fast on an image of ~20k files: os.scandir and os.path strings, not a pathlib
# object per entry.
# ruff: noqa: PTH112, PTH113, PTH118, PTH119, PTH120, PTH123, PTH206
# And no formatter-made parenthesized `with (a, b):` (Python 3.10+): nest the context managers.

_T = TypeVar("_T")

SITE_DIR_NAMES = ("site-packages", "dist-packages")
DEFAULT_WALK_EXCLUDE = ("/proc", "/sys", "/dev", "/run", "/tmp")  # noqa: S108 - not a temp file
DEFAULT_DEADLINE = 60.0
DEFAULT_IMPORT_TIMEOUT = 20.0
DEFAULT_COMMAND_TIMEOUT = 30.0
OUTPUT_LIMIT = 4000  # characters kept of a command's stdout and of its stderr
SNIFF_LIMIT = 64 * 1024  # files at least this big are not read for private keys
PRIVATE_KEY_MARKER = b"PRIVATE KEY-----"  # cheap pre-filter for PRIVATE_KEY_BLOCK
# A PEM block's header line followed by key material (base64 or an encryption header), so source
# code that merely names the marker in a string constant is not reported.
PRIVATE_KEY_BLOCK = re.compile(
    rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[ \t]*\r?\n[ \t]*(?:[A-Za-z0-9+/=]{16}|Proc-Type:)"
)
REASON_PRIVATE_KEY = "private key"
REASON_HOST_VENV = "host virtual environment"
KILL_GRACE = 2.0  # seconds to collect output after killing a timed-out process group
# A module name goes in argv, never into the code, so a spec cannot inject statements.
_IMPORT_CODE = "import importlib, sys; importlib.import_module(sys.argv[1])"


def source() -> str:
    """This module's source text, for ``python -c`` in a container (host side; Python >= 3.9)."""
    return resources.files("dockyard.verify").joinpath("probe.py").read_text(encoding="utf-8")


# -- helpers -----------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _elapsed(start: float) -> float:
    return round(time.monotonic() - start, 3)


def _canonical_name(name: str) -> str:
    """PEP 503 normalization: lowercase, runs of ``-``, ``_`` and ``.`` become one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _decode(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")[:OUTPUT_LIMIT]


def _in_site_dir(path: str) -> bool:
    return any(part in SITE_DIR_NAMES for part in path.split(os.sep))


class _Matcher:
    """A list of fnmatch globs compiled into one regex, answering which pattern matched."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = [(p, re.compile(fnmatch.translate(p))) for p in patterns]
        combined = "|".join(f"(?:{fnmatch.translate(p)})" for p, _ in self.patterns)
        self.any = re.compile(combined) if self.patterns else None

    def match(self, text: str) -> str | None:
        if self.any is None or self.any.match(text) is None:
            return None
        for pattern, regex in self.patterns:
            if regex.match(text):
                return pattern
        return None


def _guard(errors: list[str], label: str, fn: Callable[[], _T], fallback: Callable[[str], _T]) -> _T:
    """Run one section; on failure record it in ``errors`` and return ``fallback(message)``."""
    try:
        return fn()
    except Exception as exc:  # a section must never take the others down
        message = _describe(exc)
        errors.append(f"{label}: {message}")
        return fallback(message)


# -- spec --------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@dataclass
class Spec:
    imports: list[str] = field(default_factory=list)
    import_timeout: float = DEFAULT_IMPORT_TIMEOUT
    commands: list[Any] = field(default_factory=list)
    forbidden_names: list[str] = field(default_factory=list)
    forbidden_paths: list[str] = field(default_factory=list)
    sniff_private_keys: bool = True
    walk_roots: list[str] = field(default_factory=lambda: ["/"])
    walk_exclude: list[str] = field(default_factory=lambda: list(DEFAULT_WALK_EXCLUDE))
    deadline_seconds: float = DEFAULT_DEADLINE
    which: list[str] = field(default_factory=list)


_STR_LIST_KEYS = ("imports", "forbidden_names", "forbidden_paths", "walk_roots", "walk_exclude", "which")
_NUMBER_KEYS = ("import_timeout", "deadline_seconds")


def parse_spec(argv: list[str], errors: list[str]) -> Spec:
    """The spec from ``argv[1]`` (absent: all defaults).

    A bad key is reported and keeps its default. A document that is not a JSON object is reported
    and nothing costly runs (no walk): a caller's bug should surface at once, not after a minute.
    """
    spec = Spec()
    if len(argv) < 2:
        return spec
    try:
        raw = json.loads(argv[1])
    except ValueError as exc:
        raw = None
        errors.append(f"spec: not JSON: {exc}")
    else:
        if not isinstance(raw, dict):
            errors.append(f"spec: expected a JSON object, got {type(raw).__name__}")
    if not isinstance(raw, dict):
        spec.walk_roots = []
        return spec
    for key, value in raw.items():
        if key in _STR_LIST_KEYS and _is_str_list(value):
            setattr(spec, key, list(value))
        elif key in _NUMBER_KEYS and _is_number(value):
            setattr(spec, key, float(value))
        elif key == "sniff_private_keys" and isinstance(value, bool):
            spec.sniff_private_keys = value
        elif key == "commands" and isinstance(value, list):
            spec.commands = value
        else:
            errors.append(f"spec: ignored {key!r}: unknown key or bad value {value!r}")
    return spec


# -- python, user ------------------------------------------------------------------------------


def python_info() -> dict[str, Any]:
    return {
        "executable": sys.executable,
        "version": "{}.{}.{}".format(*sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "in_venv": sys.prefix != sys.base_prefix,
        "machine": platform.machine(),
    }


def which(names: list[str]) -> dict[str, Any]:
    """Where each executable resolves on this PATH (or as an absolute path), and whether it runs."""
    found: dict[str, Any] = {}
    for name in names:
        path = name if os.path.isabs(name) else shutil.which(name)  # noqa: PTH117
        exists = path is not None and os.path.isfile(path)
        found[name] = {
            "path": path if exists else None,
            "executable": bool(exists and path and os.access(path, os.X_OK)),
        }
    return found


def user_info() -> dict[str, Any]:
    import pwd  # noqa: PLC0415 - POSIX only; kept local so a failure stays in this section

    uid = os.getuid()
    try:
        entry: Any = pwd.getpwuid(uid)
    except KeyError:  # e.g. `USER 10001` with no passwd line
        entry = None
    return {
        "uid": uid,
        "gid": os.getgid(),
        "name": entry.pw_name if entry is not None else None,
        "home": entry.pw_dir if entry is not None else os.environ.get("HOME"),
    }


# -- subprocesses ------------------------------------------------------------------------------


@dataclass
class _Outcome:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool


def _run(argv: list[str], timeout: float) -> _Outcome:
    """Run ``argv`` in its own process group; on timeout kill the whole group.

    Raises OSError when it cannot be started (FileNotFoundError for a missing executable).
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        partial_out, partial_err = exc.output, exc.stderr
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:  # a descendant escaped the group and holds the pipes
            proc.kill()
            out, err = partial_out or b"", partial_err or b""
        return _Outcome(None, out, err, timed_out=True)
    return _Outcome(proc.returncode, out, err, timed_out=False)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def check_import(module: str, timeout: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "module": module,
        "ok": False,
        "error": None,
        "seconds": 0.0,
        "timed_out": False,
    }
    start = time.monotonic()
    try:
        outcome = _run([sys.executable, "-c", _IMPORT_CODE, module], timeout)
    except OSError as exc:
        record["error"] = _describe(exc)
    else:
        record["timed_out"] = outcome.timed_out
        record["ok"] = outcome.returncode == 0
        if outcome.timed_out:
            record["error"] = f"timed out after {timeout:g} s"
        elif not record["ok"]:
            stderr = outcome.stderr.decode("utf-8", errors="replace")
            record["error"] = _last_line(stderr) or f"exit status {outcome.returncode}"
    record["seconds"] = _elapsed(start)
    return record


def run_command(item: object) -> dict[str, Any]:
    record: dict[str, Any] = {
        "argv": None,
        "returncode": None,
        "stdout": "",
        "stderr": "",
        "seconds": 0.0,
        "timed_out": False,
        "error": None,
    }
    argv = item.get("argv") if isinstance(item, dict) else None
    timeout = item.get("timeout", DEFAULT_COMMAND_TIMEOUT) if isinstance(item, dict) else None
    if not _is_str_list(argv) or not argv or not _is_number(timeout):
        record["error"] = f"invalid command spec {item!r}: need argv (non-empty strings), timeout"
        return record
    record["argv"] = argv
    start = time.monotonic()
    try:
        outcome = _run(list(argv), float(timeout))  # type: ignore[arg-type]
    except FileNotFoundError:
        record["error"] = f"executable not found: {argv[0]}"
    except OSError as exc:
        record["error"] = _describe(exc)
    else:
        record["returncode"] = outcome.returncode
        record["stdout"] = _decode(outcome.stdout)
        record["stderr"] = _decode(outcome.stderr)
        record["timed_out"] = outcome.timed_out
    record["seconds"] = _elapsed(start)
    return record


# -- filesystem walk ---------------------------------------------------------------------------


@dataclass
class Walk:
    """What one pass over the filesystem found (the ``walk`` section plus raw material)."""

    deadline: float
    names: _Matcher
    paths: _Matcher
    exclude: _Matcher
    sniff: bool
    files: int = 0
    dirs: int = 0
    unreadable: int = 0
    truncated: bool = False
    seconds: float = 0.0
    site_dirs: list[str] = field(default_factory=list)
    venv_roots: list[str] = field(default_factory=list)
    strays: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "dirs": self.dirs,
            "unreadable": self.unreadable,
            "seconds": self.seconds,
            "truncated": self.truncated,
        }

    def expired(self) -> bool:
        if time.monotonic() >= self.deadline:
            self.truncated = True
        return self.truncated


def _has_private_key(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            data = handle.read(SNIFF_LIMIT)
    except OSError:  # unreadable as this user: nothing we can say
        return False
    return PRIVATE_KEY_MARKER in data and PRIVATE_KEY_BLOCK.search(data) is not None


def tree_size(path: str, walk: Walk) -> int:
    """Bytes of the regular files below ``path`` (no symlinks followed), bounded by the deadline."""
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
                        total += entry.stat(follow_symlinks=False).st_size
        except OSError:
            walk.unreadable += 1
    return total


def _visit(walk: Walk, entry: os.DirEntry[str], in_site: bool, stack: list[tuple[str, bool]]) -> None:
    """Look at one directory entry: report it, queue it, or sniff it."""
    is_dir = entry.is_dir(follow_symlinks=False)
    if is_dir:
        walk.dirs += 1
    else:
        walk.files += 1
    name, path = entry.name, entry.path
    reason = None if in_site else walk.names.match(name)
    if reason is None:
        reason = walk.paths.match(path)
    if reason is not None:  # reported once, never descended into
        size = tree_size(path, walk) if is_dir else entry.stat(follow_symlinks=False).st_size
        walk.strays.append({"path": path, "reason": reason, "size": size})
    elif is_dir:
        if walk.exclude.match(path) is None:
            if name in SITE_DIR_NAMES:
                walk.site_dirs.append(path)
            stack.append((path, in_site or name in SITE_DIR_NAMES))
    elif name == "pyvenv.cfg":
        walk.venv_roots.append(os.path.dirname(path))
    elif walk.sniff and not in_site and entry.is_file(follow_symlinks=False):
        size = entry.stat(follow_symlinks=False).st_size
        if 0 < size < SNIFF_LIMIT and _has_private_key(path):
            walk.strays.append({"path": path, "reason": REASON_PRIVATE_KEY, "size": size})


def walk_tree(spec: Spec, walk: Walk) -> None:
    """Depth-first over ``spec.walk_roots`` with an explicit stack (no recursion limit to hit)."""
    start = time.monotonic()
    roots = [os.path.normpath(root) for root in spec.walk_roots]
    stack = [(root, _in_site_dir(root)) for root in reversed(roots)]
    while stack and not walk.expired():
        directory, in_site = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        _visit(walk, entry, in_site, stack)
                    except OSError:  # vanished or unreadable entry
                        walk.unreadable += 1
        except OSError:
            walk.unreadable += 1
    walk.seconds = _elapsed(start)


# -- environments ------------------------------------------------------------------------------


def active_site_dirs() -> list[str]:
    """The running interpreter's site directories, in ``sys.path`` order."""
    candidates = [p for p in sys.path if os.path.basename(p) in SITE_DIR_NAMES]
    with contextlib.suppress(AttributeError):  # old virtualenv's site.py lacks it
        candidates.extend(site.getsitepackages())
    found: list[str] = []
    seen: set[str] = set()
    for path in candidates:
        real = os.path.realpath(path)
        if real not in seen and os.path.isdir(path):
            seen.add(real)
            found.append(path)
    return found


def venv_root(site_dir: str) -> str | None:
    """The dir holding ``pyvenv.cfg`` above ``site_dir`` (``ROOT/lib/pythonX.Y/site-packages``)."""
    parent = site_dir
    for _ in range(3):
        parent = os.path.dirname(parent)
        if os.path.isfile(os.path.join(parent, "pyvenv.cfg")):
            return parent
    return None


def interpreter_ok(root: str) -> bool:
    """Whether the venv's interpreter resolves to an existing file in this filesystem."""
    return any(os.path.isfile(os.path.join(root, "bin", name)) for name in ("python", "python3"))


def _pycache(directory: str, cache: PycCache) -> dict[str, list[tuple[str, int]]]:
    """``{module stem: [(pyc path, size)]}`` for ``directory/__pycache__``, listed once."""
    found = cache.get(directory)
    if found is None:
        found = {}
        try:
            entries = list(os.scandir(os.path.join(directory, "__pycache__")))
        except OSError:  # no __pycache__: nothing to add
            entries = []
        for entry in entries:
            if entry.name.endswith(".pyc"):
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except OSError:  # vanished since listed
                    size = 0
                stem = entry.name.split(".", 1)[0]  # mod.cpython-313.opt-1.pyc -> mod
                found.setdefault(stem, []).append((entry.path, size))
        cache[directory] = found
    return found


def _dist_name(dist: Any) -> str | None:
    meta = dist.metadata
    if meta is not None and "Name" in meta and meta["Name"]:
        return _canonical_name(str(meta["Name"]))
    folder = os.path.basename(str(getattr(dist, "_path", "")))  # foo-1.0.dist-info
    return _canonical_name(folder.split("-", 1)[0]) if folder else None


def _listed_paths(dist: Any) -> list[str]:
    """Absolute paths of the files a distribution lists, missing ones included.

    RECORD is read directly: ``Distribution.files`` drops missing files on Python >= 3.12 (and
    stats each one to do so). Without a RECORD (an ``.egg-info``), ``files`` is the fallback.
    """
    base = str(dist.locate_file(""))
    text = dist.read_text("RECORD")
    if text is not None:
        relative = [row[0] for row in csv.reader(text.splitlines()) if row]
    else:
        relative = [str(item) for item in dist.files or []]
    return [os.path.normpath(os.path.join(base, item)) for item in relative]


def distribution_record(dist: Any, cache: PycCache) -> dict[str, Any]:
    """Name, version and on-disk footprint of one installed distribution.

    Size is the bytes of every file its RECORD lists (missing ones count 0, counted in ``missing``)
    plus the ``__pycache__/<stem>.*.pyc`` files of its listed ``.py`` files, which a byte-compiling
    installer writes without listing them.
    """
    record: dict[str, Any] = {
        "name": None,
        "version": None,
        "size": 0,
        "files": 0,
        "missing": 0,
        "error": None,
    }
    try:
        record["name"] = _dist_name(dist)
        record["version"] = dist.version
        listed = _listed_paths(dist)
    except Exception as exc:  # broken metadata of one distribution
        record["error"] = _describe(exc)
        return record
    seen: set[str] = set()
    size = files = missing = 0
    py_files: list[str] = []
    for path in listed:
        if path in seen:
            continue
        seen.add(path)
        try:
            size += os.lstat(path).st_size
        except OSError:
            missing += 1
            continue
        files += 1
        if path.endswith(".py"):
            py_files.append(path)
    for path in py_files:
        directory, filename = os.path.split(path)
        for pyc, pyc_size in _pycache(directory, cache).get(filename[:-3], ()):
            if pyc not in seen:
                seen.add(pyc)
                size += pyc_size
                files += 1
    record.update(size=size, files=files, missing=missing)
    return record


def distributions(site_dir: str) -> list[dict[str, Any]]:
    from importlib import metadata  # noqa: PLC0415 - fails alone, inside its section

    cache: PycCache = {}
    found = [distribution_record(d, cache) for d in metadata.distributions(path=[site_dir])]
    found.sort(key=lambda r: (str(r["name"]), str(r["version"])))
    return found


def environment(site_dir: str, active: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "path": site_dir,
        "active": active,
        "venv_root": None,
        "interpreter_ok": None,
        "distributions": [],
        "error": None,
    }
    try:
        root = venv_root(site_dir)
        record["venv_root"] = root
        if root is not None:
            record["interpreter_ok"] = interpreter_ok(root)
        record["distributions"] = distributions(site_dir)
    except Exception as exc:
        record["error"] = _describe(exc)
    return record


def environments(walk: Walk) -> list[dict[str, Any]]:
    """The active site directories first, then every other one the walk found."""
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for site_dir in active_site_dirs():
        seen.add(os.path.realpath(site_dir))
        found.append(environment(site_dir, active=True))
    for site_dir in sorted(walk.site_dirs):
        real = os.path.realpath(site_dir)
        if real not in seen:
            seen.add(real)
            found.append(environment(site_dir, active=False))
    return found


def host_venvs(walk: Walk) -> list[dict[str, Any]]:
    """Venvs whose interpreter does not exist here: built elsewhere and copied into the image."""
    own = os.path.realpath(sys.prefix)
    strays: list[dict[str, Any]] = []
    for root in sorted(set(walk.venv_roots)):
        if os.path.realpath(root) != own and not interpreter_ok(root):
            strays.append({"path": root, "reason": REASON_HOST_VENV, "size": tree_size(root, walk)})
    return strays


# -- main --------------------------------------------------------------------------------------


def collect(argv: list[str], started: float) -> dict[str, Any]:
    errors: list[str] = []
    spec = parse_spec(argv, errors)

    def section_error(message: str) -> dict[str, Any]:
        return {"error": message}

    def empty_list(_message: str) -> list[Any]:
        return []

    def nothing(_message: str) -> None:
        return None

    report: dict[str, Any] = {}
    report["python"] = _guard(errors, "python", python_info, section_error)
    report["user"] = _guard(errors, "user", user_info, section_error)
    report["env"] = _guard(errors, "env", lambda: dict(os.environ), section_error)
    report["cwd"] = _guard(errors, "cwd", os.getcwd, nothing)
    report["which"] = _guard(errors, "which", lambda: which(spec.which), section_error)

    walk = Walk(
        deadline=started + spec.deadline_seconds,
        names=_Matcher(spec.forbidden_names),
        paths=_Matcher(spec.forbidden_paths),
        exclude=_Matcher(os.path.normpath(p) for p in spec.walk_exclude),
        sniff=spec.sniff_private_keys,
    )

    def run_walk() -> dict[str, Any]:
        walk_tree(spec, walk)
        return {}

    # Imports and commands are subprocesses: they run while this process walks the filesystem.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        imports = [pool.submit(check_import, m, spec.import_timeout) for m in spec.imports]
        commands = [pool.submit(run_command, c) for c in spec.commands]
        walk_failure = _guard(errors, "walk", run_walk, section_error)
        report["environments"] = _guard(errors, "environments", lambda: environments(walk), empty_list)
        report["imports"] = _guard(errors, "imports", lambda: [f.result() for f in imports], empty_list)
        report["commands"] = _guard(errors, "commands", lambda: [f.result() for f in commands], empty_list)
    strays = list(walk.strays)
    strays.extend(_guard(errors, "host venvs", lambda: host_venvs(walk), empty_list))
    report["stray_files"] = sorted(strays, key=lambda s: (str(s["path"]), str(s["reason"])))
    report["walk"] = dict(walk.summary(), **walk_failure)
    report["errors"] = errors
    return report


def main(argv: list[str]) -> int:
    started = time.monotonic()
    try:
        report = collect(argv, started)
    except Exception as exc:  # last resort: still one JSON document, never a traceback
        report = {"errors": [f"probe: {_describe(exc)}"]}
    report["seconds"] = _elapsed(started)
    sys.stdout.write(json.dumps(report, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
