"""compose-build and verify-compose against the real engine and the real `docker compose`."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from dockyard import cli, config, engine
from dockyard.build import buildkit as build
from dockyard.build import stack as stacks
from dockyard.cli import run_boundary
from dockyard.errors import UsageError
from dockyard.project import compose
from dockyard.results import Outcome
from dockyard.verify import compose as compose_checks
from dockyard.verify.gather import VerifyOptions
from tests.engine.conftest import LABEL_TEST_RUN, ROOT, TEST_RUN

EXAMPLE = ROOT / "examples" / "worker-stack"


def options(name: str, **extra: Any) -> stacks.ComposeOptions:
    """Test images get a project name of their own and the label the session cleanup removes."""
    return stacks.ComposeOptions(
        project_name=f"dockyard-test-{TEST_RUN}-{name}",
        labels={LABEL_TEST_RUN: TEST_RUN},
        quiet=True,
        **extra,
    )


class Counter:
    """Wraps a function and records each call that returned (a container that could not start, for
    want of `python` in a stand-in base, did not run a check)."""

    def __init__(self, wrapped: Callable[..., Any]) -> None:
        self.wrapped = wrapped
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.wrapped(*args, **kwargs)
        self.calls.append(args)
        return result


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Counter:
    counter = Counter(build.build)
    monkeypatch.setattr(build, "build", counter)
    return counter


@pytest.fixture
def containers(monkeypatch: pytest.MonkeyPatch, docker: engine.Engine) -> Counter:
    counter = Counter(docker.run_once)
    monkeypatch.setattr(docker, "run_once", counter)
    return counter


def quiet_console() -> Console:
    return Console(file=open("/dev/null", "w"), width=200)  # noqa: PTH123 - discarded output


# --- the example stack: one image for web, worker and scheduler -------------------------------------


def test_example_builds_its_shared_image_once_and_every_command_runs(
    docker: engine.Engine, builds: Counter, containers: Counter
) -> None:
    settings = config.load(EXAMPLE)
    stack = stacks.compose_build(docker, settings, console=quiet_console(), options=options("example"))

    assert len(builds.calls) == 1, "three services with one `build:` must be built once"
    assert [s.service for s in stack.services] == ["scheduler", "web", "worker"]  # Compose's order
    assert len({s.image_id for s in stack.services}) == 1
    for item in stack.services:
        assert docker.image(item.image).id == stack.builds[0].image_id
    assert [s.built_for for s in stack.services] == ["web", "web", "web"]

    results = compose_checks.check_commands(docker, stack)
    assert len(containers.calls) == 1, "one container checks every service of an image"
    by_service = {r.subject: r for r in results}
    assert all(r.outcome is Outcome.PASS for r in results), [r.evidence for r in results]
    assert by_service["web"].evidence == "uvicorn -> /app/.venv/bin/uvicorn (runnable by uid 10001 (app))"
    assert by_service["worker"].evidence.startswith(
        "worker-stack-worker -> /app/.venv/bin/worker-stack-worker"
    )
    assert by_service["scheduler"].evidence.startswith("worker-stack-scheduler -> /app/.venv/bin/")


def test_verify_compose_reports_services_and_the_image_in_one_table(docker: engine.Engine) -> None:
    settings = config.load(EXAMPLE)
    report = compose_checks.verify_compose(
        docker,
        settings,
        console=quiet_console(),
        options=options("verify"),
        checks=VerifyOptions(skip=("lock-current",)),  # uv.lock's commit state is the repository's business
    )
    image = f"dockyard-test-{TEST_RUN}-verify-web:latest"
    subjects = {r.subject for r in report.results}
    assert subjects == {"web", "worker", "scheduler", image}
    for service in ("web", "worker", "scheduler"):
        rows = [r for r in report.results if r.subject == service]
        assert [r.check_id for r in rows] == ["built", "command", "non-root", "healthcheck"], service
    by_service = {r.subject: r for r in report.results if r.check_id == "healthcheck"}
    # Each service's own healthcheck (the worker's on 8001, the scheduler's heartbeat) with its command.
    assert by_service["worker"].details[0] == (
        "healthcheck from the compose file: python -m worker_stack.healthcheck 8001"
    )
    assert "fails without the app (exit 1)" in by_service["scheduler"].evidence
    assert by_service["web"].details[0].startswith("healthcheck from the image's HEALTHCHECK")
    assert {r.check_id for r in report.results if r.subject == image} >= {
        "non-root",
        "healthcheck",
        "imports",
    }
    assert report.meta["builds"] == "1"
    assert report.ok, [(r.subject, r.check_id, r.evidence) for r in report.results if r.failed]


def test_verify_compose_runs_only_the_checks_asked_for(docker: engine.Engine, containers: Counter) -> None:
    settings = config.load(EXAMPLE)
    with pytest.raises(UsageError, match="unknown check id"):
        compose_checks.verify_compose(
            docker, settings, console=quiet_console(), checks=VerifyOptions(skip=("comand",))
        )
    report = compose_checks.verify_compose(
        docker,
        settings,
        console=quiet_console(),
        options=options("only"),
        checks=VerifyOptions(only=("command",)),
    )
    assert {r.check_id for r in report.results} == {"built", "command"}
    assert len(containers.calls) == 1
    assert report.ok
    assert report.meta["only"] == "command"


# --- commands that do not run -----------------------------------------------------------------------

BROKEN_DOCKERFILE = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
RUN printf '#!/bin/sh\\necho hi\\n' > /opt/tool.sh && chmod 0644 /opt/tool.sh \\
    && printf '#!/bin/sh\\necho hi\\n' > /opt/root.sh && chmod 0700 /opt/root.sh \\
    && printf '#!/nonexistent/python\\n' > /usr/local/bin/broken && chmod 0755 /usr/local/bin/broken \\
    && useradd --uid 10001 --no-create-home app
ARG FLAVOUR=plain
LABEL dev.dockyard.test.flavour=${FLAVOUR}
USER 10001
CMD ["python3", "-c", "print('ok')"]
"""

