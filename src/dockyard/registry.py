"""Image references and the registry HTTP API (OCI Distribution): manifests, blobs, credentials.

A reference names its registry the way Docker reads it: the first path component is a registry host
when it holds a `.` or a `:`, or is `localhost`. dockyard pushes only to a registry the name spells
out, so nothing lands on Docker Hub by accident.

Credentials come from the docker config (`auths`, `credsStore`, `credHelpers`, through docker-py's
own reader): they travel in request headers only, and never appear in argv, output or a log. Loopback
registries (127.0.0.0/8, localhost) are spoken to over plain HTTP, as Docker does; every other one
over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from docker import auth

from dockyard.errors import DockyardError, UsageError

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
TIMEOUT = 30.0

_HOST = re.compile(
    r"^(localhost|[a-zA-Z0-9.-]+\.[a-zA-Z0-9.-]+|[a-zA-Z0-9.-]+:\d+|\[[0-9a-fA-F:]+\](:\d+)?)$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class RegistryError(DockyardError):
    """A registry did not answer, refused the credentials, or served something unusable."""


@dataclass(frozen=True)
class Reference:
    """`host/repository:tag` or `host/repository@digest`; host None when the name has none."""

    host: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The image name without tag or digest: `host/repository`."""
        return f"{self.host}/{self.repository}" if self.host else self.repository

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.host, self.repository, tag, None)

    def pinned(self, digest: str) -> str:
        """The digest-pinned reference to deploy: `host/repository@sha256:...`."""
        return f"{self.name}@{digest}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}" if self.tag else self.name


def parse_reference(ref: str) -> Reference:
    """Split an image reference; raise UsageError for one Docker would not accept."""
    text = ref.strip()
    name, _, digest = text.partition("@")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, _, rest = name.partition("/")
    host = first if rest and _HOST.match(first) else None
    repository = rest if host else name
    if not repository or not _REPO.match(repository):
        raise UsageError(f"{ref!r} is not an image reference (lowercase name, optional host:port/ and :tag)")
    if tag is not None and not _TAG.match(tag):
        raise UsageError(f"{ref!r}: {tag!r} is not a valid tag")
    if digest and not _DIGEST.match(digest):
        raise UsageError(f"{ref!r}: {digest!r} is not a sha256 digest")
    return Reference(host, repository, tag, digest or None)


def pushable(ref: str, *, what: str = "image", fix: str = "") -> Reference:
    """The reference, when it names the registry to push to; else a UsageError saying how to name it
    (`fix` says where to change the name)."""
    parsed = parse_reference(ref)
    if parsed.host is None:
        app = parsed.repository.rsplit("/", 1)[-1]
        team = parsed.repository if "/" in parsed.repository else f"team/{parsed.repository}"
        raise UsageError(
            f"{what} {ref!r} names no registry, so it cannot be pushed: name it HOST[:PORT]/TEAM/APP "
            f"(e.g. 127.0.0.1:5000/team/{app}, or docker.io/{team}){fix}"
        )
    return parsed


def is_loopback(host: str) -> bool:
    bare = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


# --- the HTTP API ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """An image manifest as the registry serves it (one platform's, when the tag is an index)."""

    digest: str  # of the manifest itself: what `name@digest` pins
    media_type: str
    size: int  # bytes of the manifest document
    config: Descriptor  # its digest is the image id
    layers: tuple[Descriptor, ...]  # compressed, in the image's layer order

    @property
    def compressed_size(self) -> int:
        return sum(layer.size for layer in self.layers)


def _docker_credentials(host: str) -> tuple[dict[str, Any], str | None]:
    """What the docker config holds for `host` (docker-py resolves auths and credential helpers), and
    why it could not be read (a helper missing or failing, a broken config), or None."""
    try:
        with warnings.catch_warnings():  # docker-py warns of a missing helper on stderr, then raises
            warnings.simplefilter("ignore")
            config = auth.load_config()
            found = auth.resolve_authconfig(config, host) or {}
    except Exception as exc:  # go on anonymously: the registry says whether that is enough
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        match = re.search(r"StoreError\('(.*)'\)", text)
        return {}, (match.group(1) if match else text)
    return dict(found), None


