"""Benchmark: a fresh CI runner, cold against `--cache-from`, on second engines of this machine.

    uv run python bench/fresh_runner.py [--project .] [--with PKG ...] [--show-build]

Three builds of the project's Dockerfile, in one run, from a scratch copy (the user's tree is never
touched), through `dockyard.build` with the request `invoke build` makes:

1. main: the machine's engine builds the commit with `--cache-to REF` (an inline cache, pushed with
   the image to a repository of the run's own on the machine's registry), as CI does on main;
2. cold: a fresh second engine (its own data root, exec root, socket and bridge; nothing built,
   nothing cached, uv's download cache empty; base images pulled from the registry) builds the same
   commit with no cache at all, downloading every wheel;
3. cache-from: another fresh second engine builds the commit after a source-only change (a comment
   line appended to a source file) with only `--cache-from REF`.

It prints each build's seconds (pulls of the base images included, as on a runner), whether the
dependency step (`uv sync`) and the project's step ran or came from the cache, the layers of the
cache-from build against main's by digest, and the cache-from / cold ratio against the goal (<= 25%),
for the build alone (the base images pulled onto the empty engine first, timed apart) and for pull
plus build. `--with PKG` adds dependencies to the scratch copy first (`uv add`), to see a service
with heavier wheels.
The second engines get network (a NAT rule and two forwarding rules for their own bridge only,
removed at the end) because the cold build downloads; each is stopped by its pid and everything it
made (bridge, rules, directories) removed. The main build's tags and the registry manifest are
removed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import docker.errors

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the second-engine helper lives with the engine tests

from dockyard import config, process, registry  # noqa: E402
from dockyard.build import buildkit as build  # noqa: E402
from dockyard.engine import Engine, connect  # noqa: E402
from dockyard.errors import DockyardError  # noqa: E402
from dockyard.verify.gather import copy_project  # noqa: E402
from tests.engine import second_engine  # noqa: E402

GOAL = 0.25
DEPENDENCY_STEP, PROJECT_STEP = "uv sync", "--no-deps"


def _state(result: build.BuildResult, needle: str) -> str:
    steps = [s for s in result.steps if needle in s.name]
    if not steps:
        return "absent"
    ran = [s for s in steps if not s.cached]
    if not ran:
        return "cached"
    count = sum(s.installed_packages for s in ran)
    return f"ran ({count} pkg)" if count else "ran"


@dataclasses.dataclass(frozen=True)
class FreshBuild:
    result: build.BuildResult
    pull_seconds: float  # pulling the base images from the registry onto the empty engine
    build_seconds: float

    @property
    def total(self) -> float:
        return self.pull_seconds + self.build_seconds


def _on_fresh_engine(
    docker_cli: str | None, request: build.BuildRequest, echo: Callable[[str], None] | None
) -> FreshBuild:
    """Build `request` on a new second engine, after pulling the base images it starts from."""
    with second_engine.running(network=True) as fresh:
        previous = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = fresh.host
        try:
            engine = Engine(docker_cli)
            started = time.monotonic()
            for name in ("PYTHON_IMAGE", "UV_IMAGE"):
                if ref := request.build_args.get(name):
                    engine.client.images.pull(ref)
            pulled = time.monotonic()
            result = build.build(engine, request, on_line=echo)
            return FreshBuild(result, pulled - started, time.monotonic() - pulled)
        finally:
            if previous is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = previous


def _step_seconds(result: build.BuildResult, needle: str) -> float:
    """Seconds BuildKit reported for the steps whose name holds `needle` (0 when cached)."""
    numbers = {s.number for s in result.steps if needle in s.name and not s.cached}
    total = 0.0
    for line in result.output.splitlines():
        head, _, rest = line.partition(" ")
        if (
            head.startswith("#")
            and head[1:].isdigit()
            and int(head[1:]) in numbers
            and rest.startswith("DONE ")
        ):
            total += float(rest.removeprefix("DONE ").rstrip("s"))
    return total


def _report(main_build: build.BuildResult, cold: FreshBuild, warm: FreshBuild) -> None:
    """The three builds side by side, the layers by digest, and the ratios against the goal."""
    header = f"{'build':<40} {'pull base':>9} {'build':>7} {'total':>7}  {'uv sync':<14} {'project step':<13}"
    print(f"\n{header}")
    rows = (
        ("main (machine's engine, --cache-to)", main_build, 0.0, main_build.seconds),
        ("fresh runner, cold (no cache)", cold.result, cold.pull_seconds, cold.build_seconds),
        ("fresh runner, --cache-from, src change", warm.result, warm.pull_seconds, warm.build_seconds),
    )
    for name, result, pull, seconds in rows:
        print(
            f"{name:<40} {pull:>9.1f} {seconds:>7.1f} {pull + seconds:>7.1f}  "
            f"{_state(result, DEPENDENCY_STEP):<14} {_state(result, PROJECT_STEP):<13}"
        )
    print(f"cold runner's dependency step alone: {_step_seconds(cold.result, DEPENDENCY_STEP):.1f}s")
    print("\ncache-from build's layers against main's, by digest:")
    pairs = zip(warm.result.layers, main_build.layers, strict=False)
    for index, ((digest, size), (theirs, _)) in enumerate(pairs):
        same = "same" if digest == theirs else "CHANGED"
        print(f"  {index:>2} {digest.removeprefix('sha256:')[:12]} {size:>12,} B  {same}")
    identical = [d for d, _ in warm.result.layers][:-1] == [d for d, _ in main_build.layers][:-1]
    dependency_cached = _state(warm.result, DEPENDENCY_STEP) == "cached"
    print(
        f"\nevery layer below the project's own identical by digest: {'yes' if identical else 'NO'}; "
        f"dependency step {'not run' if dependency_cached else 'RAN'}"
    )
    for what, with_cache, without in (
        ("build (base images pulled first)", warm.build_seconds, cold.build_seconds),
        ("pull + build", warm.total, cold.total),
    ):
        ratio = with_cache / without
        met = ratio <= GOAL and identical and dependency_cached
        verdict = "met" if met else "NOT met"
        print(f"cache-from / cold, {what}: {ratio:.1%} (goal <= {GOAL:.0%}: {verdict})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project", type=Path, default=ROOT)
    parser.add_argument("--show-build", action="store_true", help="stream BuildKit's progress")
    parser.add_argument(
        "--with", dest="extra", action="append", default=[], metavar="PKG",
        help="add this dependency to the scratch copy first (`uv add`), e.g. a service's heavy wheels",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if reason := second_engine.problem():
        print(f"bench cannot run: {reason}", file=sys.stderr)
        return 1

    settings = config.load(args.project)
    host = config.effective_environment().get("DOCKYARD_REGISTRY", "127.0.0.1:5000")
    engine = connect(settings.docker)
    run = uuid.uuid4().hex[:8]
    cache = f"{host}/dockyard-bench/fresh-runner-{run}:cache"
    echo: Callable[[str], None] | None = (lambda line: print(f"  {line}")) if args.show_build else None
    print(
        f"dockyard fresh-runner bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, engine "
        f"{engine.server_version()} via {engine.cli.describe()}, registry {host}, "
        f"project {settings.project_name}"
    )
    try:
        registry.connect(host).ping()
        with tempfile.TemporaryDirectory(prefix="dockyard-bench-fresh-") as scratch:
            root = Path(scratch) / "project"
            copy_project(settings.project_dir, root)
            if args.extra:  # a heavier dependency set: locked in the copy only
                process.run(["uv", "add", "--no-sync", *args.extra], cwd=root, timeout=600)
                print(f"added to the copy's dependencies: {', '.join(args.extra)}")
            moved = settings.relocated(root)
            request = build.request_for(moved, tags=(cache,), cache_to=(cache,))
            request = dataclasses.replace(request, labels={**request.labels, **engine.labels})
            main_build = build.build(engine, request, on_line=echo)
            print(f"main: built and pushed the inline cache to {main_build.cache_pushed[0]}")

            plain = dataclasses.replace(request, tags=(f"dockyard-bench/fresh:{run}",), cache_to=())
            cold = _on_fresh_engine(settings.docker, dataclasses.replace(plain, no_cache=True), echo)
            touched = sorted((root / "src").rglob("__init__.py"))[0]
            change = f"\n# bench: source-only change {uuid.uuid4().hex}\n"
            touched.write_text(touched.read_text() + change)
            warm = _on_fresh_engine(settings.docker, dataclasses.replace(plain, cache_from=(cache,)), echo)
    except (DockyardError, second_engine.SecondEngineUnavailable) as exc:
        print(f"bench failed: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    finally:
        _cleanup(engine, cache)

    _report(main_build, cold, warm)
    return 0


def _cleanup(engine: Engine, cache: str) -> None:
    ref = registry.parse_reference(cache)
    try:
        manifest = registry.connect(ref.host or "").manifest(ref.repository, ref.tag or "latest")
        if manifest is not None:
            registry.connect(ref.host or "").delete_manifest(ref.repository, manifest.digest)
    except DockyardError as exc:
        print(f"note: left {cache} in the registry: {exc.message}", file=sys.stderr)
    try:
        engine.client.images.remove(cache)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        print(f"note: left {cache}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
