"""The root probe: resolve the app, start the app probe, walk the filesystem meanwhile, answer."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: never evaluated at runtime, so fine on Python 3.8
    PycCache = dict[str, dict[str, list[tuple[str, int]]]]  # directory -> {stem: [(pyc, size)]}

# probe: parts (these imports are dropped when source() joins the parts into one program)
from dockyard.verify.probe.app import (
    app_probe,
)
from dockyard.verify.probe.common import (
    DEFAULT_PATH,
    FACT_BUILD_TOOLS,
    FACT_ENVIRONMENTS,
    FACT_FOOTPRINT,
    FACT_PRIVILEGED,
    FACT_STRAYS,
    ROLE_APP,
    WALK_FACTS,
    Spec,
    _decode,
    _describe,
    _elapsed,
    _guard,
    _last_line,
    _Matcher,
    _run,
    _Task,
    app_source,
    parse_spec,
)
from dockyard.verify.probe.resolve import (
    _lookup,
    _python_path0,
    empty_plan,
    privilege,
    resolve_command,
    resolve_user,
)
from dockyard.verify.probe.walk import (
    Walk,
    _Owners,
    build_tools,
    host_venvs,
    mount_points,
    other_environments,
    source_trees,
    walk_tree,
)

# probe: end parts

# The probe runs in images of ~20k files: os.path strings, not a pathlib object per entry.
# ruff: noqa: PTH109, PTH112, PTH123


def _own_source() -> str:
    """This program's text, from the command line it was started with (``python ... -c SOURCE``)."""
    with open("/proc/self/cmdline", "rb") as handle:
        parts = handle.read().split(b"\0")
    for i, part in enumerate(parts[1:], 1):
        if part == b"-c" and i + 1 < len(parts):
            return parts[i + 1].decode("utf-8")
    raise RuntimeError("the probe was not started with -c: cannot start the app probe")


def _parse_env(raw: object) -> dict[str, str] | None:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        env = {}
        for item in raw:
            key, _, value = str(item).partition("=")
            env[key] = value
        return env
    return None


def app_plan(spec: Spec) -> dict[str, Any]:
    """The app's command, interpreter, user, environment and working directory, resolved."""
    app = spec.app
    if app is None:  # no image config: this interpreter, user and environment are the app's
        return empty_plan(
            None,
            interpreter=sys.executable,
            resolved_by="the probe's own interpreter (no image command given)",
            env=dict(os.environ),
            workdir=os.getcwd(),
            user=None,
            path0=[],
        )
    env = _parse_env(app.get("env")) or {}
    env.setdefault("PATH", DEFAULT_PATH)
    workdir = str(app.get("workdir") or "/")
    argv = [str(a) for a in (app.get("entrypoint") or [])] + [str(a) for a in (app.get("cmd") or [])]
    user = resolve_user(str(app.get("user") or ""))
    env.setdefault("HOME", user["home"] or "/")
    env.setdefault("HOSTNAME", os.environ.get("HOSTNAME", ""))
    if argv:
        plan = resolve_command(argv, env, workdir)
    else:
        plan = empty_plan([], error="neither ENTRYPOINT nor CMD is set", error_kind="empty")
    if plan["interpreter"] is not None:
        plan["resolved_by"] = " -> ".join(plan["steps"])
        plan["path0"] = _python_path0(plan, env, workdir)
    else:
        fallback = _lookup("python3", env["PATH"].split(":"), workdir) or _lookup(
            "python", env["PATH"].split(":"), workdir
        )
        plan["interpreter"] = fallback or sys.executable
        plan["flags"] = []
        plan["path0"] = []
        plan["resolved_by"] = (
            f"no Python interpreter in the app's command ({plan['error']}): {plan['interpreter']}, "
            "the first python3 on PATH"
        )
    plan.update(env=env, workdir=workdir, user=user)
    return plan


