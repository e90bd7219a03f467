"""Containers dockyard makes are removed on success, failure, timeout, Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dockyard import engine
from dockyard.build import buildkit as build
from tests.engine.conftest import ImageBuilder

# A service whose healthcheck never passes: verify waits on it until interrupted or timed out.
NEVER_HEALTHY = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
RUN useradd --uid 10001 app
USER 10001
HEALTHCHECK --interval=30s --retries=1000 CMD ["python3", "-c", "raise SystemExit(1)"]
CMD ["python3", "-c", "import time; time.sleep(600)"]
"""


def _ours(docker: engine.Engine, image_id: str) -> list[str]:
    """Containers of `image_id` that dockyard labelled as its own (summaries: no per-container
    inspect that a container removed meanwhile would break)."""
    filters = {"label": f"{engine.LABEL_MANAGED}=true", "ancestor": image_id}
    return [str(c["Id"]) for c in docker.client.api.containers(all=True, filters=filters)]


def _never_healthy(build_image: ImageBuilder) -> build.BuildResult:
    # an image of its own per test: tests running side by side must not see each other's containers
    return build_image(
        NEVER_HEALTHY + f"LABEL dev.dockyard.test-case={uuid.uuid4().hex}\n", name="never-healthy"
    )


def _verify(project: Path, ref: str, timeout: float) -> subprocess.Popen[str]:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "svc"\nversion = "1.0"\n[tool.dockyard]\nservice = true\n'
        f"[tool.dockyard.verify]\nhealthcheck-timeout = {timeout}\n"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "dockyard", "verify", "--image", ref, "--only", "healthcheck"],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> None:
    """End a verify the test gave up on the way a user would (SIGTERM: dockyard removes what it made);
    SIGKILL only if that fails, since nothing can clean up after it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_verify_leaves_no_container(
    docker: engine.Engine, build_image: ImageBuilder, tmp_path: Path, sig: signal.Signals
) -> None:
    built = _never_healthy(build_image)
    proc = _verify(tmp_path, built.tags[0], timeout=300)
    try:
        deadline = time.monotonic() + 60
        while not _ours(docker, built.image_id):
            assert time.monotonic() < deadline, "verify never started its healthcheck container"
            time.sleep(0.2)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    assert proc.returncode == 130
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert _ours(docker, built.image_id) == []


def test_a_healthcheck_timeout_fails_and_leaves_no_container(
    docker: engine.Engine, build_image: ImageBuilder, tmp_path: Path
) -> None:
    built = _never_healthy(build_image)
    proc = _verify(tmp_path, built.tags[0], timeout=3)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "not healthy within 3s" in stdout
    assert _ours(docker, built.image_id) == []


def _of_this_run(docker: engine.Engine) -> list[str]:
    filters = {"label": f"{engine.LABEL_RUN}={docker.run_id}"}
    return [str(c["Id"]) for c in docker.client.api.containers(all=True, filters=filters)]


def test_a_run_once_container_is_gone_when_it_returns_with_both_streams_apart(
    docker: engine.Engine, base_image: str
) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); print('out again')"
    done = docker.run_once(base_image, ["-c", code], entrypoint=["python3"], network_mode="none")
    assert (done.code, done.stdout, done.stderr) == (0, "out\nout again\n", "err\n")
    assert _of_this_run(docker) == []


def test_background_removals_end_with_their_block(docker: engine.Engine, base_image: str) -> None:
    with docker.removing_in_background():
        codes = [docker.run_once(base_image, ["-c", "pass"], entrypoint=["python3"]).code for _ in range(3)]
    assert codes == [0, 0, 0]
    assert _of_this_run(docker) == []