BROKEN_COMPOSE = """\
x-app: &app
  build:
    context: .
    args:
      PYTHON_IMAGE: "${PYTHON_IMAGE}"
services:
  ok:
    <<: *app
  missing:
    <<: *app
    command: ["celery", "-A", "acme", "worker"]
  noexec:
    <<: *app
    command: ["/opt/tool.sh"]
  rootonly:
    <<: *app
    command: ["/opt/root.sh"]
  asroot:
    <<: *app
    command: ["/opt/root.sh"]
    user: "0"
  broken:
    <<: *app
    command: ["broken"]
  variant:
    build:
      context: .
      args:
        PYTHON_IMAGE: "${PYTHON_IMAGE}"
        FLAVOUR: spicy
    command: ["celery"]
"""


def stack_project(root: Path, compose_text: str, dockerfile: str = BROKEN_DOCKERFILE) -> config.Settings:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "acme"\nversion = "1.0"\n')
    (root / "Dockerfile").write_text(dockerfile)
    (root / "compose.yaml").write_text(textwrap.dedent(compose_text))
    return config.load(root)


def test_commands_that_cannot_run_fail_with_the_service_name(
    docker: engine.Engine, builds: Counter, containers: Counter, tmp_path: Path
) -> None:
    settings = stack_project(tmp_path / "stack", BROKEN_COMPOSE)
    stack = stacks.compose_build(docker, settings, console=quiet_console(), options=options("broken"))
    assert len(builds.calls) == 2, "six services share one build; `variant` has its own"

    results = {r.subject: r for r in compose_checks.check_commands(docker, stack)}
    assert len(containers.calls) == 3, "one container per image and user (the shared image twice: uid 0)"
    image = f"dockyard-test-{TEST_RUN}-broken-missing:latest"
    expected = {
        "ok": (Outcome.PASS, "python3 -> /usr/bin/python3 (runnable by uid 10001 (app))"),
        "missing": (Outcome.FAIL, f"celery not found on PATH in {image}"),
        "noexec": (
            Outcome.FAIL,
            "/opt/tool.sh -> /opt/tool.sh is not runnable by uid 10001 (app) (mode 0644)",
        ),
        "rootonly": (
            Outcome.FAIL,
            "/opt/root.sh -> /opt/root.sh is not runnable by uid 10001 (app) (mode 0700)",
        ),
        "asroot": (Outcome.PASS, "/opt/root.sh -> /opt/root.sh (runnable by uid 0 (root))"),
        "broken": (Outcome.FAIL, "its interpreter /nonexistent/python is missing or not runnable"),
        "variant": (Outcome.FAIL, "celery not found on PATH"),
    }
    for service, (outcome, evidence) in expected.items():
        assert results[service].outcome is outcome, (service, results[service].evidence)
        assert evidence in results[service].evidence, service