class Registry:
    """One registry's HTTP API, with the docker config's credentials for it (never shown)."""

    def __init__(self, host: str, *, session: requests.Session | None = None) -> None:
        self.host = host
        api_host = "registry-1.docker.io" if host in ("docker.io", "index.docker.io") else host
        self.base = f"{'http' if is_loopback(host) else 'https'}://{api_host}"
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = "dockyard"
        self._tokens: dict[str, str] = {}
        self._credentials: dict[str, Any] | None = None
        self._credentials_problem: str | None = None
        self._basic_first = False  # the registry asked for Basic auth once: send it up front from then on

    # credentials and tokens, kept in this object only
    def credentials(self) -> dict[str, Any]:
        """The docker config's credentials for this registry (empty: none), read once: the engine's
        push is given these same ones, so the check before it and the push itself agree."""
        if self._credentials is None:
            self._credentials, self._credentials_problem = _docker_credentials(self.host)
        return self._credentials

    def _refused(self) -> RegistryError:
        fix = f"run `docker login {self.host}`"
        if self._basic() or self._identity_token():
            had = "the docker config's credentials"
        elif self._credentials_problem:
            had = f"the docker config's credentials could not be read: {self._credentials_problem}"
            fix = f"repair the credential helper (credsStore/credHelpers in the docker config), then {fix}"
        else:
            had = "no docker config credentials"
        return RegistryError(f"{self.host} refused access ({had}): {fix}")

    def _basic(self) -> str | None:
        found = self.credentials()
        user = found.get("username") or found.get("Username")
        secret = found.get("password") or found.get("Password")
        if user and secret:
            return base64.b64encode(f"{user}:{secret}".encode()).decode()
        return None

    def _identity_token(self) -> str | None:
        """An OAuth refresh token `docker login` kept instead of a password (`identitytoken`, or a
        helper's `<token>` user), as Azure Container Registry and Docker Hub's SSO logins leave."""
        found = self.credentials()
        token = found.get("IdentityToken") or found.get("identitytoken")
        return str(token) if token else None

    def _token(self, challenge: str, scope: str) -> str | None:
        """A token from the challenge's realm (the Docker token protocol): `service` as the challenge
        names it, `scope` ours (else the challenge's), with the docker config's credentials when there
        are some; anonymously otherwise, as Docker Hub and GHCR allow for public images."""
        named = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = named.get("realm")
        if not realm:
            return None
        params = {key: value for key, value in named.items() if key == "service"}
        if wanted := scope or named.get("scope", ""):
            params["scope"] = wanted
        headers = {}
        if basic := self._basic():
            headers["Authorization"] = f"Basic {basic}"
        try:
            if refresh := self._identity_token():  # OAuth2, as the engine does with an identity token
                form = {
                    **params,
                    "grant_type": "refresh_token",
                    "refresh_token": refresh,
                    "client_id": "dockyard",
                }
                answer = self._session.post(realm, data=form, timeout=TIMEOUT)
            else:
                answer = self._session.get(realm, params=params, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise RegistryError(f"the token service of {self.host} did not answer ({_why(exc)})") from None
        if answer.status_code in (401, 403):
            raise self._refused() from None
        if not answer.ok:
            raise RegistryError(f"the token service of {self.host} answered HTTP {answer.status_code}")
        body = answer.json()
        token = body.get("token") or body.get("access_token")
        return str(token) if token else None

    def request(
        self, method: str, path: str, *, scope: str = "", headers: Mapping[str, str] | None = None
    ) -> requests.Response:
        """`method` on `/v2/...`, authenticating as the registry's challenge asks (Bearer or Basic)."""
        url = f"{self.base}{path}"
        sent = dict(headers or {})
        if token := self._tokens.get(scope):
            sent["Authorization"] = f"Bearer {token}"
        elif self._basic_first and (basic := self._basic()):
            sent["Authorization"] = f"Basic {basic}"
        answer = self._send(method, url, sent)
        if answer.status_code == 401:
            tried = sent.get("Authorization")
            challenge = answer.headers.get("WWW-Authenticate", "")
            if challenge.lower().startswith("bearer"):
                token = self._token(challenge, scope)
                if token:
                    self._tokens[scope] = token
                    sent["Authorization"] = f"Bearer {token}"
            elif basic := self._basic():
                sent["Authorization"] = f"Basic {basic}"
                self._basic_first = True
            if sent.get("Authorization") not in (None, tried):
                answer = self._send(method, url, sent)
            if answer.status_code == 401:
                raise self._refused()
        if answer.status_code == 403:
            raise RegistryError(f"{self.host} denied access to {path}: check the account's rights there")
        return answer

    def _send(self, method: str, url: str, headers: Mapping[str, str]) -> requests.Response:
        try:
            return self._session.request(method, url, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise RegistryError(
                f"registry {self.host} does not answer ({_why(exc)}): start it (scripts/provision-engine "
                "starts the local one) or check the image name"
            ) from None

    def ping(self) -> None:
        """Raise RegistryError unless the registry answers its API (with our credentials, if it wants)."""
        answer = self.request("GET", "/v2/")
        api = answer.headers.get("Docker-Distribution-Api-Version", "")
        if answer.status_code != 200 or not api.startswith("registry/2"):
            raise RegistryError(
                f"{self.host} does not speak the registry API (GET /v2/ answered HTTP {answer.status_code})"
            )

    def manifest(self, repository: str, reference: str, *, platform: str = "linux/amd64") -> Manifest | None:
        """The image manifest of `repository:reference` (a tag or digest); None when there is none.

        An index (multi-platform) is resolved to `platform`'s manifest.
        """
        scope = f"repository:{repository}:pull"
        accept = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
        answer = self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", scope=scope, headers={"Accept": accept}
        )
        if answer.status_code == 404:
            return None
        if not answer.ok:
            raise RegistryError(
                f"{self.host} answered HTTP {answer.status_code} for {repository}:{reference}"
            )
        body = answer.json()
        media_type = str(body.get("mediaType") or answer.headers.get("Content-Type", "").split(";")[0])
        digest = answer.headers.get("Docker-Content-Digest") or _sha256(answer.content)
        if media_type in INDEX_TYPES:
            want_os, _, want_arch = platform.partition("/")
            for entry in body.get("manifests") or []:
                found = entry.get("platform") or {}
                if found.get("os") == want_os and found.get("architecture") == want_arch.split("/")[0]:
                    return self.manifest(repository, str(entry["digest"]), platform=platform)
            return None
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"{repository}:{reference} on {self.host} is a {media_type}, not an image")
        return Manifest(
            digest=digest,
            media_type=media_type,
            size=len(answer.content),
            config=_descriptor(body["config"]),
            layers=tuple(_descriptor(layer) for layer in body.get("layers") or ()),
        )

    def has_blob(self, repository: str, digest: str) -> bool:
        scope = f"repository:{repository}:pull"
        answer = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope)
        return answer.status_code == 200

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete one manifest by digest (the registry must allow deletes); False when it was not there."""
        answer = self.request(
            "DELETE", f"/v2/{repository}/manifests/{digest}", scope=f"repository:{repository}:delete"
        )
        if answer.status_code in (202, 200):
            return True
        if answer.status_code == 404:
            return False
        raise RegistryError(
            f"{self.host} answered HTTP {answer.status_code} to deleting {repository}@{digest}"
        )


def _descriptor(data: Mapping[str, Any]) -> Descriptor:
    return Descriptor(str(data.get("mediaType", "")), str(data["digest"]), int(data["size"]))


def _sha256(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _why(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker.lower() in text.lower():
            return marker.lower()
    return type(exc).__name__


def find_pushed(
    image_id: str, ref: str, repo_digests: Sequence[str] = ()
) -> tuple[Manifest | None, str | None, str | None]:
    """(manifest, where, note) of the image in a registry: by the digests the engine recorded when it
    pushed or pulled it, else by `ref` when it names a registry. The manifest counts only when its
    config is the image's (the same image id). No registry named at all: (None, None, None)."""
    candidates: list[Reference] = []
    for text in (*repo_digests, ref):
        try:
            parsed = parse_reference(text)
        except UsageError:
            continue
        if parsed.host:
            candidates.append(parsed)
    notes = []
    for candidate in dict.fromkeys(candidates):
        try:
            found = connect(candidate.host or "").manifest(
                candidate.repository, candidate.digest or candidate.tag or "latest"
            )
        except RegistryError as exc:
            notes.append(exc.message)
            continue
        if found is not None and found.config.digest == image_id:
            return found, candidate.pinned(found.digest), None
    if candidates and not notes:
        notes.append(
            f"{candidates[0].name} holds no manifest of this image (push it to see compressed sizes)"
        )
    return None, None, notes[0] if notes else None


_REGISTRIES: dict[tuple[str, str], Registry] = {}


def connect(host: str) -> Registry:
    """The client for `host` in this process (tokens are reused across calls), per docker config
    directory: a process that points DOCKER_CONFIG elsewhere gets that config's credentials."""
    key = (host, os.environ.get("DOCKER_CONFIG", ""))
    if key not in _REGISTRIES:
        _REGISTRIES[key] = Registry(host)
    return _REGISTRIES[key]
