"""The few engine API requests that inspecting and running an image needs, and the wire they travel on.

`Api` builds each request (path, query, JSON body) and reads each answer; a transport carries it. On
a local engine (`local_socket()`: the engine's unix socket, as Docker's CLI would reach it with no
context or TLS settings in play) `UnixTransport` speaks HTTP/1.1 over the socket with `http.client`,
which costs a process nothing to import next to docker-py's tenth of a second. Anything else (tcp,
TLS, ssh, a CLI context) goes through docker-py's own session (`SessionTransport`), which already
knows how to reach it. `dockyard.engine` is the only user: callers ask the engine, not this module.

`container_body` translates the handful of `containers.run` options dockyard's own containers use
into the create request's body exactly as docker-py would (a unit test compares the two); any other
option is left to docker-py's translation.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    import http.client

    import requests

DEFAULT_SOCKET = "/var/run/docker.sock"
TIMEOUT = 120.0  # seconds, as docker-py is given: one request's longest silence

log = logging.getLogger("dockyard.engine")


class ApiError(Exception):
    """The engine answered with an error status; `explanation` is its own message."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status}: {explanation}")
        self.status = status
        self.explanation = explanation


class Transport(Protocol):
    def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float | None = None
    ) -> tuple[int, bytes]:
        """Send one request (`path` with its query) and return the status and the whole body."""
        ...


def local_socket(environ: Mapping[str, str] | None = None) -> str | None:
    """The engine's unix socket when the engine is reached over it the way both Docker's CLI and
    docker-py would reach it; None whenever anything else could be meant (tcp, ssh, TLS settings, a
    context other than `default` named by DOCKER_CONTEXT or the CLI's config), and when the CLI's config
    has proxy settings (docker-py hands them to every container, as `docker run` does): those go
    through docker-py.
    """
    env = os.environ if environ is None else environ
    if sys.platform == "win32" or env.get("DOCKER_TLS_VERIFY") or env.get("DOCKER_CERT_PATH"):
        return None
    if _config_needs_docker_py(env):
        return None
    host = env.get("DOCKER_HOST", "").strip()
    if host in ("", "unix://"):
        return DEFAULT_SOCKET
    if host.startswith("unix:///") and "?" not in host and "#" not in host:
        return host.removeprefix("unix://")
    return None


