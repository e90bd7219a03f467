"""Every check of verify-image, failing on a broken image for the right reason (and passing on a good one).

Images are built from tests/fixtures/tinyapp (a tiny uv project with a dev group) or derived from its
good image, so only the first build downloads anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker.errors as docker_errors
import pytest
from rich.console import Console

from dockyard import config, engine
from dockyard.actions import VerifyRequest
from dockyard.actions import verify as verify_action
from dockyard.build import buildkit as build
from dockyard.errors import ChecksFailed
from dockyard.results import CheckResult, Outcome, Report
from dockyard.verify import gather as verify
from dockyard.verify.checks import CHECK_IDS
from tests.engine.conftest import LABEL_TEST_RUN, ROOT, TEST_RUN
from tests.engine.layer_sources import assert_sources_agree

FIXTURE = ROOT / "tests" / "fixtures" / "tinyapp"


def _build(
    docker: engine.Engine, settings: config.Settings, name: str, secrets: Mapping[str, Path] | None = None
) -> build.BuildResult:
    request = build.request_for(settings, tags=(f"dockyard-test/tinyapp-{name}:{TEST_RUN}",))
    request = dataclasses.replace(
        request,
        labels={**request.labels, LABEL_TEST_RUN: TEST_RUN},
        secrets={**request.secrets, **(secrets or {})},
    )
    return build.build(docker, request)


@pytest.fixture(scope="module")
def good(docker: engine.Engine) -> tuple[config.Settings, build.BuildResult]:
    settings = config.load(FIXTURE)
    return settings, _build(docker, settings, "good")


Variant = Callable[..., tuple[config.Settings, str]]


@pytest.fixture
def variant(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult], tmp_path: Path
) -> Variant:
    """Build a broken variant: a copy of the fixture with files replaced; `{good}` names the good image."""

    def make(
        name: str, files: Mapping[str, str], secrets: Mapping[str, Path] | None = None
    ) -> tuple[config.Settings, str]:
        root = tmp_path / name
        shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__"))
        for relative, text in files.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text.replace("{good}", good[1].tags[0]))
        settings = config.load(root)
        return settings, _build(docker, settings, name, secrets).tags[0]

    return make


def run(
    docker: engine.Engine, settings: config.Settings, ref: str, *only: str, **verify_settings: Any
) -> dict[str, CheckResult]:
    if verify_settings:
        settings = dataclasses.replace(
            settings, verify=dataclasses.replace(settings.verify, **verify_settings)
        )
    report = verify.verify_image(docker, settings, ref, verify.VerifyOptions(only=only))
    return {r.check_id: r for r in report.results}


def test_good_image_passes_every_check(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult]
) -> None:
    settings, built = good
    report = verify.verify_image(docker, settings, built.tags[0], verify.VerifyOptions(build=built))
    outcomes = {r.check_id: r.outcome for r in report.results}
    assert outcomes.pop("healthcheck") is Outcome.SKIP  # tinyapp is not a service
    assert outcomes == dict.fromkeys(outcomes, Outcome.PASS), [r.evidence for r in report.results]
    assert set(outcomes) == set(CHECK_IDS) - {"healthcheck"}
    leftovers = docker.client.containers.list(
        all=True, filters={"label": f"{engine.LABEL_RUN}={docker.run_id}"}
    )
    assert leftovers == []


@pytest.fixture
def new_tinyapp_tags_removed(docker: engine.Engine) -> Iterator[None]:
    """Tests that build through `dockyard verify` tag the fixture's own image name: remove what they add."""

    def tags() -> set[str]:
        return {t for image in docker.client.images.list(name="dockyard-test/tinyapp") for t in image.tags}

    before = tags()
    yield
    for tag in tags() - before:
        with contextlib.suppress(docker_errors.ImageNotFound):
            docker.client.images.remove(tag)