# --- compose files that are wrong: one clear line, exit 2 -------------------------------------------


@pytest.mark.parametrize(
    ("compose_text", "service", "message"),
    [
        (
            "services:\n  web:\n    image: x\n   bad: [\n",
            None,
            "yaml: line 1: did not find expected key",
        ),
        (
            "services:\n  web:\n    image: x\n    depends_on: [db]\n",
            None,
            'service "web" depends on undefined service "db"',
        ),
        (
            "services:\n  web:\n    image: x\n    commnd: [a]\n",
            None,
            "additional properties 'commnd' not allowed",
        ),
        (
            "services:\n  worker:\n    build: .\n",
            "wroker",
            "no service 'wroker' in the compose model. Perhaps",
        ),
        ("services:\n  cache:\n    image: redis:7\n", None, "has a `build:` section: nothing to build"),
    ],
)
def test_a_bad_compose_file_is_one_clear_line_and_exit_2(
    docker: engine.Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    compose_text: str,
    service: str | None,
    message: str,
) -> None:
    settings = stack_project(tmp_path / "bad", compose_text)
    chosen = options("bad", services=(service,) if service else ())
    with pytest.raises(UsageError) as caught:
        stacks.compose_build(docker, settings, console=quiet_console(), options=chosen)
    assert message in caught.value.message
    assert "\n" not in caught.value.message

    code = run_boundary(
        lambda: stacks.compose_build(docker, settings, console=quiet_console(), options=chosen)
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("dockyard: error:")
    assert "Traceback" not in err


def test_a_missing_compose_file_is_a_usage_error(docker: engine.Engine, tmp_path: Path) -> None:
    settings = stack_project(tmp_path / "none", "services: {}\n")
    with pytest.raises(UsageError, match=r"compose file .*other\.yaml does not exist"):
        stacks.compose_build(docker, settings, [tmp_path / "other.yaml"], console=quiet_console())


# --- service-level truth ----------------------------------------------------------------------------

WEBSTACK = ROOT / "tests" / "fixtures" / "webstack"


def test_user_root_and_a_curl_healthcheck_fail_per_service_while_the_image_passes(
    docker: engine.Engine,
) -> None:
    settings = config.load(WEBSTACK)
    report = compose_checks.verify_compose(
        docker,
        settings,
        console=quiet_console(),
        options=options("webstack"),
        checks=VerifyOptions(skip=("lock-current", "layer-cache")),
    )
    rows = {(r.subject, r.check_id): r for r in report.results}
    web = {check: rows["web", check] for check in ("built", "command", "non-root", "healthcheck")}
    assert web["built"].outcome is Outcome.PASS, web["built"].evidence
    assert web["command"].outcome is Outcome.PASS
    assert web["command"].evidence.endswith("(runnable by uid 0 (root))")
    assert web["non-root"].outcome is Outcome.FAIL
    assert web["non-root"].evidence.startswith(
        "user: root in the compose file runs the service as root (uid 0), whatever the image's USER "
        "(10001:10001)"
    )
    assert web["healthcheck"].outcome is Outcome.FAIL
    assert web["healthcheck"].evidence.startswith("the healthcheck cannot run: curl not found on PATH in")
    # The image itself is fine: its USER is not root and its own (Python) HEALTHCHECK works.
    image = f"dockyard-test-{TEST_RUN}-webstack-web:latest"
    assert rows[image, "non-root"].outcome is Outcome.PASS
    assert rows[image, "healthcheck"].outcome is Outcome.PASS, rows[image, "healthcheck"].evidence
    # A registry image dockyard does not build is one row, with the reason.
    cache = [r for r in report.results if r.subject == "cache"]
    assert [(r.check_id, r.outcome) for r in cache] == [("built", Outcome.SKIP)]
    assert cache[0].evidence.startswith("no `build:`: redis:7")
    assert not report.ok

    # Built as `build` builds: the CA bundle reached the build without a `secrets:` in the compose file
    # (it downloaded its dependencies), and the image carries the same OCI labels.
    labels = docker.image(image).labels
    assert labels["org.opencontainers.image.title"] == "webstack"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.base.name"] == settings.build_args.get(
        "PYTHON_IMAGE", "python:3.13-slim"
    )
    assert "org.opencontainers.image.created" in labels
    assert labels[LABEL_TEST_RUN] == TEST_RUN


