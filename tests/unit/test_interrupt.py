"""Interrupts reach work blocked in other threads: child processes are killed, registered actions run
once, threads get to finish their cleanup, and work started after the interrupt is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard import interrupt, process
from dockyard.errors import CommandError


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    interrupt.reset()
    yield
    interrupt.reset()


def test_a_command_running_in_a_worker_thread_is_killed_at_once(tmp_path: Path) -> None:
    cleaned = threading.Event()

    def work() -> None:
        try:
            process.run(["sleep", "60"], timeout=120)
        finally:
            cleaned.set()

    future = interrupt.background(work, name="sleeper")
    time.sleep(0.3)
    started = time.monotonic()
    interrupt.signalled()
    assert interrupt.finish(timeout=5) == []
    assert time.monotonic() - started < 2
    assert cleaned.is_set()
    with pytest.raises(CommandError, match="failed"):
        future.result()


def test_a_streamed_command_is_killed_too() -> None:
    lines: list[str] = []
    future = interrupt.background(
        lambda: process.stream(["sh", "-c", "echo started; sleep 60"], on_line=lines.append), name="stream"
    )
    time.sleep(0.3)
    interrupt.signalled()
    assert interrupt.finish(timeout=5) == []
    assert future.result().returncode == -signal.SIGKILL
    assert lines == ["started"]


def test_work_started_after_the_interrupt_is_refused() -> None:
    interrupt.signalled()
    with pytest.raises(interrupt.Cancelled):
        process.run(["true"])
    ran: list[str] = []
    with pytest.raises(interrupt.Cancelled), interrupt.on_interrupt(lambda: ran.append("undo")):
        pass  # pragma: no cover - never entered
    assert ran == ["undo"], "a resource registered late is undone at once"


def test_actions_run_once_and_only_while_registered() -> None:
    ran: list[str] = []
    with interrupt.on_interrupt(lambda: ran.append("left")):
        pass
    with interrupt.on_interrupt(lambda: ran.append("held")):
        interrupt.signalled()
        interrupt.finish(timeout=2)
        interrupt.finish(timeout=2)
    assert ran == ["held"]


def test_cut_short_stops_only_the_given_work() -> None:
    slow = interrupt.background(lambda: process.run(["sleep", "60"], check=False), name="slow")
    other = interrupt.background(lambda: process.run(["sleep", "1"], check=False), name="other")
    time.sleep(0.3)
    interrupt.cut_short([slow], wait=5)
    assert slow.result(timeout=1).returncode == -signal.SIGKILL
    assert other.result(timeout=5).returncode == 0
    assert not interrupt.cancelled()


def test_abandoned_work_is_not_waited_for() -> None:
    gate = threading.Event()
    interrupt.background(gate.wait, name="export", wait=False)
    interrupt.signalled()
    started = time.monotonic()
    assert interrupt.finish(timeout=5) == []
    assert time.monotonic() - started < 1
    gate.set()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_command_line_exits_130_on_a_signal_while_a_command_runs(tmp_path: Path, sig: int) -> None:
    script = (
        "import sys\n"
        "from dockyard import cli, process\n"
        "def work():\n"
        "    print('running', flush=True)\n"
        "    process.run(['sleep', '60'], timeout=120)\n"
        "sys.exit(cli.run_boundary(work))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "running\n"  # past the imports, inside the boundary
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert time.monotonic() - sent < 5
    assert "dockyard: interrupted" in stderr
    assert "Traceback" not in stderr


def test_a_signal_inside_the_import_machinery_is_delivered_again_outside_it() -> None:
    # A frame whose code is importlib's own (what a module lock's weakref callback runs), and one of ours.
    scope: dict[str, object] = {}
    exec(compile("import sys\nframe = sys._getframe()", "<frozen importlib._bootstrap>", "exec"), scope)  # noqa: S102
    inside, outside = scope["frame"], sys._getframe()
    arrived = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: arrived.set())
    try:
        assert interrupt.deferred(signal.SIGUSR1, outside) is False
        assert not arrived.wait(0.2), "nothing is sent again for a frame of dockyard's"
        assert interrupt.deferred(signal.SIGUSR1, inside) is True  # type: ignore[arg-type]
        assert arrived.wait(5), "the deferred signal came again"
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_finishers_run_last_with_the_time_left_once_per_owner() -> None:
    order: list[str] = []
    released = threading.Event()

    def work() -> None:
        released.wait(5)
        order.append("worker done")

    interrupt.background(work, name="worker")
    owner = object()
    interrupt.at_finish(owner, lambda left: order.append(f"first {left:.0f}"))
    interrupt.at_finish(owner, lambda left: order.append(f"sweep {left > 0}"))  # replaces the first
    threading.Timer(0.2, released.set).start()
    assert interrupt.finish(timeout=5) == []
    assert order == ["worker done", "sweep True"]
