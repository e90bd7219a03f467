"""Image references, the registry HTTP client (against a real HTTP server in this process), the cache
plan of each build path, and the push report's arithmetic and renderings."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from dockyard import registry
from dockyard.build import buildkit as build
from dockyard.build import push as pushes
from dockyard.engine import BuildkitPath, Cli
from dockyard.errors import UsageError
from dockyard.registry import Reference, RegistryError

BUILDX = Cli("/usr/bin/docker", (28, 2), BuildkitPath.BUILDX)
BUILTIN = Cli("/usr/bin/docker", (20, 10), BuildkitPath.BUILTIN)
DIGEST = "sha256:" + "a" * 64
IMAGE_ID = "sha256:" + "c" * 64


# --- references --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("127.0.0.1:5000/team/app:1.0", Reference("127.0.0.1:5000", "team/app", "1.0")),
        ("registry.example.com/app", Reference("registry.example.com", "app")),
        ("localhost/app:x", Reference("localhost", "app", "x")),
        ("docker.io/acme/api@" + DIGEST, Reference("docker.io", "acme/api", None, DIGEST)),
        ("acme/api:2", Reference(None, "acme/api", "2")),
        ("dockyard:0.1.0", Reference(None, "dockyard", "0.1.0")),
    ],
)
def test_references_name_their_registry_as_docker_reads_them(ref: str, parsed: Reference) -> None:
    assert registry.parse_reference(ref) == parsed
    assert str(parsed) == ref


@pytest.mark.parametrize("ref", ["App:1", "team//app", "app:bad tag", "app@sha256:12"])
def test_malformed_references_are_usage_errors(ref: str) -> None:
    with pytest.raises(UsageError):
        registry.parse_reference(ref)


def test_a_name_without_a_registry_is_not_pushable_and_the_error_says_how_to_name_it() -> None:
    with pytest.raises(UsageError) as caught:
        registry.pushable("dockyard:0.1.0", fix=" in [tool.dockyard] image")
    message = caught.value.message
    assert "'dockyard:0.1.0' names no registry" in message
    assert "127.0.0.1:5000/team/dockyard" in message
    assert message.endswith("in [tool.dockyard] image")
    assert registry.pushable("127.0.0.1:5000/t/a:1").host == "127.0.0.1:5000"


def test_pinned_reference_and_loopback_hosts() -> None:
    ref = registry.parse_reference("127.0.0.1:5000/team/app:1.0")
    assert ref.pinned(DIGEST) == f"127.0.0.1:5000/team/app@{DIGEST}"
    assert registry.is_loopback("127.0.0.1:5000")
    assert registry.is_loopback("localhost:5000")
    assert not registry.is_loopback("registry.example.com")


# --- the HTTP client, against a real server -----------------------------------------------------------

GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG = "application/vnd.docker.container.image.v1+json"
MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"mediaType": CONFIG, "size": 1500, "digest": IMAGE_ID},
    "layers": [
        {"mediaType": GZIP, "size": 40_000_000, "digest": DIGEST},
        {"mediaType": GZIP, "size": 300_000, "digest": "sha256:" + "b" * 64},
    ],
}
INDEX = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"digest": "sha256:" + "d" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": "sha256:" + "e" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
    ],
}


class _Registry(BaseHTTPRequestHandler):
    """A registry API with just what the client needs; `password` set: Basic auth, always refused."""

    password: str | None = None
    seen_authorization: list[str] = []  # noqa: RUF012 (shared on purpose: the test reads it)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(
        self, status: int, body: dict[str, object] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.password is not None:
            self.seen_authorization.append(self.headers.get("Authorization", ""))
            self._send(401, {"errors": []}, {"WWW-Authenticate": 'Basic realm="test"'})
        elif self.path == "/v2/":
            self._send(200, {})
        elif self.path == "/v2/team/app/manifests/1.0":
            headers = {"Content-Type": str(MANIFEST["mediaType"]), "Docker-Content-Digest": DIGEST}
            self._send(200, MANIFEST, headers)
        elif self.path == "/v2/team/multi/manifests/1.0":
            self._send(200, INDEX, {"Content-Type": str(INDEX["mediaType"])})
        elif self.path == "/v2/team/multi/manifests/sha256:" + "e" * 64:
            self._send(200, MANIFEST, {"Content-Type": str(MANIFEST["mediaType"])})
        else:
            self._send(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})

    do_HEAD = do_GET


@pytest.fixture
def served() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        _Registry.password = None
        _Registry.seen_authorization.clear()


def test_a_manifest_gives_each_layer_its_compressed_size_and_the_digest(served: str) -> None:
    client = registry.Registry(served)
    client.ping()
    found = client.manifest("team/app", "1.0")
    assert found is not None
    assert found.digest == DIGEST
    assert found.config.digest == IMAGE_ID
    assert [layer.size for layer in found.layers] == [40_000_000, 300_000]
    assert found.compressed_size == 40_300_000
    assert client.manifest("team/app", "nope") is None


def test_an_index_is_resolved_to_the_platform_asked_for(served: str) -> None:
    found = registry.Registry(served).manifest("team/multi", "1.0", platform="linux/amd64")
    assert found is not None
    assert found.config.digest == IMAGE_ID


def test_find_pushed_accepts_only_the_same_image(served: str) -> None:
    manifest, where, note = registry.find_pushed(IMAGE_ID, f"{served}/team/app:1.0")
    assert manifest is not None
    assert where == f"{served}/team/app@{DIGEST}"
    assert note is None
    other, where, note = registry.find_pushed("sha256:" + "f" * 64, f"{served}/team/app:1.0")
    assert (other, where) == (None, None)
    assert note is not None
    assert "holds no manifest of this image" in note
    assert registry.find_pushed(IMAGE_ID, "dockyard:0.1.0") == (None, None, None)


def test_refused_credentials_are_one_line_that_never_shows_them(
    served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cret-never-shown"
    encoded = base64.b64encode(f"ci:{secret}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {served: {"auth": encoded}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    _Registry.password = secret
    with pytest.raises(RegistryError) as caught:
        registry.Registry(served).ping()
    message = caught.value.message
    assert message == (
        f"{served} refused access (the docker config's credentials): run `docker login {served}`"
    )
    assert secret not in message
    assert encoded not in message
    assert f"Basic {encoded}" in _Registry.seen_authorization  # the credentials were really offered


def test_basic_credentials_go_up_front_once_the_registry_asked_for_them(
    served: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded = base64.b64encode(b"ci:pw").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {served: {"auth": encoded}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    _Registry.password = "other"
    client = registry.Registry(served)
    for _ in range(2):
        with pytest.raises(RegistryError):
            client.ping()
    # First request anonymous, then Basic; from then on Basic first, and no second try of the same.
    assert _Registry.seen_authorization == ["", f"Basic {encoded}", f"Basic {encoded}"]
    assert client.credentials()["username"] == "ci"


class _BearerRegistry(BaseHTTPRequestHandler):
    """A registry with token auth and its token service on the same port: `/token` grants "good" for
    the right Basic credentials, 401 for any other; the registry's challenge names the realm, service,
    the scope it wants and an `error` (which is the registry's to say, not a token-request parameter)."""

    token_queries: list[str] = []  # noqa: RUF012 (shared on purpose: the test reads it)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict[str, object], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path.startswith("/token"):
            self.token_queries.append(self.path.partition("?")[2])
            right = "Basic " + base64.b64encode(b"ci:pw").decode()
            if self.headers.get("Authorization") == right:
                self._send(200, {"access_token": "good"})
            else:
                self._send(401, {"details": "incorrect username or password"})
        elif self.headers.get("Authorization") == "Bearer good":
            self._send(200 if self.path == "/v2/" else 404, {})
        else:
            host = self.headers["Host"]
            challenge = (
                f'Bearer realm="http://{host}/token",service="reg.test",'
                'scope="registry:catalog:*",error="invalid_token"'
            )
            self._send(401, {"errors": []}, {"WWW-Authenticate": challenge})


@pytest.mark.parametrize("password", ["pw", "wrong"])
def test_a_bearer_challenge_asks_its_realm_for_a_token_with_the_service_and_a_scope(
    password: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BearerRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = f"127.0.0.1:{server.server_address[1]}"
    encoded = base64.b64encode(f"ci:{password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {host: {"auth": encoded}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    try:
        client = registry.Registry(host)
        if password == "wrong":
            with pytest.raises(RegistryError) as caught:
                client.ping()
            assert caught.value.message == (
                f"{host} refused access (the docker config's credentials): run `docker login {host}`"
            )
            assert password not in caught.value.message
        else:
            client.ping()  # no scope of our own: the challenge's
            assert client.manifest("team/app", "1.0") is None  # through a token of the pull scope
    finally:
        server.shutdown()
        server.server_close()
    queries = list(_BearerRegistry.token_queries)
    _BearerRegistry.token_queries.clear()
    assert queries[0] == "service=reg.test&scope=registry%3Acatalog%3A%2A"
    if password == "pw":
        assert queries[1:] == ["service=reg.test&scope=repository%3Ateam%2Fapp%3Apull"]


def test_each_docker_config_gets_its_own_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "a"))
    first = registry.connect("127.0.0.1:5999")
    assert registry.connect("127.0.0.1:5999") is first
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "b"))
    assert registry.connect("127.0.0.1:5999") is not first


