"""Time `dockyard doctor` on this machine, side by side in one run: the whole command (a new process,
imports included), its checks alone (in this process, concurrently, as the command runs them), the
same checks one after another, and `docker info` for scale.

    uv run python bench/doctor.py [--runs N]

The CPU column (this process and its children, user + system) is what a busy machine cannot
inflate: on a machine shared by many jobs the wall time is mostly waiting for a core. Runs are
interleaved (one of each per round) so a busy engine weighs on all of them alike; the table shows the
median and the fastest run of each. doctor changes nothing, so nothing is cleaned up.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dockyard import config
from dockyard.machine import doctor

ROOT = Path(__file__).resolve().parents[1]


def sequential(timings: dict[str, list[float]] | None = None) -> None:
    """The same checks, one after another (what running them concurrently saves), each timed."""
    ctx = doctor.context(ROOT, config.effective_environment())
    for item in (*doctor.ENGINE_CHAIN, *(i for i in doctor.ORDER if i not in doctor.ENGINE_CHAIN)):
        start = time.perf_counter()
        doctor.CHECKS[item](ctx)
        if timings is not None:
            timings.setdefault(item, []).append(time.perf_counter() - start)


def command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "doctor"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(
            f"dockyard doctor exited {done.returncode}: this machine is not ready\n{done.stdout}"
        )


def docker_info() -> None:
    subprocess.run(["docker", "info"], capture_output=True, check=True)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (what a busy machine cannot inflate)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds of measurements (default 5)")
    args = parser.parse_args()
    cases: dict[str, Callable[[], object]] = {
        "dockyard doctor (process)": command,
        "checks, concurrent": lambda: doctor.diagnose(ROOT),
        "checks, one by one": sequential,
        "docker info (process)": docker_info,
    }
    timings: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    doctor.diagnose(ROOT)  # warm the imports and the engine's caches once
    for _ in range(args.runs):
        for name, case in cases.items():
            before = _cpu()
            start = time.perf_counter()
            case()
            timings[name].append(time.perf_counter() - start)
            cpu[name].append(_cpu() - before)
    reference = statistics.median(timings["dockyard doctor (process)"])
    load = os.getloadavg()[0]
    print(
        f"{'':<28} {'median':>8} {'fastest':>8} {'vs doctor':>10} {'CPU':>7}"
        f"   ({args.runs} runs, load {load:.1f})"
    )
    for name, values in timings.items():
        median = statistics.median(values)
        spent = statistics.median(cpu[name])
        print(f"{name:<28} {median:>7.2f}s {min(values):>7.2f}s {median / reference:>9.2f}x {spent:>6.2f}s")
    per_check: dict[str, list[float]] = {}
    for _ in range(args.runs):
        sequential(per_check)
    print("\neach check alone (median): " + ", ".join(
        f"{item} {statistics.median(values):.2f}s" for item, values in per_check.items()
    ))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
