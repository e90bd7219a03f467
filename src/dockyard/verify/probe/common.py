"""Shared pieces of the probe: constants, small helpers, the spec, running subprocesses."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # annotations only: never evaluated at runtime, so fine on Python 3.8
    from collections.abc import Callable, Iterable

    PycCache = dict[str, dict[str, list[tuple[str, int]]]]  # directory -> {stem: [(pyc, size)]}


# The probe runs in images of ~20k files: os.path strings, not a pathlib object per entry. Its two
# processes start on every verify: no module is imported at the top that a plain class or a later
# import can spare (dataclasses pulls in inspect and ast, concurrent.futures logging, ...).
# ruff: noqa: PTH123, PLC0415

_T = TypeVar("_T")


ROLE_APP = "app"


SITE_DIR_NAMES = ("site-packages", "dist-packages")


DIST_SUFFIXES = (".dist-info", ".egg-info")


DEFAULT_WALK_EXCLUDE = ("/proc", "/sys", "/dev")


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Docker's, when unset


DEFAULT_DEADLINE = 60.0


DEFAULT_IMPORT_TIMEOUT = 20.0


DEFAULT_COMMAND_TIMEOUT = 30.0


OUTPUT_LIMIT = 4000  # characters kept of a command's stdout and of its stderr


LIST_LIMIT = 20  # paths kept of a list that only needs examples (missing files, unreadable entries)


READ_CHUNK = 1 << 20


KILL_GRACE = 2.0  # seconds to collect output after killing a timed-out process group


# What the probe can gather besides the app's resolution, user, interpreter and sys.path (always):
# a spec's ``facts`` names the ones wanted (absent: all), so a verify of a few checks pays for those.
FACT_IMPORTS = "imports"  # the entry point's module and the configured modules, imported as the app
FACT_COMMANDS = "commands"  # the smoke commands (and a health test), run as the app
FACT_ENVIRONMENTS = "environments"  # distributions on the app's sys.path, and every other the walk finds
FACT_RECORDS = "records"  # RECORD of ``verify_records`` checked against the disk, their imports resolved
FACT_FOOTPRINT = "footprint"  # bytes and files of each distribution
FACT_STRAYS = "strays"  # stray names and paths, host venvs, private keys (every file read), owners
FACT_PRIVILEGED = "privileged"  # setuid/setgid-root files and file capabilities
FACT_BUILD_TOOLS = "build_tools"  # compilers, installers, headers, -dev packages, builder source trees
FACTS = (
    FACT_IMPORTS, FACT_COMMANDS, FACT_ENVIRONMENTS, FACT_RECORDS, FACT_FOOTPRINT, FACT_STRAYS,
    FACT_PRIVILEGED, FACT_BUILD_TOOLS,
)  # fmt: skip
# What a fact is judged with besides itself: the build tools tell the app's own source tree by the
# files its verified imports resolve to, and what it runs by its execution path.
FACT_IMPLIES = {
    FACT_RECORDS: (FACT_ENVIRONMENTS,),
    FACT_FOOTPRINT: (FACT_ENVIRONMENTS,),
    FACT_BUILD_TOOLS: (FACT_ENVIRONMENTS, FACT_RECORDS, FACT_PRIVILEGED),
}
# Facts that need the walk over the whole filesystem.
WALK_FACTS = (FACT_ENVIRONMENTS, FACT_STRAYS, FACT_PRIVILEGED, FACT_BUILD_TOOLS)


def closed_facts(names: Iterable[str] | None) -> frozenset[str]:
    """The facts ``names`` asks for and what they imply (None: every fact)."""
    if names is None:
        return frozenset(FACTS)
    found = set()
    todo = [n for n in names if n in FACTS]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(FACT_IMPLIES.get(name, ()))
    return frozenset(found)


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


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Matcher:
    """A list of fnmatch globs compiled into one regex, answering which pattern matched."""

    def __init__(self, patterns: Iterable[str], ignore_case: bool = False) -> None:
        flags = re.IGNORECASE if ignore_case else 0
        self.patterns = [(p, re.compile(fnmatch.translate(p), flags)) for p in patterns]
        combined = "|".join(f"(?:{fnmatch.translate(p)})" for p, _ in self.patterns)
        self.any = re.compile(combined, flags) if self.patterns else None

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


def _sha256_b64(path: str) -> str:
    """A file's sha256 as RECORD writes it: urlsafe base64 without padding."""
    import base64
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(READ_CHUNK), b""):
            digest.update(chunk)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


