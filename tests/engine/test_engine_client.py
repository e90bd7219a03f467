"""Which client speaks to the engine: dockyard's own on the local socket (a verify never imports
docker-py), docker-py's session for anything else, with the same answers and the same cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard import engine, engine_api
from dockyard.errors import ImageNotFound
from dockyard.image import metadata as images

# A verify of an image, in a process of its own; then which modules of docker-py and requests it imported.
VERIFY = """\
import json, sys
from dockyard import cli
code = cli.main(sys.argv[1:])
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("docker", "requests", "urllib3"))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_a_verify_on_the_local_engine_imports_no_docker_py(base_image: str, tmp_path: Path) -> None:
    assert engine_api.local_socket() is not None, "this machine's engine is reached over its local socket"
    checks = ["non-root", "runtime-env", "no-stray-files"]
    argv = [sys.executable, "-c", VERIFY, "verify", base_image, *(f"--only={check}" for check in checks)]
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["code"] in (0, 1), done.stdout + done.stderr  # verdicts given (the stand-in runs as root)
    for check in checks:
        assert check in done.stdout
    assert "ERROR" not in done.stdout, done.stdout
    assert answer["heavy"] == []


def test_an_engine_not_reached_over_the_local_socket_goes_through_docker_py(
    monkeypatch: pytest.MonkeyPatch, base_image: str
) -> None:
    # docker-py reads no CLI context: with one named it still reaches the default socket, through its
    # own session, which dockyard then uses for the same requests.
    local = engine.Engine()
    assert isinstance(local.api.transport, engine_api.UnixTransport)
    monkeypatch.setenv("DOCKER_CONTEXT", "dockyard-test-elsewhere")
    remote = engine.Engine()
    assert isinstance(remote.api.transport, engine_api.SessionTransport)
    assert "client" in remote.__dict__  # one docker-py client, made while connecting
    assert remote.server_version() == local.server_version()
    assert remote.inspect_image(base_image) == local.inspect_image(base_image)
    with pytest.raises(ImageNotFound):
        remote.inspect_image("dockyard-test/no-such-image:nowhere")
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    done = remote.run_once(base_image, ["-c", code], entrypoint=["python3"], network_mode="none")
    assert (done.code, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert remote.api.containers(f"{engine.LABEL_RUN}={remote.run_id}") == []


def test_options_docker_py_translates_still_run_through_dockyards_client(
    docker: engine.Engine, base_image: str, tmp_path: Path
) -> None:
    (tmp_path / "note.txt").write_text("mounted\n")
    done = docker.run_once(
        base_image,
        ["-c", "import os; print(open('/mnt/note.txt').read().strip(), 4242 in os.getgroups())"],
        entrypoint=["python3"],
        volumes={str(tmp_path): {"bind": "/mnt", "mode": "ro"}},
        group_add=["4242"],
        network_mode="none",
    )
    assert (done.code, done.stdout) == (0, "mounted True\n"), done.output
    assert docker.api.containers(f"{engine.LABEL_RUN}={docker.run_id}") == []


def test_warm_connects_and_inspects_ahead(docker: engine.Engine, base_image: str) -> None:
    ahead = engine.warm(docker.docker_cli, base_image)
    assert ahead is not None  # the local engine
    attrs, history = ahead.result(timeout=60)
    assert attrs == docker.api.inspect_image(base_image)
    assert history == docker.api.history(str(attrs["Id"]))
    info = images.inspect_image(docker, base_image, ahead)
    assert info == images.inspect_image(docker, base_image)
    missing = engine.warm(docker.docker_cli, "dockyard-test/no-such-image:nowhere")
    assert missing is not None
    with pytest.raises(ImageNotFound):  # the failure is met again, and said as usual
        images.inspect_image(docker, "dockyard-test/no-such-image:nowhere", missing)
