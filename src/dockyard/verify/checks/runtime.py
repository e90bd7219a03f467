"""Checks of how the image runs: its user, its runtime settings and commands, its healthcheck."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.project.dockerfile import Dockerfile
from dockyard.results import Outcome
from dockyard.verify import health
from dockyard.verify.facts import (
    Facts,
    HealthOutcome,
    Verdict,
    active_env,
    failed,
    passed,
    require,
    skipped,
)


def _is_root_user(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in ("", "root", "0")


def check_non_root(facts: Facts) -> Verdict:
    user = facts.image.user
    if not user:
        return failed("no USER in the image: it runs as root; add `USER <uid>` to the final stage")
    if _is_root_user(user):
        return failed(f"USER {user} is root; use a dedicated non-root user")
    if facts.dockerfile is not None and not _declares_user(facts.dockerfile):
        return failed(
            f"USER {user} is inherited from the base image, not declared by {facts.dockerfile.path.name}"
        )
    probe = facts.probe or {}
    seen = probe.get("user", {})
    uid, name = seen.get("uid"), seen.get("name")
    if uid == 0:
        return failed(f"USER {user} resolves to uid 0 inside the container")
    expected = facts.settings.verify.user
    if expected is not None and expected not in (str(uid), name):
        return failed(f"runs as {name or '?'} (uid {uid}), expected {expected}")
    return passed(f"USER {user} runs as {name or 'an unnamed user'} (uid {uid}, gid {seen.get('gid')})")


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


def _shell_form(command: Sequence[str] | None) -> bool:
    if command is None or len(command) < 2:
        return False
    return command[0] in ("/bin/sh", "sh") and command[1] == "-c"


def check_runtime_env(facts: Facts) -> Verdict:
    image, verify = facts.image, facts.settings.verify
    problems = [
        f"{key}={image.env.get(key, '<unset>')} (expected {value})"
        for key, value in verify.env.items()
        if image.env.get(key) != value
    ]
    active = active_env(facts.probe or {})
    venv = active.get("venv_root") if active else None
    path = image.env.get("PATH", "").split(":")
    if venv and (not path or path[0] != f"{venv}/bin"):
        problems.append(
            f"the virtual environment {venv}/bin is not first on PATH ({path[0] if path else ''})"
        )
    for name, command in (("ENTRYPOINT", image.entrypoint), ("CMD", image.cmd)):
        if _shell_form(command):
            problems.append(f"{name} is shell form ({' '.join(command or ())[:60]}): signals miss the app")
    if image.entrypoint is None and image.cmd is None:
        problems.append("neither ENTRYPOINT nor CMD is set")
    if verify.ports is not None:
        exposed = sorted(image.exposed_ports)
        expected = sorted(f"{p}/tcp" for p in verify.ports)
        if exposed != expected:
            problems.append(f"exposes {exposed or 'nothing'}, expected {expected}")
    if problems:
        return failed("; ".join(problems), *problems)
    entry = " ".join([*(image.entrypoint or ()), *(image.cmd or ())])
    shown = ", ".join(f"{k}={v}" for k, v in verify.env.items())
    where = f"{venv}/bin first on PATH, " if venv else ""
    return passed(f"{shown}; {where}exec form `{entry}`; ports {list(image.exposed_ports) or 'none'}")