def test_builds_fails_with_the_failing_step(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(FIXTURE, root)
    (root / "Dockerfile").write_text(
        "ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\nRUN echo no-such-thing && exit 4\n"
    )
    request = VerifyRequest(json_path=tmp_path / "out.json")
    with pytest.raises(ChecksFailed, match="builds"):
        verify_action(config.load(root), request, Console(quiet=True))
    text = (tmp_path / "out.json").read_text()
    assert '"id": "builds"' in text
    assert "exit code: 4" in text


@pytest.mark.parametrize(
    ("dockerfile", "evidence"),
    [
        ("FROM {good}\nUSER root\n", "USER root is root"),
        ("FROM {good}\nUSER 0:0\n", "USER 0:0 is root"),
        ("FROM {good}\nUSER 0\n", "USER 0 is root"),
        ("FROM {good}\nCMD [\"tinyapp\"]\n", "inherited from the base image"),
        ("FROM {good}\nUSER root\nRUN useradd --uid 0 --non-unique --no-create-home boss\n"
         "USER boss\n", "resolves to uid 0"),
    ],
)  # fmt: skip
def test_non_root_fails_for_root_in_every_disguise(
    docker: engine.Engine, variant: Variant, dockerfile: str, evidence: str
) -> None:
    settings, ref = variant("root", {"Dockerfile": dockerfile})
    result = run(docker, settings, ref, "non-root")["non-root"]
    assert result.outcome is Outcome.FAIL
    assert evidence in result.evidence


def test_non_root_fails_when_the_expected_user_differs(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult]
) -> None:
    result = run(docker, good[0], good[1].tags[0], "non-root", user="svc")["non-root"]
    assert result.outcome is Outcome.FAIL
    assert "expected svc" in result.evidence


def test_no_root_user_at_all_fails(docker: engine.Engine, variant: Variant, base_image: str) -> None:
    settings, ref = variant("nouser", {"Dockerfile": f'FROM {base_image}\nCMD ["python3"]\n'})
    result = run(docker, settings, ref, "non-root")["non-root"]
    assert result.outcome is Outcome.FAIL
    assert "no USER in the image" in result.evidence


def test_size_fails_over_budget(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult]
) -> None:
    settings = dataclasses.replace(good[0], size_budget=50_000_000)
    result = run(docker, settings, good[1].tags[0], "size")["size"]
    assert result.outcome is Outcome.FAIL
    assert "over the 50.0 MB budget" in result.evidence


DEV_IN_VENV = """\
ARG PYTHON_IMAGE
ARG UV_IMAGE
FROM ${UV_IMAGE} AS uv
FROM ${PYTHON_IMAGE}
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv PATH="/app/.venv/bin:${PATH}"
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \\
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi; \\
    uv sync --locked --no-editable
RUN useradd --uid 10001 app
USER app
CMD ["tinyapp"]
"""


def test_dev_packages_in_the_venv_fail_both_package_checks(docker: engine.Engine, variant: Variant) -> None:
    settings, ref = variant("devvenv", {"Dockerfile": DEV_IN_VENV})
    results = run(docker, settings, ref, "no-dev-packages", "locked-runtime")
    assert results["no-dev-packages"].outcome is Outcome.FAIL
    assert "iniconfig" in results["no-dev-packages"].evidence
    assert "/app/.venv/" in results["no-dev-packages"].evidence
    assert results["locked-runtime"].outcome is Outcome.FAIL
    assert "development-only in uv.lock: iniconfig" in results["locked-runtime"].evidence


# A dev package outside the venv: `pip list` in the venv would never show it.
DEV_IN_SYSTEM = """\
FROM {good}
USER root
RUN mkdir -p /usr/local/lib/python3/site-packages/iniconfig-2.1.0.dist-info \\
    && printf 'Metadata-Version: 2.1\\nName: iniconfig\\nVersion: 2.1.0\\n' \\
       > /usr/local/lib/python3/site-packages/iniconfig-2.1.0.dist-info/METADATA
USER app
"""


def test_dev_package_in_another_site_packages_is_found(docker: engine.Engine, variant: Variant) -> None:
    settings, ref = variant("devsystem", {"Dockerfile": DEV_IN_SYSTEM})
    results = run(docker, settings, ref, "no-dev-packages", "locked-runtime")
    assert results["no-dev-packages"].outcome is Outcome.FAIL
    assert "iniconfig 2.1.0 in /usr/local/lib/python3/site-packages" in results["no-dev-packages"].evidence
    assert results["locked-runtime"].outcome is Outcome.PASS  # the app's own venv is still right


BROKEN_IMPORT = """\
FROM {good}
USER root
RUN python -c "import pathlib, tinyapp; \\
    pathlib.Path(tinyapp.__file__).write_text('raise RuntimeError(\\"broken at import\\")')"
USER app
"""


