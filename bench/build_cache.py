"""Benchmark: how the project's own image builds cold, unchanged, and after a source-only change.

    uv run python bench/build_cache.py [--show-build]

Builds the repository's Dockerfile three times, in one run, from a scratch copy of the project (the
files git tracks plus untracked ones it does not ignore), through `dockyard.build` with the request
`invoke build` makes: a cold build (`--no-cache`), a no-op rebuild, and a rebuild after a one-line
change to a source file of the copy (the user's tree is never touched). It prints the seconds, the
ratios to the cold build, whether `uv sync` ran or came from the cache, every final-image layer of the
source-only build next to the one before (same/changed by digest), and the final image size next to
the base image plus the runtime venv. Every image it tags and every container it starts is labelled
and removed at the end; BuildKit's build cache is left alone (it is shared with every other build).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import docker.errors
import humanize

from dockyard import config
from dockyard.build import buildkit as build
from dockyard.engine import Engine, connect
from dockyard.errors import DockyardError
from dockyard.image import metadata as images
from dockyard.project.dockerfile import parse as parse_dockerfile
from dockyard.verify.gather import copy_project  # the same scratch copy the layer-cache check builds

ROOT = Path(__file__).resolve().parents[1]
BENCH_REPOSITORY = "dockyard-bench/build-cache"
VENV = "/app/.venv"


def _mb(size: int) -> str:
    return humanize.naturalsize(size)


def _step_state(result: build.BuildResult, pattern: str) -> str:
    """`ran (N packages)`, `cached`, or `absent` for the build steps matching `pattern`."""
    steps = [s for s in result.steps if pattern in s.name]
    if not steps:
        return "absent"
    ran = [s for s in steps if not s.cached]
    if not ran:
        return "cached"
    installed = sum(s.installed_packages for s in ran)
    return f"ran ({installed} pkg)" if installed else "ran"


def _venv_size(engine: Engine, ref: str) -> int:
    """Apparent size of the runtime venv, measured by `du -sb` in a labelled, network-less container."""
    done = engine.run_once(ref, ["-sb", VENV], entrypoint=["du"], network_mode="none", timeout=120)
    if done.code != 0:
        raise DockyardError(f"du -sb {VENV} in {ref} exited {done.code}: {done.output[-200:]}")
    return int(done.stdout.split()[0])


def _remove_tags(engine: Engine, tags: Sequence[str]) -> None:
    """Remove exactly the tags this run made: an image goes with its last tag, else it only loses ours."""
    for tag in tags:
        try:
            engine.client.images.remove(tag)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:  # in use by a container not ours: leave it
            print(f"note: left {tag}: {exc}", file=sys.stderr)


def _is_from(step: build.Step) -> bool:
    return step.name.partition("] ")[2].startswith("FROM ")


def _print_builds(runs: Sequence[tuple[str, build.BuildResult]]) -> None:
    cold = runs[0][1].seconds
    print(
        f"{'build':<20} {'seconds':>8} {'vs cold':>8}  {'uv sync':<14} {'project install':<16} "
        f"{'steps cached':>12}  image"
    )
    for name, result in runs:
        # FROM steps are left out: BuildKit marks them CACHED under --no-cache, and not otherwise.
        steps = [s for s in result.steps if not _is_from(s)]
        cached = f"{sum(s.cached for s in steps)}/{len(steps)}"
        print(
            f"{name:<20} {result.seconds:>8.1f} {result.seconds / cold:>8.2f}  "
            f"{_step_state(result, 'uv sync'):<14} {_step_state(result, 'uv pip install'):<16} "
            f"{cached:>12}  {result.image_id.removeprefix('sha256:')[:12]}"
        )
    if hits := [s.name for s in runs[0][1].steps if s.cached and not _is_from(s)]:
        # Named, so a partly cached "cold" build (seen on a busy engine) is not taken for a cold one.
        print("cold build steps BuildKit reported CACHED: " + "; ".join(h[:60] for h in hits))


def _print_layers(before: images.ImageInfo, after: images.ImageInfo, base: images.ImageInfo | None) -> None:
    old = set(before.diff_ids)
    layers = after.layers(base.diff_ids if base else ())
    print(f"{'#':>2}  {'instruction':<58} {'size':>10}  {'layer':<10} diff id")
    changed_bytes = 0
    for layer in layers:
        same = layer.diff_id in old
        if not same:
            changed_bytes += layer.size
        where = "base " if layer.in_base else ""
        text = images.shorten_instruction(layer.created_by, width=58) if layer.created_by != "?" else "?"
        state = f"{where}{'same' if same else 'CHANGED'}"
        digest = layer.diff_id.removeprefix("sha256:")[:12]
        print(f"{layer.index:>2}  {text:<58} {_mb(layer.size):>10}  {state:<10} {digest}")
    changed = [layer for layer in layers if layer.diff_id not in old]
    deps_same = all(layer.diff_id in old for layer in layers[:-1])
    print(
        f"changed: {len(changed)} of {len(layers)} layers, {_mb(changed_bytes)}; "
        f"every layer below the project's own identical by digest: {'yes' if deps_same else 'NO'}"
    )


def _print_sizes(engine: Engine, ref: str, final: images.ImageInfo, base: images.ImageInfo | None) -> None:
    venv_du = _venv_size(engine, ref)
    # the full history entries: the shortened instructions may cut the path off
    venv_layers = sum(entry.size for entry in final.history if VENV in entry.created_by)
    base_size = base.size if base else 0
    rest = final.size - base_size - venv_du
    rows = [
        ("final image", final.size, f"{ref} (image Size, uncompressed)"),
        ("base image", base_size, base.ref if base else "base image not on this engine"),
        ("runtime venv (du)", venv_du, f"`du -sb {VENV}` in a container of the final image"),
        ("runtime venv (layers)", venv_layers, f"sum of the layers that write {VENV}, from image history"),
        ("base + venv (du)", base_size + venv_du, f"final - (base + venv) = {rest:+,} B"),
    ]
    for name, size, note in rows:
        print(f"{name:<22} {_mb(size):>10}  {note}")


@dataclasses.dataclass(frozen=True)
class Builds:
    runs: tuple[tuple[str, build.BuildResult], ...]  # cold, no-op, source-only
    base_ref: str | None


def _build_three(
    engine: Engine, settings: config.Settings, tags: dict[str, str], made: list[str], show: bool
) -> Builds:
    echo = (lambda line: print(f"  {line}")) if show else None
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as scratch:
        root = Path(scratch) / "project"
        copy_project(ROOT, root)
        moved = settings.relocated(root)
        # One request for all three builds: the same labels (created time included), so an unchanged
        # rebuild can give the very same image.
        request = build.request_for(moved, tags=(tags["cold"],))
        request = dataclasses.replace(request, labels={**request.labels, **engine.labels})
        shown = ", ".join(f"{k}={v}" for k, v in sorted(request.build_args.items()))
        print(f"scratch copy: {root}; build args: {shown}")
        runs: list[tuple[str, build.BuildResult]] = []
        for name, label in (("cold", "cold (--no-cache)"), ("noop", "no-op rebuild")):
            made.append(tags[name])
            this = dataclasses.replace(request, tags=(tags[name],), no_cache=name == "cold")
            runs.append((label, build.build(engine, this, on_line=echo)))
        touched = root / "src" / settings.package / "__init__.py"
        # a change never seen before: a repeated one would come from the cache and measure nothing
        touched.write_text(
            touched.read_text() + f"\n# dockyard bench: source-only change {uuid.uuid4().hex}\n"
        )
        made.append(tags["source"])
        this = dataclasses.replace(request, tags=(tags["source"],))
        runs.append(("source-only change", build.build(engine, this, on_line=echo)))
        print(f"source-only change: appended a comment line to {touched.relative_to(root)} in the copy")
        base_ref = parse_dockerfile(moved.dockerfile).final_base(request.build_args)
    return Builds(tuple(runs), base_ref)


def _report(engine: Engine, builds: Builds, source_tag: str) -> None:
    (_, cold), (_, noop), (_, source) = builds.runs
    print()
    _print_builds(builds.runs)
    same = "yes" if noop.image_id == cold.image_id else "no"
    print(
        f"no-op / cold = {noop.seconds / cold.seconds:.3f}   "
        f"source-only / cold = {source.seconds / cold.seconds:.3f}   no-op image identical to cold: {same}"
    )
    print("(cold: no layer cache; BuildKit's cache mount for uv's downloads stays warm, as on a dev box)")
    ref = builds.base_ref
    base = images.inspect_image(engine, ref) if ref and engine.image_exists(ref) else None
    before = images.inspect_image(engine, noop.image_id)
    after = images.inspect_image(engine, source_tag)
    print("\nfinal-image layers of the source-only build, against the build before it:")
    _print_layers(before, after, base)
    print()
    _print_sizes(engine, source_tag, after, base)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--show-build", action="store_true", help="stream BuildKit's progress")
    args = parser.parse_args(argv)

    settings = config.load(ROOT)
    engine = connect(settings.docker)
    run = uuid.uuid4().hex[:10]
    tags = {name: f"{BENCH_REPOSITORY}:{run}-{name}" for name in ("cold", "noop", "source")}
    made: list[str] = []
    print(
        f"dockyard build-cache bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"engine {engine.server_version()} via {engine.cli.describe()}"
    )
    try:
        _report(engine, _build_three(engine, settings, tags, made, args.show_build), tags["source"])
    except DockyardError as exc:
        print(f"bench failed: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return 1
    finally:
        started = time.monotonic()
        _remove_tags(engine, made)
        left = engine.remove_run_leftovers()
        print(
            f"\ncleanup: removed {len(made)} bench tag(s) and {left} leftover container(s) "
            f"in {time.monotonic() - started:.1f}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