HEALTH_DOCKERFILE = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
RUN useradd --uid 10001 --no-create-home app
USER 10001
CMD ["python3", "-c", "import os, time; os.mkdir('/tmp/up'); time.sleep(300)"]
"""

HEALTH_COMPOSE = """\
x-app: &app
  build:
    context: .
    args:
      PYTHON_IMAGE: "${PYTHON_IMAGE}"
x-fast: &fast
  interval: 1s
  timeout: 3s
  retries: 2
services:
  up:
    <<: *app
    healthcheck:
      <<: *fast
      test: ["CMD", "python3", "-c", "import os; raise SystemExit(0 if os.path.isdir('/tmp/up') else 1)"]
  down:
    <<: *app
    command: ["python3", "-c", "import time; time.sleep(300)"]
    healthcheck:
      <<: *fast
      test: ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9/')"]
  vacuous:
    <<: *app
    healthcheck:
      <<: *fast
      test: "python3 -c 'import urllib.request; urllib.request.urlopen(\\"http://127.0.0.1:9/\\")' || exit 0"
  crashes:
    <<: *app
    command: ["python3", "-c", "import os, time; os.mkdir('/tmp/up'); time.sleep(2.5); raise SystemExit(2)"]
    healthcheck:
      <<: *fast
      test: ["CMD", "python3", "-c", "import os; raise SystemExit(0 if os.path.isdir('/tmp/up') else 1)"]
  broken:
    build:
      context: ./broken
      args:
        PYTHON_IMAGE: "${PYTHON_IMAGE}"
