"""The build cache survives a fresh machine: a second engine (a fresh CI runner's stand-in: nothing
built, nothing cached, base images pulled from the registry) given only `--cache-from` reuses the
dependency layer the machine's engine exported with `--cache-to`.

The second engine's containers have no network: a dependency install that ran there would fail the
build, on top of the step being reported as not cached. A Dockerfile that installs its dependencies in
an earlier stage passes the same-commit half (the final stage's cache hits need no earlier stage) and
fails the source-only half: the project's stage starts from the dependency stage, which the inline
cache does not hold, so `uv sync` runs again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard import config, engine, registry
from dockyard.build import buildkit as build
from dockyard.build import stack as stacks
from dockyard.errors import BuildFailed, DockyardError
from dockyard.verify.gather import copy_project
from tests.conftest import in_ci
from tests.engine import second_engine
from tests.engine.conftest import LABEL_TEST_RUN, ROOT, TEST_RUN
from tests.engine.test_compose import quiet_console

DEPENDENCY_STEP = r"uv sync"
PROJECT_STEP = r"uv pip install .*--no-deps"


@pytest.fixture
def fresh_runner() -> Iterator[second_engine.SecondEngine]:
    """A second engine per test, empty as a new CI runner's: one that already built from the same base
    with another cache imported did not reuse this test's cache on the 20.10 engine (the FROM step
    came from its own store and the imported chain was not joined), so tests do not share one."""
    if reason := second_engine.problem():
        if in_ci():
            pytest.fail(f"CI=true but no second engine can run here: {reason}")
        pytest.skip(reason)
    with second_engine.running() as made:
        yield made


def _request(
    project: Path, tag: str, *, cache_from: tuple[str, ...] = (), cache_to: tuple[str, ...] = ()
) -> build.BuildRequest:
    settings = config.load(project)
    request = build.request_for(settings, tags=(tag,), cache_from=cache_from, cache_to=cache_to)
    return dataclasses.replace(request, labels={**request.labels, LABEL_TEST_RUN: TEST_RUN})


def test_a_fresh_runner_with_only_cache_from_reuses_the_dependency_layer(
    docker: engine.Engine,
    fresh_runner: second_engine.SecondEngine,
    registry_repository: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "api-service"
    copy_project(ROOT / "examples" / "api-service", project)
    cache = f"{registry_repository('fresh')}:cache"

    # The machine's engine builds and exports the inline cache, pushed with the image.
    first = build.build(docker, _request(project, f"dockyard-test/fresh:{TEST_RUN}", cache_to=(cache,)))
    assert len(first.cache_pushed) == 1
    assert first.cache_pushed[0].startswith(cache.rsplit(":", 1)[0] + "@sha256:")

    # The fresh runner: the same commit, only --cache-from.
    monkeypatch.setenv("DOCKER_HOST", fresh_runner.host)
    fresh = engine.Engine(docker.docker_cli)
    assert fresh.client.images.list() == [], "the second engine starts empty"
    try:
        same = build.build(fresh, _request(project, f"dockyard-test/fresh:{TEST_RUN}", cache_from=(cache,)))
    except BuildFailed as exc:  # the fresh runner has no network: a step that downloads fails
        pytest.fail(f"a step not in the cache ran on the fresh runner and failed: {exc.message}")
    steps = [s for s in same.steps if "uv sync" in s.name]
    assert steps, "the Dockerfile has a dependency step"
    assert same.ran(DEPENDENCY_STEP) == [], "the dependency step must come from the cache"
    assert _digests(same) == _digests(first), "the same commit gives the same layers, by digest"

    # A source-only change on the fresh runner: the dependency layer still comes from the cache.
    init = project / "src" / "api_service" / "__init__.py"
    init.write_text(init.read_text() + f"\n# a source-only change {uuid.uuid4().hex}\n")
    try:
        changed = build.build(
            fresh, _request(project, f"dockyard-test/fresh:{TEST_RUN}-b", cache_from=(cache,))
        )
    except BuildFailed as exc:  # the fresh runner has no network: a step that downloads fails
        pytest.fail(f"a step not in the cache ran on the fresh runner and failed: {exc.message}")
    assert changed.ran(DEPENDENCY_STEP) == []
    assert changed.ran(PROJECT_STEP), "the project's own step runs"
    assert _digests(changed)[:-1] == _digests(first)[:-1]
    assert _digests(changed)[-1] != _digests(first)[-1]
    assert changed.layers[-1][1] < 1_000_000, "a source-only change ships a small layer"


def _digests(result: build.BuildResult) -> list[str]:
    """The layers' digests (diff ids). Their sizes are not compared: an engine measures a layer it
    pulled a few bytes apart from the same layer it built."""
    return [diff_id for diff_id, _ in result.layers]


COMPOSE = """\
x-build: &build
  labels:
    dev.dockyard.test-run: "${TEST_RUN}"
  args:
    PYTHON_IMAGE: "${PYTHON_IMAGE}"
