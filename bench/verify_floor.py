"""Benchmark: how far dockyard's front door sits above the floor, one bare `docker run` of the image.

    uv run python bench/verify_floor.py [--image dockyard:0.1.0] [--runs 5] [--warmup 1]
                                        [--no-layer-cache] [--no-cst]

In one run, on one image (pinned under a bench tag, so a rebuild elsewhere cannot swap it), this
times, round-robin and `--runs` times each after `--warmup` untimed rounds, every row as the process
a user would start (interpreter start, imports and engine connection included):

- the floor: `docker run --rm --entrypoint python IMAGE -c pass`, with the `docker` first on PATH;
- `dockyard --version`, `dockyard --help`, and `dockyard verify IMAGE --only no-such-check` (a
  command that stops before it touches the engine: exit 2);
- `dockyard verify IMAGE --only` the six checks container-structure-test can also express
  (non-root, imports, smoke, no-dev-packages, runtime-env, no-stray-files);
- `dockyard verify IMAGE --skip layer-cache --skip healthcheck`, every other check, twice: as it
  runs here (its layers read from overlay2's layer directories when the engine is local and the
  bench runs as root) and with `DOCKYARD_LAYER_SOURCE=export` (the layers from `docker save`);
- `dockyard verify IMAGE`, every check (the layer-cache check rebuilds a scratch copy of the project
  twice; `--no-layer-cache` leaves this row out);
- the same six checks through the other doors: `invoke verify --image IMAGE --only ...` and
  `nox -s verify-image -- --image IMAGE --only ...`, and `invoke --list`;
- container-structure-test on the minimal suite (bench/cst/dockyard.yaml) and on the equal-coverage
  suite bench/verify_vs_cst.py generates (`--no-cst` leaves both out).

It prints each row's median, fastest run and every run, its ratio to the floor (in the same round,
so the machine's load mostly cancels), the containers each row started per run (from the engine's
event stream), and the issue's targets met or not. Then, untimed, one traced `dockyard verify
--only <six>` process: when its imports were done, and every request it sent the engine, in order,
with the time it answered. Every row must exit as expected, or the bench says so and exits 1. The
bench tag and any container or image either tool left are removed at the end.

Python start-up is measured as users meet it from their second run on: with bytecode caches. When
PYTHONDONTWRITEBYTECODE is set (some CI images and shells set it), every import compiles its source
each time, which would triple the start-up rows; the timed processes run without it, so that the
untimed round writes the caches (`__pycache__`, ignored by git), and the header says so.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import verify_vs_cst as cst_bench  # the CST side, the image pinning, the events and the cleanup

from dockyard import config
from dockyard.engine import connect
from dockyard.errors import DockyardError

ROOT = cst_bench.ROOT
SIX = cst_bench.SHARED
# The timed processes' environment: Python may write its bytecode caches (see the docstring).
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
TARGETS = {"start-up": 0.15, "before the engine": 0.25, "six": 1.5, "all": 2.0, "door": 0.2}

# One verify, traced from inside the process: every request it sends the engine is logged (by urllib3 for
# docker-py, by dockyard.engine for its own client on the local socket).
TRACE = """\
import logging, sys, time
start = time.perf_counter()
class Format(logging.Formatter):
    def format(self, record):
        return f"{time.perf_counter() - start:.3f} [{record.threadName}] {record.getMessage()}"
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(Format())
for name in ("urllib3.connectionpool", "dockyard.engine"):  # docker-py's requests, dockyard's own
    log = logging.getLogger(name)
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
from dockyard import cli
print(f"{time.perf_counter() - start:.3f} [MainThread] imported dockyard.cli", file=sys.stderr)
code = cli.main(sys.argv[1:])
print(f"{time.perf_counter() - start:.3f} [MainThread] main returned {code}", file=sys.stderr)
"""


def executable(name: str) -> str:
    """A console script of this environment (next to the interpreter), else the first on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: run the bench with `uv run` after `uv sync`")
    return found