def test_a_registry_that_does_not_answer_is_one_line() -> None:
    with pytest.raises(RegistryError, match=r"registry 127\.0\.0\.1:9 does not answer \(connection refused"):
        registry.Registry("127.0.0.1:9").ping()


# --- the cache plan -----------------------------------------------------------------------------------


def request(**overrides: object) -> build.BuildRequest:
    fields: dict[str, object] = {
        "dockerfile": Path("/p/Dockerfile"),
        "context": Path("/p"),
        "tags": ("127.0.0.1:5000/t/app:1.0",),
    }
    fields.update(overrides)
    return build.BuildRequest(**fields)  # type: ignore[arg-type]


def test_builtin_cache_to_is_an_inline_cache_pushed_with_the_image() -> None:
    plan = build.cache_plan(BUILTIN, request(cache_to=("127.0.0.1:5000/t/app:cache",)))
    assert plan.args == ("--build-arg", "BUILDKIT_INLINE_CACHE=1")
    assert plan.tags == ("127.0.0.1:5000/t/app:cache",)
    assert plan.push == ("127.0.0.1:5000/t/app:cache",)
    argv, _ = build.build_argv(BUILTIN, request(cache_to=("127.0.0.1:5000/t/app:cache",)), Path("/t/iid"))
    assert argv[argv.index("127.0.0.1:5000/t/app:cache") - 1] == "--tag"


