"""examples/api-service passes every verify-image check, healthcheck included, through the CLI.

The run builds the example's real tags (`dockyard-example/api-service:<version>` and `:<sha>`); the
`example_tags` fixture removes the tags the run made and puts back any it moved, so the engine's tags
of that repository end as they began.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.errors import ImageNotFound

from dockyard import engine
from dockyard.verify.checks import CHECK_IDS
from tests.engine.conftest import ROOT

EXAMPLE = ROOT / "examples" / "api-service"
REPOSITORY = "dockyard-example/api-service"


def _repository_tags(made: engine.Engine) -> dict[str, str]:
    """Tag -> image id, for every tag of the example's repository."""
    return {
        tag: str(image.id)
        for image in made.client.images.list(name=REPOSITORY)
        for tag in image.tags
        if tag.startswith(f"{REPOSITORY}:")
    }


@pytest.fixture
def example_tags(docker: engine.Engine) -> Iterator[None]:
    """Remove the tags of the example's repository the test made; re-point the ones it moved."""
    before = _repository_tags(docker)
    yield
    for tag, image_id in _repository_tags(docker).items():
        if before.get(tag) == image_id:
            continue  # there before, on the same image: not made by the test
        docker.client.images.remove(tag, noprune=False)
        if tag in before:
            repository, _, name = tag.rpartition(":")
            with contextlib.suppress(ImageNotFound):  # pruned since: nothing to restore
                docker.client.images.get(before[tag]).tag(repository, name)


@pytest.mark.usefixtures("example_tags")
def test_api_service_example_passes_every_check(tmp_path: Path) -> None:
    out = tmp_path / "verify.json"
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "--project", str(EXAMPLE), "verify", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert out.is_file(), output
    report = json.loads(out.read_text())
    results = {r["id"]: r for r in report["results"]}
    failing = [
        f"{r['id']}: {r['outcome']}: {r['evidence']}" for r in results.values() if r["outcome"] != "pass"
    ]
    if done.returncode != 0 or failing:
        pytest.fail("\n".join([f"dockyard verify exited {done.returncode}", *failing, output[-3000:]]))
    assert set(results) == set(CHECK_IDS)
    assert results["healthcheck"]["evidence"].startswith("healthy after"), results["healthcheck"]
    assert report["meta"]["image"] == f"{REPOSITORY}:0.1.0"
