"""Checks of the Python environment the app runs in: dev packages, the locked runtime set, imports, smoke.

"The app's environment" is what the app's own interpreter sees (resolved from ENTRYPOINT/CMD by the
probe): every distribution on its real sys.path, the first of a name winning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dockyard.config import SmokeCommand
from dockyard.project.lock import canonical
from dockyard.results import Outcome
from dockyard.verify.facts import (
    Facts,
    Verdict,
    app_distributions,
    app_python,
    app_user,
    failed,
    passed,
    require,
    skipped,
)

INSTALLER_PACKAGES = frozenset({"pip", "setuptools", "wheel"})
SHOWN = 3  # paths named per problem in the evidence (details list them all)


def _where(env: Mapping[str, Any]) -> str:
    return f"{env['path']}" + (" (on the app's sys.path)" if env.get("active") else "")


# Development tools by name, for an image with no uv.lock to tell development-only packages apart.
WELL_KNOWN_DEV_TOOLS = frozenset(
    {"pytest", "mypy", "ruff", "coverage", "black", "flake8", "pylint", "tox", "nox", "ipython", "pre-commit",
     "hypothesis", "isort", "bandit", "pyright", "basedpyright", "ty", "pyflakes", "pycodestyle",
     "pydocstyle", "autopep8", "yapf", "codespell", "vulture", "ipdb", "pdbpp", "debugpy", "jupyter",
     "jupyterlab", "notebook", "ipykernel", "sphinx", "mkdocs", "mkdocs-material", "poethepoet", "twine",
     "pip-audit", "safety", "factory-boy", "freezegun", "responses", "respx", "time-machine", "pytest-cov",
     "pytest-xdist", "pytest-mock", "pytest-asyncio"}
)  # fmt: skip
_DEV_PREFIXES = ("pytest-", "flake8-", "types-", "mypy-boto3-", "sphinx-", "mkdocs-")


def is_well_known_dev_tool(name: str) -> bool:
    return name in WELL_KNOWN_DEV_TOOLS or name.startswith(_DEV_PREFIXES)


def check_no_dev_packages(facts: Facts) -> Verdict:
    probe = require(facts.probe)
    if "locked" in facts.errors:
        return Verdict(Outcome.ERROR, f"locked: {facts.errors['locked']}")
    configured = {canonical(n) for n in facts.settings.verify.dev_packages}
    locked = facts.locked
    found = []
    environments = probe.get("environments", [])
    for env in environments:
        for dist in env.get("distributions", []):
            name = dist["name"]
            dev = (name in locked.dev_only) if locked is not None else is_well_known_dev_tool(name)
            if dev or name in configured:
                found.append(f"{name} {dist['version']} in {_where(env)}")
    where = f"{len(environments)} environment(s) (the app's sys.path and every other the walk found)"
    if locked is None:
        why = facts.unavailable.get("locked", "no uv.lock")
        judged = f"{why}: judged by name against {len(WELL_KNOWN_DEV_TOOLS)} well-known development tools"
        if found:
            return failed(f"development tools installed ({judged}): {', '.join(sorted(found))}", *found)
        return passed(f"no well-known development tool in {where} ({judged})")
    if found:
        return failed(f"development-only packages installed: {', '.join(sorted(found))}", *found)
    return passed(
        f"none of {len(locked.dev_only) + len(configured)} development-only packages from uv.lock in {where}"
    )


def _not_interpreter(probe: Mapping[str, Any]) -> Verdict | None:
    """A verdict when the app's interpreter could not be judged (or cannot start at all)."""
    app = probe.get("app") or {}
    if app.get("error_kind") == "not_found":
        return failed(f"the app's command cannot start: {app.get('error')}", *app.get("steps", []))
    if app.get("interpreter_error"):
        return Verdict(
            Outcome.ERROR,
            f"the app's interpreter {app.get('interpreter')} could not run dockyard's probe: "
            f"{app['interpreter_error']}",
        )
    return None


def _record_problems(name: str, dist: Mapping[str, Any]) -> list[str]:
    """What RECORD verification and import resolution found wrong with one locked distribution."""
    label = f"{name} {dist.get('version')}"
    problems = []
    record = dist.get("record") or {}
    for key, what in (
        ("missing", "missing"),
        ("changed", "changed since installed"),
        ("unreadable", "unreadable"),
    ):
        count = record.get(f"{key}_count") or 0
        if count:
            shown = ", ".join(record.get(key, [])[:SHOWN]) + (" ..." if count > SHOWN else "")
            problems.append(f"{label}: {count} file(s) {what} ({shown})")
    for item in dist.get("imports") or []:
        if not item.get("ok"):
            where = item.get("origin") or item.get("error") or "nowhere"
            problems.append(
                f"{label}: `import {item['name']}` resolves to {where}, "
                f"not to its files in {dist.get('environment')}"
            )
    return problems


