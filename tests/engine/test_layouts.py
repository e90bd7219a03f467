"""Real uv project layouts with zero configuration, on the real engine.

Each fixture under tests/fixtures is copied into a git repository of its own (as a user's project is)
and checked with nothing in `[tool.dockyard]`: only the image name comes from DOCKYARD_IMAGE, so runs
never share tags. Every image a test builds is labelled for the session's cleanup and its tags removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors as docker_errors
import pytest
from rich.console import Console

from dockyard import config, engine
from dockyard.actions import BuildOptions, VerifyRequest, build_image
from dockyard.actions import verify as verify_action
from dockyard.build import buildkit as build
from dockyard.build.stack import ComposeOptions
from dockyard.errors import ChecksFailed, ConfigError
from dockyard.project import compose
from dockyard.sizes import history as size_history
from dockyard.verify import compose as compose_checks
from dockyard.verify.checks import CHECK_IDS
from dockyard.verify.gather import VerifyOptions
from tests.engine.conftest import LABEL_TEST_RUN, ROOT, TEST_RUN

FIXTURES = ROOT / "tests" / "fixtures"


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True)
    return done.stdout


def checkout(tmp_path: Path, name: str) -> Path:
    """The fixture as a committed git repository of its own."""
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root, ignore=shutil.ignore_patterns("__pycache__", ".dockyard", ".venv"))
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", name)
    return root


def image_name(name: str) -> str:
    return f"dockyard-test/layout-{name}-{TEST_RUN}"


def load(root: Path, name: str, **kwargs: Any) -> config.Settings:
    """The project's settings with zero configuration: the image name from the environment, plus the
    test run's label so the session removes whatever a failed test leaves."""
    settings = config.load(root, environ={**os.environ, "DOCKYARD_IMAGE": image_name(name)}, **kwargs)
    return dataclasses.replace(settings, labels={LABEL_TEST_RUN: TEST_RUN})


@pytest.fixture(scope="module")
def tags_removed(docker: engine.Engine) -> Iterator[None]:
    yield
    for name in ("workspace", "virtual", "packaged"):
        for image in docker.client.images.list(name=image_name(name)):
            for tag in image.tags:
                with contextlib.suppress(docker_errors.ImageNotFound):
                    docker.client.images.remove(tag, noprune=False)


def verify(
    settings: config.Settings, tmp_path: Path, **request: Any
) -> tuple[dict[str, dict[str, Any]], str]:
    """Run `dockyard verify` in-process: the results by check id, and what it printed."""
    out = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
    console = Console(record=True, width=240, file=open(os.devnull, "w"))  # noqa: SIM115, PTH123
    with contextlib.suppress(ChecksFailed):
        verify_action(settings, VerifyRequest(json_path=out, **request), console)
    results = {r["id"]: r for r in json.loads(out.read_text())["results"]}
    return results, console.export_text()


def outcomes(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {check_id: str(r["outcome"]).upper() for check_id, r in results.items()}


def cli(*args: str, cwd: Path, image: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"DOCKYARD_IMAGE": image} if image else {})}
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


# --- (a) a workspace whose root has no [project] --------------------------------------------------


@pytest.fixture(scope="module")
def workspace_run(
    docker: engine.Engine, tmp_path_factory: pytest.TempPathFactory, tags_removed: None
) -> tuple[config.Settings, dict[str, dict[str, Any]], str]:
    tmp_path = tmp_path_factory.mktemp("workspace")
    settings = load(checkout(tmp_path, "workspace-service"), "workspace")
    results, printed = verify(settings, tmp_path)
    return settings, results, printed


def test_a_workspace_root_finds_its_member_built_by_compose(
    workspace_run: tuple[config.Settings, dict[str, dict[str, Any]], str],
) -> None:
    settings, _, printed = workspace_run
    root = settings.project_dir
    assert settings.project_name == "acme-api"
    assert settings.dockerfile == root / "packages" / "api" / "Dockerfile"
    assert settings.context == root
    assert settings.lock_file == root / "uv.lock"
    assert f"project: {root} (workspace root, no [project])" in printed
    assert (
        "package: acme-api 0.3.0 in packages/api (discovered: `uv sync --package acme-api` in "
        "packages/api/Dockerfile)" in printed
    )
    assert "dockerfile: packages/api/Dockerfile (discovered: compose.yaml service api)" in printed
    assert "context: . (discovered: compose service api)" in printed


