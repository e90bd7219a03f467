"""The app probe: this program run again with the app's interpreter, as the image's user, in the
app's environment: who it is, its sys.path and distributions, the imports and smoke commands."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: never evaluated at runtime, so fine on Python 3.8
    PycCache = dict[str, dict[str, list[tuple[str, int]]]]  # directory -> {stem: [(pyc, size)]}

# probe: parts (these imports are dropped when source() joins the parts into one program)
from dockyard.verify.probe.common import (
    FACT_COMMANDS,
    FACT_ENVIRONMENTS,
    FACT_FOOTPRINT,
    FACT_IMPORTS,
    FACT_RECORDS,
    SITE_DIR_NAMES,
    Spec,
    _decode,
    _describe,
    _elapsed,
    _guard,
    _head,
    _last_line,
    _Pool,
    _run,
    run_command,
)
from dockyard.verify.probe.distributions import (
    _dist_name,
    environment,
    find_distributions,
)

# probe: end parts

# The probe runs in images of ~20k files: os.path strings, not a pathlib object per entry.
# ruff: noqa: PTH109, PTH110, PTH113, PTH117, PTH119

# Console-script runners that put the working directory on sys.path before importing the app
# (uvicorn's --app-dir ".", gunicorn's --chdir, flask's prepare_import, fastapi-cli's folder of the
# app's top package, which `fastapi run app/main.py` from WORKDIR makes the working directory, ...):
# the app's own modules are imported from there.
CWD_RUNNERS = frozenset(
    {"uvicorn", "gunicorn", "hypercorn", "daphne", "flask", "celery", "granian", "fastapi", "fastapi_cli"}
)


# The app's modules import this way, all in one process: the sys.path[0] entries the app gets
# (JSON list) and the modules as JSON [[module, attribute or "", whether a package needs __main__]].
# Each result is one marked line on stdout. Names go in argv, never into the code, so a spec
# cannot inject statements.
IMPORT_MARK = "@@dockyard-import@@ "


_IMPORT_CODE = """\
import functools, importlib, importlib.util, json, sys, time, traceback
head = json.loads(sys.argv[1])
if sys.path and sys.path[0] == "":
    del sys.path[0]
for entry in reversed(head):
    sys.path.insert(0, entry)
out = sys.__stdout__
for module, attr, main in json.loads(sys.argv[2]):
    start = time.monotonic()
    error = None
    try:
        found = importlib.import_module(module)
        if attr:
            functools.reduce(getattr, attr.split("."), found)
        if main and hasattr(found, "__path__") and importlib.util.find_spec(module + ".__main__") is None:
            raise ImportError("No module named " + repr(module + ".__main__"))
    except BaseException as exc:
        error = traceback.format_exception_only(type(exc), exc)[-1].strip()
    out.write(MARK + json.dumps([module, attr, error, round(time.monotonic() - start, 3)]) + "\\n")
    out.flush()
""".replace("MARK", repr(IMPORT_MARK))


# A plain script: it must compile, and each module it imports at top level must be found.
_SCRIPT_CODE = """\
import ast, importlib.util, json, sys
head = json.loads(sys.argv[2])
if sys.path and sys.path[0] == "":
    del sys.path[0]
for entry in reversed(head):
    sys.path.insert(0, entry)
with open(sys.argv[1], "rb") as handle:
    tree = ast.parse(handle.read(), sys.argv[1])
