"""The healthcheck against the real engine: service or job inferred from the image, the settle window
after the first `healthy`, and vacuous tests that pass with nothing running.

Images derive from tests/fixtures/tinyapp's good image (see test_checks), so nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from dockyard import config, engine
from dockyard.build import buildkit as build
from dockyard.results import Outcome
from dockyard.verify import gather as verify
from dockyard.verify import health
from tests.engine.conftest import LABEL_TEST_RUN, ROOT, TEST_RUN
from tests.engine.test_checks import Variant, good, run, variant

__all__ = ["good", "variant"]  # fixtures shared with test_checks

# Up at 1.2 s (the mark the test reads), gone with exit 1 at 3 s.
SHORT_LIVED = """\
FROM {good}
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s CMD ["python", "-c", "import os; raise SystemExit(0 if os.path.isdir('/tmp/up') else 1)"]
CMD ["python", "-c", "import os, time; time.sleep(1.2); os.mkdir('/tmp/up'); print('up', flush=True); time.sleep(1.8); raise SystemExit(1)"]
"""  # noqa: E501 - Dockerfile lines as a user writes them


def test_a_container_healthy_then_exiting_within_the_settle_window_fails(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("short-lived", {"Dockerfile": SHORT_LIVED})
    result = run(docker, settings, ref, "healthcheck", healthcheck_timeout=30.0)["healthcheck"]
    assert result.outcome is Outcome.FAIL, result.evidence
    assert result.evidence.startswith("healthy after"), result.evidence
    assert "then exited (1)" in result.evidence
    assert "within the settle window" in result.evidence
    assert any("up" in line for line in result.details)


def test_a_configured_settle_window_of_zero_stops_at_the_first_healthy(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("short-lived-0", {"Dockerfile": SHORT_LIVED})
    result = run(docker, settings, ref, "healthcheck", healthcheck_settle=0.0)["healthcheck"]
    # Nothing watched after `healthy`: the exit at 3 s is not seen (what the settle window is for).
    assert result.outcome is Outcome.PASS, result.evidence
    assert "stayed healthy" not in result.evidence


SERVER = """\
FROM {good}
HEALTHCHECK --interval=30s --timeout=10s --retries=2 {test}
CMD ["python", "-m", "http.server", "8000", "--bind", "127.0.0.1"]
"""
URLOPEN = "python -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/', timeout=2)\""


@pytest.mark.parametrize(
    ("test", "why"),
    [
        ("CMD true", "`true` always succeeds"),
        (f"CMD {URLOPEN} || exit 0", "`|| exit 0` turns every failure of the test into success"),
        ('CMD ["python", "-c", "import http.server"]', "it succeeds with the app not started"),
    ],
)
def test_a_vacuous_healthcheck_fails_and_says_why(
    docker: engine.Engine, variant: Variant, test: str, why: str
) -> None:
    settings, ref = variant("vacuous", {"Dockerfile": SERVER.replace("{test}", test)})
    result = run(docker, settings, ref, "healthcheck")["healthcheck"]
    assert result.outcome is Outcome.FAIL, result.evidence
    assert result.evidence.startswith("vacuous healthcheck"), result.evidence
    assert "exits 0 where the app is not started" in result.evidence
    assert why in result.evidence


def test_a_real_healthcheck_on_a_server_passes_and_fails_without_the_app(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("server", {"Dockerfile": SERVER.replace("{test}", f"CMD {URLOPEN}")})
    settings = dataclasses.replace(settings, service=None)  # inferred from the server command
    result = run(docker, settings, ref, "healthcheck")["healthcheck"]
    assert result.outcome is Outcome.PASS, result.evidence
    assert "stayed healthy" in result.evidence, result.evidence
    assert "fails without the app (exit 1)" in result.evidence, result.evidence
    assert result.evidence.endswith(
        "service: inferred from HEALTHCHECK, the server command python -m http.server in ENTRYPOINT/CMD"
    )


@pytest.mark.parametrize(
    ("dockerfile", "outcome", "evidence"),
    [
        (None, Outcome.SKIP, "job: inferred: no EXPOSE, no HEALTHCHECK, no known server command"),
        ("FROM {good}\nEXPOSE 8000\n", Outcome.FAIL, "no HEALTHCHECK in the image"),
    ],
)
def test_service_or_job_is_inferred_from_the_image(
    docker: engine.Engine,
    good: tuple[config.Settings, build.BuildResult],
    variant: Variant,
    dockerfile: str | None,
    outcome: Outcome,
    evidence: str,
) -> None:
    if dockerfile is None:
        settings, ref = good[0], good[1].tags[0]
    else:
        settings, ref = variant("exposed", {"Dockerfile": dockerfile})
    settings = dataclasses.replace(settings, service=None)  # tinyapp says `service = false`
    result = run(docker, settings, ref, "healthcheck")["healthcheck"]
    assert result.outcome is outcome, result.evidence
    assert evidence in result.evidence
    if outcome is Outcome.FAIL:
        assert "service: inferred from EXPOSE 8000/tcp" in result.evidence


WORKER = ROOT / "tests" / "fixtures" / "jobworker"


def test_a_worker_image_is_judged_a_job_with_zero_configuration(docker: engine.Engine) -> None:
    settings = config.load(WORKER)
    assert settings.service is None  # nothing configured but the image name
    request = build.request_for(settings, tags=(f"dockyard-test/jobworker:{TEST_RUN}",))
    built = build.build(
        docker, dataclasses.replace(request, labels={**request.labels, LABEL_TEST_RUN: TEST_RUN})
    )
    options = verify.VerifyOptions(skip=("lock-current", "layer-cache"), build=built)
    report = verify.verify_image(docker, settings, built.tags[0], options)
    results = {r.check_id: r for r in report.results}
    health = results["healthcheck"]
    assert health.outcome is Outcome.SKIP
    assert health.evidence == (
        "job: inferred: no EXPOSE, no HEALTHCHECK, no known server command in ENTRYPOINT/CMD (jobworker); "
        "set `service = true` in [tool.dockyard] if it serves"
    )
    # The turned-off checks are rows too, with the reason.
    assert results["layer-cache"].outcome is Outcome.SKIP
    assert results["layer-cache"].evidence == "turned off on the command line (--skip)"
    failing = [(r.check_id, r.evidence) for r in report.results if r.failed]
    assert failing == []


def test_a_stopped_watch_ends_at_once_and_leaves_no_container(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult]
) -> None:
    ref = good[1].tags[0]
    never = health.HealthTest(("CMD", "python", "-c", "raise SystemExit(1)"), retries=1000)
    stop = threading.Event()
    stop.set()
    with pytest.raises(health.Cancelled, match="not started"):
        health.watch(docker, ref, never, timeout=300, stop=stop)
    stop.clear()
    outcome: list[BaseException] = []

    def watch() -> None:
        try:
            health.watch(docker, ref, never, timeout=300, stop=stop, run=health.Run(argv=("sleep", "300")))
        except health.Cancelled as exc:
            outcome.append(exc)

    worker = threading.Thread(target=watch)
    worker.start()
    time.sleep(2)
    stopped = time.monotonic()
    stop.set()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert time.monotonic() - stopped < 5
    assert outcome
    assert "stopped" in str(outcome[0])
    mine = docker.client.api.containers(all=True, filters={"label": f"{engine.LABEL_RUN}={docker.run_id}"})
    assert mine == []


# Modelled on full-stack-fastapi-template's backend: `fastapi run` needs a few seconds before it listens,
# and its healthcheck (interval 10s, 5 retries, no start period) gives it ~50 s. Probed every 0.5 s with
# the same 5 retries, it would be called unhealthy at ~2.5 s, before the server is up.
SLOW_START = """\
FROM {good}
HEALTHCHECK --interval=10s --timeout=5s --retries=5 CMD ["python", "-c", "import os; raise SystemExit(0 if os.path.isdir('/tmp/up') else 1)"]
CMD ["python", "-c", "import os, time; time.sleep(4); os.mkdir('/tmp/up'); print('listening', flush=True); time.sleep(300)"]
"""  # noqa: E501 - Dockerfile lines as a user writes them


def test_a_service_that_needs_seconds_to_start_gets_the_engines_window(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("slow-start", {"Dockerfile": SLOW_START})
    settings = dataclasses.replace(settings, service=True)
    result = run(docker, settings, ref, "healthcheck", healthcheck_timeout=30.0)["healthcheck"]
    assert result.outcome is Outcome.PASS, (result.evidence, result.details)
    healthy_after = float(result.evidence.removeprefix("healthy after ").split("s", 1)[0])
    assert 4.0 <= healthy_after < 10.0, result.evidence  # as soon as it listens, not at the first 10 s probe
