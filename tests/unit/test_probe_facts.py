"""A probe told which facts to gather (the selected checks') gives every one of those checks the verdict
the whole probe gives it, and skips what was not asked for: the probe runs for real on a directory tree
(its walk roots) with this interpreter as the app, and each check judges both answers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import subprocess
import sys
from base64 import urlsafe_b64encode
from pathlib import Path
from typing import Any

import pytest

from dockyard.results import Outcome
from dockyard.verify import gather as verify
from dockyard.verify import probe
from dockyard.verify.checks import CHECKS
from dockyard.verify.facts import Check, Facts
from tests.unit.test_checks import facts

__all__ = ["facts"]  # the recorded facts: the settings, image and uv.lock the checks judge with

# Assembled from pieces so secret scanners do not flag this fake, unusable key.
PEM_KEY = (
    "-----BEGIN " + "OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2U=\n"
    "-----END " + "OPENSSH PRIVATE KEY-----\n"
)
PROBE_CHECKS = [check for check in CHECKS if "probe" in check.needs]
SIX = ("non-root", "imports", "smoke", "no-dev-packages", "runtime-env", "no-stray-files")


def write(path: Path, text: str, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def install(site: Path, name: str, version: str, files: dict[str, str]) -> None:
    """A distribution with a RECORD of real hashes."""
    rows = []
    for relative, text in files.items():
        write(site / relative, text)
        digest = urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        rows.append(f"{relative},sha256={digest},{len(text.encode())}\n")
    info = site / f"{name}-{version}.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    write(info / "RECORD", "".join(rows) + f"{name}-{version}.dist-info/RECORD,,\n")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Something for every fact: strays and a key, a setuid file, build tools and a header, a uv project,
    the app's distributions (a development-only one, a locked one with a file changed since installed),
    and another environment."""
    root = tmp_path_factory.mktemp("image")
    write(root / "app" / ".env", "SECRET=1\n")
    write(root / "app" / "deploy.pem", PEM_KEY)
    write(root / "app" / "pyproject.toml", "[project]\nname = 'svc'\n")
    write(root / "app" / "uv.lock", "version = 1\n")
    write(root / "usr" / "bin" / "gcc", "#!/bin/sh\n", 0o755)
    write(root / "usr" / "bin" / "helper", "#!/bin/sh\n", 0o755 | stat.S_ISUID)
    write(root / "usr" / "include" / "python3.13" / "Python.h", "/* header */\n")
    site = root / "site"
    install(site, "pytest", "8.3.4", {"pytest/__init__.py": "# dev only\n"})
    install(site, "rich", "13.9.4", {"rich/__init__.py": "# locked\n"})
    write(site / "rich" / "__init__.py", "# changed after installing\n")
    venv = root / "venv"
    write(venv / "pyvenv.cfg", f"home = {Path(sys.executable).parent}\n")
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(sys.executable)
    install(venv / "lib" / "python3.13" / "site-packages", "mypy", "1.13.0", {"mypy/__init__.py": ""})
    return root


def answer(tree: Path, spec: dict[str, object], facts: list[str] | None) -> dict[str, Any]:
    """The probe's answer, run as dockyard runs it (``python -I -S -c SOURCE SPEC``)."""
    wanted = {**spec, "facts": facts} if facts is not None else dict(spec)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe.source(), json.dumps(wanted)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tree,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["errors"] == [], report["errors"]
    return report


@pytest.fixture(scope="module")
def spec(tree: Path) -> dict[str, object]:
    return {
        "app": {
            "entrypoint": [sys.executable, "-m", "json.tool"],
            "cmd": ["--help"],
            "env": [f"PATH={os.environ['PATH']}", f"PYTHONPATH={tree / 'site'}"],
            "user": f"{os.getuid()}:{os.getgid()}",
            "workdir": str(tree / "app"),
        },
        "walk_roots": [str(tree)],
        "imports": ["json", "no_such_module_xyz"],
        "commands": [{"argv": [sys.executable, "-c", "print('dockyard 0.1.0')"], "timeout": 20}],
        "forbidden_names": [".env", "*.key"],
        "forbidden_paths": [f"{tree}/app/tests"],
        "verify_records": ["rich", "pytest"],
        "which": ["python", "python3"],
    }


@pytest.fixture(scope="module")
def whole(tree: Path, spec: dict[str, object]) -> dict[str, Any]:
    return answer(tree, spec, None)


def verdicts_of(facts: Facts, report: dict[str, Any], checks: list[Check]) -> dict[str, tuple[object, ...]]:
    judged = dataclasses.replace(facts, probe=report)
    found: dict[str, tuple[object, ...]] = {}
    for check in checks:
        verdict = check.judge(judged)
        found[check.id] = (verdict.outcome, verdict.evidence, verdict.details)
    return found