def test_a_workspace_image_with_the_dev_group_fails_both_package_checks(
    docker: engine.Engine, workspace_run: tuple[config.Settings, dict[str, dict[str, Any]], str]
) -> None:
    _, results, _ = workspace_run
    got = outcomes(results)
    assert got.pop("no-dev-packages") == "FAIL"
    assert got.pop("locked-runtime") == "FAIL"
    assert got.pop("no-build-tools") == "FAIL"  # one stage: uv stays in the runtime image
    assert "uv (" in results["no-build-tools"]["evidence"]
    assert got.pop("smoke") == "SKIP"  # nothing configured
    assert got == dict.fromkeys(got, "PASS"), {k: results[k]["evidence"] for k in got if got[k] != "PASS"}
    assert set(results) == set(CHECK_IDS)
    dev = results["no-dev-packages"]["evidence"]
    assert "pytest" in dev
    assert "coverage" in dev
    runtime = results["locked-runtime"]["evidence"]
    assert "development-only in uv.lock: coverage" in runtime
    assert "not in uv.lock" not in runtime  # every extra package is in the lock, as a dev package
    assert "acme_api import" in results["imports"]["evidence"]
    assert "inferred from uv_build's module-name" in results["imports"]["evidence"]
    # The compose build's args reach the project's build too.
    tag = f"{image_name('workspace')}:0.3.0"
    assert docker.image(tag).attrs["Config"]["Env"].count("APP_ENV=production") == 1


def test_a_member_directory_finds_the_root_context_and_lock(tmp_path: Path) -> None:
    root = checkout(tmp_path, "workspace-service")
    settings = load(root / "packages" / "api", "workspace")
    assert settings.project_dir == root / "packages" / "api"
    assert settings.dockerfile == root / "packages" / "api" / "Dockerfile"
    assert settings.context == root  # from compose.yaml, found above the member as Compose finds it
    assert settings.lock_file == root / "uv.lock"
    assert settings.build_args["APP_ENV"] == "production"
    context = next(i for i in settings.inferred if i.what == "context")
    assert context.source == "discovered: compose service api"