"""


def test_service_healthchecks_run_with_the_services_command_and_a_failed_build_stops_nothing(
    docker: engine.Engine, tmp_path: Path
) -> None:
    root = tmp_path / "health"
    settings = stack_project(root, HEALTH_COMPOSE, HEALTH_DOCKERFILE)
    (root / "broken").mkdir()
    (root / "broken" / "Dockerfile").write_text("ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\nRUN exit 3\n")
    report = compose_checks.verify_compose(
        docker,
        settings,
        console=quiet_console(),
        options=options("health"),
        checks=VerifyOptions(only=("healthcheck",)),
    )
    rows = {(r.subject, r.check_id): r for r in report.results}
    health = {name: rows[name, "healthcheck"] for name in ("up", "down", "vacuous", "crashes", "broken")}
    assert health["up"].outcome is Outcome.PASS, health["up"].evidence
    assert "stayed healthy" in health["up"].evidence
    assert health["down"].outcome is Outcome.FAIL
    assert health["down"].evidence.startswith("unhealthy after"), health["down"].evidence
    assert any("Connection refused" in line for line in health["down"].details), health["down"].details
    assert health["vacuous"].outcome is Outcome.FAIL
    assert health["vacuous"].evidence.startswith("vacuous healthcheck"), health["vacuous"].evidence
    assert "`|| exit 0` turns every failure" in health["vacuous"].evidence
    assert health["crashes"].outcome is Outcome.FAIL
    assert "then exited (2)" in health["crashes"].evidence, health["crashes"].evidence
    # The build that failed is a FAIL row of its own; the others were built and checked all the same.
    assert rows["broken", "built"].outcome is Outcome.FAIL
    assert "exit code: 3" in "\n".join(rows["broken", "built"].details)
    assert (health["broken"].outcome, health["broken"].evidence) == (Outcome.SKIP, "the image did not build")
    assert rows["up", "built"].outcome is Outcome.PASS
    broken_image = f"dockyard-test-{TEST_RUN}-health-broken:latest"
    assert rows[broken_image, "healthcheck"].outcome is Outcome.SKIP


def test_a_compose_file_above_the_project_that_compose_rejects_is_named(
    docker: engine.Engine, tmp_path: Path
) -> None:
    # rodrigowb4ey/dataset-processor: docker-compose.yml at the repository root, the service project in
    # dataset_processor_api/, and an env_file (.env) a fresh clone does not have yet.
    root = tmp_path / "repo"
    project = root / "api"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "api"\nversion = "1.0"\n')
    (root / "docker-compose.yml").write_text(
        "services:\n  api:\n    build: ./api\n    env_file:\n      - .env\n"
    )
    settings = config.load(project)
    with pytest.raises(UsageError) as raised:
        compose.resolve(docker, settings, ())
    message = raised.value.message
    assert message.startswith(f"{root / 'docker-compose.yml'} is not a valid compose model"), message
    assert ".env" in message


UNPULLABLE_COMPOSE = """\
services:
  api:
    build:
      context: .
      args:
        PYTHON_IMAGE: "${PYTHON_IMAGE}"
    command: ["python3", "-c", "print('up')"]
  web:
    build: ./web
"""


def test_a_service_whose_base_image_cannot_be_pulled_is_an_error_and_stops_nothing(
    docker: engine.Engine, tmp_path: Path
) -> None:
    # dataset-processor and full-stack-fastapi-template build a Node frontend beside the Python service;
    # where its registry does not answer, that is not a finding about the Dockerfile: ERROR, not FAIL,
    # and the Python service is still built and checked.
    root = tmp_path / "unpullable"
    settings = stack_project(root, UNPULLABLE_COMPOSE, HEALTH_DOCKERFILE)
    (root / "web").mkdir()
    (root / "web" / "Dockerfile").write_text('FROM registry.invalid/acme/node:22-alpine\nCMD ["node"]\n')
    report = compose_checks.verify_compose(
        docker,
        settings,
        console=quiet_console(),
        options=options("unpullable"),
        checks=VerifyOptions(only=("command",)),
    )
    rows = {(r.subject, r.check_id): r for r in report.results}
    web = rows["web", "built"]
    assert web.outcome is Outcome.ERROR, web.evidence
    assert "registry.invalid/acme/node:22-alpine could not be pulled" in web.evidence
    assert rows["web", "command"].outcome is Outcome.SKIP
    assert rows["api", "built"].outcome is Outcome.PASS, rows["api", "built"].evidence
    assert rows["api", "command"].outcome is Outcome.PASS, rows["api", "command"].evidence


KEEP_GOING_COMPOSE = """\
x-labels: &labels
  labels:
    dev.dockyard.test-run: "${TEST_RUN}"
services:
  api:
    build:
      context: .
      <<: *labels
      args:
        PYTHON_IMAGE: "${PYTHON_IMAGE}"
    command: ["python3", "-c", "print('up')"]
  web:
    build:
      context: ./web
      <<: *labels
  worker:
    build:
      context: ./worker
      <<: *labels
      args:
        PYTHON_IMAGE: "${PYTHON_IMAGE}"
