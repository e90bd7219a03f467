"""The checks as pure functions, on facts recorded from dockyard's own image (inspect JSON, the probe's
answer, and the uv.lock it was built from)."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dockyard import config
from dockyard.credentials.fingerprint import SecretMatch, SecretPrint
from dockyard.errors import UsageError
from dockyard.image.export import ExportScan, FileEntry, LayerScan
from dockyard.image.metadata import ImageInfo
from dockyard.project import lock
from dockyard.results import Outcome
from dockyard.verify import checks
from dockyard.verify import facts as verdicts
from dockyard.verify import gather as verify
from dockyard.verify.checks import build as build_checks
from dockyard.verify.checks import files as file_checks
from dockyard.verify.checks import python as python_checks
from dockyard.verify.checks import runtime as runtime_checks
from dockyard.verify.facts import CacheOutcome, ExportFacts, Facts, HealthOutcome

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def facts() -> Facts:
    recorded = json.loads((DATA / "dockyard-image.json").read_text())
    probe = json.loads((DATA / "dockyard-probe.json").read_text())
    settings = config.load(ROOT, environ={"DOCKYARD_MACHINE_FILE": "/nonexistent"})
    image = ImageInfo.from_inspect("dockyard:0.1.0", recorded["attrs"], recorded["history"])
    locked = lock.locked_sets(
        DATA / "dockyard-uv.lock", "dockyard", environment=lock.marker_environment(probe["python"]["version"])
    )
    return Facts(settings=settings, image=image, probe=probe, locked=locked)


def with_image(facts: Facts, **changes: Any) -> Facts:
    return dataclasses.replace(facts, image=dataclasses.replace(facts.image, **changes))


def with_verify(facts: Facts, **changes: Any) -> Facts:
    verify_settings = dataclasses.replace(facts.settings.verify, **changes)
    return dataclasses.replace(facts, settings=dataclasses.replace(facts.settings, verify=verify_settings))


def probe_of(facts: Facts) -> dict[str, Any]:
    """The recorded probe answer, as the mutable dict the fixture loaded."""
    assert isinstance(facts.probe, dict)
    return facts.probe


def active_dists(facts: Facts) -> list[dict[str, Any]]:
    dists: list[dict[str, Any]] = probe_of(facts)["environments"][0]["distributions"]
    return dists


@pytest.mark.parametrize(
    "judge",
    [
        runtime_checks.check_non_root,
        build_checks.check_size,
        python_checks.check_no_dev_packages,
        python_checks.check_locked_runtime,
        python_checks.check_imports,
        python_checks.check_smoke,
        runtime_checks.check_runtime_env,
        file_checks.check_no_stray_files,
    ],
)
def test_recorded_project_image_passes(facts: Facts, judge: Any) -> None:
    verdict = judge(facts)
    assert verdict.outcome is Outcome.PASS, verdict.evidence


@pytest.mark.parametrize(
    ("user", "evidence"),
    [
        ("", "no USER in the image"),
        ("root", "USER root is root"),
        ("0", "USER 0 is root"),
        ("0:0", "USER 0:0 is root"),
        ("root:app", "USER root:app is root"),
    ],
)
def test_non_root_rejects_root_users(facts: Facts, user: str, evidence: str) -> None:
    verdict = runtime_checks.check_non_root(with_image(facts, user=user))
    assert verdict.outcome is Outcome.FAIL
    assert evidence in verdict.evidence


def test_non_root_rejects_a_name_that_resolves_to_uid_0(facts: Facts) -> None:
    probe = copy.deepcopy(dict(facts.probe or {}))
    probe["user"]["uid"] = 0
    verdict = runtime_checks.check_non_root(dataclasses.replace(facts, probe=probe))
    assert verdict.outcome is Outcome.FAIL
    assert "resolves to uid 0" in verdict.evidence


def test_non_root_accepts_the_expected_uid_or_name(facts: Facts) -> None:
    assert runtime_checks.check_non_root(with_verify(facts, user="10001")).outcome is Outcome.PASS
    assert runtime_checks.check_non_root(with_verify(facts, user="app")).outcome is Outcome.PASS
    assert runtime_checks.check_non_root(with_verify(facts, user="web")).outcome is Outcome.FAIL


def test_size_reports_the_margin_both_ways(facts: Facts) -> None:
    assert "to spare" in build_checks.check_size(facts).evidence
    small = dataclasses.replace(facts, settings=dataclasses.replace(facts.settings, size_budget=100_000_000))
    verdict = build_checks.check_size(small)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.evidence == "146.8 MB is 46.8 MB over the 100.0 MB budget"


def test_dev_package_in_any_environment_fails(facts: Facts) -> None:
    probe_of(facts)["environments"][2]["distributions"].append(
        {"name": "mypy", "version": "2.4.1", "size": 1, "files": 1}
    )
    verdict = python_checks.check_no_dev_packages(facts)
    assert verdict.outcome is Outcome.FAIL
    assert "mypy 2.4.1 in /usr/local/lib/python3.13/dist-packages" in verdict.evidence


def test_extra_dev_package_names_come_from_config(facts: Facts) -> None:
    active_dists(facts).append({"name": "ipython", "version": "9.0", "size": 1, "files": 1})
    assert python_checks.check_no_dev_packages(facts).outcome is Outcome.PASS  # not in uv.lock's dev set
    assert (
        python_checks.check_no_dev_packages(with_verify(facts, dev_packages=("IPython",))).outcome
        is Outcome.FAIL
    )


def test_locked_runtime_reports_missing_extra_and_mismatched(facts: Facts) -> None:
    dists = active_dists(facts)
    dists[:] = [d for d in dists if d["name"] != "rich"]
    next(d for d in dists if d["name"] == "humanize")["version"] = "0.0.1"
    dists.append({"name": "left-pad", "version": "1.0", "size": 1, "files": 1})
    dists.append({"name": "pip", "version": "25.0", "size": 1, "files": 1})  # installers are fine
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.FAIL
    assert "missing: rich" in verdict.evidence
    assert "not in uv.lock: left-pad" in verdict.evidence
    assert "mismatched: humanize 0.0.1 in /app/.venv/lib/python3.13/site-packages (locked" in verdict.evidence
    assert "pip" not in verdict.evidence


def test_locked_runtime_notes_a_file_another_locked_distribution_installed_over(facts: Facts) -> None:
    # fastapi and fastapi-cli both install bin/fastapi (uv-fastapi-example): the probe moves it to
    # `overwritten`, and the check notes it rather than failing the environment uv installed.
    rich = next(d for d in active_dists(facts) if d["name"] == "rich")
    rich["record"] = {
        "checked": 3, "hashed": 3, "missing": [], "missing_count": 0, "changed": [], "changed_count": 0,
        "overwritten": [{"path": "/app/.venv/bin/rich", "by": "humanize"}],
    }  # fmt: skip
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.PASS, verdict.evidence
    assert "rich: /app/.venv/bin/rich is humanize's, installed over it (both install it)" in verdict.details
    rich["record"] = {**rich["record"], "changed": ["/app/.venv/bin/rich"], "changed_count": 1}
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.FAIL
    assert "1 file(s) changed since installed (/app/.venv/bin/rich)" in verdict.evidence


def test_imports_and_smoke_fail_on_recorded_errors(facts: Facts) -> None:
    probe_of(facts)["imports"] = [{"module": "dockyard", "ok": False, "error": "ImportError: boom"}]
    probe_of(facts)["commands"] = [
        {"argv": ["dockyard", "--version"], "returncode": 0, "stdout": "dockyard 9"}
    ]
    assert python_checks.check_imports(facts).evidence.startswith("dockyard (configured): ImportError: boom")
    smoke = python_checks.check_smoke(facts)
    assert smoke.outcome is Outcome.FAIL
    assert "expected a line 'dockyard 0.1.0'" in smoke.evidence
    probe_of(facts)["commands"] = [{"argv": ["dockyard"], "returncode": None, "timed_out": True}]
    assert "did not finish within 30 s" in python_checks.check_smoke(facts).evidence


def test_runtime_env_rejects_shell_form_and_missing_settings(facts: Facts) -> None:
    env = {**facts.image.env, "PATH": "/usr/bin:/app/.venv/bin"}
    del env["PYTHONDONTWRITEBYTECODE"]
    broken = with_image(facts, env=env, entrypoint=None, cmd=("/bin/sh", "-c", "dockyard serve"))
    verdict = runtime_checks.check_runtime_env(broken)
    assert verdict.outcome is Outcome.FAIL
    assert "PYTHONDONTWRITEBYTECODE=<unset> (expected 1)" in verdict.evidence
    assert "`/bin/sh -c dockyard serve` keeps a shell as PID 1" in verdict.evidence


def test_runtime_env_takes_pythons_switches_as_python_does(facts: Facts) -> None:
    # carderne/postmodern-mono: `ENV PYTHONUNBUFFERED=True`, which Python takes as set (an integer is
    # its own truth, any other non-empty value is on); 0 and empty are off, and a setting that is not a
    # switch must match.
    switched = with_image(facts, env={**facts.image.env, "PYTHONUNBUFFERED": "True"})
    verdict = runtime_checks.check_runtime_env(switched)
    assert verdict.outcome is Outcome.PASS, verdict.evidence
    assert "note: PYTHONUNBUFFERED=True does what PYTHONUNBUFFERED=1 does" in " ".join(verdict.details)
    empty = with_image(facts, env={**facts.image.env, "PYTHONUNBUFFERED": ""})
    assert "PYTHONUNBUFFERED= (expected 1)" in runtime_checks.check_runtime_env(empty).evidence
    zero = with_image(facts, env={**facts.image.env, "PYTHONUNBUFFERED": "0"})
    assert "PYTHONUNBUFFERED=0 (expected 1)" in runtime_checks.check_runtime_env(zero).evidence
    other = with_verify(facts, env={"APP_ENV": "production"})
    other = with_image(other, env={**facts.image.env, "APP_ENV": "True"})
    assert "APP_ENV=True (expected production)" in runtime_checks.check_runtime_env(other).evidence


def test_stray_files_fail_and_a_truncated_walk_is_an_error(facts: Facts) -> None:
    probe_of(facts)["stray_files"] = [{"path": "/app/.env", "reason": ".env", "size": 12}]
    verdict = file_checks.check_no_stray_files(facts)
    assert verdict.outcome is Outcome.FAIL
    assert "/app/.env (.env, 12 Bytes)" in verdict.evidence
    probe_of(facts)["stray_files"] = []
    probe_of(facts)["walk"]["truncated"] = True
    assert file_checks.check_no_stray_files(facts).outcome is Outcome.ERROR


def _export(matches: Sequence[SecretMatch] = (), layers: int = 5, base_layers: int = 1) -> ExportFacts:
    scans = [LayerScan(f"{i}/layer.tar", f"sha256:{i:064d}", 0, {}, [], []) for i in range(layers)]
    scan = ExportScan(layers=scans, config={}, repo_tags=[], hits=[], seconds=0.0, bytes_read=0)
    return ExportFacts(scan=scan, base_layers=base_layers, secrets=tuple(matches), credentials=None)


def test_build_secrets_in_env_labels_or_added_layers_fail(facts: Facts) -> None:
    secret = b"-----BEGIN CERTIFICATE-----\nMIIproxyCA\n-----END CERTIFICATE-----\n"
    prints = (SecretPrint.from_chunks("ca_bundle", [secret]),)
    clean = dataclasses.replace(facts, secrets=prints, export=_export())
    assert file_checks.check_no_build_secrets(clean).outcome is Outcome.PASS
    added = SecretMatch("ca_bundle", 3, "sha256:" + "3" * 64, "/app/ca.pem", "a copy", removed_in=4)
    verdict = file_checks.check_no_build_secrets(dataclasses.replace(clean, export=_export([added])))
    assert verdict.outcome is Outcome.FAIL
    assert "file /app/ca.pem holds a copy of ca_bundle; layer 4 deletes it" in verdict.evidence
    env = {**facts.image.env, "SSL_CERT_FILE": "/run/secrets/ca_bundle"}
    verdict = file_checks.check_no_build_secrets(with_image(clean, env=env))
    assert "ENV SSL_CERT_FILE points at a secret mount" in verdict.evidence
    labels = {**facts.image.labels, "ca": secret.decode()}
    assert (
        "LABEL ca holds secret"
        in file_checks.check_no_build_secrets(with_image(clean, labels=labels)).evidence
    )
    # without a configured secret the export is still read: a file at a secret mount's path fails
    bare = dataclasses.replace(clean, secrets=())
    assert file_checks.check_no_build_secrets(bare).outcome is Outcome.PASS
    export = _export()
    export.scan.layers[2].files["run/secrets/token"] = FileEntry("run/secrets/token", "file", 12)
    verdict = file_checks.check_no_build_secrets(dataclasses.replace(bare, export=export))
    assert verdict.outcome is Outcome.FAIL
    assert "writes /run/secrets/token" in verdict.evidence


def _cache(after_size: int, reinstalled: tuple[tuple[str, int], ...] = ()) -> CacheOutcome:
    before = (("sha256:a", 100), ("sha256:b", 30_000_000), ("sha256:c", 200_000))
    after = (("sha256:a", 100), ("sha256:b", 30_000_000), ("sha256:d", after_size))
    return CacheOutcome("src/dockyard/__init__.py", before, after, reinstalled)


def test_layer_cache_passes_when_only_the_project_layer_changes(facts: Facts) -> None:
    verdict = build_checks.check_layer_cache(dataclasses.replace(facts, cache=_cache(200_010)))
    assert verdict.outcome is Outcome.PASS
    assert verdict.evidence == (
        "after changing src/dockyard/__init__.py: 1 of 3 layers changed (200.0 kB), 2 reused by digest"
    )


def test_layer_cache_fails_on_reinstalled_dependencies_or_big_changes(facts: Facts) -> None:
    rerun = _cache(200_010, (("[deps 5/5] RUN uv sync --locked", 24),))
    verdict = build_checks.check_layer_cache(dataclasses.replace(facts, cache=rerun))
    assert verdict.outcome is Outcome.FAIL
    assert "dependencies were installed again (24 packages" in verdict.evidence
    verdict = build_checks.check_layer_cache(dataclasses.replace(facts, cache=_cache(40_000_000)))
    assert verdict.outcome is Outcome.FAIL
    assert "ships more than 10.0 MB" in verdict.evidence


@pytest.mark.parametrize(
    ("status", "outcome", "evidence"),
    [
        ("healthy", Outcome.PASS, "healthy after 1.5s"),
        ("unhealthy", Outcome.FAIL, "unhealthy after 1.5s"),
        ("exited", Outcome.FAIL, "exited (3) before it was healthy"),
        ("starting", Outcome.FAIL, "not healthy within 60s"),
    ],
)
def test_healthcheck_outcomes(facts: Facts, status: str, outcome: Outcome, evidence: str) -> None:
    service = dataclasses.replace(facts.settings, service=True)
    healthcheck = {"Test": ["CMD", "python", "-c", "ping()"], "Interval": 30_000_000_000}
    image = dataclasses.replace(facts.image, healthcheck=healthcheck)
    health = HealthOutcome(status=status, seconds=1.5, log=("exit 1: refused",), exit_code=3)
    # The probe ran the test once where the app was not started, and it failed: not vacuous.
    probe = {**probe_of(facts), "commands": [{"argv": ["python", "-c", "ping()"], "returncode": 1}]}
    verdict = runtime_checks.check_healthcheck(
        dataclasses.replace(facts, settings=service, image=image, health=health, probe=probe)
    )
    assert verdict.outcome is outcome
    assert evidence in verdict.evidence


def test_a_check_whose_facts_could_not_be_gathered_is_an_error(facts: Facts) -> None:
    facts.errors["probe"] = "no Python to probe the image with"
    by_id = {c.id: c for c in checks.CHECKS}
    result = verify._judge(by_id["imports"], facts)
    assert result.outcome is Outcome.ERROR
    assert result.evidence == "probe: no Python to probe the image with"
    facts.errors["lock_status"] = "uv lock --check did not finish within 600 s and was stopped"
    assert verify._judge(by_id["lock-current"], facts).outcome is Outcome.ERROR


def test_lock_current_judges_what_the_lock_check_said(facts: Facts) -> None:
    stale = verdicts.LockStatus(False, "uv.lock is not tracked by git: run `git add uv.lock` and commit it")
    verdict = build_checks.check_lock_current(dataclasses.replace(facts, lock_status=stale))
    assert (verdict.outcome, verdict.evidence) == (Outcome.FAIL, stale.message)
    fine = verdicts.LockStatus(True, "uv.lock is current and committed")
    assert (
        build_checks.check_lock_current(dataclasses.replace(facts, lock_status=fine)).outcome is Outcome.PASS
    )


def test_unknown_check_ids_are_rejected(facts: Facts) -> None:
    with pytest.raises(UsageError, match="unknown check id"):
        verify.selected_checks(facts.settings, verify.VerifyOptions(skip=("non-rot",)))


def test_locked_runtime_tells_development_only_packages_from_unlocked_ones(facts: Facts) -> None:
    assert facts.locked is not None
    dev = next(iter(facts.locked.dev_only))
    active_dists(facts).append({"name": dev, "version": facts.locked.dev_only[dev], "size": 1, "files": 1})
    active_dists(facts).append({"name": "left-pad", "version": "1.0", "size": 1, "files": 1})
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.FAIL
    assert f"development-only in uv.lock: {dev} " in verdict.evidence
    assert "not in uv.lock: left-pad" in verdict.evidence
    assert dev not in verdict.evidence.split("not in uv.lock:")[1]


def _without_nox(facts: Facts) -> None:
    # The recorded image predates nox leaving its runtime environment; nox is a well-known dev tool.
    for env in probe_of(facts)["environments"]:
        env["distributions"] = [d for d in env["distributions"] if d["name"] != "nox"]


def test_with_no_lock_dev_packages_are_judged_by_name(facts: Facts) -> None:
    _without_nox(facts)
    no_lock = dataclasses.replace(facts, locked=None, unavailable={"locked": "no project, so no uv.lock"})
    assert python_checks.check_no_dev_packages(no_lock).outcome is Outcome.PASS
    active_dists(facts).append({"name": "pytest-cov", "version": "7.0", "size": 1, "files": 1})
    verdict = python_checks.check_no_dev_packages(no_lock)
    assert verdict.outcome is Outcome.FAIL
    assert "no project, so no uv.lock: judged by name" in verdict.evidence
    assert "pytest-cov 7.0" in verdict.evidence
    errored = dataclasses.replace(facts, locked=None, errors={"locked": "uv.lock: not valid TOML"})
    assert python_checks.check_no_dev_packages(errored).outcome is Outcome.ERROR


def test_a_check_whose_facts_do_not_apply_is_skipped_with_the_reason(facts: Facts) -> None:
    _without_nox(facts)
    by_id = {c.id: c for c in checks.CHECKS}
    facts.unavailable.update({"locked": "no uv.lock here", "lock_status": "no project"})
    facts.locked = None
    result = verify._judge(by_id["locked-runtime"], facts)
    assert (result.outcome, result.evidence) == (Outcome.SKIP, "no uv.lock here")
    assert verify._judge(by_id["lock-current"], facts).outcome is Outcome.SKIP
    assert verify._judge(by_id["no-dev-packages"], facts).outcome is Outcome.PASS  # judged by name


def test_default_imports_are_the_modules_the_source_holds(facts: Facts) -> None:
    imports, how = verify.default_imports(facts.settings, facts.image, None)
    assert imports == ("dockyard",)
    assert how == "inferred from uv_build's module-name"
    configured = with_verify(facts, imports=("json",))
    assert verify.default_imports(configured.settings, facts.image, None) == (("json",), None)


def test_a_failed_probe_is_one_error_row_and_the_checks_that_needed_it_skip(facts: Facts) -> None:
    facts.errors["probe"] = 'no Python in app:1 to run the probe with: exec: "python" not found'
    reported: dict[str, str] = {}
    needing = [c for c in checks.CHECKS if "probe" in c.needs or "locked" in c.needs]
    results = [verify._judge(check, facts, reported) for check in needing]
    assert len(results) >= 3
    first, *rest = results
    assert first.outcome is Outcome.ERROR
    assert first.evidence == f"probe: {facts.errors['probe']}"
    for result in rest:
        assert result.outcome is Outcome.SKIP, result
        assert result.evidence == f"probe failed: see {first.check_id}"
