"""`invoke build` on the project's real Dockerfile, against the real engine."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dockyard import config, engine
from dockyard.build import buildkit as build
from dockyard.errors import BuildFailed
from dockyard.verify.gather import copy_project
from tests.engine.conftest import LABEL_TEST_RUN, ROOT, TEST_RUN, ImageBuilder


def project_request(project: Path, tag: str) -> build.BuildRequest:
    settings = config.load(project)
    request = build.request_for(settings, tags=(tag,))
    return dataclasses.replace(request, labels={**request.labels, LABEL_TEST_RUN: TEST_RUN})


@pytest.fixture(scope="module")
def project_image(docker: engine.Engine) -> build.BuildResult:
    return build.build(docker, project_request(ROOT, f"dockyard-test/self:{TEST_RUN}"))


def test_project_image_runs_the_cli_as_a_non_root_user(
    docker: engine.Engine, project_image: build.BuildResult
) -> None:
    version = docker.run_once(project_image.image_id, ["--version"])
    assert (version.code, version.stdout.strip()) == (0, "dockyard 0.1.0")
    uid = docker.run_once(
        project_image.image_id, ["-c", "import os; print(os.getuid())"], entrypoint=["python"]
    )
    assert uid.code == 0
    assert int(uid.stdout) != 0
    labels = docker.image(project_image.image_id).labels
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.title"] == "dockyard"


def test_source_only_change_rebuilds_only_the_project_layer(
    docker: engine.Engine, project_image: build.BuildResult, tmp_path: Path
) -> None:
    scratch = tmp_path / "project"
    copy_project(ROOT, scratch)
    first = build.build(docker, project_request(scratch, f"dockyard-test/scratch:{TEST_RUN}-a"))
    init = scratch / "src" / "dockyard" / "__init__.py"
    init.write_text(init.read_text() + f"\n# a source-only change {uuid.uuid4().hex}\n")  # never cached
    second = build.build(docker, project_request(scratch, f"dockyard-test/scratch:{TEST_RUN}-b"))

    assert second.ran(r"uv sync") == [], "the dependency step must come from the cache"
    before = docker.image(first.image_id).attrs["RootFS"]["Layers"]
    after = docker.image(second.image_id).attrs["RootFS"]["Layers"]
    assert before[:-1] == after[:-1], "every layer but the project's own must be identical"
    assert before[-1] != after[-1]
    history = [h for h in docker.client.api.history(second.image_id) if h["Size"] > 0]  # type: ignore[no-untyped-call]
    # The project's own files: its sources, their bytecode (about as large again) and its metadata.
    source = sum(p.stat().st_size for p in (scratch / "src").rglob("*") if p.is_file())
    assert history[0]["Size"] < 3 * source, "the changed layer holds only the project's files"


def test_failing_step_output_is_reported(build_image: ImageBuilder) -> None:
    with pytest.raises(BuildFailed) as caught:
        build_image(
            """\
            ARG PYTHON_IMAGE
            FROM ${PYTHON_IMAGE}
            RUN echo "about to fail" && exit 3
            """,
            name="broken",
        )
    assert "exit code: 3" in caught.value.message
    assert "about to fail" in caught.value.detail


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "env", "expected", "code"),
    [
        ("no-dockerfile", {}, "Dockerfile", 2),
        ("bad-config", {}, "unknown key 'imgae'. Perhaps you meant 'image'?", 2),
        ("ok", {"DOCKER_HOST": "unix:///nonexistent.sock"}, "no Docker engine answers", 1),
        ("ok", {"DOCKYARD_DOCKER": "/bin/true"}, "is not a docker CLI", 2),  # a configuration error
        ("failing-build", {}, "exit code: 7", 1),
    ],
)
def test_bad_input_gives_one_clear_line_and_no_traceback(
    tmp_path: Path, setup: str, env: dict[str, str], expected: str, code: int
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "1.0"\n'
        + ("[tool.dockyard]\nimgae = 'x'\n" if setup == "bad-config" else "")
    )
    if setup != "no-dockerfile":
        (tmp_path / "Dockerfile").write_text("ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\nRUN exit 7\n")
    done = _cli("build", "--quiet", "--tag", f"dockyard-test/cli:{TEST_RUN}", cwd=tmp_path, env=env)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    first = done.stderr.strip().splitlines()[0]
    assert first.startswith("dockyard: error:")
    assert expected in first


def test_missing_image_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "1.0"\n')
    done = _cli("verify", "--image", f"dockyard-test/nope:{TEST_RUN}", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"dockyard: error: no image 'dockyard-test/nope:{TEST_RUN}' on this engine: "
        "build it first (invoke build) or check the name"
    )


def test_build_labels_name_the_base_it_really_used(
    docker: engine.Engine, project_image: build.BuildResult, base_image: str
) -> None:
    labels = docker.image(project_image.image_id).labels
    assert labels["org.opencontainers.image.base.name"] == base_image
