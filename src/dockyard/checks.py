"""The image checklist: each check is a pure function of facts gathered once about an image.

Facts come from image metadata (the SDK), one probe container, one healthcheck container, one
streamed export, the lock and a scratch rebuild (see `dockyard.verify`). Checks only judge them, so
each is unit-testable on recorded facts and each says what it saw.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

import humanize

from dockyard.build import BuildResult
from dockyard.config import Settings
from dockyard.dockerfile import Dockerfile
from dockyard.errors import DockyardError
from dockyard.imagefs import ExportScan
from dockyard.images import Base, ImageInfo, common_prefix
from dockyard.lock import LockedSets
from dockyard.results import Outcome

# Stray names: matched anywhere in the image outside installed packages.
DEFAULT_FORBIDDEN_NAMES = (
    ".env", ".env.*", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox",
    ".nox", ".coverage", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "*.key", ".netrc", ".pypirc",
)  # fmt: skip
# Stray paths: the project's own development folders, relative to the image's working directory.
DEFAULT_FORBIDDEN_DIRS = ("tests", "test", "docs", ".github", ".ci", "examples", "bench")
# Tools that live in an environment without being a project dependency.
INSTALLER_PACKAGES = frozenset({"pip", "setuptools", "wheel"})


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    evidence: str
    details: tuple[str, ...] = ()


def passed(evidence: str, *details: str) -> Verdict:
    return Verdict(Outcome.PASS, evidence, details)


def failed(evidence: str, *details: str) -> Verdict:
    return Verdict(Outcome.FAIL, evidence, details)


def skipped(evidence: str) -> Verdict:
    return Verdict(Outcome.SKIP, evidence)


@dataclass(frozen=True)
class HealthOutcome:
    status: str  # healthy, unhealthy, starting (timed out), exited, none
    seconds: float
    log: tuple[str, ...] = ()  # the healthcheck's own output, newest last
    container_log: tuple[str, ...] = ()  # tail of the container's output
    exit_code: int | None = None


@dataclass(frozen=True)
class CacheOutcome:
    """A scratch rebuild after a source-only change, compared layer by layer with the one before."""

    touched: str  # the file that was changed
    layers_before: tuple[tuple[str, int], ...]  # (diff_id, size) of the unchanged build
    layers_after: tuple[tuple[str, int], ...]
    reinstalled: tuple[tuple[str, int], ...]  # re-run steps of the second build that installed
    # more than one package (the project alone is one): (step, packages installed)


@dataclass(frozen=True)
class LockStatus:
    current: bool  # matches pyproject.toml, tracked and committed
    message: str  # what `dockyard.lock.check` said


@dataclass
class Facts:
    settings: Settings
    image: ImageInfo
    dockerfile: Dockerfile | None = None
    base: Base | None = None  # the image it starts from, when known: its layers are not the build's
    build: BuildResult | None = None
    probe: Mapping[str, Any] | None = None
    locked: LockedSets | None = None
    health: HealthOutcome | None = None
    export: ExportScan | None = None
    secrets: Mapping[str, bytes] = field(default_factory=dict)  # name -> content looked for
    lock_status: LockStatus | None = None
    cache: CacheOutcome | None = None
    errors: dict[str, str] = field(default_factory=dict)  # fact name -> why it could not be had
    seconds: dict[str, float] = field(default_factory=dict)  # fact name -> time to gather it


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    needs: tuple[str, ...]  # facts it reads besides the image metadata
    judge: Callable[[Facts], Verdict]


T = TypeVar("T")


def require(value: T | None) -> T:
    """A fact the check declared in `needs`; verify judges no check whose facts are missing."""
    if value is None:
        raise DockyardError("a check ran without the facts it needs")
    return value


def _mb(size: int) -> str:
    return humanize.naturalsize(size)


def _active_env(probe: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((env for env in probe.get("environments", []) if env.get("active")), None)


# --- the checks -------------------------------------------------------------------------------------


def check_builds(facts: Facts) -> Verdict:
    built = facts.build
    if built is None:
        return skipped("image given, not built here (run with --build to check the build)")
    how = "from a clean checkout of HEAD" if facts.settings.verify.clean_checkout else "from the tree"
    return passed(
        f"built {how} in {built.seconds:.1f}s: {len(built.steps)} steps, {built.cached_steps} cached"
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


def check_size(facts: Facts) -> Verdict:
    size, budget = facts.image.size, facts.settings.size_budget
    if size > budget:
        return failed(f"{_mb(size)} is {_mb(size - budget)} over the {_mb(budget)} budget")
    return passed(f"{_mb(size)} of {_mb(budget)} budget ({_mb(budget - size)} to spare)")


def check_no_dev_packages(facts: Facts) -> Verdict:
    probe, locked = require(facts.probe), require(facts.locked)
    dev = set(locked.dev_only) | {_canonical(n) for n in facts.settings.verify.dev_packages}
    found = []
    environments = probe.get("environments", [])
    for env in environments:
        for dist in env.get("distributions", []):
            if dist["name"] in dev:
                found.append(f"{dist['name']} {dist['version']} in {env['path']}")
    where = f"{len(environments)} environment(s)"
    if found:
        return failed(f"development-only packages installed: {', '.join(sorted(found))}", *found)
    return passed(f"none of {len(dev)} development-only packages from uv.lock in {where}")


def check_locked_runtime(facts: Facts) -> Verdict:
    probe, locked = require(facts.probe), require(facts.locked).runtime
    active = _active_env(probe)
    if active is None:
        return failed("the image's Python has no site-packages to compare with uv.lock")
    installed = {d["name"]: d["version"] for d in active.get("distributions", [])}
    missing = sorted(set(locked) - set(installed))
    extra = sorted(set(installed) - set(locked) - INSTALLER_PACKAGES)
    mismatched = sorted(
        f"{n} {installed[n]} (locked {locked[n]})"
        for n in set(locked) & set(installed)
        if installed[n] != locked[n]
    )
    problems = [
        f"{label}: {', '.join(items)}"
        for label, items in (("missing", missing), ("not in uv.lock", extra), ("mismatched", mismatched))
        if items
    ]
    if problems:
        return failed(f"{active['path']} differs from uv.lock: " + "; ".join(problems), *problems)
    return passed(f"{len(locked)} distributions in {active['path']} match uv.lock")


def check_imports(facts: Facts) -> Verdict:
    probe = require(facts.probe)
    results = probe.get("imports", [])
    if not results:
        return skipped("no modules configured")
    bad = [f"{r['module']}: {r.get('error') or 'failed'}" for r in results if not r.get("ok")]
    if bad:
        return failed("; ".join(bad), *bad)
    names = ", ".join(r["module"] for r in results)
    python = probe.get("python", {}).get("executable", "python")
    return passed(f"{names} import with {python}")


def check_smoke(facts: Facts) -> Verdict:
    probe = require(facts.probe)
    wanted = facts.settings.verify.smoke
    if not wanted:
        return skipped("no smoke commands configured")
    ran = probe.get("commands", [])
    bad, good = [], []
    for smoke, result in zip(wanted, ran, strict=False):
        shown = " ".join(smoke.command)
        output = (result.get("stdout") or "") + (result.get("stderr") or "")
        if result.get("error"):
            bad.append(f"`{shown}`: {result['error']}")
        elif result.get("timed_out"):
            bad.append(f"`{shown}` did not finish within {smoke.timeout:g} s")
        elif result.get("returncode") != 0:
            bad.append(f"`{shown}` exited {result.get('returncode')}: {output.strip()[-200:]}")
        elif smoke.expect is not None and smoke.expect not in output:
            bad.append(f"`{shown}` printed {output.strip()[:120]!r}, expected {smoke.expect!r}")
        else:
            good.append(f"`{shown}` -> {output.strip().splitlines()[0] if output.strip() else 'ok'}")
    if bad:
        return failed("; ".join(bad), *bad)
    return passed("; ".join(good))


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
    active = _active_env(facts.probe or {})
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


def check_no_stray_files(facts: Facts) -> Verdict:
    probe = require(facts.probe)
    stray = probe.get("stray_files", [])
    walk = probe.get("walk", {})
    if stray:
        lines = [f"{s['path']} ({s['reason']}, {_mb(s.get('size', 0))})" for s in stray]
        shown = ", ".join(lines[:5]) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
        return failed(f"files that do not belong in the image: {shown}", *lines)
    if walk.get("truncated"):
        return Verdict(
            Outcome.ERROR, f"the file walk stopped at its deadline after {walk.get('files')} files"
        )
    return passed(f"{walk.get('files', 0)} files checked: no .env, VCS data, tests, host venvs or keys")


def check_no_build_secrets(facts: Facts) -> Verdict:
    if not facts.secrets:
        return skipped("no build secrets configured (ca-bundle, verify.secrets)")
    image, found = facts.image, []
    for name, content in facts.secrets.items():
        text = content.decode(errors="replace").strip()
        markers = [text] if len(text) >= 8 else []
        for key, value in image.env.items():
            if any(m in value for m in markers) or "/run/secrets" in value:
                found.append(f"ENV {key} holds or points at secret {name}")
        for key, value in image.labels.items():
            if any(m in value for m in markers):
                found.append(f"LABEL {key} holds secret {name}")
        for entry in image.history:
            if any(m in entry.created_by for m in markers):
                found.append(f"history entry `{entry.created_by[:60]}` holds secret {name}")
    export = facts.export
    export = require(export)
    base_layers = common_prefix(image.diff_ids, facts.base.diff_ids) if facts.base else 0
    for hit in export.hits:
        if hit.layer_index >= base_layers:
            found.append(f"layer {hit.layer_index} ({hit.diff_id[7:19]}) file /{hit.path} holds {hit.needle}")
    names = ", ".join(facts.secrets)
    if found:
        return failed(f"build secret found in the image: {found[0]}", *found)
    layers = len(export.layers) - base_layers
    return passed(f"{names}: in none of {layers} added layers, history, ENV or labels")


def check_lock_current(facts: Facts) -> Verdict:
    status = require(facts.lock_status)
    return passed(status.message) if status.current else failed(status.message)


def check_layer_cache(facts: Facts) -> Verdict:
    cache = facts.cache
    cache = require(cache)
    before, after = cache.layers_before, cache.layers_after
    same = sum(1 for a, b in zip(before, after, strict=False) if a[0] == b[0])
    changed = [layer for layer in after if layer not in before]
    changed_bytes = sum(size for _, size in changed)
    limit = facts.settings.verify.layer_cache_max_changed
    summary = (
        f"after changing {cache.touched}: {len(changed)} of {len(after)} layers changed "
        f"({_mb(changed_bytes)}), {same} reused by digest"
    )
    if cache.reinstalled:
        step, count = cache.reinstalled[0]
        return failed(
            f"{summary}; dependencies were installed again ({count} packages in `{step[:80]}`)",
            *(f"{n} packages: {name}" for name, n in cache.reinstalled),
        )
    if changed_bytes > limit:
        return failed(
            f"{summary}: a source-only change ships more than {_mb(limit)}",
            *(f"changed layer {d[7:19]} {_mb(s)}" for d, s in changed),
        )
    return passed(summary)


CHECKS: tuple[Check, ...] = (
    Check("builds", "the image builds from the project's Dockerfile", (), check_builds),
    Check("non-root", "the image runs as a non-root user it declares", ("probe",), check_non_root),
    Check("size", "the image is within the size budget", (), check_size),
    Check("no-dev-packages", "no development-only package from uv.lock is installed",
          ("probe", "locked"), check_no_dev_packages),
    Check("locked-runtime", "the app's environment holds exactly the locked runtime set",
          ("probe", "locked"), check_locked_runtime),
    Check("imports", "the app's modules import as the image's user", ("probe",), check_imports),
    Check("smoke", "smoke commands succeed in the image", ("probe",), check_smoke),
    Check("healthcheck", "a HEALTHCHECK exists and a container gets healthy", ("health",),
          check_healthcheck),
    Check("runtime-env", "Python runtime settings, PATH, exec-form commands, ports", ("probe",),
          check_runtime_env),
    Check("no-stray-files", "no .env, VCS data, tests, host venvs or keys in the image", ("probe",),
          check_no_stray_files),
    Check("no-build-secrets", "build secrets appear in no layer, history entry, ENV or label",
          ("export",), check_no_build_secrets),
    Check("lock-current", "uv.lock is current with pyproject.toml and committed", ("lock_status",),
          check_lock_current),
    Check("layer-cache", "a source-only change reuses the dependency layers", ("cache",),
          check_layer_cache),
)  # fmt: skip

CHECK_IDS = tuple(check.id for check in CHECKS)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def forbidden_paths(working_dir: str, project_dir_names: Sequence[str] = DEFAULT_FORBIDDEN_DIRS) -> list[str]:
    """The project's development folders, where they would land in the image."""
    roots = {working_dir or "/", "/app", "/src"}
    return sorted(str(PurePosixPath(root) / name) for root in roots for name in project_dir_names)
