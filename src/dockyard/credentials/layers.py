"""The credential scan of an image's layers: a content hook of the one pass over its export.

Every layer the Dockerfile added is read, including files a later layer deletes (they are still in
the image). The base image's layers are passed over, except for the lists of what installed
distributions own. Each file gets the rule tiers of `dockyard.credentials.rules` that fit it:

* every file, binary ones too: private-key material;
* every text file but Python source and distribution metadata where packages install
  (site-packages, dist-packages, /usr/lib...): the token formats (found by their anchors);
* text files outside the places packages install to, and the project's own package wherever it is
  installed, up to a budget: the detectors without an anchor, the secret-keyword detector, the rules
  by file name.

Installed distributions are known from the same export: Python's `*.dist-info/RECORD` (and legacy
`installed-files.txt`) and dpkg's `/var/lib/dpkg/info/*.list`. A file one of them owns is a finding
only for real private-key material, and never in the distribution's tests or documentation. Since a
distribution's files come before its RECORD in a layer, that decision is taken after the pass.

By path, and without reading content: well-known credential files (`.aws/credentials`,
`.config/gcloud/`, `.kube/config`, `.docker/config.json`, `.ssh/`, `*.p12`, `*.pfx`, `*.jks`...) and
any file at a path an ENV names as a credentials file (`GOOGLE_APPLICATION_CREDENTIALS`...).

Memory is bounded: a file is read a chunk at a time; at most `LOOSE_MAX` bytes of one file are held
for the rules that need its whole text; only findings (redacted) and ownership lists are kept.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from dockyard.credentials import rules
from dockyard.credentials.rules import Hit, RuleSet
from dockyard.image.export import ExportScan, FileSink, LayerScan, LayerSink

LOOSE_MAX: Final = 1 << 20  # a file's text held whole for the loose tier, at most
LOOSE_BUDGET: Final = 32 << 20  # bytes of text per image that get the loose tier
_OVERLAP: Final = 64 * 1024  # bytes carried from one window of a large file to the next
_SNIFF: Final = 8192  # a file whose first bytes hold a NUL is binary
_OWNERSHIP_MAX: Final = 32 << 20  # an ownership list longer than this is not read

# Where installers put files: a file here is presumed a distribution's until the lists say.
# The package managers' own state (dpkg's database, apt's lists and logs) counts as installed too.
_INSTALLED = re.compile(
    r"(?:^|/)(?:site|dist)-packages/|^(?:usr/(?:lib|lib32|lib64|libexec|share|include|bin|sbin)|lib|lib64|"
    r"bin|sbin|usr/local/lib/python[\d.]+|var/lib/(?:dpkg|apt|ucf|pam|systemd)|var/cache/(?:apt|debconf|ldconfig)|"
    r"var/log)/"
)
# Inside a distribution: tests, fixtures, documentation and examples are never findings.
_TEST_OR_DOC_DIRS: Final = frozenset({
    "test", "tests", "testing", "testdata", "test_data", "testcases", "fixtures", "fixture",
    "selftest", "doc", "docs", "documentation", "example", "examples", "sample", "samples", "demo",
    "demos", "man", "info",
})  # fmt: skip
_TEST_FILE = re.compile(r"^(?:test_.*|.*_tests?\.py|conftest\.py)$", re.IGNORECASE)
# Where packages install, these are a distribution's code and metadata: key material only (by far
# the most text of an image, and the token tier's cost would double the scan's).
_INSTALLED_CODE = re.compile(r"\.(?:py|pyi|pyx|pxd|h|c|cc|cpp)$|\.(?:dist|egg)-info/")
_SITE_PACKAGES = re.compile(r"(?:^|/)(?:site|dist)-packages/([^/]+)")

# Well-known credential files, by path (fnmatch on the absolute path).
CREDENTIAL_PATHS: Final = (
    "*/.aws/credentials",
    "*/.config/gcloud/*",
    "*/.kube/config",
    "*/.docker/config.json",
    "*/.ssh/*",
    "*/.git-credentials",
    "*/.azure/accessTokens.json",
    "*/.azure/msal_token_cache.*",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
)
# Under .ssh/, what is public or configuration rather than a credential.
_SSH_PUBLIC = re.compile(r"/\.ssh/(?:[^/]*\.pub|known_hosts[^/]*|authorized_keys[^/]*|config)$")
# ENV names that point at a credentials file (or a directory holding one: DOCKER_CONFIG, CLOUDSDK_CONFIG).
_ENV_CREDENTIAL_FILES: Final = {
    "GOOGLE_APPLICATION_CREDENTIALS": "",
    "AWS_SHARED_CREDENTIALS_FILE": "",
    "AWS_CONFIG_FILE": "",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "",
    "AZURE_CLIENT_CERTIFICATE_PATH": "",
    "KUBECONFIG": "",
    "NETRC": "",
    "NPM_CONFIG_USERCONFIG": "",
    "DOCKER_CONFIG": "config.json",
    "CLOUDSDK_CONFIG": "*",
}
_ENV_FILE_SUFFIX = re.compile(
    r"(?:CREDENTIALS?|CREDENTIALS_FILE|KEY_?FILE|TOKEN_FILE|SECRET_FILE|PASSWORD_FILE|PRIVATE_KEY_PATH)$"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """A credential in an image: which rule, where, and a redacted preview. No secret is kept."""

    rule: str
    path: str  # "/app/.aws/credentials"; for metadata: "ENV NAME", "LABEL key", "history #3"
    preview: str
    layer: int | None = None  # the layer that holds it (None: image metadata)
    diff_id: str = ""
    line: int | None = None  # 1-based, in text files
    removed_in: int | None = None  # a later layer deletes or replaces it: still in the image

    @property
    def where(self) -> str:
        line = f":{self.line}" if self.line else ""
        return f"{self.path}{line}"


@dataclass
class CredentialScan:
    """What the credential scan of the added layers found, and what it covered."""

    findings: list[Finding]
    layers: list[int]  # indices of the layers whose content was scanned
    files: int = 0  # regular files read
    bytes: int = 0  # bytes read
    owned: int = 0  # files that installed distributions own (from their RECORD / dpkg lists)
    exempt: int = 0  # matches in distributions' files not reported (no key material, tests, docs)
    over_budget: int = 0  # text files that got the anchored rules only (loose-tier budget spent)


@dataclass(slots=True)
class _Raw:
    hit: Hit
    member: str
    path: str
    line: int | None


@dataclass
class _State:
    rules: RuleSet | None
    raw: list[_Raw] = field(default_factory=list)
    own: frozenset[str] = frozenset()  # the project's own import and distribution names
    owned: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (owner's root, its name)
    scanned: set[str] = field(default_factory=set)  # members read in full
    files: int = 0
    bytes: int = 0
    loose_left: int = LOOSE_BUDGET
    over_budget: int = 0


class CredentialHook:
    """The export content hook; `result` turns what it saw into findings after the pass."""

    def __init__(
        self,
        base_layers: int,
        own: Sequence[str] = (),
        *,
        content: bool = True,
        rule_set: RuleSet | None = None,
    ) -> None:
        """`base_layers`: how many layers the base image has (not scanned); `own`: the project's
        distribution and import names, whose files are the project's, wherever installed;
        `content=False`: only learn what installed distributions own (for the build-secret scan)."""
        self.base_layers = base_layers
        self.content = content
        self._state = _State(
            rule_set or (rules.rule_set() if content else None),
            own=frozenset(_canonical(name) for name in own),
        )

    @property
    def owned(self) -> Mapping[str, tuple[str, str]]:
        """Path (no leading "/") -> (install root, distribution) for every file a distribution owns."""
        return self._state.owned

    def layer(self, member: str, index: int | None) -> LayerSink | None:
        if not self.content or (index is not None and index < self.base_layers):
            return _OwnershipLayer(self._state)
        self._state.scanned.add(member)
        return _ScanLayer(self._state, member)

    def result(self, scan: ExportScan, env: Mapping[str, str]) -> CredentialScan:
        """The findings in the added layers: distribution files filtered, then the path rules and
        the files ENV names, each with the layer that holds it and the one that removes it."""
        state = self._state
        positions: dict[str, list[int]] = {}
        for index, layer in enumerate(scan.layers):
            positions.setdefault(layer.member, []).append(index)
        added = list(range(self.base_layers, len(scan.layers)))
        out = CredentialScan(
            findings=[],
            layers=[i for i in added if scan.layers[i].member in state.scanned],
            files=state.files,
            bytes=state.bytes,
            owned=len(state.owned),
            over_budget=state.over_budget,
        )
        for raw in state.raw:
            root, owner = state.owned.get(raw.path, ("", None))
            theirs = owner is not None and _canonical(owner) not in state.own
            if theirs and (raw.hit.rule != rules.PRIVATE_KEY or _test_or_doc(raw.path, root)):
                out.exempt += 1
                continue
            for index in positions.get(raw.member, ()):
                if index >= self.base_layers:
                    out.findings.append(_finding(scan.layers, index, raw.path, raw.hit, raw.line))
        for index in added:
            for path, entry in scan.layers[index].files.items():
                known = entry.kind == "file" and entry.size and path not in state.owned
                if known and _credential_path("/" + path):
                    hit = Hit(rules.CREDENTIAL_FILE, 0, f"known credential file ({entry.size} bytes)")
                    out.findings.append(_finding(scan.layers, index, path, hit, None))
        out.findings += _env_files(scan.layers, self.base_layers, env)
        out.findings.sort(key=lambda f: (f.layer if f.layer is not None else -1, f.path, f.line or 0, f.rule))
        return out


def _finding(layers: Sequence[LayerScan], index: int, path: str, hit: Hit, line: int | None) -> Finding:
    return Finding(
        rule=hit.rule,
        path="/" + path,
        preview=hit.preview,
        layer=index,
        diff_id=layers[index].diff_id,
        line=line,
        removed_in=removed_in(layers, index, path),
    )


def removed_in(layers: Sequence[LayerScan], index: int, path: str) -> int | None:
    """The first layer after `index` that deletes `path` (a whiteout of it or of a parent, an opaque
    parent) or writes over it; None when it survives to the final filesystem."""
    parents = [path[:i] for i in range(len(path)) if path[i] == "/"]
    for later in range(index + 1, len(layers)):
        layer = layers[later]
        if path in layer.files or any(p in layer.files and layer.files[p].kind != "dir" for p in parents):
            return later
        whiteouts = set(layer.whiteouts)
        if path in whiteouts or any(p in whiteouts for p in parents):
            return later
        if any(p in layer.opaque_dirs for p in parents):
            return later
    return None


def _canonical(name: str) -> str:
    """A distribution or import name compared the way packaging does (PEP 503, wheel names)."""
    return re.sub(r"[-_.]+", "_", name).lower().removesuffix(".py")


def _credential_path(path: str) -> bool:
    if path.rsplit("/", 1)[0].endswith("/.ssh") and _SSH_PUBLIC.search(path):
        return False
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in CREDENTIAL_PATHS)


def _test_or_doc(path: str, root: str) -> bool:
    """A distribution's own tests, fixtures, documentation or examples (below its install root)."""
    inside = path[len(root) :].lstrip("/") if root and path.startswith(root) else path
    parts = inside.split("/")
    if any(part.lower() in _TEST_OR_DOC_DIRS for part in parts[:-1]):
        return True
    return bool(_TEST_FILE.match(parts[-1])) or path.startswith(("usr/share/doc/", "usr/share/man/"))


