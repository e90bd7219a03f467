"""`dockyard doctor` on machines faked to miss one thing each: the engine (DOCKER_HOST at a dead socket),
Compose (a docker config without the plugin), and trust in the index's TLS (a local HTTPS server with an
unknown CA). Each gives its FIX line with the command that fixes it; nothing else is changed."""

from __future__ import annotations

import http.server
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from dockyard.machine import doctor

ROOT = Path(__file__).resolve().parents[2]


def line(lines: list[doctor.Line], item: str) -> doctor.Line:
    return next(entry for entry in lines if entry.item == item)


@pytest.fixture
def bare_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No machine file, no CA bundle setting: what a fresh machine has."""
    monkeypatch.setenv("DOCKYARD_MACHINE_FILE", str(tmp_path / "machine.env"))
    for key in ("DOCKYARD_CA_BUNDLE", "DOCKYARD_DOCKER", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def test_every_item_has_a_line_in_order(bare_env: Path) -> None:
    lines = doctor.diagnose(ROOT)
    assert [entry.item for entry in lines] == list(doctor.ORDER)
    for entry in lines:
        assert entry.status in (doctor.OK, doctor.WARN, doctor.FIX)
        if entry.status == doctor.FIX:
            assert entry.fix, entry  # a FIX line always says what to run


def test_missing_engine_gives_its_fix_line(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"unix://{bare_env / 'dead.sock'}"
    monkeypatch.setenv("DOCKER_HOST", dead)
    lines = doctor.diagnose(ROOT)
    engine = line(lines, "engine")
    assert engine.status == doctor.FIX
    assert engine.detail == f"no engine answers at DOCKER_HOST={dead}"
    assert engine.fix == f"start the engine at {dead}, or unset DOCKER_HOST"
    assert not engine.fixable  # provisioning would start an engine elsewhere: never
    # what needs the engine says so instead of failing
    assert line(lines, "disk").status == doctor.WARN
    assert line(lines, "base images").detail.endswith("not checked, no engine")
    assert not doctor.ready(lines)


def test_missing_engine_through_the_cli_exits_1_and_names_the_fix(bare_env: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{bare_env / 'dead.sock'}"}
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "doctor"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FIX" in done.stdout
    words = set(done.stdout.split())  # the table wraps long cells: look for the fix's words
    assert {"start", "unset", "DOCKER_HOST"} <= words
    assert "not ready" in done.stdout
    assert "Traceback" not in done.stderr


def test_missing_compose_gives_its_fix_line(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = bare_env / "docker-config"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))  # the Compose plugin lives in the docker config dir
    compose = line(doctor.diagnose(ROOT), "compose")
    assert compose.status == doctor.FIX
    assert "compose" in compose.detail
    assert compose.fix  # doctor --fix here (root on Debian), or the install command elsewhere


@pytest.fixture
def unknown_ca_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS index on 127.0.0.1 whose certificate no public root signs (like an intercepting proxy)."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is part of every Debian/Ubuntu base (ca-certificates depends on it)"
    cert, key = tmp_path / "proxy-ca.pem", tmp_path / "proxy-key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=dockyard test proxy",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/simple/", cert
    finally:
        server.shutdown()
        server.server_close()


def test_unknown_ca_without_a_bundle_gives_its_fix_line(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch, unknown_ca_server: tuple[str, Path]
) -> None:
    url, _ = unknown_ca_server
    monkeypatch.setenv("UV_DEFAULT_INDEX", url)
    tls = line(doctor.diagnose(ROOT), "tls")
    assert tls.status == doctor.FIX
    assert "127.0.0.1: intercepted" in tls.detail
    assert "no CA bundle configured" in tls.detail
    assert tls.fix.startswith("export DOCKYARD_CA_BUNDLE=")


def test_unknown_ca_with_a_bundle_that_trusts_it_is_ok(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch, unknown_ca_server: tuple[str, Path]
) -> None:
    url, cert = unknown_ca_server
    monkeypatch.setenv("UV_DEFAULT_INDEX", url)
    monkeypatch.setenv("DOCKYARD_CA_BUNDLE", str(cert))
    tls = line(doctor.diagnose(ROOT), "tls")
    assert tls.status == doctor.OK, tls
    assert "intercepted by dockyard test proxy" in tls.detail
    assert str(cert) in tls.detail


def test_a_bundle_that_does_not_trust_it_is_a_fix(
    bare_env: Path, monkeypatch: pytest.MonkeyPatch, unknown_ca_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = unknown_ca_server
    monkeypatch.setenv("UV_DEFAULT_INDEX", url)
    monkeypatch.setenv("DOCKYARD_CA_BUNDLE", certifi.where())
    tls = line(doctor.diagnose(ROOT), "tls")
    assert tls.status == doctor.FIX
    assert "does not verify it" in tls.detail


def test_a_stale_lock_and_a_bad_config_are_fix_lines(bare_env: Path, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "proj"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = []\n'
        "[tool.dockyard]\nimgae = 'x'\n"
    )
    lines = doctor.diagnose(project)
    assert line(lines, "config").status == doctor.FIX
    assert "Perhaps you meant 'image'" in line(lines, "config").detail
    assert line(lines, "lock").status in (doctor.FIX, doctor.WARN)
    (project / "pyproject.toml").write_text(
        '[project]\nname = "proj"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = []\n'
    )
    lock = line(doctor.diagnose(project), "lock")
    assert (lock.status, lock.fix) == (doctor.FIX, "uv lock")


def test_outside_a_project_the_project_lines_say_so(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(bare_env)
    lines = doctor.diagnose(None)
    assert line(lines, "config").status == doctor.WARN
    assert "no pyproject.toml" in line(lines, "config").detail


def _locked_project(root: Path) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "proj"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = []\n'
    )
    uv = shutil.which("uv")
    assert uv is not None
    argv = [uv, "lock", "--offline", "--python", sys.executable]
    subprocess.run(argv, cwd=root, check=True, capture_output=True)
    return root


def test_a_lock_uv_cannot_check_here_is_not_called_stale(
    bare_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A public project pins `.python-version` to a Python this machine lacks, and uv sits behind a
    # version manager's shim that refuses to start in such a directory (pyenv: exit 127). The lock is
    # current: doctor must say so (uv run from / with an interpreter that fits), and name the shim.
    project = _locked_project(tmp_path / "proj")
    (project / ".python-version").write_text("3.99\n")
    real = shutil.which("uv")
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "uv"
    shim.write_text(
        "#!/bin/sh\nif [ -f .python-version ]; then\n"
        '  echo "pyenv: uv: command not found" >&2; exit 127\nfi\n'
        f'exec "{real}" "$@"\n'
    )
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("DOCKYARD_UV", raising=False)
    lines = doctor.diagnose(project)
    lock = line(lines, "lock")
    assert (lock.status, lock.detail) == (doctor.OK, "uv.lock matches pyproject.toml")
    uv = line(lines, "uv")
    assert uv.status == doctor.WARN, uv
    assert "refuses to start in proj/ (pyenv: uv: command not found)" in uv.detail
    # A lock uv says is stale is still a FIX, through the same shim.
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace('version = "0.1.0"', 'version = "0.2.0"'))
    lock = line(doctor.diagnose(project), "lock")
    assert (lock.status, lock.fix) == (doctor.FIX, "uv lock")
    assert "out of date" in lock.detail
