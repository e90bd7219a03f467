"""A registry that speaks the Docker token protocol, as Docker Hub, GHCR, ECR and GitLab do: a CNCF
Distribution (`docker-registry`) with `auth: token`, and a token server of the test's own.

The token server (http.server in a thread, on a free 127.0.0.1 port) implements
`GET REALM?service=SERVICE&scope=repository:NAME:pull,push` with Basic credentials: the right ones get
a JWT granting every action asked for; none at all get an anonymous token granting nothing (as Docker
Hub and GHCR answer); wrong ones get HTTP 401. It also answers the OAuth2 form
(`POST REALM` with `grant_type=refresh_token`), for a docker config holding an `identitytoken` instead
of a password, as Azure Container Registry and Docker Hub's SSO logins leave one.

The JWT is RS256-signed (the `openssl` CLI: the key and its self-signed certificate are made per run)
and carries the certificate in its `x5c` header, which Distribution verifies against its
`rootcertbundle` (that certificate). Every request is logged, so a test can tell which client asked
for which scope, and how.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.engine import auth_registry
from tests.engine.auth_registry import AuthRegistry, AuthRegistryUnavailable

SERVICE = "dockyard-test-registry"
ISSUER = "dockyard-test-token-issuer"
TOKEN_LIFETIME = 300


def problem() -> str | None:
    """Why no such registry can run here, or None."""
    if shutil.which("openssl") is None:
        return "the openssl CLI is missing (it signs the test token server's JWTs)"
    return auth_registry.problem()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered."""

    agent: str
    grant: str  # "basic", "refresh_token" or "anonymous"
    account: str | None  # the account the credentials name; None: anonymous or unknown
    service: str | None
    scopes: tuple[str, ...]
    status: int


@dataclass
class Issuer:
    """An RSA key and its self-signed certificate; signs RS256 JWTs carrying the certificate (x5c)."""

    key: Path
    cert: Path
    der: bytes = b""

    @classmethod
    def make(cls, root: Path) -> Issuer:
        key, cert = root / "token-key.pem", root / "token-cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", "2", "-subj", f"/CN={ISSUER}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(cert), "-outform", "DER"],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        return cls(key, cert, der)

    def sign(self, claims: dict[str, object]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.der).decode()]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(), check=True, capture_output=True, timeout=60,
        ).stdout  # fmt: skip
        return f"{signing_input}.{_b64url(signature)}"


def _access(scopes: list[str]) -> list[dict[str, object]]:
    """The `access` claim granting every action each `repository:NAME:ACTIONS` scope asks for."""
    granted: list[dict[str, object]] = []
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind and name:
            granted.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
    return granted


@dataclass
class TokenServer:
    issuer: Issuer
    user: str
    password: str
    identity_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: list[TokenRequest] = field(default_factory=list)
    realm: str = ""

    def answer(self, agent: str, authorization: str, query: str) -> tuple[int, dict[str, object]]:
        """`query` is the GET's query string or the POST's form (the same encoding)."""
        params = parse_qs(query)
        scopes = tuple(s for value in params.get("scope", []) for s in value.split(" ") if s)
        service = params["service"][0] if params.get("service") else None
        account: str | None = None
        granted: list[dict[str, object]] = []
        status = 200
        grant = "anonymous"
        if params.get("grant_type") == ["refresh_token"]:
            grant = "refresh_token"
            if params.get("refresh_token") == [self.identity_token]:
                account, granted = self.user, _access(list(scopes))
            else:
                status = 401
        elif authorization.lower().startswith("basic "):
            grant = "basic"
            try:
                account, _, given = base64.b64decode(authorization[6:]).decode().partition(":")
            except ValueError:
                account, given = "", ""
            if (account, given) == (self.user, self.password):
                granted = _access(list(scopes))
            else:
                status = 401
        self.seen.append(TokenRequest(agent, grant, account, service, scopes, status))
        if status != 200:
            return status, {"details": "incorrect username or password"}
        now = int(time.time())
        claims: dict[str, object] = {
            "iss": ISSUER, "sub": account or "", "aud": service or SERVICE, "exp": now + TOKEN_LIFETIME,
            "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": granted,
        }  # fmt: skip
        token = self.issuer.sign(claims)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        body: dict[str, object] = {"expires_in": TOKEN_LIFETIME, "issued_at": issued}
        if grant == "refresh_token":  # the OAuth2 answer: access_token only
            return 200, {**body, "access_token": token, "refresh_token": self.identity_token}
        return 200, {**body, "token": token, "access_token": token}


def _handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            self._answer(url.path, url.query)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._answer(urlsplit(self.path).path, self.rfile.read(length).decode())

        def _answer(self, path: str, query: str) -> None:
            if path != "/token":
                self.send_error(404)
                return
            status, body = server.answer(
                self.headers.get("User-Agent", ""), self.headers.get("Authorization", ""), query
            )
            data = json.dumps(body).encode()
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", f'Basic realm="{ISSUER}"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return  # the server's own log (`seen`) is what tests read

    return Handler


@dataclass(frozen=True)
class TokenRegistry(AuthRegistry):
    tokens: TokenServer

    def identity_config(self, directory: Path) -> Path:
        """A DOCKER_CONFIG directory whose entry for this registry is an OAuth `identitytoken` (what
        `docker login` keeps when the registry hands out a refresh token), no password."""
        directory.mkdir(parents=True, exist_ok=True)
        entry = {
            "auth": base64.b64encode(f"{self.user}:".encode()).decode(),
            "identitytoken": self.tokens.identity_token,
        }
        (directory / "config.json").write_text(json.dumps({"auths": {self.host: entry}}))
        return directory


def _config(root: Path, addr: str, realm: str, cert: Path) -> str:
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
  token:
    realm: {realm}
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: {cert}
"""


@contextlib.contextmanager
def running(root: Path, *, user: str = "dockyard-ci") -> Iterator[TokenRegistry]:
    """The token server and the registry trusting it, one account (a random password); both are
    stopped on every exit."""
    if reason := problem():
        raise AuthRegistryUnavailable(reason)
    root.mkdir(parents=True, exist_ok=True)
    tokens = TokenServer(Issuer.make(root), user, secrets.token_urlsafe(24))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(tokens))
    httpd.daemon_threads = True
    tokens.realm = f"http://127.0.0.1:{httpd.server_address[1]}/token"
    thread = threading.Thread(target=httpd.serve_forever, name="token-server", daemon=True)
    thread.start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(3):  # a free port can be taken between the probe and the bind
            host = f"127.0.0.1:{auth_registry.free_port()}"
            (root / "config.yml").write_text(_config(root, host, tokens.realm, tokens.issuer.cert))
            with (root / "registry.log").open("ab") as log:
                proc = subprocess.Popen(
                    [auth_registry.BINARY, "serve", str(root / "config.yml")],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            deadline = time.monotonic() + auth_registry.START_TIMEOUT
            while proc.poll() is None and not auth_registry.answers(host) and time.monotonic() < deadline:
                time.sleep(0.1)
            if proc.poll() is None and auth_registry.answers(host):
                yield TokenRegistry(host, user, tokens.password, root, proc.pid, tokens)
                return
            auth_registry.stop(proc)
        tail = " | ".join((root / "registry.log").read_text(errors="replace").splitlines()[-3:])
        raise AuthRegistryUnavailable(f"{auth_registry.BINARY} did not answer: {tail}")
    finally:
        if proc is not None:
            auth_registry.stop(proc)
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
