"""A registry that asks for credentials: a second CNCF Distribution (`docker-registry`, the binary the
machine's provisioning installs) with htpasswd (bcrypt) auth, on a free 127.0.0.1 port, over plain
HTTP as the machine's own registry is (Docker allows 127.0.0.0/8 without TLS, and Distribution 2.8
serves Basic auth without it).

Its storage, configuration, htpasswd file and log are in a directory of the caller's; it is stopped
by its own pid on every exit path. `docker_config` writes a docker config directory (for
DOCKER_CONFIG) as `docker login` does: an `auths` entry holding base64 `user:password`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import requests

BINARY = "/usr/bin/docker-registry"
START_TIMEOUT = 30.0


class AuthRegistryUnavailable(RuntimeError):
    """The registry binary is missing or the registry did not come up."""


@dataclass(frozen=True)
class AuthRegistry:
    host: str  # 127.0.0.1:PORT
    user: str
    password: str
    root: Path  # configuration, htpasswd, storage and log
    pid: int

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    def docker_config(self, directory: Path, *, password: str | None = None, login: bool = True) -> Path:
        """A DOCKER_CONFIG directory: an `auths` entry for this registry (`password`, else the right
        one) as `docker login` writes it, or, `login=False`, a config with no credentials at all."""
        directory.mkdir(parents=True, exist_ok=True)
        auths = {}
        if login:
            token = f"{self.user}:{password if password is not None else self.password}"
            auths[self.host] = {"auth": base64.b64encode(token.encode()).decode()}
        (directory / "config.json").write_text(json.dumps({"auths": auths}))
        return directory

    def requests_seen(self) -> list[str]:
        """The registry's access log: `METHOD URI STATUS "user agent"`, oldest first."""
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            # Distribution's combined log: 127.0.0.1 - - [date] "GET /v2/... HTTP/1.1" 200 123 "" "agent"
            if '" ' in line and line.startswith("127.0.0.1 - "):
                parts = line.split('"')
                if len(parts) >= 6:
                    lines.append(f'{parts[1].rsplit(" ", 1)[0]} {parts[2].split()[0]} "{parts[5]}"')
        return lines


def problem() -> str | None:
    """Why no such registry can run here, or None. The binary is installed when missing and this runs
    as root with apt (provisioning installs it only when no registry answers on 127.0.0.1:5000)."""
    if shutil.which(BINARY) is None and os.geteuid() == 0 and shutil.which("apt-get"):
        _install()
    if shutil.which(BINARY) is None:
        return f"{BINARY} is missing (scripts/provision-engine installs Debian's docker-registry)"
    return None


def _install() -> None:
    """`apt-get install docker-registry`, without letting the package start its own service (it would
    listen on every interface), as provisioning does."""
    policy = Path("/usr/sbin/policy-rc.d")
    made = not policy.exists()
    if made:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker-registry"]
        for argv in (["apt-get", "update", "-qq"], install):
            subprocess.run(argv, env=env, capture_output=True, check=False, timeout=600)
    finally:
        if made:
            policy.unlink(missing_ok=True)


def untag(host: str) -> None:
    """Remove every tag on the machine's engine that names a repository of the registry at `host`.
    From image summaries, not images.list(): that inspects every image, and another run on the shared
    engine may remove one in between (a 404 in this teardown)."""
    from dockyard import config, engine  # noqa: PLC0415
    from tests.engine.conftest import ROOT  # noqa: PLC0415

    made = engine.connect(config.load(ROOT).docker)
    for image in made.client.api.images():
        for tag in image.get("RepoTags") or ():
            if tag.startswith(f"{host}/"):
                with contextlib.suppress(Exception):
                    made.client.api.remove_image(tag)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(root: Path, addr: str) -> str:
    return f"""\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root / "storage"}
  delete:
    enabled: true
http:
  addr: {addr}
  secret: {secrets.token_hex(16)}
auth:
  htpasswd:
    realm: dockyard-test
    path: {root / "htpasswd"}
"""


def answers(host: str) -> bool:
    try:
        answer = requests.get(f"http://{host}/v2/", timeout=2)
    except requests.RequestException:
        return False
    api = answer.headers.get("Docker-Distribution-Api-Version", "")
    return answer.status_code == 401 and api.startswith("registry/2")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


@contextlib.contextmanager
def running(root: Path, *, user: str = "dockyard-ci") -> Iterator[AuthRegistry]:
    """Start the registry with one account (a random password); stop it on every exit."""
    if reason := problem():
        raise AuthRegistryUnavailable(reason)
    root.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    # bcrypt is the only scheme Distribution's htpasswd accepts; cost 5 keeps each check fast.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    (root / "htpasswd").write_text(f"{user}:{hashed}\n")
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(3):  # a free port can be taken between the probe and the bind
            host = f"127.0.0.1:{free_port()}"
            (root / "config.yml").write_text(_config(root, host))
            with (root / "registry.log").open("ab") as log:
                proc = subprocess.Popen(
                    [BINARY, "serve", str(root / "config.yml")],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            deadline = time.monotonic() + START_TIMEOUT
            while proc.poll() is None and not answers(host) and time.monotonic() < deadline:
                time.sleep(0.1)
            if proc.poll() is None and answers(host):
                yield AuthRegistry(host, user, password, root, proc.pid)
                return
            stop(proc)
        tail = " | ".join((root / "registry.log").read_text(errors="replace").splitlines()[-3:])
        raise AuthRegistryUnavailable(f"{BINARY} did not answer: {tail}")
    finally:
        if proc is not None:
            stop(proc)
