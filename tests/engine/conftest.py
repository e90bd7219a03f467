"""Fixtures for tests against the real engine: the engine, base images, and labelled test images."""

from __future__ import annotations

import contextlib
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import docker.errors as docker_errors
import pytest

from dockyard import engine
from dockyard.build import buildkit as build
from dockyard.config import effective_environment

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
    made.client.images.prune(filters={"dangling": True, "label": f"{LABEL_TEST_RUN}={TEST_RUN}"})


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