def _config_needs_docker_py(env: Mapping[str, str]) -> bool:
    """Whether the CLI would use a context other than `default` or has proxy settings for containers
    (or its config cannot be read)."""
    if env.get("DOCKER_CONTEXT", "default") not in ("", "default"):
        return True
    # os.path.expanduser: Path.home() raises for a user with no HOME and no passwd entry (a container's)
    config = Path(env.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")) / "config.json"  # noqa: PTH111
    try:
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        settings = json.loads(text) if text.strip() else {}
        current, proxies = settings.get("currentContext"), settings.get("proxies")
    except (ValueError, AttributeError):
        return True
    return current not in (None, "", "default") or bool(proxies)


class UnixTransport:
    """HTTP/1.1 over a unix socket: one connection per request (a connect costs microseconds), so
    threads never share one."""

    def __init__(self, path: str, timeout: float = TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float | None = None
    ) -> tuple[int, bytes]:
        connection = _connection_class()("localhost", timeout=self.timeout if timeout is None else timeout)
        connection.socket_path = self.path
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response: http.client.HTTPResponse = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        log.debug('"%s %s" %s', method, path, response.status)
        return response.status, data


@functools.cache
def _connection_class() -> type[Any]:
    import http.client  # noqa: PLC0415

    class UnixConnection(http.client.HTTPConnection):
        socket_path = DEFAULT_SOCKET

        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except BaseException:
                sock.close()
                raise
            self.sock = sock

    return UnixConnection


class SessionTransport:
    """docker-py's own session (tcp, TLS, ssh...), for an engine that is not the local socket."""

    def __init__(self, session: requests.Session, base_url: str, timeout: float = TIMEOUT) -> None:
        self.session = session
        self.base_url = base_url
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: bytes | None = None, *, timeout: float | None = None
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        response = self.session.request(
            method,
            self.base_url + path,
            data=body,
            headers=headers,
            timeout=self.timeout if timeout is None else timeout,
        )
        log.debug('"%s %s" %s', method, path, response.status_code)
        return response.status_code, response.content


class Api:
    """The requests, versioned once `version()` has named the API version the engine speaks."""

    def __init__(self, transport: Transport, version: str | None = None) -> None:
        self.transport = transport
        self.version = version

    def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, object] | None = None,
        body: object = None,
        *,
        timeout: float | None = None,
        versioned: bool = True,
    ) -> bytes:
        url = f"/v{self.version}{path}" if versioned and self.version else path
        if query:
            url += "?" + urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        status, answer = self.transport.request(method, url, data, timeout=timeout)
        if status >= 400:
            raise ApiError(status, explanation(answer))
        return answer

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self._call(method, path, **kwargs)
        return json.loads(answer) if answer.strip() else None

    def version_info(self) -> dict[str, Any]:
        """GET /version, unversioned (every engine answers it), and speak its API version from then on."""
        answer = self._json("GET", "/version", versioned=False)
        if not isinstance(answer, dict) or not answer.get("ApiVersion"):
            raise ApiError(200, f"no API version in the engine's answer: {str(answer)[:100]}")
        self.version = str(answer["ApiVersion"])
        return answer

    def inspect_image(self, ref: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._json("GET", f"/images/{quote(ref, safe='/:')}/json")
        return answer

    def history(self, image: str) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self._json("GET", f"/images/{quote(image, safe='/:')}/history")
        return answer

    def create(self, body: Mapping[str, Any], query: Mapping[str, str] | None = None) -> str:
        answer = self._json("POST", "/containers/create", query=query or None, body=dict(body))
        return str(answer["Id"])

    def start(self, container: str) -> None:
        self._call("POST", f"/containers/{container}/start")

    def wait(self, container: str, timeout: float) -> dict[str, Any]:
        answer: dict[str, Any] = self._json("POST", f"/containers/{container}/wait", timeout=timeout)
        return answer

    def logs(self, container: str) -> bytes:
        """Both output streams so far, as the engine frames them (one stream with a TTY)."""
        return self._call("GET", f"/containers/{container}/logs", query={"stdout": 1, "stderr": 1})

    def remove(self, container: str) -> None:
        self._call("DELETE", f"/containers/{container}", query={"force": "true", "v": "true"})

    def containers(self, label: str) -> list[dict[str, Any]]:
        """Every container, running or not, with this label (`key=value`)."""
        query = {"all": 1, "filters": json.dumps({"label": [label]})}
        answer: list[dict[str, Any]] = self._json("GET", "/containers/json", query=query)
        return answer


def explanation(answer: bytes) -> str:
    """The engine's message in an error answer (`{"message": ...}`), else the answer's text."""
    text = answer.decode(errors="replace").strip()
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        return text or "no explanation"
    return str(message) if message else text or "no explanation"


# The `containers.run` options dockyard's own containers use, translated here; any other goes to docker-py.
SIMPLE_OPTIONS = frozenset(
    {"command", "entrypoint", "user", "network_mode", "labels", "tty", "environment", "working_dir"}
)


def container_body(image: str, options: Mapping[str, Any]) -> dict[str, Any] | None:
    """The create request's body for these `containers.run` options, as docker-py's translation gives
    it; None when an option is not one of the simple few (or not in the simple form: a command as a
    list, not a string to split), so that docker-py translates it."""
    if not set(options) <= SIMPLE_OPTIONS:
        return None
    command, entrypoint = options.get("command"), options.get("entrypoint")
    environment = options.get("environment")
    if not all(value is None or isinstance(value, list) for value in (command, entrypoint)):
        return None
    if environment is not None and not (
        isinstance(environment, dict) and all(isinstance(value, str) for value in environment.values())
    ):
        return None
    return {
        "Hostname": None,
        "Domainname": None,
        "ExposedPorts": None,
        "User": options.get("user"),
        "Tty": bool(options.get("tty", False)),
        "OpenStdin": False,
        "StdinOnce": False,
        "AttachStdin": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "Env": [f"{key}={value}" for key, value in environment.items()] if environment is not None else None,
        "Cmd": command,
        "Image": image,
        "Volumes": None,
        "NetworkDisabled": False,
        "Entrypoint": entrypoint,
        "WorkingDir": options.get("working_dir"),
        "HostConfig": {"NetworkMode": options.get("network_mode") or "default"},
        "NetworkingConfig": None,
        "MacAddress": None,
        "Labels": options.get("labels"),
        "StopSignal": None,
        "Healthcheck": None,
        "StopTimeout": None,
        "Runtime": None,
    }