def check_locked_runtime(facts: Facts) -> Verdict:
    probe, locked_sets = require(facts.probe), require(facts.locked)
    locked = locked_sets.runtime
    bad = _not_interpreter(probe)
    if bad is not None:
        return bad
    python_facts = probe.get("python") or {}
    if "error" in python_facts:
        return Verdict(Outcome.ERROR, f"the app's interpreter could not be probed: {python_facts['error']}")
    installed = app_distributions(probe)  # none at all is fine when the lock has no runtime package
    python = app_python(probe)
    missing = sorted(set(locked) - set(installed))
    unlocked = set(installed) - set(locked) - INSTALLER_PACKAGES
    dev_only = sorted(f"{n} {installed[n]['version']}" for n in unlocked if n in locked_sets.dev_only)
    extra = sorted(n for n in unlocked if n not in locked_sets.dev_only)
    mismatched = sorted(
        f"{n} {installed[n]['version']} in {installed[n]['environment']} (locked {locked[n]})"
        for n in set(locked) & set(installed)
        if installed[n]["version"] != locked[n]
    )
    problems = [
        f"{label}: {', '.join(items)}"
        for label, items in (
            ("missing", missing),
            ("development-only in uv.lock", dev_only),
            ("not in uv.lock", extra),
            ("mismatched", mismatched),
        )
        if items
    ]
    checked = files = hashed = 0
    notes = []
    for name in sorted(set(locked) & set(installed)):
        dist = installed[name]
        problems.extend(_record_problems(name, dist))
        record = dist.get("record") or {}
        if record:
            checked += 1
            files += record.get("checked", 0)
            hashed += record.get("hashed", 0)
        if record.get("pruned"):
            notes.append(f"{name}: {record['pruned']} prunable file(s) removed (tests, stubs, bytecode)")
        for item in record.get("overwritten") or []:
            notes.append(f"{name}: {item['path']} is {item['by']}'s, installed over it (both install it)")
        if dist.get("editable"):
            notes.append(f"{name}: an editable install; its files are not verified")
    if problems:
        return failed(
            f"what {python} sees differs from uv.lock: {'; '.join(problems)}",
            *problems,
            f"interpreter: {python}",
        )
    verified = (
        f"; RECORD of {checked} verified ({files} files, {hashed} hashed), their imports resolve to them"
        if checked
        else ""
    )
    virtual = " (the project is virtual: uv installs only its dependencies)" if facts.settings.virtual else ""
    return passed(f"{len(locked)} distributions seen by {python} match uv.lock{verified}{virtual}", *notes)


def check_imports(facts: Facts) -> Verdict:
    probe = require(facts.probe)
    bad_interpreter = _not_interpreter(probe)
    if bad_interpreter is not None:
        return bad_interpreter
    results = probe.get("imports", [])
    app = probe.get("app") or {}
    python, user = app_python(probe), app_user(probe)
    head = app.get("imports_path")
    path0 = f"sys.path[0] {head[0]}" if head else "no working directory on sys.path"
    inferred = f"; {facts.imports_inferred}" if facts.imports_inferred else ""
    if not results:
        return skipped(facts.imports_inferred or "no modules configured and no Python entry point found")
    bad = [
        f"{r['module']} ({r.get('source', 'configured')}): {r.get('error') or 'failed'}"
        for r in results
        if not r.get("ok")
    ]
    if bad:
        return failed(f"{'; '.join(bad)} [with {python}, as {user}, {path0}]", *bad)
    names = ", ".join(
        f"{r['module']}" + (" (entry point)" if r.get("source") == "entry point" else "") for r in results
    )
    return passed(f"{names} import with {python}, as {user}, {path0}{inferred}")


def _output_lines(result: Mapping[str, Any]) -> list[str]:
    return [
        line.strip()
        for line in ((result.get("stdout") or "") + "\n" + (result.get("stderr") or "")).splitlines()
    ]


def smoke_matches(smoke: SmokeCommand, result: Mapping[str, Any]) -> str | None:
    """Why a finished smoke command's output does not satisfy `expect` (a whole line, whitespace
    around it ignored) and `expect_regex` (`re.search` over stdout then stderr, multiline), or None."""
    lines = _output_lines(result)
    shown = "\n".join(line for line in lines if line)[:120]
    if smoke.expect is not None and smoke.expect.strip() not in lines:
        return f"printed {shown!r}, expected a line {smoke.expect.strip()!r}"
    if (
        smoke.expect_regex is not None
        and re.search(smoke.expect_regex, "\n".join(lines), re.MULTILINE) is None
    ):
        return f"printed {shown!r}, expected output matching /{smoke.expect_regex}/"
    return None


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
        elif (why := smoke_matches(smoke, result)) is not None:
            bad.append(f"`{shown}` {why}")
        else:
            good.append(f"`{shown}` -> {output.strip().splitlines()[0] if output.strip() else 'ok'}")
    if len(ran) < len(wanted):
        bad.extend(f"`{' '.join(s.command)}` did not run" for s in wanted[len(ran) :])
    if bad:
        return failed("; ".join(bad), *bad)
    return passed("; ".join(good) + f" (as {app_user(probe)})")
