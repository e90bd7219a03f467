"""Healthchecks: is an image (or a compose service) a service or a job, its health test as the engine
runs it, a container watched until healthy and then through a settle window, and what makes a test
vacuous.

A service is something that listens or declares its health: EXPOSE, a HEALTHCHECK, or a known server
command (uvicorn, gunicorn, `fastapi run`, `manage.py runserver`...) in ENTRYPOINT/CMD. Anything else
(a worker, a CLI, a batch job) is a job, whose healthcheck is not required. Configuration wins.

The live run overrides the test's interval with a short one (`PROBE_INTERVAL`), so a container reports
`healthy` within a second or two instead of after the image's own interval, and after its first
`healthy` it must stay running and healthy for three more probes and at least 2 s (or
`healthcheck-settle` seconds): a container that is healthy at 1.2 s and exits at 3 s fails. Probing
faster must not shorten the time the app has to start: the engine calls a container unhealthy only
after its start period and `retries` failed probes an interval apart, so the watched container gets
that whole window as its start period (a server that needs 4 s is healthy under `--interval=10s
--retries=5`, and so it is here); a running app that never gets healthy is judged at the end of that
window, or of `healthcheck-timeout` if sooner.
"""

from __future__ import annotations

import posixpath
import re
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.engine import Engine, first_line
from dockyard.errors import DockyardError, EngineUnavailable
from dockyard.image.metadata import ImageInfo
from dockyard.verify.facts import HealthOutcome

PROBE_INTERVAL = 0.5  # seconds between probes in the live run, instead of the image's interval
SETTLE_PROBES = 3  # probes that must pass after the first `healthy`, by default...
SETTLE_MIN = 2.0  # ...and at least this many seconds: healthy at 1.2 s and gone at 3 s must fail
POLL = 0.2  # seconds between looks at the container's state
DEFAULT_PROBE_TIMEOUT = 5.0  # a test without its own timeout (the engine's default is 30 s)
ENGINE_INTERVAL = 30.0  # the engine's defaults for a healthcheck that sets no interval...
ENGINE_RETRIES = 3  # ...or no retries
VACUITY_TIMEOUT = 10.0  # at most this long for the run of the test where the app is not started

# Executables that serve: a command running one of them listens, whatever its arguments.
SERVER_EXECUTABLES = frozenset(
    {"uvicorn", "gunicorn", "hypercorn", "granian", "daphne", "uwsgi", "waitress-serve", "sanic"}
)
# (word, next word) pairs that serve: `fastapi run`, `python -m http.server`, `manage.py runserver`.
SERVER_SUBCOMMANDS = frozenset(
    {
        ("fastapi", "run"), ("fastapi", "dev"), ("flask", "run"), ("litestar", "run"),
        ("manage.py", "runserver"), ("django-admin", "runserver"), ("-m", "http.server"),
        ("streamlit", "run"), ("panel", "serve"), ("bokeh", "serve"),
    }
)  # fmt: skip
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh"})


# --- service or job ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    """Whether the image (or service) must have a working healthcheck, and why dockyard thinks so."""

    service: bool
    reason: str  # "inferred from EXPOSE 8000/tcp", "configured (service = false in [tool.dockyard])"

    def describe(self) -> str:
        return f"{'service' if self.service else 'job'}: {self.reason}"


def _words(argv: Sequence[str]) -> list[str]:
    """The command's words, with a shell's `-c` script split into words too (`sh -c "exec uvicorn"`)."""
    words: list[str] = []
    for index, word in enumerate(argv):
        words.append(word)
        flags = argv[index + 1] if index + 1 < len(argv) else ""
        if (
            posixpath.basename(word) in SHELLS
            and flags.startswith("-")
            and "c" in flags
            and index + 2 < len(argv)
        ):
            try:
                words += shlex.split(argv[index + 2], comments=True)
            except ValueError:
                words += argv[index + 2].split()
    return words


def server_command(argv: Sequence[str]) -> str | None:
    """The known server command `argv` runs (`uvicorn`, `fastapi run`...), or None."""
    words = [word.strip("'\";&|()") for word in _words(argv)]
    names = [posixpath.basename(word) for word in words]
    for index, name in enumerate(names):
        if name in SERVER_EXECUTABLES:
            return name
        if index + 1 < len(names) and (name, words[index + 1]) in SERVER_SUBCOMMANDS:
            return f"{name} {words[index + 1]}" if name != "-m" else f"python -m {words[index + 1]}"
    return None


def infer_role(
    configured: bool | None,
    *,
    exposed: Sequence[str],
    healthcheck: bool,
    command: Sequence[str],
    exposed_as: str = "EXPOSE",
    healthcheck_as: str = "HEALTHCHECK",
    command_as: str = "ENTRYPOINT/CMD",
    configured_as: str = "[tool.dockyard]",
    job_hint: str | None = None,
) -> Role:
    """Service or job: configuration when set, else EXPOSE, a healthcheck or a server command."""
    if configured is not None:
        return Role(configured, f"configured (service = {str(configured).lower()} in {configured_as})")
    reasons = []
    if exposed:
        reasons.append(f"{exposed_as} {' '.join(exposed)}")
    if healthcheck:
        reasons.append(healthcheck_as)
    if server := server_command(command):
        reasons.append(f"the server command {server} in {command_as}")
    if reasons:
        return Role(True, "inferred from " + ", ".join(reasons))
    shown = " ".join(command) or "none"
    hint = job_hint or f"set `service = true` in {configured_as} if it serves"
    return Role(
        False,
        f"inferred: no {exposed_as}, no {healthcheck_as}, no known server command in {command_as} "
        f"({shown}); {hint}",
    )