def test_builtin_cache_to_a_tag_the_build_makes_anyway_adds_no_tag() -> None:
    spec = "type=registry,ref=127.0.0.1:5000/t/app:1.0,mode=max"
    plan = build.cache_plan(BUILTIN, request(cache_to=(spec,)))
    assert plan.tags == ()
    assert plan.push == ("127.0.0.1:5000/t/app:1.0",)
    assert any("final stage only" in note for note in plan.notes)


def test_builtin_cache_from_imports_an_image_ref() -> None:
    plan = build.cache_plan(BUILTIN, request(cache_from=("type=registry,ref=127.0.0.1:5000/t/app:cache",)))
    assert plan.args == ("--cache-from", "127.0.0.1:5000/t/app:cache")
    assert plan.push == ()


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("cache_to", "type=local,dest=/c", "other cache types need docker buildx"),
        ("cache_from", "type=gha", "other cache types need docker buildx"),
        ("cache_to", "app:cache", "names no registry"),
    ],
)
def test_builtin_refuses_what_it_cannot_do(field: str, value: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        build.cache_plan(BUILTIN, request(**{field: (value,)}))


def test_buildx_keeps_registry_caches_with_mode_max() -> None:
    plan = build.cache_plan(
        BUILDX, request(cache_from=("r:5000/t/app:cache",), cache_to=("r:5000/t/app:cache",))
    )
    assert plan.args == (
        "--cache-from", "type=registry,ref=r:5000/t/app:cache",
        "--cache-to", "type=registry,ref=r:5000/t/app:cache,mode=max",
    )  # fmt: skip
    assert plan.push == ()
    spec = build.cache_plan(BUILDX, request(cache_to=("type=registry,ref=x/y:c,mode=min",)))
    assert spec.args == ("--cache-to", "type=registry,ref=x/y:c,mode=min")


# --- the push report -----------------------------------------------------------------------------------


def pushed(**overrides: object) -> pushes.PushResult:
    def sha(c: str) -> str:
        return "sha256:" + c * 64

    layers = (
        pushes.LayerPush(0, sha("1"), "base", 113_000_000, DIGEST, 40_000_000, pushes.PRESENT),
        pushes.LayerPush(1, sha("2"), "RUN uv sync", 18_000_000, sha("3"), 6_000_000, pushes.MOUNTED),
        pushes.LayerPush(2, sha("4"), "RUN uv pip install | x", 800_000, sha("5"), 330_000, pushes.PUSHED),
    )
    fields: dict[str, object] = {
        "name": "127.0.0.1:5000/team/app",
        "tags": ("1.0", "abc1234"),
        "image_id": IMAGE_ID,
        "digest": DIGEST,
        "manifest_size": 1_400,
        "config_size": 5_000,
        "config_pushed": True,
        "layers": layers,
        "seconds": 0.4,
    }
    fields.update(overrides)
    return pushes.PushResult(**fields)  # type: ignore[arg-type]


def test_moved_counts_the_pushed_layers_a_new_config_and_the_manifest() -> None:
    result = pushed()
    assert result.moved == 330_000 + 5_000 + 1_400
    assert pushed(config_pushed=False).moved == 330_000 + 1_400
    assert result.compressed == 46_330_000 + 5_000 + 1_400
    assert result.pinned == f"127.0.0.1:5000/team/app@{DIGEST}"
    assert result.refs == ("127.0.0.1:5000/team/app:1.0", "127.0.0.1:5000/team/app:abc1234")
    assert pushes.summary(result) == (
        "moved 336.4 kB: 1 of 3 layers pushed (330.0 kB), 2 already in the registry (46.0 MB); "
        "config pushed, manifest 1.4 kB"
    )


def test_push_renderings_name_the_digest_to_deploy() -> None:
    out = io.StringIO()
    pushes.render([pushed()], Console(file=out, width=140, color_system=None))
    text = out.getvalue()
    assert f"deploy  127.0.0.1:5000/team/app@{DIGEST}" in text
    assert any(line.rstrip().endswith("pushed") and "330.0 kB" in line for line in text.splitlines())
    data = json.loads(pushes.to_json([pushed()]))["pushes"][0]
    assert (data["moved"], data["pinned"], data["digest"]) == (336_400, pushed().pinned, DIGEST)
    assert [layer["status"] for layer in data["layers"]] == ["present", "mounted", "pushed"]
    markdown = pushes.to_markdown([pushed()])
    assert f"deploy: `127.0.0.1:5000/team/app@{DIGEST}`" in markdown
    assert "| 2 | RUN uv pip install \\| x | 800.0 kB | 330.0 kB | pushed |" in markdown


@pytest.mark.parametrize(
    ("error", "match"),
    [
        ("unauthorized: authentication required", "refused the push .* run `docker login r:5000`"),
        ('Get "http://r:5000/v2/": dial tcp: connect: connection refused', "registry r:5000 does not answer"),
        ("blob upload unknown", "pushing r:5000/t/a:1 failed: blob upload unknown"),
    ],
)
def test_push_progress_errors_are_one_line(error: str, match: str) -> None:
    problem = pushes._progress_error({"error": error}, "r:5000/t/a:1", "r:5000")
    assert "\n" not in problem.message
    assert re.search(match, problem.message)


# --- cache imports the builder could not do -------------------------------------------------------------

IMPORTS = """\
#6 importing cache manifest from 127.0.0.1:40123/team/app:cache
#6 sha256:dfe659597ca93211a49fa404cfe2400f24d3cbcec359926c375bd6ac9d21cc34
#6 ERROR: pulling from host 127.0.0.1:40123 failed with status code [manifests cache]: 401 Unauthorized
#7 importing cache manifest from 127.0.0.1:40123/team/app:nope
#7 ERROR: 127.0.0.1:40123/team/app:nope: not found
#8 importing cache manifest from 127.0.0.1:9/team/app:cache
#8 ERROR: failed to do request: Head "http://127.0.0.1:9/v2/team/app/manifests/cache": dial tcp \
127.0.0.1:9: connect: connection refused
#9 importing cache manifest from 127.0.0.1:5000/team/app:cache
#9 DONE 0.0s
#10 [2/2] RUN echo hi
#10 ERROR: process "/bin/sh -c echo hi" did not complete successfully
------
 > importing cache manifest from 127.0.0.1:40123/team/app:cache:
------
"""


def test_each_cache_the_builder_could_not_import_is_one_line_saying_why() -> None:
    missed = build.cache_import_failures(IMPORTS)
    assert len(missed) == 3, missed
    refused, absent, down = missed
    assert refused.startswith("cache-from 127.0.0.1:40123/team/app:cache was not imported")
    assert refused.endswith(
        "127.0.0.1:40123 refused access (401 Unauthorized): run `docker login 127.0.0.1:40123`"
    )
    assert absent.endswith("no such image there yet (a build with --cache-to REF exports it)")
    assert down.endswith("registry 127.0.0.1:9 does not answer")
    assert all("\n" not in line for line in missed)
    imported = "#9 importing cache manifest from 127.0.0.1:5000/a:b\n#9 DONE 0.0s\n"
    assert build.cache_import_failures(imported) == ()