def _execution_path(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Setuid/setgid-root bits and file capabilities on the files the app's process executes, each
    named by the file itself (``via``: the name the command reaches it by)."""
    links = {link["real"]: link["path"] for link in plan.get("chain") or []}
    if plan.get("interpreter"):
        links.setdefault(os.path.realpath(plan["interpreter"]), plan["interpreter"])
    found = []
    for real, via in links.items():
        raised = privilege(real)
        if raised is not None:
            if via != real:
                raised["via"] = via
            found.append(raised)
    return found


def _demote(user: dict[str, Any] | None) -> dict[str, Any]:
    """Popen arguments that start a process as ``user`` (this process must be root to switch)."""
    if not user or user.get("error"):
        return {}
    uid, gid, groups = int(user["uid"]), int(user["gid"]), [int(g) for g in user.get("groups") or []]
    if os.getuid() == uid and os.getgid() == gid:
        return {}
    if os.getuid() != 0:
        raise PermissionError(f"cannot become uid {uid} as uid {os.getuid()}")
    if sys.version_info >= (3, 9):
        return {"user": uid, "group": gid, "extra_groups": groups}

    def switch() -> None:  # Python 3.8: no user= in Popen
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)

    return {"preexec_fn": switch}


def start_app_probe(spec: Spec, plan: dict[str, Any], deadline: float) -> Any:
    """Start the app probe (this source, as the app); returns a future of its JSON answer."""
    child = {
        "role": ROLE_APP,
        "imports": spec.imports,
        "import_timeout": spec.import_timeout,
        "commands": spec.commands,
        "which": spec.which,
        "deadline_seconds": spec.deadline_seconds,
        "plan": {k: plan.get(k) for k in ("interpreter", "flags", "entry", "path0")},
    }
    if spec.facts is not None:
        child["facts"] = spec.facts
    if spec.verify_records is not None:
        child["verify_records"] = spec.verify_records
    argv = [plan["interpreter"], *plan["flags"], "-c", app_source(_own_source()), json.dumps(child)]
    cwd = plan["workdir"] if os.path.isdir(plan["workdir"]) else "/"
    popen = dict(_demote(plan.get("user")), env=plan["env"], cwd=cwd)

    def run() -> dict[str, Any]:
        outcome = _run(argv, max(1.0, deadline - time.monotonic()), **popen)
        if outcome.timed_out:
            raise RuntimeError("the app probe did not finish in time")
        # The answer is the last line: a sitecustomize or .pth file may print before it.
        lines = outcome.stdout.decode("utf-8", errors="replace").strip().split("\n")
        try:
            answer = json.loads(lines[-1])
        except ValueError:
            tail = _last_line(_decode(outcome.stderr)) or f"exit status {outcome.returncode}"
            raise RuntimeError(f"{plan['interpreter']} could not run the app probe: {tail}") from None
        if not isinstance(answer, dict):
            raise TypeError("the app probe answered something other than an object")
        return answer

    return _Task(run)


def _app_answer(
    spec: Spec, plan: dict[str, Any], future: Any, deadline: float, errors: list[str]
) -> dict[str, Any]:
    """The app probe's answer. When the app's interpreter cannot run it (too old, broken), the
    user-level facts (uid, smoke) still come, from this interpreter, and ``interpreter_error`` says why."""
    try:
        return dict(future.result())
    except Exception as exc:
        failure = _describe(exc)
    if plan.get("interpreter") == sys.executable:
        errors.append(f"app probe: {failure}")
        return {"error": failure}
    plan["interpreter_error"] = failure
    retry = dict(plan, interpreter=sys.executable, flags=[])
    return _guard(errors, "app probe", start_app_probe(spec, retry, deadline).result, lambda m: {"error": m})


def _new_walk(spec: Spec, deadline: float) -> Walk:
    volumes = [str(v) for v in (spec.app or {}).get("volumes") or []]
    return Walk(
        deadline=deadline,
        names=_Matcher(spec.forbidden_names, ignore_case=True),
        paths=_Matcher(spec.forbidden_paths),
        exclude=_Matcher(os.path.normpath(p) for p in spec.walk_exclude),
        skip=mount_points(volumes) if spec.walk_roots == ["/"] else set(),
        sniff=spec.sniff_private_keys and spec.wants(FACT_STRAYS),
        project_trees=spec.project_trees,
        privileges=spec.wants(FACT_PRIVILEGED),
        toolchain=spec.wants(FACT_BUILD_TOOLS),
    )


APP_KEYS = (
    "argv", "interpreter", "flags", "entry", "resolved_by", "steps", "chain", "shell", "wrappers",
    "uv_run", "error", "error_kind", "workdir", "path0", "user", "interpreter_error",
)  # fmt: skip


def _app_sections(plan: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """The report's sections that come from the app probe (or say why they could not)."""
    missing = {"error": answer.get("error") or "the app probe did not run"}
    app = {key: plan.get(key) for key in APP_KEYS}
    app.update(entry_point=answer.get("entry_point"), imports_path=answer.get("imports_path"))
    return {
        "app": app,
        "python": answer.get("python") or missing,
        "user": answer.get("user") or missing,
        "env": plan.get("env") or {},
        "cwd": answer.get("cwd"),
        "sys_path": list(answer.get("sys_path") or []),
        "which": answer.get("which") or {},
        "imports": answer.get("imports") or [],
        "commands": answer.get("commands") or [],
    }


def _walk_sections(
    spec: Spec, walk: Walk, plan: dict[str, Any], answer: dict[str, Any], errors: list[str]
) -> dict[str, Any]:
    """What the walk found, judged against the app: environments, strays, privileges, tools (each
    only when asked for: an empty section otherwise)."""
    app_paths = list(answer.get("sys_path") or [])
    python = answer.get("python") or {}
    active = list(answer.get("environments") or [])
    others: list[dict[str, Any]] = []
    if spec.wants(FACT_ENVIRONMENTS):
        footprint = spec.wants(FACT_FOOTPRINT)
        others = _guard(
            errors, "environments", lambda: other_environments(walk, app_paths, footprint), lambda _m: []
        )
    strays = list(walk.strays)
    if spec.wants(FACT_STRAYS):
        strays.extend(
            _guard(errors, "host venvs", lambda: host_venvs(walk, python.get("prefix")), lambda _m: [])
        )
        owners = _Owners([*walk.site_dirs, *walk.dist_parents, *app_paths])
        for stray in strays:
            owner = functools.partial(owners.owner, stray["path"])
            stray["owner"] = _guard(errors, "owners", owner, lambda _m: None)
    tools: dict[str, Any] = {}
    if spec.wants(FACT_BUILD_TOOLS):
        path_dirs = str((plan.get("env") or {}).get("PATH") or DEFAULT_PATH).split(":")
        tools = _guard(
            errors, "build tools", lambda: build_tools(walk, python, path_dirs), lambda m: {"error": m}
        )
        origins = [
            str(i.get("origin") or "")
            for env in active
            for d in env.get("distributions") or []
            for i in d.get("imports") or []
        ]
        workdir = str(plan.get("workdir") or "/")
        tools["source_trees"] = _guard(
            errors, "source trees", lambda: source_trees(walk, app_paths, workdir, origins), lambda _m: []
        )
    return {
        "environments": active + others,
        "stray_files": sorted(strays, key=lambda s: (str(s["path"]), str(s["reason"]))),
        "privileged": {
            "execution_path": _guard(errors, "privileged", lambda: _execution_path(plan), lambda _m: []),
            "files": sorted(walk.privileged, key=lambda p: p["path"]),
        },
        "build_tools": tools,
    }


def _walked(spec: Spec, walk: Walk) -> dict[str, Any]:
    walk_tree(spec.walk_roots, walk)
    return {}


def collect(argv: list[str], started: float) -> dict[str, Any]:
    errors: list[str] = []
    spec = parse_spec(argv, errors)
    if spec.role == ROLE_APP:
        return app_probe(spec, errors)
    deadline = started + spec.deadline_seconds
    plan = _guard(errors, "app", lambda: app_plan(spec), lambda m: {"error": m})
    future = None
    if plan.get("interpreter"):
        try:  # the app probe runs while this process walks
            future = start_app_probe(spec, plan, deadline + 5)
        except Exception as exc:
            errors.append(f"app probe: {_describe(exc)}")
    walk = _new_walk(spec, deadline)
    walked: dict[str, Any] = {}
    if any(spec.wants(fact) for fact in WALK_FACTS):
        walked = _guard(errors, "walk", lambda: _walked(spec, walk), lambda m: {"error": m})
    answer = _app_answer(spec, plan, future, deadline + 5, errors) if future is not None else {}
    errors.extend(f"app probe: {e}" for e in answer.get("errors") or [])
    report: dict[str, Any] = {"probe": {"executable": sys.executable, "uid": os.getuid()}}
    report.update(_app_sections(plan, answer))
    report.update(_walk_sections(spec, walk, plan, answer, errors))
    report["walk"] = dict(walk.summary(), **(walked or {}))
    report["errors"] = errors
    return report


def _cpu_seconds() -> float | None:
    """CPU time this process and the children it waited for used (the app probe, imports, smoke)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only

        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    except (ImportError, OSError):
        return None
    return round(own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 3)


def main(argv: list[str]) -> int:
    started = time.monotonic()
    try:
        report = collect(argv, started)
    except Exception as exc:  # last resort: still one JSON document, never a traceback
        report = {"errors": [f"probe: {_describe(exc)}"]}
    report["seconds"] = _elapsed(started)
    report["cpu_seconds"] = _cpu_seconds()
    sys.stdout.write(json.dumps(report, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