def test_imports_and_smoke_fail_on_a_module_that_does_not_import(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("noimport", {"Dockerfile": BROKEN_IMPORT})
    results = run(docker, settings, ref, "imports", "smoke")
    assert results["imports"].outcome is Outcome.FAIL
    assert "RuntimeError: broken at import" in results["imports"].evidence
    assert results["smoke"].outcome is Outcome.FAIL
    assert "`tinyapp` exited 1" in results["smoke"].evidence


def test_smoke_fails_on_unexpected_output(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult]
) -> None:
    smoke = (config.SmokeCommand(("tinyapp",), expect="something else"),)
    result = run(docker, good[0], good[1].tags[0], "smoke", smoke=smoke)["smoke"]
    assert result.outcome is Outcome.FAIL
    assert "expected a line 'something else'" in result.evidence


# The app marks itself up in /tmp; the test reads the mark, so it fails where the app is not started.
UP = "0 if os.path.isdir('/tmp/up') else 1"
SERVICE = """\
FROM {good}
HEALTHCHECK --interval={interval} --timeout=3s --retries=2 CMD ["python", "-c", "{probe}"]
CMD ["python", "-c", "import os, time; print('serving', flush=True); os.mkdir('/tmp/up'); time.sleep(300)"]
"""


@pytest.mark.parametrize(
    ("probe", "interval", "outcome", "evidence"),
    [
        (f"import os; raise SystemExit({UP})", "30s", Outcome.PASS, "healthy after"),
        # unhealthy only after the engine's own window (2 probes 1 s apart): a shorter interval to fail fast
        ("print('db down'); raise SystemExit(1)", "1s", Outcome.FAIL, "unhealthy after"),
    ],
)  # fmt: skip
def test_healthcheck_gets_healthy_or_fails_with_its_log(
    docker: engine.Engine, variant: Variant, probe: str, interval: str, outcome: Outcome, evidence: str
) -> None:
    dockerfile = SERVICE.replace("{probe}", probe).replace("{interval}", interval)
    settings, ref = variant(f"health-{interval}", {"Dockerfile": dockerfile})
    settings = dataclasses.replace(settings, service=True)
    result = run(docker, settings, ref, "healthcheck", healthcheck_timeout=30.0)["healthcheck"]
    assert result.outcome is outcome
    assert evidence in result.evidence
    if outcome is Outcome.FAIL:
        assert any("db down" in line for line in result.details)
        assert any("serving" in line for line in result.details)
    # well under the image's own 30 s interval: the check probes with a short one
    assert result.seconds < 15


def test_healthcheck_missing_on_a_service_fails(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult]
) -> None:
    settings = dataclasses.replace(good[0], service=True)
    result = run(docker, settings, good[1].tags[0], "healthcheck")["healthcheck"]
    assert result.outcome is Outcome.FAIL
    assert "no HEALTHCHECK" in result.evidence


BAD_RUNTIME = """\
FROM {good}
ENV PYTHONUNBUFFERED=0 PATH="/usr/local/bin:/usr/bin:/bin:/app/.venv/bin"
EXPOSE 9000
CMD tinyapp
"""


def test_runtime_env_fails_on_env_shell_form_and_ports(docker: engine.Engine, variant: Variant) -> None:
    settings, ref = variant("runtime", {"Dockerfile": BAD_RUNTIME})
    result = run(docker, settings, ref, "runtime-env", ports=(8000,))["runtime-env"]
    assert result.outcome is Outcome.FAIL
    assert "PYTHONUNBUFFERED=0 (expected 1)" in result.evidence
    assert "`/bin/sh -c tinyapp` keeps the shell /bin/sh as PID 1" in result.evidence
    assert "exposes ['9000/tcp'], expected ['8000/tcp']" in result.evidence


STRAY = """\
FROM {good}
COPY .env /app/.env
COPY tests /app/tests
"""


def test_stray_files_fail_on_a_baked_in_env_file_and_tests(docker: engine.Engine, variant: Variant) -> None:
    files = {"Dockerfile": STRAY, ".env": "DATABASE_URL=postgres://u:p@db/x\n", "tests/test_x.py": "x = 1\n"}
    settings, ref = variant("stray", {**files, ".dockerignore": "**/__pycache__\n"})
    result = run(docker, settings, ref, "no-stray-files")["no-stray-files"]
    assert result.outcome is Outcome.FAIL
    assert "/app/.env (.env" in result.evidence
    assert "/app/tests" in result.evidence


