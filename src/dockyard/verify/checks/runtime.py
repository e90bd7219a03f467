"""Checks of how the image runs: its user, its runtime settings and commands, its healthcheck."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.image.metadata import ImageInfo
from dockyard.project.dockerfile import Dockerfile
from dockyard.project.lock import canonical
from dockyard.results import Outcome
from dockyard.verify import health
from dockyard.verify.facts import (
    Facts,
    HealthOutcome,
    Verdict,
    app_python,
    failed,
    passed,
    require,
    skipped,
)

# A file capability this harmless does not make the app root: binding ports below 1024.
HARMLESS_CAPABILITIES = frozenset({"net_bind_service"})
SHELL_NAMES = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"})


def _is_root_user(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in ("", "root", "0")


def _raises(found: Mapping[str, Any]) -> list[str]:
    """How running a file raises privileges, in words (empty: it does not)."""
    how = []
    if found.get("setuid_root"):
        how.append("setuid root")
    if found.get("setgid_root"):
        how.append("setgid root")
    caps = found.get("capabilities") or {}
    strong = [n for n in caps.get("names", []) if n not in HARMLESS_CAPABILITIES]
    if strong or (caps and not caps.get("names")):
        how.append("file capabilities " + (", ".join(strong) or caps.get("raw", "?")))
    return how


def _declared_user_problem(facts: Facts) -> str | None:
    """Why the image's USER is root, or not the image's own (from its metadata alone)."""
    user = facts.image.user
    if not user:
        return "no USER in the image: it runs as root; add `USER <uid>` to the final stage"
    if _is_root_user(user):
        return f"USER {user} is root; use a dedicated non-root user"
    if facts.dockerfile is not None and not _declares_user(facts.dockerfile):
        return f"USER {user} is inherited from the base image, not declared by {facts.dockerfile.path.name}"
    return None


def check_non_root(facts: Facts) -> Verdict:
    declared = _declared_user_problem(facts)
    if declared is not None:
        return failed(declared)
    user = facts.image.user
    probe = require(facts.probe)
    resolved = (probe.get("app") or {}).get("user") or {}
    if resolved.get("error"):
        return failed(
            f"USER {user} cannot be resolved in the image ({resolved['error']}): no container starts"
        )
    seen = probe.get("user", {})
    if "uid" not in seen:
        return Verdict(
            Outcome.ERROR, f"the app's user could not be observed: {seen.get('error', 'no answer')}"
        )
    uid, name = seen.get("uid"), seen.get("name")
    euid, egid = seen.get("euid", uid), seen.get("egid")
    python = app_python(probe)
    raised = [
        f"{p['path']}" + (f" (as {p['via']})" if p.get("via") else "") + f" is {' and '.join(_raises(p))}"
        for p in (probe.get("privileged") or {}).get("execution_path", [])
        if _raises(p)
    ]
    problem = None
    if uid == 0:
        problem = f"USER {user} resolves to uid 0 inside the container"
    elif euid == 0 or (egid == 0 and seen.get("gid") != 0):
        why = f": {raised[0]}" if raised else ""
        problem = f"USER {user} runs the app as uid {uid} but with euid {euid}, egid {egid}{why}"
    elif raised:
        problem = f"the app's execution path raises privileges: {raised[0]}"
    elif facts.settings.verify.user is not None and facts.settings.verify.user not in (str(uid), name):
        problem = f"runs as {name or '?'} (uid {uid}), expected {facts.settings.verify.user}"
    if problem is not None:
        return failed(problem, *raised, f"interpreter: {python}")
    others = [
        f"warning: {p['path']} is {' and '.join(_raises(p))} ({p.get('mode')})"
        for p in (probe.get("privileged") or {}).get("files", [])
        if _raises(p)
    ]
    note = f"; {len(others)} setuid/setgid-root or capability files elsewhere (warnings)" if others else ""
    group = " (group root)" if seen.get("gid") == 0 else ""
    return passed(
        f"USER {user} runs {python} as {name or 'an unnamed user'} "
        f"(uid {uid}, euid {euid}, gid {seen.get('gid')}{group}){note}",
        *others,
    )


def _declares_user(dockerfile: Dockerfile) -> bool:
    """Whether the final stage, or a stage of this Dockerfile it builds on, sets USER."""
    stages: list[list[str]] = []
    for keyword, rest in dockerfile.instructions:
        if keyword == "FROM":
            stages.append([rest])
        elif stages:
            stages[-1].append(keyword)
    names = {s.name: i for i, s in enumerate(dockerfile.stages) if s.name}
    index = len(stages) - 1
    for _ in range(len(stages)):
        if "USER" in stages[index]:
            return True
        parent = dockerfile.stages[index].base.lower()
        if parent not in names:
            return False
        index = names[parent]
    return False


def check_healthcheck(facts: Facts) -> Verdict:
    role = health.image_role(facts.settings.service, facts.image)
    if not role.service:
        return skipped(role.describe())
    if facts.image.healthcheck is None:
        return failed(
            f"no HEALTHCHECK in the image; add one so orchestrators can tell it is ready ({role.describe()})"
        )
    test = health.HealthTest.from_image(facts.image.healthcheck)
    if facts.probe is not None:
        ran, unavailable = health.find_run(facts.probe.get("commands") or [], test), None
        if ran is None:
            unavailable = "the probe did not run the health test"
    else:
        ran, unavailable = None, f"probe: {facts.errors.get('probe', 'not available')}"
    return judge_health(
        test,
        require(facts.health),
        ran,
        role=role,
        timeout=facts.settings.verify.healthcheck_timeout,
        settle=facts.settings.verify.healthcheck_settle,
        unavailable=unavailable,
    )


def judge_health(
    test: health.HealthTest,
    outcome: HealthOutcome,
    ran: Mapping[str, Any] | None,
    *,
    role: health.Role,
    timeout: float,
    settle: float | None,
    unavailable: str | None = None,
) -> Verdict:
    """A healthcheck's verdict: the live run got healthy and stayed so through the settle window, and
    the run of the test where the app was not started (`ran`, a probe command result) failed."""
    shown = test.shown
    details = (
        *(f"health: {line}" for line in outcome.log),
        *(f"log: {line}" for line in outcome.container_log),
    )
    if ran is not None and str(ran.get("error") or "").startswith("executable not found"):
        return failed(f"the health test cannot run: {ran['error']} in the image ({shown})", *details)
    if problem := _live_problem(outcome, shown, timeout):
        return failed(problem, *details)
    if ran is not None and ran.get("returncode") == 0 and not ran.get("timed_out"):
        return failed(
            f"vacuous healthcheck ({shown}): it exits 0 where the app is not started (no app process, no "
            f"network); {health.why_vacuous(test)}",
            *details,
        )
    if ran is None:
        return Verdict(
            Outcome.ERROR,
            f"healthy after {outcome.seconds:.1f}s, but whether the test can fail was not checked: "
            f"{unavailable or 'not run'}",
            details,
        )
    stayed = (
        f", stayed healthy {outcome.settled:.1f}s ({outcome.settle_probes} more probes)"
        if settle != 0
        else ""
    )
    without = "timed out" if ran.get("timed_out") else f"exit {ran.get('returncode')}"
    became = f"healthy after {outcome.seconds:.1f}s"
    return passed(f"{became}{stayed}; fails without the app ({without}) ({shown}); {role.describe()}")


def _live_problem(outcome: HealthOutcome, shown: str, timeout: float) -> str | None:
    """What went wrong in the live run: never healthy, or not staying so through the settle window."""
    if outcome.status == "exited":
        return f"the container exited ({outcome.exit_code}) before it was healthy ({shown})"
    if outcome.status == "unhealthy":
        return f"unhealthy after {outcome.seconds:.1f}s ({shown})"
    if outcome.status != "healthy":
        return f"not healthy within {timeout:g}s (still {outcome.status}; {shown})"
    became = f"healthy after {outcome.seconds:.1f}s"
    if outcome.lost == "exited":
        return (
            f"{became}, then exited ({outcome.exit_code}) {outcome.settled:.1f}s later, within the settle "
            f"window ({shown})"
        )
    if outcome.lost is not None:
        lost = f"{outcome.lost} {outcome.settled:.1f}s later"
        return f"{became}, then {lost}, within the settle window ({shown})"
    return None


def _static_shell(command: Sequence[str] | None) -> bool:
    """Whether an exec-form argv starts a shell that runs a `-c` string (from the metadata alone)."""
    if not command or len(command) < 2:
        return False
    name = command[0].rsplit("/", 1)[-1]
    return name in SHELL_NAMES and command[1].startswith("-") and "c" in command[1][1:]


def _pid1_problem(image: ImageInfo, app: Mapping[str, Any]) -> str | None:
    """A shell that stays PID 1 (it does not `exec` the app), so `docker stop`'s SIGTERM never
    reaches the app."""
    shell = app.get("shell")
    argv = [*(image.entrypoint or ()), *(image.cmd or ())]
    shown = " ".join(argv)[:80]
    if shell:
        if shell.get("execs"):
            return None
        what = (
            f"`{shell['command']}`" if shell.get("command") is not None else f"script {shell.get('script')}"
        )
        return (
            f"`{shown}` keeps the shell {shell['path']} as PID 1 ({what} does not `exec` the app): "
            "signals miss the app; use exec form, or `exec` the app"
        )
    if _static_shell(argv):  # the probe saw no shell: judge the metadata alone
        script = argv[2] if len(argv) > 2 else ""
        if not re.match(r"^\s*exec\s", script):
            return f"`{shown}` keeps a shell as PID 1: signals miss the app; use exec form, or `exec` the app"
    return None


# Python's switches, read as CPython reads them: an integer is its own truth (0 is off), any other
# non-empty value is on (`PYTHONUNBUFFERED=True` is as good as 1), empty or unset is off.
PYTHON_SWITCHES = frozenset({
    "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE", "PYTHONSAFEPATH",
    "PYTHONFAULTHANDLER", "PYTHONDEVMODE",
})  # fmt: skip


def _switched_on(value: str | None) -> bool:
    if not value:
        return False
    try:
        return int(value) != 0
    except ValueError:
        return True


def _same_setting(key: str, actual: str | None, expected: str) -> bool:
    """Whether `key=actual` does what `key=expected` asks: equal, or a Python switch both turn on (or
    both leave off)."""
    if actual == expected:
        return True
    return key in PYTHON_SWITCHES and _switched_on(actual) == _switched_on(expected)


def check_runtime_env(facts: Facts) -> Verdict:
    image, verify = facts.image, facts.settings.verify
    probe = require(facts.probe)
    app = probe.get("app") or {}
    python = probe.get("python") or {}
    problems = [
        f"{key}={image.env.get(key, '<unset>')} (expected {value})"
        for key, value in verify.env.items()
        if not _same_setting(key, image.env.get(key), value)
    ]
    notes = [
        f"note: {key}={image.env[key]} does what {key}={value} does (as Python reads its switches)"
        for key, value in verify.env.items()
        if image.env.get(key) not in (None, value) and _same_setting(key, image.env.get(key), value)
    ]
    venv = python.get("prefix") if python.get("in_venv") else None
    project = canonical(facts.settings.project_name)
    unused = [  # a working venv that holds the project, while the app's interpreter is elsewhere
        env["venv_root"]
        for env in probe.get("environments", [])
        if not env.get("active")
        and env.get("venv_root")
        and env.get("interpreter_ok")
        and any(d.get("name") == project for d in env.get("distributions", []))
    ]
    if venv is None and unused and app.get("argv"):
        problems.append(
            f"the app runs {app_python(probe)}, outside the virtual environment {unused[0]}: "
            f"put {unused[0]}/bin first on PATH or name its interpreter"
        )
    for name in ("python", "python3"):
        found = ((probe.get("which") or {}).get(name) or {}).get("path")
        executable = python.get("executable")
        if found and executable and found != executable and venv and not found.startswith(f"{venv}/"):
            notes.append(f"note: `{name}` on PATH is {found}, not the app's {executable}")
            break
    pid1 = _pid1_problem(image, app)
    if pid1:
        problems.append(pid1)
    if image.entrypoint is None and image.cmd is None:
        problems.append("neither ENTRYPOINT nor CMD is set")
    if verify.ports is not None:
        exposed = sorted(image.exposed_ports)
        expected = sorted(f"{p}/tcp" for p in verify.ports)
        if exposed != expected:
            problems.append(f"exposes {exposed or 'nothing'}, expected {expected}")
    if problems:
        return failed("; ".join(problems), *problems, *notes)
    entry = " ".join([*(image.entrypoint or ()), *(image.cmd or ())])
    shown = ", ".join(f"{k}={v}" for k, v in verify.env.items())
    runs = f"runs {python.get('executable')}" + (f" of {venv}" if venv else "")
    how = "exec form" if not app.get("shell") else "a shell that execs the app"
    return passed(
        f"{shown}; {how} `{entry}` {runs}; ports {list(image.exposed_ports) or 'none'}",
        *notes,
        *(f"resolved: {step}" for step in app.get("steps") or []),
    )