services:
  api:
    build:
      context: ./api
      <<: *build
  worker:
    build:
      context: ./worker
      <<: *build
"""

# The "dependencies" are random bytes a RUN step writes: run again, it makes a layer of another digest,
# so equal digests prove the layer came from the cache. Keyed on a lock of its own, as uv's step is.
STACK_DOCKERFILE = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
COPY deps.lock /opt/deps.lock
RUN python3 -c "import os; open('/opt/deps.bin', 'wb').write(os.urandom(200000))" # install deps
COPY app.py /opt/app.py
CMD ["python3", "/opt/app.py"]
"""


def test_compose_build_cache_from_on_a_fresh_runner_reuses_each_builds_dependency_layer(
    docker: engine.Engine,
    fresh_runner: second_engine.SecondEngine,
    registry_host: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "stack"
    for service in ("api", "worker"):
        (root / service).mkdir(parents=True)
        (root / service / "Dockerfile").write_text(STACK_DOCKERFILE)
        (root / service / "deps.lock").write_text(f"{service} {uuid.uuid4().hex}\n")
        (root / service / "app.py").write_text(f"print('{service}')\n")
    (root / "pyproject.toml").write_text('[project]\nname = "stack"\nversion = "1.0"\n')
    (root / "compose.yaml").write_text(COMPOSE)
    monkeypatch.setenv("TEST_RUN", TEST_RUN)
    prefix = f"{registry_host}/dockyard-test/compose-cache-{TEST_RUN}"
    settings = config.load(root)
    try:
        # The machine's engine: each build exports its cache to PREFIX/<service>:buildcache.
        first = stacks.compose_build(
            docker,
            settings,
            console=quiet_console(),
            options=stacks.ComposeOptions(
                project_name=f"dockyard-test-{TEST_RUN}-cache-a", cache_to=(prefix,)
            ),
        )
        assert not first.failed, [f.error.message for f in first.failed]
        pushed = sorted(ref for built in first.builds for ref in built.cache_pushed)
        assert [ref.split("@")[0] for ref in pushed] == [f"{prefix}/api", f"{prefix}/worker"]

        # The fresh runner, a fresh set of tags, only --cache-from: no dependency step runs again.
        monkeypatch.setenv("DOCKER_HOST", fresh_runner.host)
        fresh = engine.Engine(docker.docker_cli)
        again = stacks.compose_build(
            fresh,
            settings,
            console=quiet_console(),
            options=stacks.ComposeOptions(
                project_name=f"dockyard-test-{TEST_RUN}-cache-b", cache_from=(prefix,)
            ),
        )
        assert not again.failed, [f.error.message for f in again.failed]
        assert [s.image for s in again.services] == [
            f"dockyard-test-{TEST_RUN}-cache-b-api:latest",
            f"dockyard-test-{TEST_RUN}-cache-b-worker:latest",
        ]
        for before, after in zip(first.builds, again.builds, strict=True):
            assert after.ran(r"install deps") == [], (  # it must have come from the cache
                f"the dependency step ran again; cache-from misses: {after.cache_missed}",
                after.output[-3000:],
            )
            assert _digests(after) == _digests(before), "the same layers, by digest"
    finally:
        client = registry.Registry(registry_host)
        for service in ("api", "worker"):
            repository = f"dockyard-test/compose-cache-{TEST_RUN}/{service}"
            with contextlib.suppress(DockyardError):
                if (manifest := client.manifest(repository, "buildcache")) is not None:
                    client.delete_manifest(repository, manifest.digest)