def test_an_image_outside_any_project_gets_every_check_that_needs_none(
    workspace_run: tuple[config.Settings, dict[str, dict[str, Any]], str], tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    done = cli("verify", f"{image_name('workspace')}:0.3.0", "--json", str(out), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith(f"project: none (no pyproject.toml in {tmp_path} or above)")
    results = {r["id"]: r for r in json.loads(out.read_text())["results"]}
    got = outcomes(results)
    for check_id in ("builds", "locked-runtime", "lock-current", "layer-cache"):
        assert got[check_id] == "SKIP", results[check_id]
    for check_id in ("non-root", "size", "runtime-env", "no-stray-files", "imports"):
        assert got[check_id] == "PASS", results[check_id]
    assert "(entry point)" in results["imports"]["evidence"]  # the app's own entry, with no project
    assert got["no-build-tools"] == "FAIL"  # uv in the runtime image, with or without a project
    assert got["no-dev-packages"] == "FAIL"  # judged by name: pytest and coverage are well known
    assert "pytest" in results["no-dev-packages"]["evidence"]
    assert "judged by name" in results["no-dev-packages"]["evidence"]
    assert "no project" in results["lock-current"]["evidence"]


# --- (b) a virtual project, two Dockerfiles under docker/ named by compose ------------------------


def test_two_compose_builds_that_fit_equally_ask_for_a_choice(tmp_path: Path) -> None:
    root = checkout(tmp_path, "virtual-service")
    done = cli("verify", cwd=root, image=image_name("virtual"))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("dockyard: error:")]
    assert errors == [
        "dockyard: error: 2 compose builds fit this project: docker/api.Dockerfile (service api), "
        "docker/worker.Dockerfile (service worker); choose one with --dockerfile PATH (or `dockerfile` in "
        "[tool.dockyard]), or check every service with `dockyard verify-compose`"
    ]
    assert "Traceback" not in done.stderr


@pytest.mark.usefixtures("tags_removed")
def test_a_virtual_project_is_judged_by_its_dependencies_and_its_exposed_source(tmp_path: Path) -> None:
    root = checkout(tmp_path, "virtual-service")
    overrides = config.Overrides(dockerfile=root / "docker" / "api.Dockerfile")
    settings = load(root, "virtual", overrides=overrides)
    assert settings.virtual
    results, printed = verify(settings, tmp_path)
    assert "dockerfile: docker/api.Dockerfile (from --dockerfile)" in printed
    assert "package: virtual-service 1.4.0, virtual" in printed
    got = outcomes(results)
    assert got.pop("layer-cache") == "FAIL"  # `COPY . /app` before `uv sync`: a true finding
    assert "dependencies were installed again" in results["layer-cache"]["evidence"]
    assert got.pop("no-build-tools") == "FAIL"  # one stage: uv stays in the runtime image
    assert got.pop("smoke") == "SKIP"
    assert got == dict.fromkeys(got, "PASS"), {k: results[k]["evidence"] for k in got if got[k] != "PASS"}
    assert "the project is virtual" in results["locked-runtime"]["evidence"]  # never reported missing
    imports = results["imports"]["evidence"]
    assert imports.startswith(
        "src.api (entry point), src import with /app/.venv/bin/python (`python -m src.api`)"
    )
    assert "sys.path[0] /app; virtual project" in imports  # `-m` puts the working directory first


# --- (c) a packaged app whose .dockerignore leaves out only .venv, built twice --------------------


def _history_in_tree(settings: config.Settings) -> bool:
    path = size_history.history_path(settings)
    return path.is_relative_to(settings.project_dir)


@pytest.mark.usefixtures("tags_removed")
def test_a_second_build_is_clean_and_cached(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    root = checkout(tmp_path, "packaged-app")
    settings = load(root, "packaged")
    if _history_in_tree(settings):
        # dockyard wrote its size history into the project: the tree is dirty and the context changed.
        request.applymarker(pytest.mark.xfail(reason="the size history is still written inside the project"))
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115, PTH123
    first = build_image(settings, BuildOptions(quiet=True), quiet)
    second = build_image(settings, BuildOptions(quiet=True), quiet)
    assert _git(root, "status", "--porcelain") == ""
    assert first.tags == second.tags
    assert not any(tag.endswith("-dirty") for tag in second.tags)
    ran = [s.name for s in second.steps if not s.cached and " FROM " not in s.name]  # FROM is never "CACHED"
    assert ran == []
    assert second.image_id == first.image_id


@pytest.mark.usefixtures("tags_removed")
def test_a_packaged_app_passes_with_zero_configuration(docker: engine.Engine, tmp_path: Path) -> None:
    root = checkout(tmp_path, "packaged-app")
    settings = load(root, "packaged")
    built = build.build(
        docker,
        dataclasses.replace(build.request_for(settings, tags=(f"{image_name('packaged')}:checked",))),
    )
    results, _ = verify(settings, tmp_path, image=built.tags[0])
    got = outcomes(results)
    got.pop("healthcheck")  # a job: whether it must have a HEALTHCHECK is not this test's business
    assert got.pop("builds") == "SKIP"  # an image given, not built by verify
    assert got.pop("smoke") == "SKIP"
    assert got == dict.fromkeys(got, "PASS"), {k: results[k]["evidence"] for k in got if got[k] != "PASS"}
    assert "packaged_app import" in results["imports"]["evidence"]


# --- dockyard's own image, run against the host engine --------------------------------------------


def test_dockyards_image_verifies_an_image_through_the_host_engine_socket(
    docker: engine.Engine, tmp_path: Path
) -> None:
    """`docker run -v /var/run/docker.sock:/var/run/docker.sock --group-add GID dockyard verify IMAGE`:
    uid 10001 reaches the engine through the socket's group, with no project inside the container."""
    socket = Path("/var/run/docker.sock")
    if not socket.is_socket():
        pytest.skip("the engine is not on /var/run/docker.sock here")  # a remote DOCKER_HOST
    settings = config.load(ROOT)
    own = build.request_for(settings, tags=(f"dockyard-test/self-socket:{TEST_RUN}",))
    own = dataclasses.replace(own, labels={**own.labels, LABEL_TEST_RUN: TEST_RUN})
    image = build.build(docker, own)
    target = build.build(
        docker,
        dataclasses.replace(
            build.request_for(load(checkout(tmp_path, "packaged-app"), "packaged"), tags=()),
            tags=(f"{image_name('packaged')}:socket",),
            labels={LABEL_TEST_RUN: TEST_RUN},
        ),
    )
    try:
        done = docker.run_once(
            image.image_id,
            ["verify", target.tags[0], "--skip", "healthcheck"],
            volumes={str(socket): {"bind": "/var/run/docker.sock", "mode": "rw"}},
            group_add=[str(socket.stat().st_gid)],
            timeout=300,
        )
    finally:
        for tag in (*image.tags, *target.tags):
            with contextlib.suppress(docker_errors.ImageNotFound):
                docker.client.images.remove(tag, noprune=False)
    assert done.code == 0, done.output
    assert "project: none (no pyproject.toml in /app or above)" in done.stdout
    assert "non-root" in done.stdout
    assert "dockyard: error" not in done.output


# --- build contexts outside the repository ---------------------------------------------------------

OUTSIDE = """\
name: outside
services:
  app:
    build:
      context: {context}
      dockerfile: {dockerfile}
"""


def _outside_project(tmp_path: Path, context: str) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "outside"\nversion = "1"\ndependencies = []\n')
    (root / "compose.yaml").write_text(OUTSIDE.format(context=context, dockerfile=root / "app.Dockerfile"))
    (root / "app.Dockerfile").write_text("FROM scratch\nCOPY etc/hostname /stolen\n")
    _git(root, "init", "-q")
    return root


@pytest.mark.parametrize("context", ["/", ".."])
def test_a_discovered_context_outside_the_repository_is_refused(tmp_path: Path, context: str) -> None:
    root = _outside_project(tmp_path, context)
    done = cli("build", cwd=root, image=image_name("outside"))
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("dockyard: error:")]
    assert len(errors) == 1
    assert "is outside the git repository" in errors[0]
    assert "set `context` in [tool.dockyard] (or pass --context)" in errors[0]
    assert "Traceback" not in done.stderr


def test_a_configured_context_outside_the_repository_is_built_and_said(tmp_path: Path) -> None:
    root = _outside_project(tmp_path, "/")
    settings = load(root, "outside", overrides=config.Overrides(context=Path("/")))
    assert "context" not in settings.problems
    context = next(i for i in settings.inferred if i.what == "context")
    assert context.line() == "context: / (from --context; outside the repository)"


def test_compose_build_refuses_a_context_outside_the_repository_unless_allowed(
    docker: engine.Engine, tmp_path: Path
) -> None:
    root = _outside_project(tmp_path, "/")
    settings = load(root, "outside")
    with pytest.raises(ConfigError, match=r"service 'app': build context / is outside the git repository"):
        compose.resolve(docker, settings, ())
    allowed = dataclasses.replace(settings.compose, allow_contexts=("/",))
    model = compose.resolve(docker, dataclasses.replace(settings, compose=allowed), ())
    assert model.services[0].build is not None
    assert model.services[0].build.context == Path("/")


def test_a_failing_build_is_printed_once(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "broken"\nversion = "1"\ndependencies = []\n')
    (root / "Dockerfile").write_text(
        'ARG PYTHON_IMAGE=python:3.13-slim\nFROM ${PYTHON_IMAGE}\nRUN echo "$((6 * 7)) failing" && exit 3\n'
    )
    done = cli("build", cwd=root, image=image_name("broken"))
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert output.count("42 failing") == 1, output
    assert "exit code: 3" in done.stderr


@pytest.mark.usefixtures("tags_removed")
def test_verify_compose_checks_each_dockerfile_of_a_virtual_project(
    docker: engine.Engine, tmp_path: Path
) -> None:
    root = checkout(tmp_path, "virtual-service")
    settings = load(root, "virtual")
    assert "dockerfile" in settings.problems  # two builds fit: verify-compose checks both
    report = compose_checks.verify_compose(
        docker,
        settings,
        console=Console(file=open(os.devnull, "w")),  # noqa: SIM115, PTH123
        options=ComposeOptions(
            project_name=f"layouts-{TEST_RUN}", quiet=True, labels={LABEL_TEST_RUN: TEST_RUN}
        ),
        checks=VerifyOptions(skip=("healthcheck",)),
    )
    by_image: dict[str, dict[str, str]] = {}
    for result in report.results:
        by_image.setdefault(result.subject or "", {})[result.check_id] = result.outcome.value.upper()
    images = [s for s in by_image if "virtual-service" in s or "layouts" in s]
    assert len([s for s in images if ":" in s]) == 2, by_image
    for subject, got in by_image.items():
        if "locked-runtime" not in got:
            continue
        assert got["locked-runtime"] == "PASS", subject
        assert got["imports"] == "PASS", subject
        assert got["layer-cache"] == "FAIL", subject
