"""Stopping promptly on Ctrl-C or SIGTERM, with everything dockyard made cleaned up.

Python delivers the interrupt to the main thread only, but much of a run waits elsewhere: verify's
gatherers and size-report's probe and export scan run in threads, blocked in a child process, a
container or a socket read that the interrupt never reaches. So whoever holds such a resource says
how to cut it short (`on_interrupt`: kill a process group, remove a container), and work runs in
threads started by `background`. On the first signal, `signalled` runs every registered action at
once (in a thread of its own, so the main thread can unwind meanwhile); the doors then `finish`:
wait, briefly, for the threads to complete their own cleanup (temp directories, scratch images)
before the process exits. A thread that holds nothing to clean up (an export being read) is not
waited for: it is a daemon, and ends with the process.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import TypeVar

__all__ = [
    "Cancelled",
    "at_finish",
    "background",
    "cancelled",
    "check",
    "cut_short",
    "deferred",
    "finish",
    "on_interrupt",
    "reset",
    "signalled",
]

T = TypeVar("T")

CLEANUP_WAIT = 10.0  # seconds the doors wait at most for threads to finish their cleanup


class Cancelled(KeyboardInterrupt):
    """Work that tried to start (a process, a container) after the run was interrupted."""


_lock = threading.RLock()  # reentrant: the signal handler runs in a thread that may hold it
_actions: dict[int, tuple[threading.Thread, Callable[[], None]]] = {}  # key -> (registered by, action)
_keys = itertools.count()
_cancelled = threading.Event()
_workers: dict[threading.Thread, bool] = {}  # live background threads -> whether to wait for them
_runner: threading.Thread | None = None
_finishers: dict[int, Callable[[float], None]] = {}  # id(owner) -> what to do last, given the time left


def cancelled() -> bool:
    return _cancelled.is_set()


def check() -> None:
    """Raise `Cancelled` once the run was interrupted: call before starting anything new."""
    if _cancelled.is_set():
        raise Cancelled


REDELIVER_AFTER = 0.02  # seconds: how soon a signal that arrived inside the import machinery comes again


def deferred(signum: int, frame: FrameType | None) -> bool:
    """For a signal handler that raises: True (and the signal sent again in a moment) when the main
    thread was interrupted inside importlib's own code. An exception raised there can be swallowed (a
    module lock's weakref callback ignores it) with the global import lock still held, and every thread
    that imports afterwards waits on it for ever: seen as a verify hanging after Ctrl-C while its
    gatherers imported. The module code an import runs is not importlib's: raising there is safe."""
    if frame is None or not frame.f_code.co_filename.startswith("<frozen importlib"):
        return False
    timer = threading.Timer(REDELIVER_AFTER, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()
    return True


def _quietly(action: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):
        action()


@contextlib.contextmanager
def on_interrupt(action: Callable[[], None]) -> Iterator[None]:
    """Within the block, an interrupt runs `action` (from another thread) to cut the work short.
    Entered after the interrupt, the action runs at once and `Cancelled` is raised."""
    key = next(_keys)
    with _lock:
        late = _cancelled.is_set()
        if not late:
            _actions[key] = (threading.current_thread(), action)
    if late:
        _quietly(action)
        raise Cancelled
    try:
        yield
    finally:
        with _lock:
            _actions.pop(key, None)


def _run_actions(only: set[threading.Thread] | None = None) -> None:
    """Run the registered actions (of the threads `only`, when given), each once, concurrently."""
    with _lock:
        keys = [k for k, (owner, _) in _actions.items() if only is None or owner in only]
        actions = [_actions.pop(k)[1] for k in keys]
    threads = [threading.Thread(target=_quietly, args=(a,), daemon=True) for a in actions]
    for thread in threads:  # concurrently: removing 3 containers takes as long as removing 1
        thread.start()
    for thread in threads:
        thread.join()


def signalled() -> None:
    """The first interrupt: mark the run cancelled and start cutting every registered work short."""
    global _runner  # noqa: PLW0603 - one interrupt per process
    with _lock:
        if _cancelled.is_set():
            return
        _cancelled.set()
    _runner = threading.Thread(target=_run_actions, name="dockyard-interrupt", daemon=True)
    _runner.start()


def finish(timeout: float = CLEANUP_WAIT) -> list[str]:
    """After an interrupt: cut short what is still registered, then wait up to `timeout` for the
    background threads that clean up after themselves. Returns the names of those still running."""
    signalled()
    deadline = time.monotonic() + timeout
    if _runner is not None:
        _runner.join(max(0.0, deadline - time.monotonic()))
    with _lock:  # a thread the interrupt stopped from starting has nothing to finish
        waited = [thread for thread, wait in _workers.items() if wait and thread.ident is not None]
    for thread in waited:
        thread.join(max(0.0, deadline - time.monotonic()))
    with _lock:
        finishers = list(_finishers.values())
    for finisher in finishers:  # what the threads handed on (a removal queued in the background)
        _quietly(lambda: finisher(max(0.0, deadline - time.monotonic())))  # noqa: B023 - called at once
    return [thread.name for thread in waited if thread.is_alive()]


def at_finish(owner: object, finisher: Callable[[float], None]) -> None:
    """`finisher(seconds_left)` runs when an interrupted run finishes, after the threads it waits for:
    the last sweep of what `owner` made (an engine removes its run's containers). Once per owner."""
    with _lock:
        _finishers[id(owner)] = finisher


_threads: dict[concurrent.futures.Future[object], threading.Thread] = {}


def cut_short(futures: Iterable[concurrent.futures.Future[T]], wait: float = CLEANUP_WAIT) -> None:
    """Stop the background work of `futures` the way an interrupt would (one that ran out of time),
    and give its threads up to `wait` seconds to clean up."""
    with _lock:
        threads = {_threads[f] for f in futures if f in _threads}  # type: ignore[index]
    _run_actions(only=threads)
    deadline = time.monotonic() + wait
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def background(fn: Callable[[], T], *, name: str, wait: bool = True) -> concurrent.futures.Future[T]:
    """Run `fn` in a daemon thread and return its future. An interrupted run waits for it (`finish`)
    when `wait`, so its cleanup completes; with `wait=False` (it holds nothing to clean up, such as
    an export being read) it is abandoned."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:
                    future.set_exception(exc)
        finally:
            with _lock:
                _workers.pop(threading.current_thread(), None)
                _threads.pop(future, None)  # type: ignore[arg-type]

    thread = threading.Thread(target=run, name=f"dockyard-{name}", daemon=True)
    with _lock:
        _workers[thread] = wait
        _threads[future] = thread  # type: ignore[index]
    try:
        thread.start()
    except BaseException:  # an interrupt before it started: forget it
        with _lock:
            _workers.pop(thread, None)
            _threads.pop(future, None)  # type: ignore[arg-type]
        raise
    return future


def reset() -> None:
    """Forget an interrupt (for a process that goes on to run dockyard again, such as a test)."""
    global _runner  # noqa: PLW0603
    with _lock:
        _cancelled.clear()
        _actions.clear()
    _runner = None