def _env_files(layers: Sequence[LayerScan], base_layers: int, env: Mapping[str, str]) -> list[Finding]:
    """Files of the added layers at a path an ENV names as a credentials file."""
    found: list[Finding] = []
    for name, value in sorted(env.items()):
        inside = _ENV_CREDENTIAL_FILES.get(name)
        if inside is None and not _ENV_FILE_SUFFIX.search(name):
            continue
        for target in value.split(":") if name == "KUBECONFIG" else [value]:
            if not target.startswith("/"):
                continue
            wanted = posixpath.normpath(target).lstrip("/")
            pattern = posixpath.join(wanted, inside) if inside else wanted
            for index in range(base_layers, len(layers)):
                for path, entry in layers[index].files.items():
                    if entry.kind == "file" and entry.size and fnmatch.fnmatchcase(path, pattern):
                        shown = f"ENV {name} names it ({entry.size} bytes)"
                        hit = Hit(rules.CREDENTIAL_ENV_FILE, 0, shown)
                        found.append(_finding(layers, index, path, hit, None))
    return found


# --- sinks ------------------------------------------------------------------------------------------


def _ownership_kind(path: str) -> str | None:
    base = path.rpartition("/")[2]
    if base == "RECORD" and path.endswith(".dist-info/RECORD"):
        return "record"
    if base == "installed-files.txt" and ".egg-info/" in path:
        return "egg"
    if base.endswith(".list") and path.startswith("var/lib/dpkg/info/"):
        return "dpkg"
    return None


