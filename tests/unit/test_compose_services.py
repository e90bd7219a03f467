"""verify-compose's service rows judged from what a service's containers showed, without an engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard import config
from dockyard.build.stack import ServiceBuild
from dockyard.image import metadata as images
from dockyard.project import compose
from dockyard.results import Outcome
from dockyard.verify import compose as compose_checks
from dockyard.verify.facts import HealthOutcome

IMAGE_HEALTH = {"Test": ["CMD", "python", "-m", "app.health"], "Interval": 30_000_000_000}


def image_info(**config_fields: Any) -> images.ImageInfo:
    conf = {"Cmd": ["uvicorn", "app:app"], "User": "10001", "ExposedPorts": {"8000/tcp": {}}, **config_fields}
    return images.ImageInfo.from_inspect("acme-web:latest", {"Id": "sha256:" + "a" * 64, "Config": conf}, [])


def subject(
    info: images.ImageInfo | None = None, answer: dict[str, Any] | None = None, **service_fields: Any
) -> Any:
    fields: dict[str, Any] = {
        "name": "web",
        "image": "acme-web",
        "build": None,
        "command": None,
        "entrypoint": None,
    }
    fields.update(service_fields)
    service = compose.Service(**fields)
    info = info or image_info()
    item = ServiceBuild(service.name, "acme-web:latest", info.id, 1, 1.0, "web")
    test, test_from = compose_checks._effective_test(service, info)
    made = compose_checks._Subject(
        service, item, info, compose_checks.effective_command(service, info), test, test_from
    )
    if answer is not None:
        made.answer = compose_checks._Answer(answer["uid"], answer.get("user"), (), (), "python")
    return made


def settings(tmp_path: Path) -> config.Settings:
    return config.Settings(
        project_dir=tmp_path, project_name="acme", project_version="1", image="acme",
        dockerfile=tmp_path / "Dockerfile", context=tmp_path,
    )  # fmt: skip


# --- non-root ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["root", "0", "0:0", "root:app"])
def test_user_root_in_the_compose_file_fails_whatever_the_image_says(user: str) -> None:
    result = compose_checks.non_root_result(subject(user=user, answer={"uid": 0, "user": "root"}))
    assert result.outcome is Outcome.FAIL
    assert result.subject == "web"
    assert result.evidence.startswith(f"user: {user} in the compose file runs the service as root (uid 0)")
    assert "whatever the image's USER (10001)" in result.evidence


def test_user_root_fails_even_when_the_container_could_not_answer() -> None:
    made = subject(user="root")
    made.error = "no Python in redis:7 to run the command check"
    assert compose_checks.non_root_result(made).outcome is Outcome.FAIL


def test_a_user_that_resolves_to_uid_0_fails_and_a_non_root_one_passes() -> None:
    result = compose_checks.non_root_result(subject(user="admin", answer={"uid": 0, "user": "admin"}))
    assert (result.outcome, result.evidence) == (
        Outcome.FAIL, "runs as uid 0 (admin): user: admin in the compose file"
    )  # fmt: skip
    result = compose_checks.non_root_result(subject(answer={"uid": 10001, "user": "app"}))
    assert (result.outcome, result.evidence) == (
        Outcome.PASS, "runs as uid 10001 (app) (the image's USER 10001)"
    )  # fmt: skip


def test_an_unknown_uid_is_an_error_not_a_pass() -> None:
    made = subject()
    made.error = "no Python in acme-web:latest"
    result = compose_checks.non_root_result(made)
    assert result.outcome is Outcome.ERROR
    assert "no Python" in result.evidence


# --- the effective healthcheck ----------------------------------------------------------------------


def test_the_compose_healthcheck_wins_over_the_image_and_disable_turns_it_off() -> None:
    info = image_info(Healthcheck=IMAGE_HEALTH)
    own = subject(info, healthcheck={"test": ["CMD", "curl", "-f", "http://localhost:8000/"]})
    assert own.test is not None
    assert (own.test.argv[0], own.test_from) == ("curl", "the compose file")
    inherited = subject(info, command=("worker",))
    assert inherited.test is not None
    assert (inherited.test.argv, inherited.test_from) == (
        ("python", "-m", "app.health"),
        "the image's HEALTHCHECK",
    )
    timed = subject(info, healthcheck={"timeout": "2s"})
    assert timed.test is not None
    assert (timed.test.argv[0], timed.test.timeout) == ("python", 2.0)
    off = subject(info, healthcheck={"disable": True})
    assert off.test is None
    assert off.test_from == "disabled in the compose file (`disable: true`)"


def test_a_service_without_a_healthcheck_fails_and_a_job_skips(tmp_path: Path) -> None:
    web = subject(image_info(), ports=("8000/tcp",))
    result = compose_checks.health_result(web, settings(tmp_path))
    assert result.outcome is Outcome.FAIL
    assert "no healthcheck: neither the compose file nor the image sets one" in result.evidence
    assert "service: inferred from ports/expose 8000/tcp" in result.evidence
    # Each reason names where it was found: uv-docker-example publishes 8000 and its image exposes
    # nothing; an image's EXPOSE alone says EXPOSE.
    published = subject(image_info(ExposedPorts={}), ports=("8000/tcp",))
    assert (
        "inferred from ports/expose 8000/tcp,"
        in compose_checks.health_result(published, settings(tmp_path)).evidence
    )
    exposed = subject(image_info())
    assert (
        "inferred from EXPOSE 8000/tcp," in compose_checks.health_result(exposed, settings(tmp_path)).evidence
    )
    # A worker of the same image: its own command, so the image's EXPOSE says nothing about it.
    worker = subject(image_info(), name="worker", command=("celery", "-A", "acme", "worker"))
    result = compose_checks.health_result(worker, settings(tmp_path))
    assert result.outcome is Outcome.SKIP
    assert result.evidence.startswith("job: inferred: no ports/expose, no healthcheck")
    off = subject(image_info(Healthcheck=IMAGE_HEALTH), healthcheck={"disable": True})
    result = compose_checks.health_result(off, settings(tmp_path))
    assert (result.outcome, result.evidence) == (
        Outcome.SKIP, "healthcheck disabled in the compose file (`disable: true`)"
    )  # fmt: skip


def test_a_healthcheck_whose_executable_is_missing_fails_by_name(tmp_path: Path) -> None:
    made = subject(healthcheck={"test": ["CMD", "curl", "-f", "http://localhost:8000/"]}, answer={"uid": 0})
    made.health_exe = {
        "name": "curl",
        "path": None,
        "executable": False,
        "searched": ["/app/.venv/bin", "/usr/bin"],
    }
    result = compose_checks.health_result(made, settings(tmp_path))
    assert result.outcome is Outcome.FAIL
    assert result.evidence == "the healthcheck cannot run: curl not found on PATH in acme-web:latest"
    assert result.details[0] == "healthcheck from the compose file: curl -f http://localhost:8000/"
    assert "searched: /app/.venv/bin:/usr/bin" in result.details


def test_a_service_healthcheck_that_never_gets_healthy_fails_with_its_log(tmp_path: Path) -> None:
    made = subject(healthcheck={"test": ["CMD", "python", "-m", "app.health"]}, answer={"uid": 10001})
    made.health_exe = {"name": "python", "path": "/usr/bin/python", "executable": True}
    made.health_ran = {"argv": ["python", "-m", "app.health"], "returncode": 1, "timed_out": False}
    made.health = HealthOutcome("unhealthy", 3.1, log=("exit 1: connection refused",))
    result = compose_checks.health_result(made, settings(tmp_path))
    assert result.outcome is Outcome.FAIL
    assert result.evidence.startswith("unhealthy after 3.1s")
    assert "health: exit 1: connection refused" in result.details
    made.health = HealthOutcome("healthy", 1.1, settled=2.0, settle_probes=3)
    result = compose_checks.health_result(made, settings(tmp_path))
    assert result.outcome is Outcome.PASS, result.evidence
    assert "fails without the app (exit 1)" in result.evidence