# --- the test ---------------------------------------------------------------------------------------


def parse_duration(text: str | float | int | None) -> float | None:
    """Seconds from a Go duration as Compose prints it (`1m30s`, `500ms`, `10s`); None when unset."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    return sum(float(number) * units[unit] for number, unit in parts)


@dataclass(frozen=True)
class HealthTest:
    """A healthcheck: its test (`CMD ...` or `CMD-SHELL ...`) and timings in seconds (None: unset)."""

    test: tuple[str, ...]
    timeout: float | None = None
    retries: int | None = None
    start_period: float | None = None
    interval: float | None = None

    @classmethod
    def from_image(cls, healthcheck: Mapping[str, Any]) -> HealthTest:
        """From the image config's `Healthcheck` (durations in nanoseconds)."""

        def seconds(key: str) -> float | None:
            value = healthcheck.get(key)
            return value / 1e9 if isinstance(value, int | float) and value else None

        retries = healthcheck.get("Retries")
        return cls(
            test=tuple(healthcheck.get("Test") or ()),
            timeout=seconds("Timeout"),
            retries=retries if isinstance(retries, int) and retries else None,
            start_period=seconds("StartPeriod"),
            interval=seconds("Interval"),
        )

    @classmethod
    def from_compose(cls, raw: Mapping[str, Any]) -> HealthTest | None:
        """From a service's resolved `healthcheck:`; None when it sets no test of its own."""
        test = raw.get("test")
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        if not isinstance(test, list) or not test or not all(isinstance(t, str) for t in test):
            return None
        retries = raw.get("retries")
        return cls(
            test=tuple(test),
            timeout=parse_duration(raw.get("timeout")),
            retries=retries if isinstance(retries, int) and retries else None,
            start_period=parse_duration(raw.get("start_period")),
            interval=parse_duration(raw.get("interval")),
        )

    @property
    def disabled(self) -> bool:
        return not self.test or self.test[0] == "NONE"

    @property
    def argv(self) -> tuple[str, ...]:
        """What the engine executes in the container: `CMD-SHELL x` is `/bin/sh -c x`."""
        if self.test and self.test[0] == "CMD-SHELL":
            return ("/bin/sh", "-c", " ".join(self.test[1:]))
        if self.test and self.test[0] == "CMD":
            return self.test[1:]
        return self.test

    @property
    def executable(self) -> str | None:
        """The program the test runs: for a shell test, the first word of its script when plain."""
        argv = self.argv
        if not argv:
            return None
        if self.test[0] != "CMD-SHELL":
            return argv[0]
        try:
            words = shlex.split(argv[2], comments=True)
        except ValueError:
            return None
        first = next((w for w in words if "=" not in w), None)  # `VAR=x cmd`: the command
        if first is None or first in ("exec", "test", "[", "true", "false", ":", "exit"):
            return None
        return first if re.fullmatch(r"[A-Za-z0-9_./+-]+", first) else None

    @property
    def shown(self) -> str:
        if self.test and self.test[0] == "CMD-SHELL":
            return " ".join(self.test[1:])
        return " ".join(self.argv)

    @property
    def probe_timeout(self) -> float:
        return self.timeout or DEFAULT_PROBE_TIMEOUT

    @property
    def window(self) -> float:
        """Seconds the engine gives the app before calling it unhealthy: the start period, then
        `retries` failed probes an interval apart (the engine's defaults where unset)."""
        retries = self.retries or ENGINE_RETRIES
        return (self.start_period or 0.0) + (self.interval or ENGINE_INTERVAL) * retries

    def engine_override(self) -> dict[str, Any]:
        """The healthcheck a watched container runs: this test, probed every `PROBE_INTERVAL`, with the
        engine's whole window before unhealthy as its start period (failures inside a start period do
        not count, a success counts at once), so probing faster never leaves the app less time."""
        return {
            "test": list(self.test),
            "interval": int(PROBE_INTERVAL * 1e9),
            "timeout": int(self.probe_timeout * 1e9),
            "retries": self.retries or ENGINE_RETRIES,
            "start_period": int(self.window * 1e9),
        }


_ALWAYS = re.compile(r"\s*((/usr)?(/bin/)?true|:|exit(\s+0)?)\s*")
_SWALLOWED = re.compile(r"(\|\||;)\s*((/usr)?(/bin/)?true|:|exit(\s+0)?)\s*;?\s*$")