names = []
for node in tree.body:
    if isinstance(node, ast.Import):
        names.extend(alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names.append(node.module.split(".")[0])
missing = [n for n in dict.fromkeys(names) if importlib.util.find_spec(n) is None]
if missing:
    raise SystemExit("ModuleNotFoundError: No module named " + ", ".join(repr(n) for n in missing))
"""


def python_info() -> dict[str, Any]:
    return {
        "executable": sys.executable,
        "version": "{}.{}.{}".format(*sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "in_venv": sys.prefix != sys.base_prefix,
        "machine": _machine(),
    }


def _machine() -> str:
    """``platform.machine()``, without importing platform where ``os.uname`` answers."""
    if hasattr(os, "uname"):
        return os.uname().machine
    import platform  # noqa: PLC0415

    return platform.machine()


def user_info() -> dict[str, Any]:
    import pwd  # noqa: PLC0415 - POSIX only; kept local so a failure stays in this section

    uid = os.getuid()
    try:
        entry: Any = pwd.getpwuid(uid)
    except KeyError:  # e.g. `USER 10001` with no passwd line
        entry = None
    return {
        "uid": uid,
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "egid": os.getegid(),
        "groups": sorted(os.getgroups()),
        "name": entry.pw_name if entry is not None else None,
        "home": os.environ.get("HOME") or (entry.pw_dir if entry is not None else None),
    }


def which(names: list[str]) -> dict[str, Any]:
    """Where each executable resolves on this PATH (or as an absolute path), and whether it runs."""
    import shutil  # noqa: PLC0415 - app probe only

    found: dict[str, Any] = {}
    for name in names:
        path = name if os.path.isabs(name) else shutil.which(name)
        exists = path is not None and os.path.isfile(path)
        found[name] = {
            "path": path if exists else None,
            "executable": bool(exists and path and os.access(path, os.X_OK)),
        }
    return found


def app_environments(
    paths: list[str], verify: set[str] | None, footprint: bool = True
) -> list[dict[str, Any]]:
    """Every entry of the app's sys.path that holds distributions (site dirs always), in path order;
    a name seen earlier on the path shadows the later ones (``shadowed``)."""
    found = []
    seen_paths: set[str] = set()
    seen_names: set[str] = set()
    for entry in paths:
        real = os.path.realpath(entry or ".")
        if real in seen_paths or not os.path.exists(real):
            continue
        seen_paths.add(real)
        env = environment(entry, active=True, verify=verify, footprint=footprint)
        if not env["distributions"] and os.path.basename(entry) not in SITE_DIR_NAMES:
            continue
        for dist in env["distributions"]:
            dist["shadowed"] = dist["name"] in seen_names
            seen_names.add(dist["name"])
        found.append(env)
    return found


def entry_point(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The module (and attribute) the app's entry runs: a console script's entry point (from the
    distributions on sys.path, or the script's own ``from X import Y``), or ``-m``'s module."""
    kind, value = entry.get("kind"), entry.get("value") or ""
    if kind == "module":
        return {"module": value, "attr": "", "main": True, "from": f"-m {value}"}
    if kind != "script":
        return None
    name = os.path.basename(value)
    for dist in (dist for entry in sys.path for dist in find_distributions(entry or ".")):
        try:
            points = list(dist.entry_points)
        except Exception:  # noqa: S112 - one broken distribution must not hide the others
            continue
        for point in points:
            if point.group in ("console_scripts", "gui_scripts") and point.name == name:
                target = point.value.split("[", 1)[0].strip()
                module, _, attr = target.partition(":")
                dist_name = _dist_name(dist)
                return {
                    "module": module.strip(),
                    "attr": attr.strip(),
                    "main": False,
                    "from": f"entry point {name} = {target} of {dist_name} {dist.version}",
                }
    text = _head(value, 1 << 14).decode("utf-8", errors="replace")
    found = re.search(r"^from\s+([\w.]+)\s+import\s+(\w+)", text, re.MULTILINE)
    if found and text.startswith("#!"):
        return {
            "module": found.group(1),
            "attr": found.group(2),
            "main": False,
            "from": f"{value}: from {found.group(1)} import {found.group(2)}",
        }
    return {"script": value, "from": f"the script {value}"}


def check_imports(
    argv_prefix: list[str], head: list[str], wanted: list[list[Any]], timeout: float
) -> list[dict[str, Any]]:
    """Import ``wanted`` ([module, attr, main]) in one process with ``head`` first on sys.path; a
    module the process did not get to (it hung, exited or crashed) is imported again on its own."""
    start = time.monotonic()
    records: dict[int, dict[str, Any]] = {}
    argv = [*argv_prefix, "-c", _IMPORT_CODE, json.dumps(head), json.dumps(wanted)]
    try:
        outcome = _run(argv, timeout * max(1, len(wanted)))
    except OSError as exc:
        return [_import_record(m, a, _describe(exc), _elapsed(start)) for m, a, _ in wanted]
    lines = [line for line in _decode_all(outcome.stdout).split("\n") if line.startswith(IMPORT_MARK)]
    for index, line in enumerate(lines[: len(wanted)]):
        module, attr, error, seconds = json.loads(line[len(IMPORT_MARK) :])
        records[index] = _import_record(module, attr, error, seconds)
    if len(records) < len(wanted):
        why = "timed out" if outcome.timed_out else _last_line(_decode(outcome.stderr)) or "exited"
        for index in range(len(records), len(wanted)):
            if len(wanted) == 1:
                module, attr, _ = wanted[index]
                error = f"timed out after {timeout:g} s" if outcome.timed_out else why
                records[index] = _import_record(module, attr, error, _elapsed(start), outcome.timed_out)
            else:
                records[index] = check_imports(argv_prefix, head, [wanted[index]], timeout)[0]
    return [records[i] for i in range(len(wanted))]


def _decode_all(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


def _import_record(
    module: str, attr: str, error: str | None, seconds: float, timed_out: bool = False
) -> dict[str, Any]:
    return {
        "module": module + (f":{attr}" if attr else ""),
        "ok": error is None,
        "error": error,
        "seconds": seconds,
        "timed_out": timed_out,
    }


def check_script(
    argv_prefix: list[str], script: str, head: list[str], timeout: float
) -> list[dict[str, Any]]:
    record: dict[str, Any] = {
        "module": script,
        "ok": False,
        "error": None,
        "seconds": 0.0,
        "timed_out": False,
    }
    start = time.monotonic()
    _finish_check(record, [*argv_prefix, "-c", _SCRIPT_CODE, script, json.dumps(head)], timeout, start)
    return [record]


def _finish_check(record: dict[str, Any], argv: list[str], timeout: float, start: float) -> None:
    try:
        outcome = _run(argv, timeout)
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


def _results(checks: list[tuple[list[str], Any]]) -> list[dict[str, Any]]:
    found = []
    for labels, future in checks:
        for label, result in zip(labels, future.result()):
            found.append(dict(result, source=label))
    return found


def app_probe(spec: Spec, errors: list[str]) -> dict[str, Any]:
    """The app's view: run as the app's interpreter and user, in the app's environment. The smoke
    commands start first (they need nothing else), the imports as soon as the entry point is known,
    and the distributions are listed while both run."""
    plan = spec.plan
    head = list(plan.get("path0") or [])
    # `python -c` put '' (the working directory) first; the app has its own sys.path[0], or none.
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    sys.path[0:0] = head
    argv_prefix = [plan.get("interpreter") or sys.executable, *(plan.get("flags") or [])]
    report: dict[str, Any] = {}
    pool = _Pool(4)
    try:
        commands = [pool.submit(run_command, c) for c in spec.commands] if spec.wants(FACT_COMMANDS) else []
        report["python"] = _guard(errors, "python", python_info, lambda m: {"error": m})
        report["user"] = _guard(errors, "user", user_info, lambda m: {"error": m})
        report["cwd"] = _guard(errors, "cwd", os.getcwd, lambda _m: None)
        report["sys_path"] = list(sys.path)
        report["which"] = _guard(errors, "which", lambda: which(spec.which), lambda m: {"error": m})
        checks: list[tuple[list[str], Any]] = []
        own_head = head
        if spec.wants(FACT_IMPORTS):
            entry = _guard(
                errors, "entry point", lambda: entry_point(plan.get("entry") or {}), lambda _m: None
            )
            report["entry_point"] = entry
            runner_cwd = bool(entry and entry.get("module", "").split(".")[0] in CWD_RUNNERS)
            own_head = ([os.getcwd()] if runner_cwd else []) + head
            checks = _submit_imports(pool, spec, entry, argv_prefix, head, own_head)
        if spec.wants(FACT_ENVIRONMENTS):
            verify = set(spec.verify_records or ()) if spec.wants(FACT_RECORDS) else None
            footprint = spec.wants(FACT_FOOTPRINT)
            report["environments"] = _guard(
                errors,
                "environments",
                lambda: app_environments(list(sys.path), verify, footprint),
                lambda _m: [],
            )
        report["imports"] = _guard(errors, "imports", lambda: _results(checks), lambda _m: [])
        report["commands"] = _guard(errors, "commands", lambda: [f.result() for f in commands], lambda _m: [])
    finally:
        pool.wait()
    report["imports_path"] = own_head
    report["errors"] = errors
    return report


def _submit_imports(
    pool: _Pool,
    spec: Spec,
    entry: dict[str, Any] | None,
    argv_prefix: list[str],
    head: list[str],
    own_head: list[str],
) -> list[tuple[list[str], Any]]:
    """Start the import checks: the entry point's (a script is compiled and its imports found) with
    the app's own sys.path[0], the configured modules with the runner's."""
    timeout = spec.import_timeout
    groups: dict[str, list[tuple[str, list[Any]]]] = {}
    if entry and entry.get("module"):
        groups.setdefault(json.dumps(head), []).append(
            ("entry point", [entry["module"], entry["attr"], entry["main"]])
        )
    for module in spec.imports:
        groups.setdefault(json.dumps(own_head), []).append(("configured", [module, "", False]))
    checks = []
    if entry and entry.get("script"):
        future = pool.submit(check_script, argv_prefix, entry["script"], head, timeout)
        checks.append((["entry point"], future))
    for key, items in groups.items():
        wanted = [item for _, item in items]
        future = pool.submit(check_imports, argv_prefix, json.loads(key), wanted, timeout)
        checks.append(([label for label, _ in items], future))
    return checks
