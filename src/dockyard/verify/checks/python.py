"""Checks of the Python environment the app runs in: dev packages, the locked runtime set, imports, smoke."""

from __future__ import annotations

from dockyard.project.lock import canonical
from dockyard.verify.facts import Facts, Verdict, active_env, failed, passed, require, skipped

INSTALLER_PACKAGES = frozenset({"pip", "setuptools", "wheel"})


def check_no_dev_packages(facts: Facts) -> Verdict:
    probe, locked = require(facts.probe), require(facts.locked)
    dev = set(locked.dev_only) | {canonical(n) for n in facts.settings.verify.dev_packages}
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
    active = active_env(probe)
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
