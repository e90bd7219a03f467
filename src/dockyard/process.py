"""The one place dockyard starts external commands (docker, uv, git): argv lists, never shell strings.

Every command has a timeout; a command that fails raises `CommandError` carrying the argv, the exit
code and the output. On timeout or Ctrl-C the whole process group is killed, so no child outlives us.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard import interrupt
from dockyard.errors import CommandError, CommandTimeout

DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


def _environment(env: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if env is None else {**os.environ, **env}


def _signal_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    _signal_group(proc)
    proc.wait()


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    what: str | None = None,
    stdin: str | None = None,
) -> Completed:
    """Run argv to completion and capture its output.

    `env` is laid over the current environment. With `check`, a non-zero exit raises CommandError
    whose message starts with `what` (default: the command line).
    """
    start = time.monotonic()
    interrupt.check()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=_environment(env),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # own process group: a timeout kills its children too
        )
    except OSError as exc:
        raise _not_started(argv, exc) from None
    try:
        with interrupt.on_interrupt(lambda: _signal_group(proc)):  # also when run in a worker thread
            stdout, stderr = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CommandTimeout(
            f"{what or _show(argv)} did not finish within {timeout:g} s and was stopped"
        ) from None
    except BaseException:  # Ctrl-C: leave nothing running behind us
        _kill_group(proc)
        raise
    done = Completed(tuple(argv), proc.returncode, stdout, stderr, time.monotonic() - start)
    if check and done.returncode != 0:
        raise CommandError(
            f"{what or _show(argv)} failed (exit {done.returncode}): {_last_line(done.output)}",
            argv=argv, returncode=done.returncode, output=done.output,
        )  # fmt: skip
    return done


def stream(
    argv: Sequence[str],
    *,
    on_line: Callable[[str], None],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    keep: int = 20_000,
) -> Completed:
    """Run argv, passing each output line (stdout and stderr merged) to `on_line` as it arrives.

    Returns the last `keep` lines as stdout; never raises on a non-zero exit (callers decide).
    """
    start = time.monotonic()
    lines: deque[str] = deque(maxlen=keep)
    interrupt.check()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
    except OSError as exc:
        raise _not_started(argv, exc) from None
    deadline = start + timeout
    timer = _Deadline(proc, deadline)
    try:
        with interrupt.on_interrupt(lambda: _signal_group(proc)):
            for raw in proc.stdout or ():
                line = raw.rstrip("\n")
                lines.append(line)
                on_line(line)
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise CommandTimeout(f"{_show(argv)} did not finish within {timeout:g} s") from None
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        timer.cancel()
    if timer.fired:
        raise CommandTimeout(f"{_show(argv)} did not finish within {timeout:g} s and was stopped")
    return Completed(tuple(argv), proc.returncode, "\n".join(lines), "", time.monotonic() - start)


class _Deadline:
    """Kills a streaming process group when its deadline passes (reading lines blocks otherwise)."""

    def __init__(self, proc: subprocess.Popen[str], deadline: float) -> None:
        self.fired = False
        self._proc = proc
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def cancel(self) -> None:
        self._timer.cancel()


def _not_started(argv: Sequence[str], exc: OSError) -> CommandError:
    if isinstance(exc, FileNotFoundError):
        message = f"{argv[0]} not found: install it or put it on PATH"
    else:  # a directory, a file that is not executable, a bad interpreter line
        message = f"{argv[0]} cannot be run ({exc.strerror or exc}): point to an executable"
    return CommandError(message, argv=argv, returncode=127, output="")


def _show(argv: Sequence[str]) -> str:
    return " ".join(argv[:4]) + (" ..." if len(argv) > 4 else "")


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
