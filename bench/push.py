"""Benchmark: bytes a push moves, cold and after a source-only change, dockyard's Dockerfile against
uv's documented multistage recipe, on the same app.

    uv run python bench/push.py [--app examples/api-service] [--show-build]

For each recipe, in one run, from a scratch copy of the app (the user's tree is never touched): build
it with the request `invoke build` makes, push it with `dockyard.build.push` to a repository of the
run's own on the machine's registry (`DOCKYARD_REGISTRY`, from provisioning), then append a comment
line to a source file, build and push again. The cold build has no layer cache (`--no-cache`; uv's
download cache stays warm), so every layer above the base is new to the registry. The bytes moved
come from the push itself, layer by layer (pushed, or already in the registry), with the compressed
sizes from the registry's manifest: the pushed layers, the config when new, and the manifest. The
base image is in the registry already (provisioning published it), so a push mounts it rather than
moving it; the image's whole compressed size is printed beside it.

uv's recipe is the "multistage" example of uv's Docker guide: dependencies, then the project, synced
into /app in a builder stage, and the final stage takes `COPY --from=builder /app /app`: the venv and
the source in one layer. It runs here on the same stand-in base images, with uv copied from the uv
image (the guide's builder image is uv's own Python image) and the CA bundle as a secret. Every tag,
image and registry manifest the run makes is removed at the end.
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

from dockyard import config, registry
from dockyard.build import buildkit as build
from dockyard.build import push as pushes
from dockyard.engine import Engine, connect
from dockyard.errors import DockyardError
from dockyard.verify.gather import copy_project

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO, GOAL_BYTES = 0.01, 1_000_000

# uv's documented multistage recipe (docs.astral.sh/uv/guides/integration/docker, "multistage"
# example), on the stand-ins: uv copied in from the uv image, the CA bundle as a secret.
UV_RECIPE = """\
ARG PYTHON_IMAGE=python:3.13-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8
FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=0
WORKDIR /app
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=bind,source=uv.lock,target=uv.lock \\
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \\
    --mount=type=secret,id=ca_bundle \\
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi; \\
    uv sync --locked --no-install-project --no-dev
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \\
    --mount=type=secret,id=ca_bundle \\
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi; \\
    uv sync --locked --no-dev

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 999 nonroot \\
 && useradd --system --gid 999 --uid 999 --create-home nonroot
COPY --from=builder --chown=nonroot:nonroot /app /app
ENV PATH="/app/.venv/bin:$PATH"
USER nonroot
WORKDIR /app
CMD ["api-service"]
"""


@dataclasses.dataclass(frozen=True)
class Run:
    recipe: str
    cold: pushes.PushResult
    source: pushes.PushResult


def _mb(size: int) -> str:
    return str(humanize.naturalsize(size))


def _source_file(root: Path) -> Path:
    return sorted((root / "src").rglob("__init__.py"))[0]


def _measure(
    engine: Engine,
    app: Path,
    recipe: str,
    dockerfile: str | None,
    repository: str,
    made: list[str],
    show: bool,
) -> Run:
    echo = (lambda line: print(f"  {line}")) if show else None
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-push-") as scratch:
        root = Path(scratch) / "app"
        copy_project(app, root)
        if dockerfile is not None:
            (root / "Dockerfile").write_text(dockerfile)
            (root / ".dockerignore").write_text(".venv\n**/__pycache__\n")
        settings = config.load(root)
        results = []
        for step in ("cold", "source"):
            if step == "source":
                touched = _source_file(root)
                touched.write_text(
                    touched.read_text() + f"\n# bench: source-only change {uuid.uuid4().hex}\n"
                )
            tag = f"{repository}:{step}"
            made.append(tag)
            request = build.request_for(settings, tags=(tag,))
            # cold: no layer cache, so every layer above the base is new to the registry too
            labels = {**request.labels, **engine.labels}
            request = dataclasses.replace(request, labels=labels, no_cache=step == "cold")
            built = build.build(engine, request, on_line=echo)
            results.append(pushes.push_image(engine, built.image_id, [registry.parse_reference(tag)])[0])
    return Run(recipe, results[0], results[1])


def _print(runs: Sequence[Run]) -> None:
    print(f"\n{'recipe':<28} {'push':<12} {'moved':>10} {'layers pushed':>14} {'image (compressed)':>19}")
    for run in runs:
        for name, result in (("cold", run.cold), ("source-only", run.source)):
            pushed = f"{len(result.pushed_layers)} of {len(result.layers)}"
            print(
                f"{run.recipe:<28} {name:<12} {_mb(result.moved):>10} {pushed:>14} "
                f"{_mb(result.compressed):>19}"
            )
    for run in runs:
        print(f"\n{run.recipe}, source-only push, layer by layer:")
        for layer in run.source.layers:
            print(
                f"  {layer.index:>2} {layer.instruction[:60]:<60} {_mb(layer.size):>10} "
                f"{_mb(layer.compressed):>10}  {layer.status}"
            )
    ours, theirs = runs[0].source.moved, runs[1].source.moved
    ratio = ours / theirs
    verdict = "met" if ratio <= GOAL_RATIO and ours <= GOAL_BYTES else "NOT met"
    print(
        f"\nsource-only push: dockyard {_mb(ours)} / uv's recipe {_mb(theirs)} = {ratio:.2%} "
        f"(goal <= {GOAL_RATIO:.0%} and <= {_mb(GOAL_BYTES)}: {verdict})"
    )


def _cleanup(engine: Engine, made: Sequence[str]) -> None:
    for tag in made:
        ref = registry.parse_reference(tag)
        client = registry.connect(ref.host or "")
        try:
            manifest = client.manifest(ref.repository, ref.tag or "latest")
            if manifest is not None:
                client.delete_manifest(ref.repository, manifest.digest)
        except DockyardError as exc:
            print(f"note: left {tag} in the registry: {exc.message}", file=sys.stderr)
        try:
            engine.client.images.remove(tag)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            print(f"note: left {tag}: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--app", type=Path, default=ROOT / "examples" / "api-service")
    parser.add_argument("--show-build", action="store_true", help="stream BuildKit's progress")
    args = parser.parse_args(argv)

    env = config.effective_environment()
    host = env.get("DOCKYARD_REGISTRY", "127.0.0.1:5000")
    engine = connect(config.load(args.app).docker)
    run = uuid.uuid4().hex[:8]
    made: list[str] = []
    print(
        f"dockyard push bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, engine {engine.server_version()}, "
        f"registry {host}, app {args.app.resolve().relative_to(ROOT)}"
    )
    started = time.monotonic()
    try:
        registry.connect(host).ping()
        runs = [
            _measure(engine, args.app, "dockyard (its Dockerfile)", None,
                     f"{host}/dockyard-bench/push-dockyard-{run}", made, args.show_build),
            _measure(engine, args.app, "uv's multistage recipe", UV_RECIPE,
                     f"{host}/dockyard-bench/push-uv-recipe-{run}", made, args.show_build),
        ]  # fmt: skip
        _print(runs)
    except DockyardError as exc:
        print(f"bench failed: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return 1
    finally:
        _cleanup(engine, made)
        print(f"\n{time.monotonic() - started:.0f}s; cleanup: removed {len(made)} tag(s) and their manifests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
