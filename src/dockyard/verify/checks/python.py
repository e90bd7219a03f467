"""Checks of the Python environment the app runs in: dev packages, the locked runtime set, imports, smoke."""

from __future__ import annotations

from dockyard.project.lock import canonical
from dockyard.results import Outcome
from dockyard.verify.facts import Facts, Verdict, active_env, failed, passed, require, skipped

INSTALLER_PACKAGES = frozenset({"pip", "setuptools", "wheel"})


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
                found.append(f"{name} {dist['version']} in {env['path']}")
    where = f"{len(environments)} environment(s)"
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


def check_locked_runtime(facts: Facts) -> Verdict:
    probe, locked_sets = require(facts.probe), require(facts.locked)
    locked = locked_sets.runtime
    active = active_env(probe)
    if active is None:
        return failed("the image's Python has no site-packages to compare with uv.lock")
    installed = {d["name"]: d["version"] for d in active.get("distributions", [])}
    missing = sorted(set(locked) - set(installed))
    unlocked = set(installed) - set(locked) - INSTALLER_PACKAGES
    dev_only = sorted(f"{n} {installed[n]}" for n in unlocked if n in locked_sets.dev_only)
    extra = sorted(n for n in unlocked if n not in locked_sets.dev_only)
    mismatched = sorted(
        f"{n} {installed[n]} (locked {locked[n]})"
        for n in set(locked) & set(installed)
        if installed[n] != locked[n]
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
    if problems:
        return failed(f"{active['path']} differs from uv.lock: " + "; ".join(problems), *problems)
    virtual = " (the project is virtual: uv installs only its dependencies)" if facts.settings.virtual else ""
    return passed(f"{len(locked)} distributions in {active['path']} match uv.lock{virtual}")


def check_imports(facts: Facts) -> Verdict:
    probe = require(facts.probe)
    results = probe.get("imports", [])
    inferred = f" ({facts.imports_inferred})" if facts.imports_inferred else ""
    if not results:
        return skipped(facts.imports_inferred or "no modules configured")
    bad = [f"{r['module']}: {r.get('error') or 'failed'}" for r in results if not r.get("ok")]
    if bad:
        return failed("; ".join(bad), *bad)
    names = ", ".join(r["module"] for r in results)
    python = probe.get("python", {}).get("executable", "python")
    return passed(f"{names} import with {python}{inferred}")


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
