"""Verdicts that can't be fooled, on facts recorded from dockyard's own image with one fact changed the
way an adversarial image would change it: the app's real interpreter and user, effective ids, RECORD,
shadowed imports, shells as PID 1, stray names, build tools."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from dockyard import config
from dockyard.errors import ConfigError
from dockyard.project.lock import LockedSets
from dockyard.results import Outcome
from dockyard.verify import gather as verify
from dockyard.verify.checks import files as file_checks
from dockyard.verify.checks import python as python_checks
from dockyard.verify.checks import runtime as runtime_checks
from dockyard.verify.checks import toolchain
from dockyard.verify.facts import Facts, app_python
from tests.unit.test_checks import ROOT, facts, probe_of, with_image, with_verify

__all__ = ["facts"]  # the recorded-facts fixture, shared with test_checks

SITE = "/app/.venv/lib/python3.13/site-packages"


def dist_of(facts: Facts, name: str) -> dict[str, Any]:
    dist: dict[str, Any] = next(
        d for d in probe_of(facts)["environments"][0]["distributions"] if d["name"] == name
    )
    return dist


# --- the app's interpreter ------------------------------------------------------------------------


def test_evidence_names_the_interpreter_and_how_it_was_found(facts: Facts) -> None:
    assert app_python(probe_of(facts)) == "/app/.venv/bin/python (`dockyard --help`: /app/.venv/bin/dockyard)"
    assert "/app/.venv/bin/python (`dockyard --help`" in python_checks.check_imports(facts).evidence
    assert "sys.path[0] /app/.venv/bin" in python_checks.check_imports(facts).evidence


def test_imports_fail_naming_the_interpreter_that_cannot_import(facts: Facts) -> None:
    probe = probe_of(facts)
    probe["python"]["executable"] = "/usr/bin/python3"
    probe["app"].update(argv=["/usr/bin/python3", "-m", "dockyard"], steps=["/usr/bin/python3"])
    probe["imports"] = [
        {"module": "dockyard", "ok": False, "error": "ModuleNotFoundError: No module named 'dockyard'",
         "source": "entry point"},
    ]  # fmt: skip
    verdict = python_checks.check_imports(facts)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.evidence.startswith(
        "dockyard (entry point): ModuleNotFoundError: No module named 'dockyard'"
    )
    assert "with /usr/bin/python3 (`/usr/bin/python3 -m dockyard`)" in verdict.evidence


def test_a_command_that_cannot_start_fails_imports_and_locked_runtime(facts: Facts) -> None:
    probe_of(facts)["app"].update(
        error="/home/dev/.venv/bin/python: not found", error_kind="not_found", interpreter="/usr/bin/python3"
    )
    for judge in (python_checks.check_imports, python_checks.check_locked_runtime):
        verdict = judge(facts)
        assert verdict.outcome is Outcome.FAIL
        assert verdict.evidence == "the app's command cannot start: /home/dev/.venv/bin/python: not found"


def test_an_interpreter_that_cannot_run_the_probe_is_an_error_not_a_verdict(facts: Facts) -> None:
    probe_of(facts)["app"]["interpreter_error"] = "SyntaxError: invalid syntax"
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.ERROR
    assert "could not run dockyard's probe: SyntaxError" in verdict.evidence


# --- effective ids --------------------------------------------------------------------------------


def test_non_root_fails_on_an_effective_uid_0(facts: Facts) -> None:
    probe = probe_of(facts)
    probe["user"]["euid"] = 0
    probe["privileged"]["execution_path"] = [
        {"path": "/usr/bin/python3.13", "mode": "0o4755", "size": 1, "setuid_root": True}
    ]
    verdict = runtime_checks.check_non_root(facts)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.evidence == (
        "USER 10001:10001 runs the app as uid 10001 but with euid 0, egid 10001: "
        "/usr/bin/python3.13 is setuid root"
    )


@pytest.mark.parametrize(
    ("found", "outcome", "evidence"),
    [
        ({"setgid_root": True}, Outcome.FAIL, "/usr/bin/python3.13 is setgid root"),
        ({"capabilities": {"names": ["setuid"], "raw": "x"}}, Outcome.FAIL, "file capabilities setuid"),
        (
            {"capabilities": {"names": ["net_bind_service"], "raw": "x"}},
            Outcome.PASS,
            "USER 10001:10001 runs",
        ),
    ],
)
def test_non_root_fails_on_privileges_on_the_execution_path(
    facts: Facts, found: dict[str, Any], outcome: Outcome, evidence: str
) -> None:
    probe_of(facts)["privileged"]["execution_path"] = [
        {"path": "/usr/bin/python3.13", "mode": "0o755", **found}
    ]
    verdict = runtime_checks.check_non_root(facts)
    assert verdict.outcome is outcome
    assert evidence in verdict.evidence


def test_other_setuid_binaries_are_warnings_with_their_paths(facts: Facts) -> None:
    verdict = runtime_checks.check_non_root(facts)
    assert verdict.outcome is Outcome.PASS
    assert "8 setuid/setgid-root or capability files elsewhere (warnings)" in verdict.evidence
    assert "warning: /usr/bin/su is setuid root (0o4755)" in verdict.details


def test_non_root_fails_when_the_user_does_not_exist_in_the_image(facts: Facts) -> None:
    probe_of(facts)["app"]["user"]["error"] = "unable to find user svc: no matching entries in passwd file"
    verdict = runtime_checks.check_non_root(with_image(facts, user="svc"))
    assert verdict.outcome is Outcome.FAIL
    assert "USER svc cannot be resolved in the image" in verdict.evidence


def test_non_root_without_the_apps_user_facts_is_an_error(facts: Facts) -> None:
    probe_of(facts)["user"] = {"error": "the app probe did not run"}
    assert runtime_checks.check_non_root(facts).outcome is Outcome.ERROR


def test_a_primary_group_root_is_shown_not_failed(facts: Facts) -> None:
    probe_of(facts)["user"].update(gid=0, egid=0)
    verdict = runtime_checks.check_non_root(facts)
    assert verdict.outcome is Outcome.PASS
    assert "gid 0 (group root)" in verdict.evidence


# --- runtime-env: PID 1 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "shell", "outcome"),
    [
        (("/bin/bash", "-c", "dockyard serve"),
         {"path": "/bin/bash", "command": "dockyard serve", "execs": False},
         Outcome.FAIL),
        (("/bin/sh", "-ec", "migrate; dockyard"),
         {"path": "/bin/sh", "command": "migrate; dockyard", "execs": False},
         Outcome.FAIL),
        (("/usr/bin/sh", "-c", "exec dockyard"),
         {"path": "/usr/bin/sh", "command": "exec dockyard", "execs": True},
         Outcome.PASS),
        (("/entrypoint.sh", "dockyard"), {"path": "/bin/sh", "command": None, "script": "/entrypoint.sh",
                                          "execs": False}, Outcome.FAIL),
    ],
)  # fmt: skip
def test_a_shell_that_stays_pid_1_fails(
    facts: Facts, argv: tuple[str, ...], shell: dict[str, Any], outcome: Outcome
) -> None:
    probe_of(facts)["app"]["shell"] = shell
    verdict = runtime_checks.check_runtime_env(with_image(facts, entrypoint=argv, cmd=None))
    assert verdict.outcome is outcome, verdict.evidence
    if outcome is Outcome.FAIL:
        assert f"keeps the shell {shell['path']} as PID 1" in verdict.evidence


def test_without_probe_shell_facts_the_metadata_still_tells_a_shell(facts: Facts) -> None:
    verdict = runtime_checks.check_runtime_env(
        with_image(facts, entrypoint=("/usr/bin/dash", "-ec", "x"), cmd=None)
    )
    assert verdict.outcome is Outcome.FAIL
    assert "keeps a shell as PID 1" in verdict.evidence
    fine = with_image(facts, entrypoint=("sh", "-c", "exec dockyard"), cmd=None)
    assert runtime_checks.check_runtime_env(fine).outcome is Outcome.PASS


def test_the_app_running_outside_the_venv_that_holds_the_project_fails(facts: Facts) -> None:
    probe = probe_of(facts)
    venv = probe["environments"][0]
    venv["active"] = False  # the app's interpreter is the system one; the venv is still in the image
    probe["python"].update(executable="/usr/bin/python3", prefix="/usr", in_venv=False)
    verdict = runtime_checks.check_runtime_env(facts)
    assert verdict.outcome is Outcome.FAIL
    assert "outside the virtual environment /app/.venv" in verdict.evidence


def test_a_different_python_first_on_path_is_a_note_when_the_app_runs_its_own(facts: Facts) -> None:
    probe_of(facts)["which"]["python"]["path"] = "/usr/local/bin/python"
    verdict = runtime_checks.check_runtime_env(facts)
    assert verdict.outcome is Outcome.PASS
    assert (
        "note: `python` on PATH is /usr/local/bin/python, not the app's /app/.venv/bin/python"
        in verdict.details
    )


# --- smoke: whole lines and patterns --------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "expect", "regex", "ok"),
    [
        ("dockyard 0.1.0\n", "dockyard 0.1.0", None, True),
        ("  dockyard 0.1.0  \n", "dockyard 0.1.0", None, True),  # surrounding whitespace is ignored
        ("dockyard 0.1.0.dev7+broken\n", "dockyard 0.1.0", None, False),  # not a substring match
        ("banner\ndockyard 0.1.0\n", "dockyard 0.1.0", None, True),  # any whole line
        ("dockyard 0.1.0.dev7+broken\n", None, r"^dockyard \d+\.\d+\.\d+$", False),
        ("dockyard 0.1.0\n", None, r"^dockyard \d+\.\d+\.\d+$", True),
        ("x dockyard 1.2.3 y\n", None, r"dockyard \d", True),  # re.search: anywhere unless anchored
    ],
)
def test_smoke_expect_is_a_whole_line_and_expect_regex_a_pattern(
    facts: Facts, stdout: str, expect: str | None, regex: str | None, ok: bool
) -> None:
    smoke = (config.SmokeCommand(("dockyard", "--version"), expect=expect, expect_regex=regex),)
    probe_of(facts)["commands"] = [{"argv": ["dockyard", "--version"], "returncode": 0, "stdout": stdout}]
    verdict = python_checks.check_smoke(with_verify(facts, smoke=smoke))
    assert verdict.outcome is (Outcome.PASS if ok else Outcome.FAIL), verdict.evidence


# --- locked-runtime: RECORD and imports -----------------------------------------------------------


def test_deleted_files_of_a_locked_distribution_fail(facts: Facts) -> None:
    rich = dist_of(facts, "rich")
    rich["record"].update(missing_count=37, missing=[f"{SITE}/rich/console.py", f"{SITE}/rich/text.py"])
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.FAIL
    assert (
        f"rich 15.0.0: 37 file(s) missing ({SITE}/rich/console.py, {SITE}/rich/text.py ...)"
        in verdict.evidence
    )


def test_changed_files_of_a_locked_distribution_fail(facts: Facts) -> None:
    dist_of(facts, "idna")["record"].update(changed_count=1, changed=[f"{SITE}/idna/core.py"])
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.FAIL
    assert f"idna 3.20: 1 file(s) changed since installed ({SITE}/idna/core.py)" in verdict.evidence


def test_a_shadowed_import_fails(facts: Facts) -> None:
    humanize = dist_of(facts, "humanize")
    humanize["imports"][0].update(origin="/opt/vendor/humanize/__init__.py", ok=False)
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.FAIL
    assert (
        "humanize 4.17.0: `import humanize` resolves to /opt/vendor/humanize/__init__.py, "
        "not to its files in "
        f"{SITE}" in verdict.evidence
    )


def test_a_shadowing_distribution_earlier_on_sys_path_is_the_one_judged(facts: Facts) -> None:
    probe = probe_of(facts)
    vendor = {"path": "/opt/vendor", "active": True, "distributions": [
        {"name": "humanize", "version": "0.0.1", "size": 1, "files": 1, "shadowed": False}]}  # fmt: skip
    probe["environments"].insert(0, vendor)
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.FAIL
    assert "mismatched: humanize 0.0.1 in /opt/vendor (locked 4.17.0)" in verdict.evidence


def test_pruned_tests_are_noted_not_failed(facts: Facts) -> None:
    dist_of(facts, "docker")["record"]["pruned"] = 12
    verdict = python_checks.check_locked_runtime(facts)
    assert verdict.outcome is Outcome.PASS
    assert "docker: 12 prunable file(s) removed (tests, stubs, bytecode)" in verdict.details
    assert "RECORD of 14 verified" in verdict.evidence


# --- no-dev-packages: the whole sys.path ----------------------------------------------------------


def test_a_dev_package_reached_through_pythonpath_or_a_pth_file_fails(facts: Facts) -> None:
    probe_of(facts)["environments"].insert(
        1,
        {"path": "/opt/devtools", "active": True,
         "distributions": [{"name": "mypy", "version": "2.4.1", "size": 1, "files": 1}]},
    )  # fmt: skip
    verdict = python_checks.check_no_dev_packages(facts)
    assert verdict.outcome is Outcome.FAIL
    assert "mypy 2.4.1 in /opt/devtools (on the app's sys.path)" in verdict.evidence


# --- no-stray-files -------------------------------------------------------------------------------


def test_published_files_of_third_party_packages_pass_the_projects_own_fail(facts: Facts) -> None:
    probe = probe_of(facts)
    published = {"path": f"{SITE}/tornado/test/test.key", "reason": "*.key", "size": 916,
                 "owner": {"name": "tornado", "label": "tornado 6.5", "verified": True}}  # fmt: skip
    probe["stray_files"] = [published]
    verdict = file_checks.check_no_stray_files(facts)
    assert verdict.outcome is Outcome.PASS
    assert verdict.details == (f"{SITE}/tornado/test/test.key (*.key): shipped as published by tornado 6.5",)
    own = {"path": f"{SITE}/tests", "reason": "the project's tests/ (holds tests/unit/test_x.py)", "size": 1,
           "owner": {"name": "dockyard", "label": "dockyard 0.1.0", "verified": True}}  # fmt: skip
    tampered = {**published, "owner": {"name": "tornado", "label": "tornado 6.5", "verified": False}}
    for item in (own, tampered):
        probe["stray_files"] = [item]
        assert file_checks.check_no_stray_files(facts).outcome is Outcome.FAIL


def test_unreadable_entries_are_an_error_never_a_silent_pass(facts: Facts) -> None:
    probe_of(facts)["walk"].update(unreadable=2, unreadable_paths=["/mnt/fuse", "/secret"])
    verdict = file_checks.check_no_stray_files(facts)
    assert verdict.outcome is Outcome.ERROR
    assert verdict.evidence == "2 entries could not be read, even as root: /mnt/fuse, /secret"


# --- no-build-tools -------------------------------------------------------------------------------


def tools(facts: Facts, **found: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"tools": [], "headers": [], "dev_packages": [], "source_trees": [], **found}
    probe_of(facts)["build_tools"] = section
    return section


GCC = {"name": "gcc", "kind": "compiler", "path": "/usr/bin/gcc", "real": "/usr/bin/x86_64-linux-gnu-gcc-14",
       "size": 1_000_000, "package": "gcc-14", "package_size": 40_000_000,
       "in_base_python": False}  # fmt: skip
CC = {**GCC, "name": "cc", "path": "/usr/bin/cc"}
UV = {"name": "uv", "kind": "installer", "path": "/usr/local/bin/uv", "real": "/usr/local/bin/uv",
      "size": 38_000_000, "package": None, "in_base_python": False}  # fmt: skip
BASE_PIP = {"name": "pip", "kind": "installer", "path": "/usr/local/bin/pip", "real": "/usr/local/bin/pip",
            "size": 200, "package": None, "in_base_python": True}  # fmt: skip


def test_recorded_project_image_ships_no_build_tools(facts: Facts) -> None:
    verdict = toolchain.check_no_build_tools(facts)
    assert (verdict.outcome, verdict.evidence) == (
        Outcome.PASS, "no uv, pip, compilers, build systems, -dev packages or builder source tree",
    )  # fmt: skip


def test_uv_and_a_compiler_fail_with_their_paths_and_sizes(facts: Facts) -> None:
    tools(facts, tools=[GCC, CC, UV])
    verdict = toolchain.check_no_build_tools(facts)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.evidence == "the runtime image ships build tools: gcc (40.0 MB), uv (38.0 MB)"
    assert verdict.details[:2] == (
        "compiler cc, gcc (/usr/bin/cc, /usr/bin/gcc -> /usr/bin/x86_64-linux-gnu-gcc-14, "
        "dpkg gcc-14 40.0 MB)",
        "installer uv (/usr/local/bin/uv -> /usr/local/bin/uv, 38.0 MB)",
    )


def test_the_base_interpreters_pip_and_headers_are_part_of_the_base(facts: Facts) -> None:
    header = {
        "path": "/usr/local/include/python3.13/Python.h",
        "size": 3000,
        "package": None,
        "in_base_python": True,
    }
    tools(facts, tools=[BASE_PIP], headers=[header])
    verdict = toolchain.check_no_build_tools(facts)
    assert verdict.outcome is Outcome.PASS
    assert "part of the base interpreter's installation: pip (/usr/local/bin/pip" in verdict.details[0]
    assert verdict.details[1].startswith(
        "C headers of the base interpreter: /usr/local/include/python3.13/Python.h"
    )


def test_pip_in_the_apps_venv_fails(facts: Facts) -> None:
    probe_of(facts)["environments"][0]["distributions"].append(
        {"name": "pip", "version": "25.3", "size": 9_000_000, "files": 900, "shadowed": False}
    )
    verdict = toolchain.check_no_build_tools(facts)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.evidence == "the runtime image ships build tools: pip in the app's environment"
    assert verdict.details == (f"installer pip 25.3 in {SITE} (9.0 MB), in the app's environment",)


def test_dev_packages_headers_and_the_builders_source_tree_fail(facts: Facts) -> None:
    tools(
        facts,
        dev_packages=[{"name": "libpq-dev", "size": 2_000_000, "manager": "dpkg"}],
        headers=[{"path": "/opt/include/Python.h", "size": 10, "package": None, "in_base_python": False}],
        source_trees=[
            {"path": "/src", "app": False, "size": 5_000, "holds": ["pyproject.toml", "src", "uv.lock"]}
        ],
    )
    verdict = toolchain.check_no_build_tools(facts)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.details == (
        "-dev package libpq-dev (dpkg, 2.0 MB)",
        "C headers /opt/include/Python.h (10 Bytes)",
        "builder source tree /src (pyproject.toml, src, uv.lock; 5.0 kB): "
        "the app runs from its installed copy",
    )


def test_the_allow_list_and_runtime_dependencies_allow_tools(facts: Facts) -> None:
    tools(facts, tools=[GCC, CC, UV], dev_packages=[{"name": "libpq-dev", "size": 1, "manager": "dpkg"}])
    allowed = with_verify(facts, build_tools_allow=("GCC", "*-dev"))
    assert (
        toolchain.check_no_build_tools(allowed).evidence
        == "the runtime image ships build tools: uv (38.0 MB)"
    )
    assert facts.locked is not None
    runtime = {**facts.locked.runtime, "uv": "0.13.8"}  # the app itself depends on uv
    locked = dataclasses.replace(allowed, locked=LockedSets(runtime=runtime, dev_only=facts.locked.dev_only))
    verdict = toolchain.check_no_build_tools(locked)
    assert verdict.outcome is Outcome.PASS
    assert any(
        line.startswith("a runtime dependency in uv.lock: uv (/usr/local/bin/uv") for line in verdict.details
    )


def test_the_apps_own_project_folder_is_not_a_builder_tree(facts: Facts) -> None:
    tools(
        facts, source_trees=[{"path": "/app", "app": True, "size": 1, "holds": ["pyproject.toml", "uv.lock"]}]
    )
    assert toolchain.check_no_build_tools(facts).outcome is Outcome.PASS


def test_build_tools_allow_is_read_from_config(tmp_path: Any) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\n[tool.dockyard.verify]\nbuild-tools-allow = ["gcc"]\n'
        'smoke = [{ command = ["x"], expect-regex = "^x \\\\d+$" }]\n'
    )
    settings = config.load(tmp_path, environ={"DOCKYARD_MACHINE_FILE": "/nonexistent"})
    assert settings.verify.build_tools_allow == ("gcc",)
    assert settings.verify.smoke[0].expect_regex == "^x \\d+$"


def test_a_bad_expect_regex_is_a_config_error(tmp_path: Any) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\n[tool.dockyard.verify]\n'
        'smoke = [{ command = ["x"], expect-regex = "(" }]\n'
    )
    with pytest.raises(ConfigError, match="expect-regex: not a valid regular expression"):
        config.load(tmp_path, environ={"DOCKYARD_MACHINE_FILE": "/nonexistent"})


# --- the probe's spec ------------------------------------------------------------------------------------


def test_the_probe_spec_carries_the_image_config_the_lock_names_and_the_projects_trees(facts: Facts) -> None:
    spec = verify.probe_spec(facts.settings, facts.image, ("dockyard",))
    assert spec["app"] == {
        "entrypoint": ["dockyard"],
        "cmd": ["--help"],
        "env": [f"{k}={v}" for k, v in facts.image.env.items()],
        "user": "10001:10001",
        "workdir": "/app",
        "volumes": [],
    }
    assert spec["imports"] == ["dockyard"]
    names = spec["verify_records"]
    assert isinstance(names, list)
    assert {"dockyard", "rich", "pytest"} <= set(names)  # every package uv.lock names
    trees = spec["project_trees"]
    assert isinstance(trees, dict)
    assert ["engine/test_checks.py", (ROOT / "tests/engine/test_checks.py").stat().st_size] in trees["tests"]
    assert len(trees["tests"]) == 40  # bounded: enough to recognise the folder
    assert "examples" in trees


def test_an_image_with_no_project_verifies_no_record_and_knows_no_trees(facts: Facts, tmp_path: Path) -> None:
    alone = dataclasses.replace(facts.settings, has_project=False, project_dir=tmp_path)
    spec = verify.probe_spec(alone, facts.image, ())
    assert (spec["verify_records"], spec["project_trees"]) == ([], {})


def test_an_app_with_no_runtime_packages_matches_an_empty_locked_set(facts: Facts) -> None:
    probe_of(facts)["environments"][0]["distributions"] = []  # a virtual app with no dependencies
    assert facts.locked is not None
    empty = dataclasses.replace(facts, locked=LockedSets(runtime={}, dev_only=facts.locked.dev_only))
    verdict = python_checks.check_locked_runtime(empty)
    assert verdict.outcome is Outcome.PASS, verdict.evidence
    assert verdict.evidence.startswith("0 distributions seen by /app/.venv/bin/python")
    missing = python_checks.check_locked_runtime(facts)  # the same environment against dockyard's lock
    assert missing.outcome is Outcome.FAIL
    assert "missing: certifi" in missing.evidence


def test_locked_runtime_without_the_app_probes_answer_is_an_error(facts: Facts) -> None:
    probe_of(facts)["python"] = {"error": "the app probe did not run"}
    assert python_checks.check_locked_runtime(facts).outcome is Outcome.ERROR


def test_uv_under_the_base_prefix_is_the_dockerfiles_not_the_base_interpreters() -> None:
    # python:3.x images install pip under /usr/local, never uv: `COPY --from=uv /uv /uvx /usr/local/bin/`
    # (astral-sh/uv-docker-example's recipe on a python:3.12-slim base) is the Dockerfile's doing.
    from dockyard.verify.probe import walk  # noqa: PLC0415 - the probe's own module, run here on a walk
    from dockyard.verify.probe.common import _Matcher  # noqa: PLC0415

    none = _Matcher([])
    found = walk.Walk(
        deadline=0, names=none, paths=none, exclude=none, skip=set(), sniff=False, project_trees={}
    )
    found.tools = [
        {
            "name": "uv",
            "kind": "installer",
            "path": "/usr/local/bin/uv",
            "real": "/usr/local/bin/uv",
            "size": 1,
        },
        {
            "name": "pip",
            "kind": "installer",
            "path": "/usr/local/bin/pip",
            "real": "/usr/local/bin/pip",
            "size": 1,
        },
    ]
    section = walk.build_tools(
        found, {"base_prefix": "/usr/local", "prefix": "/app/.venv"}, ["/usr/local/bin"]
    )
    by_name = {tool["name"]: tool["in_base_python"] for tool in section["tools"]}
    assert by_name == {"uv": False, "pip": True}


def test_a_tool_the_apps_command_runs_is_the_apps(facts: Facts) -> None:
    # `CMD ["uv", "run", "fastapi", "dev", ...]` (astral-sh/uv-docker-example): uv is how the app starts.
    tools(facts, tools=[UV])
    probe_of(facts)["app"]["steps"] = ["uv -> /usr/local/bin/uv", "fastapi -> /app/.venv/bin/fastapi"]
    verdict = toolchain.check_no_build_tools(facts)
    assert verdict.outcome is Outcome.PASS, verdict.evidence
    assert verdict.details[0].startswith("run by the app's command: uv (/usr/local/bin/uv")
