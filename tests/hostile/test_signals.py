"""Ctrl-C and SIGTERM at 0.5, 2 and 5 s into `build`, `verify` and `size-report --deep`: exit 130, and
nothing left behind (no container, no image, no temp directory, no changed file).

The work is made long on purpose so that every moment falls inside it: the build sleeps in a RUN
step (SLOW), verify waits on a healthcheck that never passes while its layer-cache check builds a
scratch copy that sleeps too, and `--deep` reads the export of a 200,000-file image. How fast each
stops is measured by bench/interrupt.py; here the bound is only that it stops, cleanly, in seconds.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard import engine
from tests.hostile.conftest import RUN, SESSION, Images, labelled, remove_labelled
from tests.hostile.harness import ANSI, Untouched, check_no_temp, environment

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("hostile-engine")]

STOP_BOUND = 15.0  # seconds from the signal to the exit, cleanup included (typically well under 1 s)


@dataclass(frozen=True)
class Row:
    command: str
    signal: signal.Signals
    at: float

    @property
    def id(self) -> str:
        return f"{self.command}-{self.signal.name.lower()}-{self.at:g}s"


ROWS = [
    Row(command, sig, at)
    for command in ("build", "verify", "deep")
    for sig, at in (
        (signal.SIGINT, 0.5),
        (signal.SIGTERM, 0.5),
        (signal.SIGTERM, 2.0),
        (signal.SIGINT, 2.0),
        (signal.SIGINT, 5.0),
        (signal.SIGTERM, 5.0),
    )
]


def _argv(command: str, images: Images) -> list[str]:
    if command == "build":
        return ["build", "--build-arg", "SLOW=60"]
    if command == "verify":
        return ["verify", images["hanging"], "--skip", "smoke"]
    return ["size-report", "--deep", images["many"]]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_signal_stops_dockyard_cleanly(
    row: Row, app: Callable[..., Path], images: Images, docker: engine.Engine, tmp_path: Path
) -> None:
    project = app("healthcheck-timeout = 120\n", service=row.command == "verify")
    argv = _argv(row.command, images)  # the session's images are built before the clock starts
    temp, state = tmp_path / "tmp", tmp_path / "state"
    temp.mkdir()
    state.mkdir()
    untouched = Untouched.of(project)
    label = f"{RUN}-{row.id}"
    extra = {
        "DOCKYARD_IMAGE": f"dockyard-hostile/{row.id}",
        "DOCKYARD_BUILD_ARG_HOSTILE_RUN": label,
        "DOCKYARD_BUILD_ARG_SLOW": "60",  # the layer-cache scratch builds sleep too
    }
    env = environment(temp, state, extra, machine=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard", *argv], cwd=project, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
    )  # fmt: skip
    try:
        time.sleep(row.at)
        assert proc.poll() is None, "the work ended before the signal: make it longer"
        sent = time.monotonic()
        proc.send_signal(row.signal)
        stdout, stderr = proc.communicate(timeout=120)
        stopped = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        remove_labelled(docker, label)
    output = ANSI.sub("", stdout + stderr)
    assert proc.returncode == 130, output[-3000:]
    assert stopped < STOP_BOUND, f"stopped {stopped:.1f} s after the signal"
    assert "Traceback" not in output
    assert "dockyard: error:" not in output
    assert "dockyard: interrupted" in output
    assert "still cleaning up" not in output
    untouched.check()
    check_no_temp(temp)
    containers, made = labelled(docker, label)
    assert containers == [], "containers left"
    assert labelled(docker, SESSION)[0] == [], "containers of the session's images left"
    assert made == [], "images left (an interrupted build tags nothing; scratch images are removed)"


def test_every_moment_and_both_signals_are_covered() -> None:
    assert {(r.command, r.at) for r in ROWS} == {
        (c, t) for c in ("build", "verify", "deep") for t in (0.5, 2, 5)
    }
    assert {r.signal for r in ROWS} == {signal.SIGINT, signal.SIGTERM}