"""


def test_compose_build_builds_every_service_after_a_failed_one_and_exits_1(
    docker: engine.Engine,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # dataset-processor: an unpullable Node `web` between the API and the worker stopped the worker's
    # build. Every build runs; the table says which failed and why; the exit is 1. --fail-fast stops.
    root = tmp_path / "keepgoing"
    stack_project(root, KEEP_GOING_COMPOSE, HEALTH_DOCKERFILE)
    (root / "web").mkdir()
    (root / "web" / "Dockerfile").write_text('FROM registry.invalid/acme/node:22-alpine\nCMD ["node"]\n')
    (root / "worker").mkdir()
    (root / "worker" / "Dockerfile").write_text("ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\nRUN exit 3\n")
    monkeypatch.setenv("TEST_RUN", TEST_RUN)
    name = f"dockyard-test-{TEST_RUN}-keepgoing"
    argv = ["--project", str(root), "compose-build", "--project-name", name, "--quiet"]

    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 1, out + err
    rows = {
        cells[0]: cells
        for line in out.splitlines()
        if "│" in line
        for cells in [[c.strip() for c in line.strip("│").split("│")]]
    }
    assert rows["api"][1] == "PASS", out
    assert rows["web"][1] == "ERROR", out
    assert rows["worker"][1] == "FAIL", out
    assert "build 3/3: worker" in out, "the build after the failed one ran"
    assert "exit code: 3" in out
    assert docker.image_exists(f"{name}-api:latest")
    assert err.startswith("dockyard: error: 2 of 3 build(s) of"), err
    assert "web (ERROR), worker (FAIL)" in err

    code = cli.main([*argv, "--fail-fast"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "build 3/3" not in out, "--fail-fast stops at the first build that fails"
    assert "registry.invalid/acme/node:22-alpine could not be pulled" in err


SECRET_COMPOSE = """\
secrets:
  token:
    environment: DOCKYARD_TEST_UNSET_TOKEN
services:
  api:
    build:
      context: .
      args:
        PYTHON_IMAGE: "${PYTHON_IMAGE}"
  worker:
    build:
      context: ./worker
      secrets: [token]
"""


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        ({}, "build secret 'token' of service 'worker': environment variable DOCKYARD_TEST_UNSET_TOKEN"),
        ({"cache_to": ("acme/cache",)}, "cache-to 'acme/cache/api:buildcache' names no registry"),
    ],
)
def test_bad_input_to_any_build_is_exit_2_before_the_first_build(
    docker: engine.Engine,
    builds: Counter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chosen: dict[str, Any],
    message: str,
) -> None:
    # Building on after a failed build is for builds that fail; a secret that is not there or a cache
    # that cannot be pushed is the user's input to fix, said before anything is built.
    monkeypatch.delenv("DOCKYARD_TEST_UNSET_TOKEN", raising=False)
    root = tmp_path / "input"
    settings = stack_project(root, SECRET_COMPOSE, HEALTH_DOCKERFILE)
    (root / "worker").mkdir()
    (root / "worker" / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    with pytest.raises(UsageError, match=message):
        stacks.compose_build(docker, settings, console=quiet_console(), options=options("input", **chosen))
    assert builds.calls == [], "nothing was built"


def test_a_builds_cache_that_is_not_there_yet_is_one_warning_and_the_build_goes_on(
    docker: engine.Engine, registry_host: str, tmp_path: Path
) -> None:
    # The first run with --cache-from, before any --cache-to: BuildKit takes it as a miss and says
    # nothing; compose-build says so per build, as `build` does, and builds.
    settings = stack_project(tmp_path / "miss", UNPULLABLE_COMPOSE.partition("  web:")[0], HEALTH_DOCKERFILE)
    prefix = f"{registry_host}/dockyard-test/never-pushed-{TEST_RUN}"
    out = io.StringIO()
    stack = stacks.compose_build(
        docker,
        settings,
        console=Console(file=out, width=300),
        options=options("miss", cache_from=(prefix,)),
    )
    assert not stack.failed
    text = out.getvalue()
    assert f"cache-from: {prefix}/api:buildcache" in text
    warnings = [line for line in text.splitlines() if "warning:" in line]
    assert len(warnings) == 1, text
    assert f"{prefix}/api:buildcache" in warnings[0]