def run_process(argv: Sequence[str], expect: int = 0, env: dict[str, str] | None = None) -> cst_bench.Verdict:
    done = subprocess.run(
        list(argv),
        cwd=ROOT,
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else (done.stderr.strip().splitlines() or ["no output"])[-1]
    ok = done.returncode == expect
    output = (done.stdout + done.stderr)[-800:]
    problems = () if ok else (f"exit {done.returncode}, expected {expect}", output)
    return cst_bench.Verdict(ok, f"{'PASS' if ok else 'FAIL'} exit {done.returncode}: {last[:100]}", problems)


@dataclass
class Row:
    tool: cst_bench.Tool
    key: str  # how the summary finds it

    @property
    def median(self) -> float:
        return statistics.median(self.tool.seconds)


def make_rows(tag: str, args: argparse.Namespace, scratch: Path) -> list[Row]:
    docker = shutil.which("docker") or "docker"
    dockyard, invoke, nox = executable("dockyard"), executable("invoke"), executable("nox")
    only = [arg for check in SIX for arg in ("--only", check)]

    def process(
        key: str,
        name: str,
        covers: str,
        argv: Sequence[str],
        expect: int = 0,
        env: dict[str, str] | None = None,
    ) -> Row:
        return Row(cst_bench.Tool(name, covers, lambda: run_process(argv, expect, env)), key)

    rows = [
        process("floor", "docker run --rm (the floor)", "python -c pass",
                [docker, "run", "--rm", "--entrypoint", "python", tag, "-c", "pass"]),
        process("version", "dockyard --version", "start-up", [dockyard, "--version"]),
        process("help", "dockyard --help", "start-up", [dockyard, "--help"]),
        process("before", "dockyard, before the engine", "usage error, exit 2",
                [dockyard, "verify", tag, "--only", "no-such-check"], expect=2),
        process("six", "dockyard verify --only <six>", "the 6 CST-expressible checks",
                [dockyard, "verify", tag, *only]),
        process("all", "dockyard verify, all but two", "all but layer-cache, healthcheck",
                [dockyard, "verify", tag, "--skip", "layer-cache", "--skip", "healthcheck"]),
        process("all-export", "all but two, layers from the export", "DOCKYARD_LAYER_SOURCE=export",
                [dockyard, "verify", tag, "--skip", "layer-cache", "--skip", "healthcheck"],
                env={"DOCKYARD_LAYER_SOURCE": "export"}),
    ]  # fmt: skip
    if not args.no_layer_cache:
        rows.append(process("full", "dockyard verify, every check", "all 13", [dockyard, "verify", tag]))
    rows += [
        process("invoke", "invoke verify --only <six>", "the 6, Invoke's door",
                [invoke, "verify", "--image", tag, *only]),
        process("nox", "nox -s verify-image --only <six>", "the 6, Nox's door",
                [nox, "-s", "verify-image", "--", "--image", tag, *only]),
        process("invoke-list", "invoke --list", "Invoke's start-up", [invoke, "--list"]),
    ]  # fmt: skip
    if not args.no_cst:
        binary = cst_bench.cst_binary()
        equal = scratch / "equal-coverage.yaml"
        rows += [
            Row(cst_bench.Tool("CST, minimal suite", "8 tests",
                               lambda: cst_bench.run_cst(binary, tag, args.config)), "cst-minimal"),
            Row(cst_bench.Tool("CST, equal coverage", "generated suite",
                               lambda: cst_bench.run_cst(binary, tag, equal)), "cst-equal"),
        ]  # fmt: skip
    return rows


def measure(rows: Sequence[Row], runs: int, warmup: int) -> None:
    """Round-robin, so drift on a busy machine spreads over every row alike."""
    spans: list[tuple[int, int]] = []
    for _ in range(warmup):
        for row in rows:
            row.tool.timed(spans)
    for number in range(1, runs + 1):
        for row in rows:
            row.tool.seconds.append(row.tool.timed(row.tool.windows))
        print(f"round {number}: " + ", ".join(f"{r.key} {r.tool.seconds[-1]:.2f}s" for r in rows), flush=True)


def per_round_ratio(row: Row, floor: Row) -> float:
    """The median of this row's seconds over the floor's in the same round (load mostly cancels)."""
    return statistics.median(a / b for a, b in zip(row.tool.seconds, floor.tool.seconds, strict=True))


def report(rows: Sequence[Row]) -> bool:
    by_key = {row.key: row for row in rows}
    floor = by_key["floor"]
    print()
    for row in rows:
        verdict = row.tool.last or cst_bench.Verdict(False, "did not run")
        print(f"{row.tool.name}: {verdict.summary}")
        for problem in verdict.problems:
            print(f"    {problem}")
    print()
    print(f"{'':<34} {'covers':<33} {'containers':>10} {'median s':>9} {'fastest':>8} {'x floor':>8}  runs s")
    for row in rows:
        runs = " ".join(f"{s:.2f}" for s in row.tool.seconds)
        print(
            f"{row.tool.name:<34} {row.tool.covers:<33} {row.tool.containers:>10} {row.median:>9.3f} "
            f"{min(row.tool.seconds):>8.3f} {per_round_ratio(row, floor):>7.2f}x  {runs}"
        )
    print("(x floor: the median over rounds of the row's time / the floor's time in the same round)")

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print("\ntargets")
    for key in ("version", "help"):
        row = by_key[key]
        limit = TARGETS["start-up"]
        print(f"  {row.tool.name:<44} {row.median:.3f} s   <= {limit} s: {met(row.median <= limit)}")
    before, limit = by_key["before"], TARGETS["before the engine"]
    print(f"  {'a command before the engine':<44} {before.median:.3f} s   <= {limit} s: "
          f"{met(before.median <= limit)}")  # fmt: skip
    for key, limit in (("six", TARGETS["six"]), ("all", TARGETS["all"]), ("all-export", TARGETS["all"])):
        row = by_key[key]
        ratio = per_round_ratio(row, floor)
        print(f"  {row.tool.name:<44} {ratio:.2f}x floor <= {limit}x: {met(ratio <= limit)}")
    six = by_key["six"]
    for key in ("invoke", "nox"):
        row = by_key[key]
        extra = statistics.median(a - b for a, b in zip(row.tool.seconds, six.tool.seconds, strict=True))
        print(f"  {row.tool.name:<44} {extra:+.3f} s over the CLI <= +{TARGETS['door']} s: "
              f"{met(extra <= TARGETS['door'])}")  # fmt: skip
    for key in ("cst-minimal", "cst-equal"):
        if key in by_key:
            row = by_key[key]
            ratio = statistics.median(a / b for a, b in zip(row.tool.seconds, six.tool.seconds, strict=True))
            name = f"{row.tool.name} / dockyard --only <six>"
            print(f"  {name:<44} {ratio:.2f}x (CST's time over dockyard's)")
    return all(row.tool.last is not None and row.tool.last.ok for row in rows)


def trace(tag: str) -> None:
    """One `dockyard verify --only <six>` process, traced: its imports, then each engine request."""
    only = [arg for check in SIX for arg in ("--only", check)]
    argv = [sys.executable, "-c", TRACE, "verify", tag, *only]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, check=False, timeout=300)
    wall = time.perf_counter() - start
    lines = [line for line in done.stderr.splitlines() if line[:1].isdigit()]
    requests = [line for line in lines if '"' in line]
    print(f"\none traced `dockyard verify --only <six>` ({wall:.2f}s wall, exit {done.returncode}, "
          f"{len(requests)} engine requests; seconds since the process's first line):")  # fmt: skip
    for line in lines:
        seconds, _, rest = line.partition(" ")
        thread, _, message = rest.partition("] ")
        if '"' in message:  # "GET /v1.41/... HTTP/1.1" 200 123 (urllib3), "GET /v1.41/..." 200 (dockyard)
            message = message.split('"')[1].removesuffix(" HTTP/1.1")
            message = re.sub(r"\b([0-9a-f]{12})[0-9a-f]{52}\b", r"\1", message)[:110]
        print(f"  {seconds:>6} {thread.strip('[')[:24]:<24} {message}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--image", default="dockyard:0.1.0", help="the image every row checks or runs")
    parser.add_argument("--config", type=Path, default=cst_bench.CST_CONFIG, help="the minimal CST YAML")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds (median reported; at least 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--no-layer-cache", action="store_true", help="leave out the every-check row")
    parser.add_argument("--no-cst", action="store_true", help="leave out container-structure-test")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    settings = config.load(ROOT)
    engine = connect(settings.docker)
    tag = f"{cst_bench.BENCH_REPOSITORY}:{uuid.uuid4().hex[:10]}"
    load = os.getloadavg()
    print(
        f"dockyard's front door against the floor, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, engine "
        f"{engine.server_version()}, {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at the start"
    )
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        print("PYTHONDONTWRITEBYTECODE is set here: the timed processes run without it (bytecode caches on)")
    log: cst_bench.EventLog | None = None
    scratch = Path(tempfile.mkdtemp(prefix="dockyard-bench-floor-"))
    try:
        log = cst_bench.EventLog(engine)
        image_id = cst_bench.pin_image(engine, settings, args.image, tag)
        print(f"image: {args.image} = {image_id[7:19]}, pinned as {tag}")
        if not args.no_cst:
            suite = cst_bench.generate_suite(engine, settings, tag)
            (scratch / "equal-coverage.yaml").write_text(suite.text)
            print(f"CST suites: {args.config} (minimal), and {suite.tests} tests generated (equal coverage)")
        rows = make_rows(tag, args, scratch)
        print(f"{args.runs} timed round(s) after {args.warmup} untimed; medians below")
        measure(rows, args.runs, args.warmup)
        cst_bench.count_containers([row.tool for row in rows], log, tag)
        passed = report(rows)
        trace(tag)
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
        if not passed:
            print("a row did not exit as expected: its timing means nothing", file=sys.stderr)
            return 1
    except DockyardError as exc:
        print(f"bench failed: {exc.message}", file=sys.stderr)
        return 1
    finally:
        made = cst_bench.Made()
        if log is not None:
            log.close()
            made = log.made(tag)
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"\ncleanup: {cst_bench.clean_up(engine, tag, made)}; removed {scratch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