def why_vacuous(test: HealthTest) -> str:
    """Why a test that succeeded where the app was not started cannot fail, as precisely as it shows."""
    text = test.shown.strip()
    if _ALWAYS.fullmatch(text):
        return f"`{text}` always succeeds"
    if match := _SWALLOWED.search(text):
        return f"`{match.group(0).strip()}` turns every failure of the test into success"
    return "it succeeds with the app not started, so it cannot tell a running app from a dead one"


# --- the live run -----------------------------------------------------------------------------------


class Cancelled(DockyardError):
    """A watch was stopped because the run is being interrupted."""


@dataclass(frozen=True)
class Run:
    """How the watched container runs: the service's command, user and environment (None: the image's)."""

    argv: tuple[str, ...] | None = None
    user: str | None = None
    environment: Mapping[str, str] | None = None
    working_dir: str | None = None

    def container_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.argv is not None:
            options["entrypoint"] = list(self.argv[:1]) or [""]
            options["command"] = list(self.argv[1:])
        if self.user:
            options["user"] = self.user
        if self.environment:
            options["environment"] = dict(self.environment)
        if self.working_dir:
            options["working_dir"] = self.working_dir
        return options


def watch(
    engine: Engine,
    image: str,
    test: HealthTest,
    *,
    timeout: float,
    settle: float | None = None,
    run: Run | None = None,
    stop: threading.Event | None = None,
) -> HealthOutcome:
    """Start a container of `image` with `test` probed every `PROBE_INTERVAL`; wait for `healthy` (at
    most `timeout` s), then watch it stay running and healthy through the settle window: `settle`
    seconds, or by default `SETTLE_PROBES` more probes and `SETTLE_MIN` seconds. `stop` ends the watch
    early (the run is being interrupted): the container is removed and nothing is judged."""
    import docker.errors  # noqa: PLC0415

    options = (run or Run()).container_options()
    stop = stop or threading.Event()
    if stop.is_set():
        raise Cancelled("the healthcheck was not started: the run is being interrupted")
    with engine.container(image, healthcheck=test.engine_override(), network_mode="none", **options) as made:
        try:
            made.start()
        except docker.errors.APIError as exc:
            raise EngineUnavailable(f"starting a container of {image}: {first_line(exc)}") from None
        start = time.monotonic()
        status, healthy_at, lost = "starting", None, None
        seen: set[str] = set()  # probes finished before the first `healthy`
        probes = 0
        limit = (
            settle
            if settle is not None
            else SETTLE_MIN + SETTLE_PROBES * (PROBE_INTERVAL + test.probe_timeout)
        )
        while True:
            if stop.is_set():
                raise Cancelled("the healthcheck was stopped: the run is being interrupted")
            made.reload()
            state = made.attrs["State"]
            health = state.get("Health") or {}
            status = health.get("Status", "none")
            now = time.monotonic()
            running = state.get("Status") == "running"
            if healthy_at is None:
                if not running:
                    status = "exited"
                    break
                if status == "healthy":
                    healthy_at = now
                    seen = {str(entry.get("Start")) for entry in health.get("Log") or []}
                elif status == "unhealthy" or now - start > timeout:
                    break
            else:
                if not running or status != "healthy":
                    lost = "exited" if not running else status
                    break
                probes = sum(1 for entry in health.get("Log") or [] if str(entry.get("Start")) not in seen)
                watched = now - healthy_at
                settled = (
                    probes >= SETTLE_PROBES and watched >= SETTLE_MIN if settle is None else watched >= settle
                )
                if settled or watched >= limit:  # limit: probes that hang do not hold the run
                    break
            time.sleep(POLL)
        end = time.monotonic()
        log = tuple(
            f"exit {entry.get('ExitCode')}: {_tail(entry.get('Output') or '')}"
            for entry in (health.get("Log") or [])[-3:]
        )
        tail = made.logs(tail=15).decode(errors="replace").splitlines()
        return HealthOutcome(
            status="healthy" if healthy_at is not None else status,
            seconds=(healthy_at if healthy_at is not None else end) - start,
            log=log,
            container_log=tuple(tail),
            exit_code=None if running else state.get("ExitCode"),
            settled=end - healthy_at if healthy_at is not None else 0.0,
            settle_probes=probes,
            lost=lost,
        )


def image_role(configured: bool | None, info: ImageInfo) -> Role:
    """Service or job for an image: `service` from configuration, else inferred from its metadata."""
    return infer_role(
        configured,
        exposed=info.exposed_ports,
        healthcheck=info.healthcheck is not None,
        command=(*(info.entrypoint or ()), *(info.cmd or ())),
    )


def find_run(ran: Sequence[Mapping[str, Any]], test: HealthTest) -> Mapping[str, Any] | None:
    """The run of `test` among a probe's command results (matched by argv), or None."""
    wanted = list(test.argv)
    return next((item for item in reversed(ran) if item.get("argv") == wanted), None)


def _tail(output: str, limit: int = 300) -> str:
    """A probe's output as one line: its end (a traceback's last lines say what failed)."""
    text = " | ".join(line.strip() for line in output.strip().splitlines() if line.strip())
    return text if len(text) <= limit else "..." + text[-limit:]