@pytest.mark.parametrize("check", PROBE_CHECKS, ids=lambda c: c.id)
def test_a_check_alone_gets_the_verdict_the_whole_probe_gives_it(
    facts: Facts, tree: Path, spec: dict[str, object], whole: dict[str, Any], check: Check
) -> None:
    alone = answer(tree, spec, list(verify.probe_facts([check])))
    assert verdicts_of(facts, alone, [check]) == verdicts_of(facts, whole, [check])


def test_the_six_checks_together_get_their_verdicts_and_nothing_else_is_gathered(
    facts: Facts, tree: Path, spec: dict[str, object], whole: dict[str, Any]
) -> None:
    six = [check for check in CHECKS if check.id in SIX]
    assert verify.probe_facts(six) == ("commands", "environments", "imports", "privileged", "strays")
    lean = answer(tree, spec, list(verify.probe_facts(six)))
    assert verdicts_of(facts, lean, six) == verdicts_of(facts, whole, six)
    # the verdicts are not all vacuous passes: the tree has a key, a dev package, a setuid file
    judged = verdicts_of(facts, lean, six)
    assert judged["no-stray-files"][0] is Outcome.FAIL
    assert "deploy.pem (private key" in str(judged["no-stray-files"][1])
    assert judged["no-dev-packages"][0] is Outcome.FAIL
    assert "pytest 8.3.4" in str(judged["no-dev-packages"][1])
    assert judged["smoke"][0] is Outcome.PASS  # it prints the line the configured smoke expects
    assert judged["imports"][0] is Outcome.FAIL
    assert [Path(p["path"]).name for p in lean["privileged"]["files"]] == ["helper"]
    # what was not asked for: no build tools, no RECORD verified, no footprint
    assert lean["build_tools"] == {}
    assert whole["build_tools"]["tools"]
    assert whole["build_tools"]["headers"]
    dists = [d for env in lean["environments"] for d in env["distributions"]]
    assert dists
    assert all("record" not in d and d["size"] is None for d in dists)
    whole_rich = [d for env in whole["environments"] for d in env["distributions"] if d["name"] == "rich"]
    assert whole_rich
    assert whole_rich[0]["record"]["changed_count"] == 1
    assert lean["walk"]["files"] == whole["walk"]["files"]


def test_without_a_walk_fact_there_is_no_walk_and_only_the_asked_sections(
    tree: Path, spec: dict[str, object]
) -> None:
    report = answer(tree, spec, ["imports"])
    assert report["walk"]["files"] == 0
    assert (report["stray_files"], report["environments"], report["commands"]) == ([], [], [])
    assert [r["module"] for r in report["imports"]] == ["json.tool", "json", "no_such_module_xyz"]
    assert report["privileged"]["files"] == []


def test_implied_facts_and_unknown_ones() -> None:
    assert probe.closed_facts(None) == frozenset(probe.FACTS)
    assert probe.closed_facts(["build_tools"]) == {"build_tools", "environments", "records", "privileged"}
    assert probe.closed_facts(["smoke-ish"]) == frozenset()


def test_a_fact_the_probe_does_not_know_is_reported_and_everything_is_gathered(
    tree: Path, spec: dict[str, object]
) -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe.source(), json.dumps({**spec, "facts": ["nope"]})],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tree,
    )
    report = json.loads(done.stdout)
    assert any("ignored 'facts'" in error for error in report["errors"])
    assert report["build_tools"]["tools"]


def test_every_probe_check_declares_what_it_reads() -> None:
    for check in PROBE_CHECKS:
        assert check.probe, check.id
        assert set(check.probe) <= set(probe.FACTS), check.id


def test_the_spec_carries_the_facts_and_the_lock_names_only_when_records_are_read(facts: Facts) -> None:
    six = [check for check in CHECKS if check.id in SIX]
    lean = verify.probe_spec(facts.settings, facts.image, ("dockyard",), verify.probe_facts(six))
    assert lean["facts"] == list(verify.probe_facts(six))
    assert lean["verify_records"] == []
    locked = [check for check in CHECKS if check.id == "locked-runtime"]
    spec = verify.probe_spec(facts.settings, facts.image, ("dockyard",), verify.probe_facts(locked))
    names = spec["verify_records"]
    assert isinstance(names, list)
    assert "rich" in names
    assert "facts" not in verify.probe_spec(facts.settings, facts.image, ("dockyard",))


def test_the_app_probe_gets_only_the_parts_it_runs() -> None:
    whole = probe.source()
    text = probe.app_source(whole)
    marks = [
        line.removeprefix(probe.PART_MARK) for line in text.splitlines() if line.startswith(probe.PART_MARK)
    ]
    assert marks == list(probe.APP_PARTS)
    assert len(text) < len(whole) * 0.7
    compile(text, "<app probe>", "exec")
    assert probe.app_source("print(1)\n") == "print(1)\n"  # no marks: the text as it is