class Spec:
    """What the probe is asked (see ``parse_spec``); every key has a default."""

    def __init__(self) -> None:
        self.role = "root"
        self.app: dict[str, Any] | None = None
        self.imports: list[str] = []
        self.import_timeout = DEFAULT_IMPORT_TIMEOUT
        self.commands: list[Any] = []
        self.forbidden_names: list[str] = []
        self.forbidden_paths: list[str] = []
        self.project_trees: dict[str, list[Any]] = {}
        self.sniff_private_keys = True
        self.walk_roots = ["/"]
        self.walk_exclude = list(DEFAULT_WALK_EXCLUDE)
        self.deadline_seconds = DEFAULT_DEADLINE
        self.which: list[str] = []
        self.verify_records: list[str] | None = None
        self.facts: list[str] | None = None  # None: every fact (see FACTS)
        self.plan: dict[str, Any] = {}  # set by the root for the app probe only

    def wants(self, fact: str) -> bool:
        """Whether ``fact`` is to be gathered (asked for, or implied by one asked for)."""
        return fact in closed_facts(self.facts)


def _str_list(value: object) -> list[str] | None:
    return list(value) if _is_str_list(value) else None  # type: ignore[call-overload]


def _number(value: object) -> float | None:
    return float(value) if _is_number(value) else None  # type: ignore[arg-type]


def _object(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


# Each key's reader: the value to store, or None when the value is not acceptable.
_SPEC_READERS: dict[str, Callable[[Any], Any]] = {
    "imports": _str_list,
    "forbidden_names": _str_list,
    "forbidden_paths": _str_list,
    "walk_roots": _str_list,
    "walk_exclude": _str_list,
    "which": _str_list,
    "import_timeout": _number,
    "deadline_seconds": _number,
    "sniff_private_keys": lambda v: v if isinstance(v, bool) else None,
    "commands": lambda v: v if isinstance(v, list) else None,
    "app": _object,
    "plan": _object,
    "project_trees": lambda v: (
        {str(k): list(x) for k, x in v.items() if isinstance(x, list)} if isinstance(v, dict) else None
    ),
    "verify_records": lambda v: [_canonical_name(x) for x in v] if _is_str_list(v) else None,
    "role": lambda v: v if v in ("root", ROLE_APP) else None,
    "facts": lambda v: list(v) if _is_str_list(v) and set(v) <= set(FACTS) else None,
}


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
        reader = _SPEC_READERS.get(key)
        read = reader(value) if reader is not None else None
        if read is None:
            errors.append(f"spec: ignored {key!r}: unknown key or bad value {value!r}")
        else:
            setattr(spec, key, read)
    return spec


class _Outcome:
    def __init__(self, returncode: int | None, stdout: bytes, stderr: bytes, timed_out: bool) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out


class _Task:
    """``fn(*args)`` running in a thread of its own (at most as many at once as ``gate`` lets in);
    ``result()`` waits for it and returns its value or raises its exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any, gate: threading.Semaphore | None = None) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, gate), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], gate: threading.Semaphore | None) -> None:
        try:
            if gate is None:
                self._value = fn(*args)
            else:
                with gate:
                    self._value = fn(*args)
        except BaseException as exc:
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class _Pool:
    """Tasks with at most ``workers`` running at once; ``wait()`` lets every one finish."""

    def __init__(self, workers: int) -> None:
        self.gate = threading.Semaphore(workers)
        self.tasks: list[_Task] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Task:
        task = _Task(fn, *args, gate=self.gate)
        self.tasks.append(task)
        return task

    def wait(self) -> None:
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                task.result()


def _run(argv: list[str], timeout: float, **popen: Any) -> _Outcome:
    """Run ``argv`` in its own process group; on timeout kill the whole group.

    Raises OSError when it cannot be started (FileNotFoundError for a missing executable).
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        **popen,
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


def _head(path: str, size: int = 256) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


# source() starts each part with this line; the root hands the app probe only the parts it runs.
PART_MARK = "# probe part: "
APP_PARTS = ("common", "distributions", "app", "main")


def app_source(text: str) -> str:
    """The probe's source with only the parts the app probe runs (fewer lines to compile in the
    process the imports and smoke commands wait for); the whole text when it has no part marks."""
    pieces = re.split(f"^{re.escape(PART_MARK)}(\\w+)\n", text, flags=re.MULTILINE)
    if len(pieces) < 3:
        return text
    kept = [pieces[0]]
    for name, body in zip(pieces[1::2], pieces[2::2]):
        if name in APP_PARTS:
            kept.append(f"{PART_MARK}{name}\n{body}")
    return "".join(kept)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


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
