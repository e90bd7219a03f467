"""Verdicts that can't be fooled: each image here is built FROM the good tinyapp image and broken the way
an adversarial reviewer broke dockyard's own, and each must FAIL for that reason, its evidence naming the
path, uid or interpreter involved; the one false FAIL of the old probe must PASS.
"""

from __future__ import annotations

import dataclasses

import pytest

from dockyard import config, engine
from dockyard.build import buildkit as build
from dockyard.results import Outcome
from tests.engine.conftest import ROOT
from tests.engine.test_checks import Variant, _build, good, run, variant

__all__ = ["good", "variant"]  # fixtures shared with test_checks

# Assembled from pieces so secret scanners do not flag this fake, unusable key.
PEM_KEY = (
    "-----BEGIN " + "OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2U=\n"
    "-----END " + "OPENSSH PRIVATE KEY-----\n"
)
SITE = "$(echo /app/.venv/lib/python3*/site-packages)"  # the venv's site-packages, whatever the Python
DEV = "Metadata-Version: 2.1\\nName: iniconfig\\nVersion: 2.1.0\\n"  # tinyapp's dev group holds iniconfig
Good = tuple[config.Settings, build.BuildResult]


def fails(result_outcome: Outcome, evidence: str, *expected: str) -> None:
    assert result_outcome is Outcome.FAIL, evidence
    for text in expected:
        assert text in evidence, f"{text!r} not in {evidence!r}"


# --- 1. the wrong interpreter ---------------------------------------------------------------------

SYSTEM_PYTHON = """\
FROM {good}
USER root
RUN mkdir -p /opt/sys && ln -s "$(readlink -f /app/.venv/bin/python)" /opt/sys/python3
USER 10001:10001
ENTRYPOINT ["/opt/sys/python3", "-m", "tinyapp"]
CMD []
"""


