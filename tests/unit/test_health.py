"""Service or job, health tests as the engine runs them, and the healthcheck's verdicts, without an engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard import config
from dockyard.errors import BuildFailed
from dockyard.results import Outcome
from dockyard.verify import gather, health
from dockyard.verify.checks import CHECK_IDS
from dockyard.verify.checks.runtime import judge_health
from dockyard.verify.facts import HealthOutcome

# --- service or job ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "server"),
    [
        (["uvicorn", "app.main:app", "--port", "8000"], "uvicorn"),
        (["/app/.venv/bin/gunicorn", "-k", "uvicorn.workers.UvicornWorker", "app:app"], "gunicorn"),
        (["python", "-m", "uvicorn", "app:app"], "uvicorn"),
        (["uv", "run", "fastapi", "run", "--workers", "4"], "fastapi run"),
        (["fastapi", "dev", "src/app"], "fastapi dev"),
        (["flask", "--app", "hello", "run"], None),  # `flask run` only as written: not guessed
        (["flask", "run", "--host=0.0.0.0"], "flask run"),
        (["python", "manage.py", "runserver", "0.0.0.0:8000"], "manage.py runserver"),
        (["python3", "-m", "http.server", "8000"], "python -m http.server"),
        (["/bin/sh", "-c", "alembic upgrade head && exec hypercorn app:app"], "hypercorn"),
        (["bash", "-ec", "exec granian --interface asgi app:app"], "granian"),
        (["tini", "--", "daphne", "-p", "8000", "proj.asgi:application"], "daphne"),
        (["celery", "-A", "acme", "worker"], None),
        (["arq", "worker.WorkerSettings"], None),
        (["python", "-m", "acme.worker"], None),
        (["tinyapp"], None),
        ([], None),
    ],
)
def test_server_commands_are_recognised(argv: list[str], server: str | None) -> None:
    assert health.server_command(argv) == server


def test_role_is_inferred_from_expose_healthcheck_or_a_server_command() -> None:
    role = health.infer_role(None, exposed=("8000/tcp",), healthcheck=False, command=["api-service"])
    assert role.service
    assert role.describe() == "service: inferred from EXPOSE 8000/tcp"
    role = health.infer_role(None, exposed=(), healthcheck=True, command=["uvicorn", "a:b"])
    assert role.describe() == (
        "service: inferred from HEALTHCHECK, the server command uvicorn in ENTRYPOINT/CMD"
    )
    worker = health.infer_role(None, exposed=(), healthcheck=False, command=["celery", "-A", "x", "worker"])
    assert not worker.service
    assert worker.describe().startswith(
        "job: inferred: no EXPOSE, no HEALTHCHECK, no known server command in ENTRYPOINT/CMD (celery -A x "
        "worker)"
    )


def test_configuration_wins_over_inference() -> None:
    role = health.infer_role(False, exposed=("8000/tcp",), healthcheck=True, command=["uvicorn"])
    assert role.describe() == "job: configured (service = false in [tool.dockyard])"
    role = health.infer_role(True, exposed=(), healthcheck=False, command=["tinyapp"])
    assert role.describe() == "service: configured (service = true in [tool.dockyard])"


# --- the test ---------------------------------------------------------------------------------------


def test_image_healthcheck_in_nanoseconds() -> None:
    test = health.HealthTest.from_image(
        {"Test": ["CMD-SHELL", "curl -f http://localhost:8000/ || exit 1"], "Timeout": 3_000_000_000,
         "Retries": 2, "StartPeriod": 5_000_000_000, "Interval": 30_000_000_000}
    )  # fmt: skip
    assert test.argv == ("/bin/sh", "-c", "curl -f http://localhost:8000/ || exit 1")
    assert test.executable == "curl"
    assert (test.timeout, test.retries, test.start_period) == (3.0, 2, 5.0)
    override = test.engine_override()
    assert override["interval"] == 500_000_000
    assert override["timeout"] == 3_000_000_000
    assert override["test"] == ["CMD-SHELL", "curl -f http://localhost:8000/ || exit 1"]


@pytest.mark.parametrize(
    ("raw", "argv", "executable"),
    [
        ({"test": ["CMD", "curl", "-f", "http://localhost/"]}, ("curl", "-f", "http://localhost/"), "curl"),
        ({"test": "wget -qO- localhost"}, ("/bin/sh", "-c", "wget -qO- localhost"), "wget"),
        ({"test": ["CMD-SHELL", "P=1 nc -z ::1 1"]}, ("/bin/sh", "-c", "P=1 nc -z ::1 1"), "nc"),
        ({"test": ["CMD-SHELL", "[ -f /tmp/ready ]"]}, ("/bin/sh", "-c", "[ -f /tmp/ready ]"), None),
    ],
)  # fmt: skip
def test_compose_healthcheck_as_the_engine_runs_it(
    raw: dict[str, Any], argv: tuple[str, ...], executable: str | None
) -> None:
    test = health.HealthTest.from_compose({**raw, "timeout": "1m30s", "retries": 3})
    assert test is not None
    assert test.argv == argv
    assert test.executable == executable
    assert test.timeout == 90.0


def test_compose_healthcheck_without_a_test_is_none_and_none_is_disabled() -> None:
    assert health.HealthTest.from_compose({"disable": True}) is None
    test = health.HealthTest.from_compose({"test": ["NONE"]})
    assert test is not None
    assert test.disabled


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), (None, None), ("soon", None), (3, 3.0)],
)
def test_durations_as_compose_prints_them(text: str | int | None, seconds: float | None) -> None:
    assert health.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("test", "why"),
    [
        (["CMD", "true"], "`true` always succeeds"),
        (["CMD-SHELL", "exit 0"], "`exit 0` always succeeds"),
        (["CMD-SHELL", "curl -f http://localhost:8000/ || exit 0"], "`|| exit 0` turns every failure"),
        (["CMD-SHELL", "curl -f http://localhost:8000/ || true"], "`|| true` turns every failure"),
        (["CMD-SHELL", "curl -f http://localhost:8000/; exit 0"], "`; exit 0` turns every failure"),
        (["CMD", "python", "-c", "import app"], "it succeeds with the app not started"),
    ],
)
def test_why_a_test_is_vacuous(test: list[str], why: str) -> None:
    assert why in health.why_vacuous(health.HealthTest(tuple(test)))


def test_run_options_reproduce_the_service() -> None:
    run = health.Run(argv=("worker", "--port", "8001"), user="root", environment={"A": "1"}, working_dir="/w")
    assert run.container_options() == {
        "entrypoint": ["worker"],
        "command": ["--port", "8001"],
        "user": "root",
        "environment": {"A": "1"},
        "working_dir": "/w",
    }
    assert health.Run().container_options() == {}


# --- verdicts ---------------------------------------------------------------------------------------

SERVICE = health.Role(True, "inferred from EXPOSE 8000/tcp")
TEST = health.HealthTest(("CMD", "python", "-m", "app.health"))
FAILS_WITHOUT_APP = {"argv": ["python", "-m", "app.health"], "returncode": 1, "timed_out": False}


def judge(outcome: HealthOutcome, ran: dict[str, Any] | None = FAILS_WITHOUT_APP, **extra: Any) -> Any:
    return judge_health(TEST, outcome, ran, role=SERVICE, timeout=60.0, settle=None, **extra)


def test_healthy_and_settled_passes_with_what_was_seen() -> None:
    verdict = judge(HealthOutcome("healthy", 1.2, settled=2.1, settle_probes=3))
    assert verdict.outcome is Outcome.PASS
    assert verdict.evidence == (
        "healthy after 1.2s, stayed healthy 2.1s (3 more probes); fails without the app (exit 1) "
        "(python -m app.health); service: inferred from EXPOSE 8000/tcp"
    )


def test_exiting_within_the_settle_window_fails() -> None:
    verdict = judge(
        HealthOutcome("healthy", 1.2, exit_code=1, settled=1.8, lost="exited", log=("exit 0: ok",))
    )
    assert verdict.outcome is Outcome.FAIL
    assert verdict.evidence.startswith(
        "healthy after 1.2s, then exited (1) 1.8s later, within the settle window"
    )
    assert "health: exit 0: ok" in verdict.details


def test_turning_unhealthy_within_the_settle_window_fails() -> None:
    verdict = judge(HealthOutcome("healthy", 1.0, settled=2.5, lost="unhealthy"))
    assert verdict.outcome is Outcome.FAIL
    assert "then unhealthy 2.5s later, within the settle window" in verdict.evidence


def test_a_test_that_succeeds_without_the_app_is_vacuous() -> None:
    vacuous = health.HealthTest(("CMD-SHELL", "curl -f localhost || exit 0"))
    ran = {"argv": list(vacuous.argv), "returncode": 0, "timed_out": False}
    verdict = judge_health(
        vacuous, HealthOutcome("healthy", 0.7, settled=2.0, settle_probes=3), ran,
        role=SERVICE, timeout=60.0, settle=None,
    )  # fmt: skip
    assert verdict.outcome is Outcome.FAIL
    assert verdict.evidence.startswith("vacuous healthcheck (curl -f localhost || exit 0): it exits 0 where")
    assert "`|| exit 0` turns every failure of the test into success" in verdict.evidence


def test_a_test_whose_executable_is_missing_fails_by_name() -> None:
    ran = {"argv": ["curl", "-f", "x"], "error": "executable not found: curl", "returncode": None}
    verdict = judge(HealthOutcome("unhealthy", 2.0), ran)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.evidence.startswith("the health test cannot run: executable not found: curl in the image")


def test_without_the_run_where_the_app_is_not_started_it_is_an_error_not_a_pass() -> None:
    verdict = judge(
        HealthOutcome("healthy", 1.0, settled=2.0, settle_probes=3), None, unavailable="probe: boom"
    )
    assert verdict.outcome is Outcome.ERROR
    assert "whether the test can fail was not checked: probe: boom" in verdict.evidence


# --- no row silently missing ------------------------------------------------------------------------


def test_turned_off_checks_are_skip_rows_with_the_reason(tmp_path: Path) -> None:
    settings = config.Settings(
        project_dir=tmp_path, project_name="acme", project_version="1", image="acme",
        dockerfile=tmp_path / "Dockerfile", context=tmp_path,
        verify=config.VerifySettings(skip=("size",)),
    )  # fmt: skip
    options = gather.VerifyOptions(skip=("layer-cache", "smoke"), skip_reasons={"smoke": "no smoke here"})
    assert gather.skipped_checks(settings, options) == {
        "size": "turned off by [tool.dockyard.verify] skip",
        "layer-cache": "turned off on the command line (--skip)",
        "smoke": "no smoke here",
    }
    chosen = {c.id for c in gather.selected_checks(settings, options)}
    assert chosen.isdisjoint({"size", "layer-cache", "smoke"})
    # A build that failed still reports every check: `builds` fails, the turned-off ones say why.
    error = BuildFailed("build of Dockerfile failed: exit code: 3", argv=["docker"], returncode=1, output="x")
    report = gather.build_failed_report(settings, error, options)
    outcomes = {r.check_id: (r.outcome, r.evidence) for r in report.results}
    assert set(outcomes) == set(CHECK_IDS)
    assert outcomes["builds"][0] is Outcome.FAIL
    assert outcomes["size"] == (Outcome.SKIP, "turned off by [tool.dockyard.verify] skip")
    assert outcomes["imports"] == (Outcome.SKIP, "the image did not build")
    # Under --only, only what was asked for is reported (the report says so in its meta).
    only = gather.build_failed_report(settings, error, gather.VerifyOptions(only=("builds",)))
    assert [r.check_id for r in only.results] == ["builds"]


def test_probing_faster_keeps_the_engines_window_before_unhealthy() -> None:
    # A FastAPI service that needs ~4 s to listen, under a compose healthcheck of interval 10s and 5
    # retries (no start period): the engine calls it unhealthy only after ~50 s, so the watched
    # container, probed every 0.5 s, gets those 50 s as its start period, not 5 x 0.5 s.
    test = health.HealthTest.from_compose(
        {
            "test": ["CMD", "curl", "-f", "http://localhost:8000/"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 5,
        }
    )
    assert test is not None
    assert test.window == 50.0
    override = test.engine_override()
    assert (override["interval"], override["retries"]) == (500_000_000, 5)
    assert override["start_period"] == 50_000_000_000
    # An image's HEALTHCHECK: its start period comes first; unset values are the engine's defaults.
    image = health.HealthTest.from_image(
        {"Test": ["CMD", "true"], "StartPeriod": 5_000_000_000, "Interval": 2_000_000_000, "Retries": 2}
    )
    assert image.engine_override()["start_period"] == 9_000_000_000
    assert health.HealthTest(test=("CMD", "true")).window == 90.0  # 3 retries, 30 s apart
