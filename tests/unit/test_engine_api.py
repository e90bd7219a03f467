"""dockyard's own engine client: which engines it speaks to directly (the local socket, as Docker's CLI
and docker-py would reach it) and which it leaves to docker-py; the requests it builds and the answers it
reads, against a real HTTP server on a unix socket; and a container's create body, equal to docker-py's
translation of the same options."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from docker.api.client import APIClient
from docker.models import containers

from dockyard import engine_api
from dockyard.engine import first_line


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"DOCKER_CONFIG": str(tmp_path / "docker-config"), **values}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "/var/run/docker.sock"),
        ({"DOCKER_HOST": ""}, "/var/run/docker.sock"),
        ({"DOCKER_HOST": "unix://"}, "/var/run/docker.sock"),
        ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, "/run/user/1000/docker.sock"),
        ({"DOCKER_CONTEXT": "default"}, "/var/run/docker.sock"),
        ({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, None),
        ({"DOCKER_HOST": "ssh://me@builder"}, None),
        ({"DOCKER_HOST": "http://127.0.0.1:2375"}, None),
        ({"DOCKER_HOST": "unix://relative.sock"}, None),  # docker-py's legacy reading: left to it
        ({"DOCKER_HOST": "npipe:////./pipe/docker_engine"}, None),
        ({"DOCKER_TLS_VERIFY": "1"}, None),
        ({"DOCKER_CERT_PATH": "/certs"}, None),
        ({"DOCKER_CONTEXT": "remote"}, None),
    ],
)
def test_the_local_socket_is_spoken_to_directly_and_anything_else_goes_to_docker_py(
    tmp_path: Path, values: dict[str, str], expected: str | None
) -> None:
    assert engine_api.local_socket(env(tmp_path, **values)) == expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('{"auths": {}}', "/var/run/docker.sock"),
        ('{"currentContext": "default"}', "/var/run/docker.sock"),
        ("", "/var/run/docker.sock"),
        ('{"currentContext": "colima"}', None),
        ("{not json", None),
        ('{"proxies": {"default": {"httpProxy": "http://proxy:3128"}}}', None),  # docker-py hands them on
    ],
)
def test_the_cli_configs_context_and_proxies_count(tmp_path: Path, config: str, expected: str | None) -> None:
    (tmp_path / "docker-config").mkdir()
    (tmp_path / "docker-config" / "config.json").write_text(config)
    assert engine_api.local_socket(env(tmp_path)) == expected


def sdk_body(image: str, options: dict[str, Any]) -> dict[str, Any]:
    create = containers._create_container_args({**options, "image": image, "version": "1.41"})  # type: ignore[attr-defined]
    return dict(APIClient(version="1.41").create_container_config(**create))


@pytest.mark.parametrize(
    "options",
    [
        {"command": ["-I", "-S", "-c", "pass", "{}"], "entrypoint": ["python3"], "network_mode": "none",
         "user": "0:0"},
        {"command": ["--version"]},
        {"command": None, "entrypoint": ["sh"], "tty": True, "environment": {"A": "1", "B": ""},
         "working_dir": "/srv"},
        {"command": ["x"], "environment": {}},
    ],
)  # fmt: skip
def test_a_create_body_is_what_docker_py_would_send(options: dict[str, Any]) -> None:
    options = {**options, "labels": {"dev.dockyard.managed": "true", "dev.dockyard.run": "abc"}}
    assert engine_api.container_body("img:1", options) == sdk_body("img:1", dict(options))


@pytest.mark.parametrize(
    "options",
    [
        {"command": "python -c pass"},  # a string docker-py splits
        {"volumes": {"/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}}},
        {"group_add": ["998"]},
        {"environment": ["A=1"]},
    ],
)
def test_other_options_are_left_to_docker_py(options: dict[str, Any]) -> None:
    assert engine_api.container_body("img:1", options) is None


class Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    seen: list[tuple[str, str, object]]


class Handler(http.server.BaseHTTPRequestHandler):
    """A stand-in engine: records each request and answers as Engine 20.10 does, logs chunked."""

    protocol_version = "HTTP/1.1"
    server: Engine

    def log_message(self, format: str, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def answer(self, status: int, body: bytes, *, chunked: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 5):
                piece = body[start : start + 5]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.seen.append((self.command, self.path, body))
        path = self.path
        if path == "/version":
            self.answer(200, b'{"Version": "20.10.24", "ApiVersion": "1.41"}')
        elif path == "/v1.41/images/no:such/json":
            self.answer(404, b'{"message":"No such image: no:such"}\n')
        elif path.startswith("/v1.41/images/"):
            self.answer(200, b'{"Id": "sha256:abc", "RepoTags": ["reg:5000/a/b:1"]}')
        elif path.startswith("/v1.41/containers/create"):
            self.answer(201, b'{"Id":"c0ffee","Warnings":[]}\n')
        elif path.endswith("/start"):
            self.answer(204, b"")
        elif path.endswith("/wait"):
            self.answer(200, b'{"Error":null,"StatusCode":3}\n', chunked=True)
        elif "/logs?" in path:
            frames = b"\x01\x00\x00\x00\x00\x00\x00\x03out\x02\x00\x00\x00\x00\x00\x00\x03err"
            self.answer(200, frames, chunked=True)
        elif path.startswith("/v1.41/containers/json?"):
            self.answer(200, b'[{"Id": "c0ffee"}]')
        elif self.command == "DELETE":
            self.answer(409, b'{"message":"removal of container c0ffee is already in progress"}')
        else:
            self.answer(500, b"unexpected")

    do_GET = do_POST = do_DELETE = handle_any


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[engine_api.Api, Engine]]:
    path = tmp_path / "engine.sock"
    server = Engine(str(path), Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield engine_api.Api(engine_api.UnixTransport(str(path), timeout=5)), server
    finally:
        server.shutdown()
        server.server_close()


def test_requests_and_answers_over_a_unix_socket(served: tuple[engine_api.Api, Engine]) -> None:
    api, server = served
    assert api.version_info()["Version"] == "20.10.24"
    assert api.version == "1.41"
    assert api.inspect_image("reg:5000/a/b:1")["Id"] == "sha256:abc"
    body = engine_api.container_body("img", {"command": ["x"], "labels": {"k": "v"}})
    assert body is not None
    assert api.create(body, {"name": "probe"}) == "c0ffee"
    api.start("c0ffee")
    assert api.wait("c0ffee", timeout=5) == {"Error": None, "StatusCode": 3}
    assert api.logs("c0ffee") == (
        b"\x01\x00\x00\x00\x00\x00\x00\x03out\x02\x00\x00\x00\x00\x00\x00\x03err"
    )  # read whole across chunks
    assert api.containers("dev.dockyard.run=abc") == [{"Id": "c0ffee"}]
    assert [(method, path) for method, path, _ in server.seen] == [
        ("GET", "/version"),
        ("GET", "/v1.41/images/reg:5000/a/b:1/json"),
        ("POST", "/v1.41/containers/create?name=probe"),
        ("POST", "/v1.41/containers/c0ffee/start"),
        ("POST", "/v1.41/containers/c0ffee/wait"),
        ("GET", "/v1.41/containers/c0ffee/logs?stdout=1&stderr=1"),
        ("GET", "/v1.41/containers/json?all=1&filters=" + quote_plus('{"label": ["dev.dockyard.run=abc"]}')),
    ]
    assert server.seen[2][2] == body


def test_an_error_answer_carries_the_engines_own_explanation(served: tuple[engine_api.Api, Engine]) -> None:
    api, _ = served
    api.version_info()
    with pytest.raises(engine_api.ApiError) as missing:
        api.inspect_image("no:such")
    assert (missing.value.status, missing.value.explanation) == (404, "No such image: no:such")
    assert first_line(missing.value) == "No such image: no:such"
    with pytest.raises(engine_api.ApiError) as busy:
        api.remove("c0ffee")
    assert busy.value.status == 409
    assert "already in progress" in first_line(busy.value)


def test_no_engine_on_the_socket_is_an_os_error(tmp_path: Path) -> None:
    api = engine_api.Api(engine_api.UnixTransport(str(tmp_path / "absent.sock"), timeout=1))
    with pytest.raises(FileNotFoundError):
        api.version_info()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b'{"message":"conflict: unable to remove"}', "conflict: unable to remove"),
        (b"page not found\n", "page not found"),
        (b"", "no explanation"),
        (b'{"other": 1}', '{"other": 1}'),
    ],
)
def test_explanations(answer: bytes, expected: str) -> None:
    assert engine_api.explanation(answer) == expected
