"""Fixtures for tests against the real engine: the engine, base images, and labelled test images."""

from __future__ import annotations

import contextlib
import os
import subprocess
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import docker.errors as docker_errors
import pytest

from dockyard import engine, registry
from dockyard.build import buildkit as build
from dockyard.config import effective_environment
from dockyard.errors import DockyardError
from tests.conftest import in_ci

LABEL_TEST_RUN = "dev.dockyard.test-run"
TEST_RUN = uuid.uuid4().hex[:10]
ROOT = Path(__file__).resolve().parents[2]


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees every item of the session: mark only the tests in this folder, so unit tests
    # still run (not skip) on a machine without an engine.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.engine)


@pytest.fixture(scope="session")
def machine_env() -> dict[str, str]:
    """The environment dockyard sees: the real one over the machine file."""
    return effective_environment()


@pytest.fixture(scope="session")
def docker(machine_env: Mapping[str, str]) -> Iterator[engine.Engine]:
    made = engine.connect(machine_env.get("DOCKYARD_DOCKER"))
    yield made
    # Containers of this run's images (they inherit its label) that a failed test left behind.
    for container in made.client.api.containers(all=True, filters={"label": f"{LABEL_TEST_RUN}={TEST_RUN}"}):
        with contextlib.suppress(docker_errors.NotFound):
            made.client.api.remove_container(container["Id"], force=True, v=True)
    leftovers = made.client.images.list(filters={"label": f"{LABEL_TEST_RUN}={TEST_RUN}"})
    for image in leftovers:
        for tag in image.tags:
            made.client.images.remove(tag, force=True, noprune=False)
    for attempt in range(10):  # the engine is shared: another run's prune may be under way (HTTP 409)
        try:
            made.client.images.prune(filters={"dangling": True, "label": f"{LABEL_TEST_RUN}={TEST_RUN}"})
            break
        except docker_errors.APIError as exc:
            if exc.status_code != 409 or attempt == 9:
                raise
            time.sleep(1)


@pytest.fixture(scope="session")
def base_image(machine_env: Mapping[str, str]) -> str:
    """The Python base image builds use here (a local stand-in when no registry is reachable)."""
    return machine_env.get("DOCKYARD_BUILD_ARG_PYTHON_IMAGE", "python:3.13-slim")


@pytest.fixture(scope="session")
def uv_image(machine_env: Mapping[str, str]) -> str:
    return machine_env.get("DOCKYARD_BUILD_ARG_UV_IMAGE", "ghcr.io/astral-sh/uv:0.13.8")


@pytest.fixture(scope="session")
def ca_bundle(machine_env: Mapping[str, str]) -> Path | None:
    value = machine_env.get("DOCKYARD_CA_BUNDLE")
    return Path(value) if value else None


ImageBuilder = Callable[..., build.BuildResult]


@pytest.fixture
def build_image(
    docker: engine.Engine, base_image: str, uv_image: str, ca_bundle: Path | None, tmp_path: Path
) -> ImageBuilder:
    """Build a test image from Dockerfile text and files; tagged and labelled for removal."""

    def make(
        dockerfile: str,
        files: Mapping[str, str | bytes] | None = None,
        *,
        name: str = "image",
        context: Path | None = None,
        secrets: Mapping[str, Path] | None = None,
    ) -> build.BuildResult:
        ctx = context or tmp_path / f"ctx-{name}-{uuid.uuid4().hex[:6]}"
        ctx.mkdir(parents=True, exist_ok=True)
        for relative, content in (files or {}).items():
            target = ctx / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        (ctx / "Dockerfile").write_text(textwrap.dedent(dockerfile))
        all_secrets = dict(secrets or {})
        if ca_bundle is not None:
            all_secrets.setdefault("ca_bundle", ca_bundle)
        request = build.BuildRequest(
            dockerfile=ctx / "Dockerfile",
            context=ctx,
            tags=(f"dockyard-test/{name}:{TEST_RUN}",),
            build_args={"PYTHON_IMAGE": base_image, "UV_IMAGE": uv_image},
            labels={LABEL_TEST_RUN: TEST_RUN, engine.LABEL_MANAGED: "true"},
            secrets=all_secrets,
        )
        return build.build(docker, request)

    return make


def _registry_problem(host: str) -> str | None:
    try:
        registry.Registry(host).ping()
    except DockyardError as exc:
        return exc.message
    return None


@pytest.fixture(scope="session")
def registry_host(machine_env: Mapping[str, str]) -> str:
    """The machine's registry (`DOCKYARD_REGISTRY`, else 127.0.0.1:5000), answering: when it does not,
    provisioning (idempotent: it skips what is done) is run to start it. Under CI a registry that
    still does not answer fails the tests that need it; elsewhere they skip."""
    host = machine_env.get("DOCKYARD_REGISTRY", "127.0.0.1:5000")
    problem = _registry_problem(host)
    if problem and os.geteuid() == 0:
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "provision-engine")],
            env={**os.environ, "DOCKYARD_REGISTRY_ADDR": host},
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        problem = (
            _registry_problem(host) and f"{problem}; provisioning: {done.stdout[-300:]}{done.stderr[-300:]}"
        )
    if problem:
        if in_ci():
            pytest.fail(f"CI=true but the registry at {host} cannot be reached: {problem}")
        pytest.skip(f"no registry at {host}: {problem} (run scripts/provision-engine)")
    return host


@pytest.fixture(scope="session")
def registry_repository(registry_host: str) -> Iterator[Callable[[str], str]]:
    """`name` -> `HOST/dockyard-test/NAME-<run>`: a repository of this run's own; the manifests pushed
    to such repositories are deleted at the end (never another repository's)."""
    made: list[str] = []

    def repository(name: str) -> str:
        made.append(f"dockyard-test/{name}-{TEST_RUN}")
        return f"{registry_host}/{made[-1]}"

    yield repository
    client = registry.Registry(registry_host)
    for repo in made:
        for tag in _registry_tags(client, repo):
            with contextlib.suppress(DockyardError):
                if (manifest := client.manifest(repo, tag)) is not None:
                    client.delete_manifest(repo, manifest.digest)


def _registry_tags(client: registry.Registry, repository: str) -> list[str]:
    answer = client.request("GET", f"/v2/{repository}/tags/list", scope=f"repository:{repository}:pull")
    if answer.status_code != 200:
        return []
    return list(answer.json().get("tags") or [])