def test_an_entrypoint_on_the_system_python_is_judged_with_that_python(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("syspython", {"Dockerfile": SYSTEM_PYTHON})
    results = run(docker, settings, ref, "imports", "locked-runtime", "runtime-env")
    imports = results["imports"]
    fails(imports.outcome, imports.evidence,
          "tinyapp (entry point): ModuleNotFoundError: No module named 'tinyapp'",
          "with /opt/sys/python3 (`/opt/sys/python3 -m tinyapp`)")  # fmt: skip
    locked = results["locked-runtime"]
    fails(locked.outcome, locked.evidence, "/opt/sys/python3")
    fails(
        results["runtime-env"].outcome,
        results["runtime-env"].evidence,
        "outside the virtual environment /app/.venv",
    )


SYSTEM_PYTHON_FIRST = """\
FROM {good}
USER root
RUN mkdir -p /usr/local/bin \\
    && ln -sf "$(readlink -f /app/.venv/bin/python)" /usr/local/bin/python \\
    && ln -sf "$(readlink -f /app/.venv/bin/python)" /usr/local/bin/python3
USER 10001:10001
ENV PATH=/usr/local/bin:/app/.venv/bin
"""


def test_a_system_python_first_on_path_does_not_fail_a_console_script_from_the_venv(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("pathorder", {"Dockerfile": SYSTEM_PYTHON_FIRST})
    results = run(docker, settings, ref, "imports", "locked-runtime", "runtime-env", "smoke", "non-root")
    assert {k: r.outcome for k, r in results.items()} == dict.fromkeys(results, Outcome.PASS), [
        r.evidence for r in results.values()
    ]
    assert "/app/.venv/bin/python (`tinyapp`: /app/.venv/bin/tinyapp)" in results["imports"].evidence
    assert "note: `python` on PATH is /usr/local/bin/python, not the app's /app/.venv/bin/python" in (
        results["runtime-env"].details
    )


# --- 2. effective uid -----------------------------------------------------------------------------

SETUID_PYTHON = """\
FROM {good}
USER root
RUN chmod u+s "$(readlink -f /app/.venv/bin/python)"
USER 10001:10001
"""

CAPABLE_PYTHON = """\
FROM {good}
USER root
RUN python3 -c "import os; os.setxattr(os.path.realpath('/app/.venv/bin/python'), 'security.capability', \\
    bytes.fromhex('0100000280000000000000000000000000000000'))"
USER 10001:10001
"""

SETUID_ELSEWHERE = """\
FROM {good}
USER root
RUN cp /bin/true /usr/local/bin/sneaky && chmod 4755 /usr/local/bin/sneaky
USER 10001:10001
"""


def test_a_setuid_interpreter_gives_the_app_euid_0_and_fails(docker: engine.Engine, variant: Variant) -> None:
    settings, ref = variant("setuid", {"Dockerfile": SETUID_PYTHON})
    result = run(docker, settings, ref, "non-root")["non-root"]
    fails(result.outcome, result.evidence, "runs the app as uid 10001 but with euid 0",
          "bin/python3.1", "(as /app/.venv/bin/python) is setuid root")  # fmt: skip


def test_file_capabilities_on_the_interpreter_fail(docker: engine.Engine, variant: Variant) -> None:
    settings, ref = variant("filecaps", {"Dockerfile": CAPABLE_PYTHON})
    result = run(docker, settings, ref, "non-root")["non-root"]
    fails(
        result.outcome,
        result.evidence,
        "bin/python3.1",
        "(as /app/.venv/bin/python) is file capabilities setuid",
    )


def test_other_setuid_binaries_are_warnings_naming_them(docker: engine.Engine, variant: Variant) -> None:
    settings, ref = variant("sneaky", {"Dockerfile": SETUID_ELSEWHERE})
    result = run(docker, settings, ref, "non-root")["non-root"]
    assert result.outcome is Outcome.PASS, result.evidence
    assert "warning: /usr/local/bin/sneaky is setuid root (0o4755)" in result.details


# --- 3 and 4. the walk sees every file: private folders, /tmp, /run -------------------------------

HIDDEN = """\
FROM {good}
USER root
COPY key.pem /root/.ssh/id_rsa
COPY key.pem /root/id_rsa.old
RUN chmod 700 /root /root/.ssh && chmod 600 /root/.ssh/id_rsa /root/id_rsa.old \\
    && echo 'TOKEN=1' > /root/.env \\
    && mkdir -p /root/.local/lib/python3.13/site-packages/iniconfig-2.1.0.dist-info \\
    && printf '{dev}' > /root/.local/lib/python3.13/site-packages/iniconfig-2.1.0.dist-info/METADATA \\
    && tool=/root/.local/share/uv/tools/pytest/lib/python3.13/site-packages/iniconfig-2.1.0.dist-info \\
    && mkdir -p $tool && printf '{dev}' > $tool/METADATA \\
    && chmod -R go-rwx /root/.local \\
    && echo 'TOKEN=2' > /tmp/.env && cp /root/.ssh/id_rsa /tmp/id_rsa \\
    && mkdir -p /tmp/src/.git /run/app && echo 'ref: x' > /tmp/src/.git/HEAD && echo 'X=1' > /run/app/.env \\
    && mkdir -p /tmp/venv/lib/python3.13/site-packages/iniconfig-2.1.0.dist-info \\
    && printf '{dev}' > /tmp/venv/lib/python3.13/site-packages/iniconfig-2.1.0.dist-info/METADATA
USER 10001:10001
""".replace("{dev}", DEV)


def test_files_the_apps_user_cannot_read_and_tmp_and_run_are_walked(
    docker: engine.Engine, variant: Variant
) -> None:
    files = {"Dockerfile": HIDDEN, "key.pem": PEM_KEY, ".dockerignore": "**/__pycache__\n"}
    settings, ref = variant("hidden", files)
    results = run(docker, settings, ref, "no-stray-files", "no-dev-packages")
    stray = results["no-stray-files"]
    assert stray.outcome is Outcome.FAIL
    for path in ("/root/.ssh/id_rsa", "/root/id_rsa.old", "/root/.env", "/tmp/.env", "/tmp/id_rsa",
                 "/tmp/src/.git",
                 "/run/app/.env"):  # fmt: skip
        assert any(line.startswith(f"{path} (") for line in stray.details), (path, stray.details)
    dev = results["no-dev-packages"]
    fails(dev.outcome, dev.evidence, "iniconfig 2.1.0 in /root/.local/lib/python3.13/site-packages",
          "iniconfig 2.1.0 in /root/.local/share/uv/tools/pytest/lib/python3.13/site-packages",
          "iniconfig 2.1.0 in /tmp/venv/lib/python3.13/site-packages")  # fmt: skip


# --- 5. dev packages off the site dirs ------------------------------------------------------------

DEV_OFF_SITE = """\
FROM {good}
USER root
RUN mkdir -p /opt/devtools/iniconfig-2.1.0.dist-info /opt/pp/iniconfig-2.1.0.dist-info \\
        /src/legacy/iniconfig.egg-info /tmp/zip/iniconfig-2.1.0.dist-info \\
    && printf '{dev}' > /opt/devtools/iniconfig-2.1.0.dist-info/METADATA \\
    && echo /opt/devtools > {site}/devtools.pth \\
    && printf '{dev}' > /opt/pp/iniconfig-2.1.0.dist-info/METADATA \\
    && printf '{dev}' > /src/legacy/iniconfig.egg-info/PKG-INFO \\
    && echo /src/legacy > {site}/easy-install.pth \\
    && printf '{dev}' > /tmp/zip/iniconfig-2.1.0.dist-info/METADATA \\
    && cd /tmp/zip && python3 -c "import shutil; shutil.make_archive('/opt/dev', 'zip', '/tmp/zip')" \\
    && rm -rf /tmp/zip
USER 10001:10001
ENV PYTHONPATH=/opt/pp:/opt/dev.zip
""".replace("{dev}", DEV).replace("{site}", SITE)


def test_dev_packages_reached_by_pth_legacy_editable_pythonpath_and_zip_fail(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("devoffsite", {"Dockerfile": DEV_OFF_SITE})
    result = run(docker, settings, ref, "no-dev-packages")["no-dev-packages"]
    fails(result.outcome, result.evidence,
          "iniconfig 2.1.0 in /opt/devtools (on the app's sys.path)",
          "iniconfig 2.1.0 in /src/legacy (on the app's sys.path)",
          "iniconfig 2.1.0 in /opt/pp (on the app's sys.path)",
          "iniconfig 2.1.0 in /opt/dev.zip (on the app's sys.path)")  # fmt: skip


# --- 6. locked-runtime trusts no dist-info --------------------------------------------------------

GUTTED = """\
FROM {good}
USER root
RUN rm -rf {site}/six.py {site}/idna
USER 10001:10001
""".replace("{site}", SITE)

VENDORED = """\
FROM {good}
USER root
RUN mkdir -p /opt/vendor/idna \\
    && printf 'def encode(text):\\n    return b"vendored"\\n' > /opt/vendor/idna/__init__.py
USER 10001:10001
ENV PYTHONPATH=/opt/vendor
"""


def test_deleted_files_behind_their_dist_info_fail(docker: engine.Engine, variant: Variant) -> None:
    settings, ref = variant("gutted", {"Dockerfile": GUTTED})
    result = run(docker, settings, ref, "locked-runtime")["locked-runtime"]
    fails(result.outcome, result.evidence, "six 1.17.0: 1 file(s) missing (/app/.venv/lib/python3",
          "site-packages/six.py)", "idna 3.")  # fmt: skip
    assert any("idna" in line and "file(s) missing" in line for line in result.details)


def test_a_vendored_copy_first_on_pythonpath_shadows_the_locked_one_and_fails(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("vendored", {"Dockerfile": VENDORED})
    result = run(docker, settings, ref, "locked-runtime")["locked-runtime"]
    fails(result.outcome, result.evidence, "`import idna` resolves to /opt/vendor/idna/__init__.py")


# --- 8. imports run the way the app runs ----------------------------------------------------------

COPY_IN_WORKDIR = """\
FROM {good}
USER root
RUN cp -r {site}/tinyapp /app/tinyapp && rm -rf {site}/tinyapp
USER 10001:10001
""".replace("{site}", SITE)


def test_a_package_copy_in_the_working_directory_does_not_pass_imports(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("cwdcopy", {"Dockerfile": COPY_IN_WORKDIR})
    results = run(docker, settings, ref, "imports", "smoke")
    fails(results["imports"].outcome, results["imports"].evidence,
          "tinyapp:main (entry point): ModuleNotFoundError: No module named 'tinyapp'",
          "sys.path[0] /app/.venv/bin")  # fmt: skip
    fails(results["smoke"].outcome, results["smoke"].evidence, "`tinyapp` exited 1")


# --- 9. a shell as PID 1 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entrypoint", "outcome"),
    [
        ('["/bin/bash", "-c", "tinyapp"]', Outcome.FAIL),
        ('["/bin/sh", "-ec", "tinyapp"]', Outcome.FAIL),
        ('["/usr/bin/sh", "-c", "tinyapp"]', Outcome.FAIL),
        ('["/bin/sh", "-c", "exec tinyapp"]', Outcome.PASS),
    ],
)
def test_a_shell_that_does_not_exec_the_app_fails(
    docker: engine.Engine, variant: Variant, entrypoint: str, outcome: Outcome
) -> None:
    dockerfile = f"FROM {{good}}\nENTRYPOINT {entrypoint}\nCMD []\n"
    settings, ref = variant("pid1", {"Dockerfile": dockerfile})
    result = run(docker, settings, ref, "runtime-env")["runtime-env"]
    assert result.outcome is outcome, result.evidence
    if outcome is Outcome.FAIL:
        shell = entrypoint.split('"')[1]
        assert f"keeps the shell {shell} as PID 1" in result.evidence


# --- 10. stray names ------------------------------------------------------------------------------

STRAY_NAMES = """\
FROM {good}
USER root
COPY dot-env /app/.ENV
COPY dot-env /app/.Env
COPY dot-env "/app/.env~"
COPY dot-env "/app/#.env#"
COPY tests /app/src/tests
COPY tests /opt/tinyapp/tests
COPY bundle.pem /app/server.pem
RUN cp /app/.ENV {site}/.env && cp /app/server.pem {site}/id_rsa && cp -r /app/src/tests {site}/tests
USER 10001:10001
""".replace("{site}", SITE)


def test_stray_names_any_case_backups_in_site_packages_big_keys_and_the_projects_tests_anywhere(
    docker: engine.Engine, variant: Variant
) -> None:
    chain = "-----BEGIN CERTIFICATE-----\n" + ("MIIB" * 19 + "\n") * 1200 + "-----END CERTIFICATE-----\n"
    files = {
        "Dockerfile": STRAY_NAMES,
        "dot-env": "DATABASE_URL=postgres://u:p@db/x\n",
        "bundle.pem": PEM_KEY + chain,  # a key and its chain: well over 64 KiB
        "tests/test_tinyapp.py": "def test_tinyapp():\n    assert True\n",
        ".dockerignore": "**/__pycache__\n",
    }
    settings, ref = variant("straynames", files)
    assert (settings.project_dir / "tests" / "test_tinyapp.py").is_file()  # the project's own tests
    result = run(docker, settings, ref, "no-stray-files")["no-stray-files"]
    assert result.outcome is Outcome.FAIL
    site_tests = [line for line in result.details if "site-packages/tests (the project's tests/" in line]
    assert site_tests, result.details
    for prefix in ("/app/.ENV (.env", "/app/.Env (.env", "/app/.env~ (.env", "/app/#.env# (.env",
                   "/app/server.pem (private key", "/app/src/tests (the project's tests/",
                   "/opt/tinyapp/tests (the project's tests/"):  # fmt: skip
        assert any(line.startswith(prefix) for line in result.details), (prefix, result.details)
    assert any("site-packages/.env (.env" in line for line in result.details)
    assert any("site-packages/id_rsa (id_rsa" in line for line in result.details)


# carderne/postmodern-mono: `uv sync` without a cache mount ships uv's cache (with its empty `.git`
# marker); a cache-mounted build leaves only the empty mount point, which is no stray.
PACKAGE_CACHE = """\
FROM {good}
USER root
RUN mkdir -p /root/.cache/uv/sdists-v10 /root/.cache/uv/wheels-v7 /root/.cache/pip \\
    && : > /root/.cache/uv/sdists-v10/.git \\
    && head -c 5000 /dev/zero > /root/.cache/uv/wheels-v7/cowsay.whl
USER 10001:10001
"""


def test_a_shipped_package_cache_is_named_and_an_empty_one_is_not(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("packagecache", {"Dockerfile": PACKAGE_CACHE})
    result = run(docker, settings, ref, "no-stray-files")["no-stray-files"]
    fails(result.outcome, result.evidence, "/root/.cache/uv (the uv package cache, 5.0 kB)")
    assert ".git" not in result.evidence
    assert "/root/.cache/pip" not in result.evidence


# --- 12. smoke expect is a whole line -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expect", "regex", "outcome"),
    [
        ("tinyapp o", None, Outcome.FAIL),  # a substring of the line: not enough
        ("tinyapp ok", None, Outcome.PASS),
        (None, r"^tinyapp \w+$", Outcome.PASS),
        (None, r"^tinyapp$", Outcome.FAIL),
    ],
)
def test_smoke_expect_matches_a_whole_line_and_expect_regex_a_pattern(
    docker: engine.Engine, good: Good, expect: str | None, regex: str | None, outcome: Outcome
) -> None:
    smoke = (config.SmokeCommand(("tinyapp",), expect=expect, expect_regex=regex),)
    result = run(docker, good[0], good[1].tags[0], "smoke", smoke=smoke)["smoke"]
    assert result.outcome is outcome, result.evidence


# --- no-build-tools -------------------------------------------------------------------------------

BUILDTOOLS = ROOT / "tests" / "fixtures" / "buildtools"


def test_an_image_shipping_uv_and_gcc_fails_no_build_tools(docker: engine.Engine, good: Good) -> None:
    settings = config.load(BUILDTOOLS)
    ref = _build(docker, settings, "buildtools").tags[0]
    result = run(docker, settings, ref, "no-build-tools")["no-build-tools"]
    fails(result.outcome, result.evidence, "gcc (", "uv (", "libc6-dev")
    assert any(line.startswith("installer uv (/usr/local/bin/uv") for line in result.details)
    assert any(
        line.startswith("compiler ") and "gcc" in line and "dpkg gcc-" in line for line in result.details
    )
    # the good image, built the multi-stage way, ships none of it
    clean = run(docker, good[0], good[1].tags[0], "no-build-tools")["no-build-tools"]
    assert clean.outcome is Outcome.PASS, clean.evidence


def test_the_allow_list_lets_a_team_keep_a_tool(docker: engine.Engine, variant: Variant) -> None:
    dockerfile = "FROM {good}\nUSER root\nRUN cp /bin/true /usr/local/bin/make\nUSER 10001:10001\n"
    settings, ref = variant("allowmake", {"Dockerfile": dockerfile})
    result = run(docker, settings, ref, "no-build-tools")["no-build-tools"]
    fails(result.outcome, result.evidence, "make (")
    allowed = dataclasses.replace(
        settings, verify=dataclasses.replace(settings.verify, build_tools_allow=("make",))
    )
    result = run(docker, allowed, ref, "no-build-tools")["no-build-tools"]
    assert result.outcome is Outcome.PASS, result.evidence
    assert any(line.startswith("allowed: make (/usr/local/bin/make") for line in result.details)
