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

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard import config, engine
from dockyard.build import buildkit as build
from dockyard.errors import BuildFailed
from dockyard.verify.gather import copy_project
from tests.engine import second_engine
from tests.engine.conftest import LABEL_TEST_RUN, ROOT, TEST_RUN

DEPENDENCY_STEP = r"uv sync"
PROJECT_STEP = r"uv pip install .*--no-deps"


@pytest.fixture(scope="module")
def fresh_runner() -> Iterator[second_engine.SecondEngine]:
    if reason := second_engine.problem():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
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
