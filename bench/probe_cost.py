"""What the in-container probe costs, side by side in one run: a bare `docker run` of the image (the
floor), and the probe with verify's spec (one container: the root walk and the app's part, concurrently).

    uv run python bench/probe_cost.py IMAGE [--project DIR] [--runs 7] [--old-probe FILE]

`--old-probe FILE` adds a single-file probe of an earlier dockyard (e.g. `git show REV:src/dockyard/
verify/probe.py > old.py`), run the way that version ran it: as the image's user, with the first
`python` on the image's PATH, given the spec keys it knew. Runs are interleaved (floor, old, new), so
a busy machine slows all of them alike; medians are printed with the ratio to the floor, plus the
probe's own time and the CPU seconds it used inside the container (which a busy machine distorts less).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard import config, engine
from dockyard.image import metadata as images
from dockyard.verify import gather, runner

OLD_KEYS = (
    "imports",
    "commands",
    "forbidden_names",
    "forbidden_paths",
    "sniff_private_keys",
    "deadline_seconds",
)
CPU = 'report["seconds"] = _elapsed(started)'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--project", type=Path, default=Path.cwd())
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--old-probe", type=Path)
    args = parser.parse_args()
    settings = config.load(args.project)
    made = engine.connect(settings.docker)
    info = images.inspect_image(made, args.image)
    spec = gather.probe_spec(settings, info)

    def floor() -> dict[str, Any]:
        made.run_once(args.image, ["-c", "pass"], entrypoint=["python3"], network_mode="none")
        return {}

    def new() -> dict[str, Any]:
        return runner.run_probe(made, args.image, spec)

    runs: dict[str, Callable[[], dict[str, Any]]] = {"floor (docker run)": floor}
    if args.old_probe is not None:
        # The old probe, with its CPU time added to its answer the way the new one reports it.
        source = args.old_probe.read_text().replace(
            CPU,
            CPU + '; import resource as _r; report["cpu_seconds"] = sum(getattr(_r.getrusage(w), f) '
            "for w in (_r.RUSAGE_SELF, _r.RUSAGE_CHILDREN) for f in ('ru_utime', 'ru_stime'))",
        )
        old_spec = {key: spec[key] for key in OLD_KEYS}

        def old() -> dict[str, Any]:
            return runner.run_python(made, args.image, source, old_spec, what="the old probe")[0]

        runs["old probe"] = old
    runs["probe"] = new
    wall: dict[str, list[float]] = {name: [] for name in runs}
    inside: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.runs):
        for name, run in runs.items():
            started = time.perf_counter()
            answer = run()
            wall[name].append(time.perf_counter() - started)
            if "seconds" in answer:
                inside[name].append(float(answer["seconds"]))
            if answer.get("cpu_seconds") is not None:
                cpu[name].append(float(answer["cpu_seconds"]))
    base = statistics.median(wall["floor (docker run)"])
    print(f"{args.image}, {args.runs} interleaved runs, medians")
    for name in runs:
        median = statistics.median(wall[name])
        line = f"  {name:20s} {median:6.3f} s  {median / base:5.2f}x"
        if inside[name]:
            line += f"   in the container {statistics.median(inside[name]):6.3f} s"
        if cpu[name]:
            line += f", CPU {statistics.median(cpu[name]):6.3f} s"
        print(line)


if __name__ == "__main__":
    main()