# The secret is copied into one layer and deleted in the next: the filesystem looks clean, the layer is not.
LEAK = """\
FROM {good}
USER root
RUN --mount=type=secret,id=token cp /run/secrets/token /opt/token
RUN rm /opt/token
USER app
"""


def test_build_secret_left_in_a_layer_fails(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult], variant: Variant, tmp_path: Path
) -> None:
    token = tmp_path / "token.txt"
    token.write_text("dockyard-test-token-5f2c9a1e7b\n")
    settings, ref = variant("leak", {"Dockerfile": LEAK}, secrets={"token": token})
    result = run(docker, settings, ref, "no-build-secrets", secrets=(token,))["no-build-secrets"]
    assert result.outcome is Outcome.FAIL
    assert "file /opt/token holds a copy of token.txt; layer " in result.evidence
    # the same secret given to the good image's build left no trace
    clean = run(docker, good[0], good[1].tags[0], "no-build-secrets", secrets=(token,))["no-build-secrets"]
    assert clean.outcome is Outcome.PASS
    # the layers read from their directories and from the export: the same matches
    assert_sources_agree(docker, settings, ref, secrets=(token,))


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def test_stale_lock_fails(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult], tmp_path: Path
) -> None:
    root = tmp_path / "stale"
    shutil.copytree(FIXTURE, root)
    _git(root, "init", "-q")
    _git(
        root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "x", "--allow-empty"
    )
    _git(root, "add", ".")
    _git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "app")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"idna>=3.6"', '"idna>=3.6", "attrs"'))
    result = run(docker, config.load(root), good[1].tags[0], "lock-current")["lock-current"]
    assert result.outcome is Outcome.FAIL
    assert "out of date with pyproject.toml" in result.evidence


# The classic mistake: the whole source is copied before the dependencies are installed.
CACHE_BUSTER = """\
ARG PYTHON_IMAGE
ARG UV_IMAGE
FROM ${UV_IMAGE} AS uv
FROM ${PYTHON_IMAGE}
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv PATH="/app/.venv/bin:${PATH}"
WORKDIR /app
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \\
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi; \\
    uv sync --locked --no-dev --no-editable
USER 10001
CMD ["tinyapp"]
"""


def test_layer_cache_fails_when_the_dependency_layer_depends_on_the_source(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("cachebust", {"Dockerfile": CACHE_BUSTER})
    result = run(docker, settings, ref, "layer-cache")["layer-cache"]
    assert result.outcome is Outcome.FAIL
    # six and idna: the project itself, installed from the context, is no dependency
    assert "dependencies were installed again (2 packages" in result.evidence


def test_report_files_are_written_in_the_same_run(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult], tmp_path: Path
) -> None:
    request = VerifyRequest(
        image=good[1].tags[0],
        only=("size", "non-root"),
        json_path=tmp_path / "r.json",
        junit_path=tmp_path / "r.xml",
        markdown_path=tmp_path / "r.md",
    )
    result: Report = verify_action(good[0], request, Console(quiet=True))
    assert result.ok
    assert '"outcome": "pass"' in (tmp_path / "r.json").read_text()
    assert 'name="non-root"' in (tmp_path / "r.xml").read_text()
    assert "| size |" in (tmp_path / "r.md").read_text()


@pytest.mark.usefixtures("new_tinyapp_tags_removed")
def test_clean_checkout_builds_only_what_is_committed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("__pycache__"))
    _git(root, "init", "-q")
    _git(root, "add", "pyproject.toml", "uv.lock", "Dockerfile", ".dockerignore")
    _git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "no source yet")
    settings = config.load(root)
    request = VerifyRequest(only=("builds",), json_path=tmp_path / "out.json")
    # the working tree has src/ (untracked): it builds
    verify_action(settings, request, Console(quiet=True))
    # the committed tree has no src/: a clean checkout cannot build it
    clean = dataclasses.replace(settings, verify=dataclasses.replace(settings.verify, clean_checkout=True))
    with pytest.raises(ChecksFailed, match="builds"):
        verify_action(clean, request, Console(quiet=True))
    builds = json.loads((tmp_path / "out.json").read_text())["results"][0]
    assert builds["outcome"] == "fail"
    assert any('"/src" not found' in line for line in builds["details"])
