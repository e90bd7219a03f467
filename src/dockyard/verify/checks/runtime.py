"""Checks of how the image runs: its user, its runtime settings and commands, its healthcheck."""

from __future__ import annotations

from collections.abc import Sequence

from dockyard.project.dockerfile import Dockerfile
from dockyard.verify.facts import Facts, Verdict, active_env, failed, passed, require, skipped


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
    if not facts.settings.service:
        return skipped("not a service image (service = false)")
    if facts.image.healthcheck is None:
        return failed("no HEALTHCHECK in the image; add one so orchestrators can tell it is ready")
    health = facts.health
    health = require(health)
    test = " ".join(facts.image.healthcheck.get("Test", [])[1:])
    details = (
        *(f"health: {line}" for line in health.log),
        *(f"log: {line}" for line in health.container_log),
    )
    if health.status == "healthy":
        return passed(f"healthy after {health.seconds:.1f}s ({test})")
    if health.status == "exited":
        return failed(f"the container exited ({health.exit_code}) before it was healthy", *details)
    if health.status == "unhealthy":
        return failed(f"unhealthy after {health.seconds:.1f}s ({test})", *details)
    return failed(
        f"not healthy within {facts.settings.verify.healthcheck_timeout:g}s (still {health.status}; {test})",
        *details,
    )


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