class _OwnershipLayer:
    """A base layer: only the lists of what installed distributions own are read."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def file(self, path: str, size: int) -> FileSink | None:
        kind = _ownership_kind(path)
        if kind is None or size > _OWNERSHIP_MAX:
            return None
        return _OwnershipFile(self.state, path, kind)

    def close(self, diff_id: str) -> None:
        pass


class _OwnershipFile:
    def __init__(self, state: _State, path: str, kind: str) -> None:
        self.state, self.path, self.kind = state, path, kind
        self.data = bytearray()

    def feed(self, data: bytes) -> bool:
        self.data += data
        return True

    def close(self) -> None:
        text = self.data.decode("utf-8", "replace")
        owned = self.state.owned
        if self.kind == "dpkg":
            package = self.path.rpartition("/")[2].removesuffix(".list").partition(":")[0]
            for line in text.splitlines():
                if line.startswith("/") and len(line) > 1:
                    owned[line.lstrip("/")] = ("", package)
            return
        meta_dir = posixpath.dirname(self.path)
        root = posixpath.dirname(meta_dir) if self.kind == "record" else meta_dir
        name = posixpath.basename(meta_dir).partition("-")[0]
        rows = csv.reader(io.StringIO(text)) if self.kind == "record" else ([r] for r in text.splitlines())
        for row in rows:
            if not row or not row[0]:
                continue
            path = posixpath.normpath(posixpath.join("/" + root, row[0])).lstrip("/")
            owned[path] = (root, name)


class _ScanLayer:
    """A layer the Dockerfile added (or one that could not be placed): every file is scanned."""

    def __init__(self, state: _State, member: str) -> None:
        self.state, self.member = state, member
        self.ownership = _OwnershipLayer(state)

    def file(self, path: str, size: int) -> FileSink | None:
        scan = _FileScan(self.state, self.member, path, size)
        owner = self.ownership.file(path, size)
        return scan if owner is None else _Both(scan, owner)

    def close(self, diff_id: str) -> None:
        pass


class _Both:
    def __init__(self, first: FileSink, second: FileSink) -> None:
        self.sinks = (first, second)

    def feed(self, data: bytes) -> bool:
        wants = [sink.feed(data) for sink in self.sinks]
        return any(wants)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


class _FileScan:
    """One file through the tiers that fit it. A file up to LOOSE_MAX is judged whole at its end;
    a larger one window by window (windows overlap, so a match across a boundary is not missed)."""

    def __init__(self, state: _State, member: str, path: str, size: int) -> None:
        self.state, self.member, self.path, self.size = state, member, path, size
        self.binary: bool | None = None
        package = _SITE_PACKAGES.search(path)
        own = package is not None and _canonical(package.group(1).partition("-")[0]) in state.own
        self.installed = not own and _INSTALLED.search(path) is not None
        self.tokens = not (self.installed and _INSTALLED_CODE.search(path))
        self.parts: list[bytes] = []  # the text not judged yet (no copy while it is one chunk)
        self.held = 0
        self.offset = 0  # file offset of the first byte held
        self.lines = 0  # newlines before it
        self.seen: set[tuple[str, int]] = set()

    def feed(self, data: bytes) -> bool:
        state = self.state
        state.bytes += len(data)
        if self.binary is None:
            self.binary = b"\0" in data[:_SNIFF]
        self.parts.append(data)
        self.held += len(data)
        if self.held > LOOSE_MAX:
            self._window(final=False)
        return True

    def close(self) -> None:
        self.state.files += 1
        if self.binary is None:
            return
        loose = False
        if not self.binary and not self.installed and self.offset == 0:
            if self.state.loose_left >= self.held:
                self.state.loose_left -= self.held
                loose = True
            else:
                self.state.over_budget += 1
        self._window(final=True, loose=loose)

    def _window(self, *, final: bool, loose: bool = False) -> None:
        text = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        rule_set = self.state.rules
        if rule_set is None:
            return
        hits = rule_set.keys(text)
        if not self.binary and self.tokens:
            tokens = rule_set.tokens(text)
            hits += tokens
            if loose:
                hits += rule_set.loose(text, "/" + self.path, tokens)
        for hit in hits:
            self._record(hit, text)
        if final:
            return
        keep = min(len(text), _OVERLAP)
        cut = len(text) - keep
        if not self.binary:
            self.lines += text.count(b"\n", 0, cut)
        self.offset += cut
        self.parts = [text[cut:]]
        self.held = keep

    def _record(self, hit: Hit, text: bytes) -> None:
        at = self.offset + hit.offset
        if (hit.rule, at) in self.seen:
            return
        self.seen.add((hit.rule, at))
        line = None if self.binary else self.lines + text.count(b"\n", 0, hit.offset) + 1
        self.state.raw.append(_Raw(Hit(hit.rule, at, hit.preview), self.member, self.path, line))
