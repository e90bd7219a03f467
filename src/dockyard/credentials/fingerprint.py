"""Build secrets (the CA bundle, `verify.secrets` files) found in image layers, however copied.

A secret file is read once, a chunk at a time, into a `SecretPrint`: digests of its normalised text
(line ends and trailing whitespace of each line dropped, leading and trailing whitespace of the whole
dropped), of that text without its first line and without its last line, a digest per PEM block, and,
for a secret up to `NEEDLE_MAX`, the normalised text itself. Memory does not grow with the secret:
a 1 GiB secret costs a few digests and two 4 KiB anchors.

`SecretHook` is a content hook of the export pass. A file of a layer the Dockerfile added is a copy
of a secret when:

* its normalised text is the secret's, or the secret's without its first or last line (so
  `printf '%s' "$(cat /run/secrets/x)"`, CRLF copies and one-line-short copies count);
* it holds the secret's normalised text (LF or CRLF, whole or one line short) inside it, for secrets
  up to `NEEDLE_MAX`; for larger ones, it holds the first 4 KiB of it;
* it is gzip or base64 text whose decoded content is one of the above (files up to `DECODE_MAX`);
* it holds one of the secret's PEM blocks (in any encoding `dockyard.credentials.pem` reads) that is
  not public. A CA bundle is mostly public certificates that every Debian image and certifi ship;
  what makes it a secret is the rest (a company's own CA). A block is public when the base image's
  certificate stores hold it too (its `.pem`/`.crt` files, `certs/` and `pki/` directories,
  `ca-certificates`, certifi), when a file an installed distribution owns holds it (certifi's
  `cacert.pem`, Debian's `/usr/share/ca-certificates`), or when the host's certifi bundle holds
  it. So an image that installs ca-certificates or certifi is not flagged, and one that appends the
  company CA to its bundle is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from dockyard.credentials import pem
from dockyard.credentials.layers import removed_in
from dockyard.errors import UsageError
from dockyard.image.export import ExportScan, FileSink, LayerSink

NEEDLE_MAX: Final = 1 << 20  # secrets up to this (normalised) are also looked for inside other files
ANCHOR: Final = 4096  # a larger secret: its first bytes are looked for inside other files
DECODE_MAX: Final = 64 << 20  # gzip and base64 files up to this size are decoded
_DECODED_MAX: Final = 256 << 20  # bytes of decoded content read at most, per file
_READ: Final = 1 << 20
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=\r\n]+")
_BASE64_PEM = re.compile(rb"LS0tLS1CRUdJTi[A-Za-z0-9+/]{16,%d}={0,2}" % (pem.MAX_BLOCK * 2))
MIN_MARKER: Final = 8  # a secret shorter than this is not looked for inside other text

WHOLE: Final = "a copy"
NO_LAST: Final = "a copy without its last line"
NO_FIRST: Final = "a copy without its first line"
EMBEDDED: Final = "an embedded copy"


# --- normalised text ----------------------------------------------------------------------------------


class Normaliser:
    """Streams text into its normal form: CRLF as LF, no whitespace at the end of a line, none at
    the start or end of the whole. Holds back only a trailing whitespace run (bounded)."""

    def __init__(self) -> None:
        self.started = False
        self.carry = b""

    def feed(self, data: bytes) -> bytes:
        text = self.carry + data
        end = len(text.rstrip(b" \t\r\n"))
        body, self.carry = text[:end], text[end:]
        if len(self.carry) > 65536:  # a huge whitespace run: keep its normal form only
            head, newline, tail = self.carry.rpartition(b"\n")
            self.carry = b"\n" * (head.count(b"\n") + len(newline)) + tail[-65536:]
        if b" \n" in body or b"\t\n" in body or b"\r\n" in body:
            body = b"\n".join(line.rstrip(b" \t\r") for line in body.split(b"\n"))
        if not self.started:
            body = body.lstrip(b" \t\r\n")
            self.started = bool(body)
        return body


class _Digests:
    """sha256 and length of a normalised stream, of it without its first line and without its last."""

    def __init__(self) -> None:
        self.whole = hashlib.sha256()
        self.length = 0
        self.after_first: hashlib._Hash | None = None  # started at the first newline
        self.after_first_length = 0
        self.before_last: hashlib._Hash | None = None  # the stream up to its latest newline
        self.before_last_length = 0
        self.newlines = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        last = data.rfind(b"\n")
        if last != -1:
            self.whole.update(data[:last])
            self.before_last = self.whole.copy()
            self.before_last_length = self.length + last
            self.whole.update(data[last:])
            if self.after_first is None:
                first = data.find(b"\n")
                self.after_first = hashlib.sha256(data[first + 1 :])
                self.after_first_length = len(data) - first - 1
            else:
                self.after_first.update(data)
                self.after_first_length += len(data)
            self.newlines += data.count(b"\n")
        else:
            self.whole.update(data)
            if self.after_first is not None:
                self.after_first.update(data)
                self.after_first_length += len(data)
        self.length += len(data)

    def variants(self) -> dict[str, tuple[int, bytes]]:
        out = {WHOLE: (self.length, self.whole.digest())}
        if self.newlines >= 2 and self.after_first is not None and self.before_last is not None:
            # three lines or more: one line short still gives the secret away
            out[NO_FIRST] = (self.after_first_length, self.after_first.digest())
            out[NO_LAST] = (self.before_last_length, self.before_last.digest())
        return out


class BlockStream:
    """PEM blocks of a stream read in chunks (a block split across chunks is found)."""

    def __init__(self) -> None:
        self.carry = b""

    def feed(self, data: bytes) -> list[pem.Block]:
        if pem.BLOCK_ANCHOR not in data and pem.BLOCK_ANCHOR not in self.carry + data[:16]:
            self.carry = data[-16:]
            return []
        text = self.carry + data
        found = list(pem.blocks(text))
        rest = found[-1].end if found else 0
        begin = text.find(pem.BLOCK_ANCHOR, rest)
        while begin != -1 and len(text) - begin > pem.MAX_BLOCK + 1024:
            begin = text.find(pem.BLOCK_ANCHOR, begin + 1)
        self.carry = text[max(begin - 8, rest) :] if begin != -1 else text[-16:]
        return found


# --- the print of one secret ----------------------------------------------------------------------------


@dataclass
class SecretPrint:
    """What is known of one secret file, without keeping a large one in memory."""

    name: str
    size: int  # bytes of the file
    variants: dict[str, tuple[int, bytes]]  # WHOLE/NO_FIRST/NO_LAST -> (normalised length, sha256)
    text: bytes | None  # the normalised text, for a secret up to NEEDLE_MAX
    anchors: tuple[bytes, ...]  # a larger secret: the first ANCHOR bytes, with and without line 1
    blocks: dict[bytes, tuple[int, str]]  # PEM block digest -> (position, label)
    public: set[int] = field(default_factory=set)  # positions of blocks known to be public
    _needles: dict[str, bytes] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_file(cls, name: str, path: Path) -> SecretPrint:
        """Read `path` once, a chunk at a time. UsageError when it cannot be read."""
        try:
            with path.open("rb") as handle:
                return cls.from_chunks(name, iter(lambda: handle.read(_READ), b""))
        except OSError as exc:
            raise UsageError(
                f"secret {name}: cannot read {path} ({exc.strerror}); fix verify.secrets"
            ) from None

    @classmethod
    def from_chunks(cls, name: str, chunks: Iterable[bytes]) -> SecretPrint:
        normaliser, digests, blocks = Normaliser(), _Digests(), BlockStream()
        size = 0
        kept: bytearray | None = bytearray()
        head = bytearray()
        table: dict[bytes, tuple[int, str]] = {}
        for chunk in chunks:
            size += len(chunk)
            out = normaliser.feed(chunk)
            digests.feed(out)
            if kept is not None:
                kept += out
                if len(kept) > NEEDLE_MAX:
                    kept = None
            if len(head) < 2 * ANCHOR + 1:
                head += out[: 2 * ANCHOR + 1]
            for block in blocks.feed(out):
                table.setdefault(block.digest, (len(table) + 1, block.label))
        text = bytes(kept) if kept is not None else None
        anchors: tuple[bytes, ...] = ()
        if text is None:
            first = bytes(head[:ANCHOR])
            second = bytes(head[head.find(b"\n") + 1 :][:ANCHOR]) if b"\n" in head else b""
            anchors = tuple(a for a in (first, second) if len(a) == ANCHOR)
        return cls(name, size, digests.variants(), text, anchors, table)

    def needles(self) -> dict[str, bytes]:
        """What to look for inside other files: the normalised text (LF and CRLF), also one line
        short, for a small secret; the anchors of a large one. Made once."""
        if self._needles is None:
            self._needles = self._make_needles()
        return self._needles

    def _make_needles(self) -> dict[str, bytes]:
        if self.text is None:
            names = (f"the first {ANCHOR} bytes", f"the first {ANCHOR} bytes after its first line")
            return dict(zip(names, self.anchors, strict=False))
        text = self.text
        if len(text) < MIN_MARKER:
            return {}
        out = {EMBEDDED: text}
        if text.count(b"\n") >= 2:
            out[NO_LAST.replace(WHOLE, EMBEDDED)] = text[: text.rfind(b"\n")]
            out[NO_FIRST.replace(WHOLE, EMBEDDED)] = text[text.find(b"\n") + 1 :]
        for what, needle in list(out.items()):
            if b"\n" in needle:
                out[f"{what} (CRLF)"] = needle.replace(b"\n", b"\r\n")
        return out

    def markers(self) -> list[str]:
        """Strings that give the secret away in image metadata (ENV, labels, history)."""
        if self.text is None or len(self.text) < MIN_MARKER:
            return []
        return [self.text.decode("utf-8", "replace")]


def host_public_blocks() -> set[bytes]:
    """Digests of the certificates in the host's certifi bundle (Mozilla's public roots)."""
    try:
        import certifi  # noqa: PLC0415 - only a secret holding PEM blocks needs it

        data = Path(certifi.where()).read_bytes()
    except (ImportError, OSError):
        return set()
    return {block.digest for block in pem.blocks(data)}


# --- the hook -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SecretMatch:
    """A build secret found in a layer."""

    secret: str
    layer: int
    diff_id: str
    path: str  # "/opt/token", "/opt/token.gz (gunzipped)"
    how: str  # "a copy", "it, embedded", "certificate 3 of 146 (not public)"...
    removed_in: int | None = None


@dataclass
class _Found:
    secret: str
    member: str
    path: str
    how: str
    block: int | None = None  # a block position: judged public or not after the pass


@dataclass
class _State:
    prints: Sequence[SecretPrint]
    base_layers: int
    found: list[_Found] = field(default_factory=list)
    public: set[bytes] = field(default_factory=set)  # block digests seen in base layers
    block_files: list[tuple[str, str, bytes]] = field(default_factory=list)  # (member, path, digest)
    scanned: set[str] = field(default_factory=set)


class SecretHook:
    """The export content hook for build secrets; `result` gives the matches in added layers."""

    def __init__(self, prints: Sequence[SecretPrint], base_layers: int) -> None:
        self._state = _State(prints, base_layers)
        self._digests = {digest for p in prints for digest in p.blocks}

    def layer(self, member: str, index: int | None) -> LayerSink | None:
        state = self._state
        if index is not None and index < state.base_layers:
            return _BaseLayer(state, self._digests) if self._digests else None
        state.scanned.add(member)
        return _AddedLayer(state, member, self._digests)

    def result(
        self, scan: ExportScan, owned: Mapping[str, object], host_public: set[bytes] | None = None
    ) -> list[SecretMatch]:
        """Matches in the layers the Dockerfile added. `owned`: the paths installed distributions
        own (see `dockyard.credentials.layers`); a block in one of them is public."""
        state = self._state
        positions: dict[str, list[int]] = {}
        for index, layer in enumerate(scan.layers):
            positions.setdefault(layer.member, []).append(index)
        public = set(state.public) | (host_public if host_public is not None else set())
        for member, path, digest in state.block_files:
            base = any(i < state.base_layers for i in positions.get(member, ()))
            if base or path in owned:
                public.add(digest)
        for secret in state.prints:
            secret.public = {position for digest, (position, _) in secret.blocks.items() if digest in public}
        matches: list[SecretMatch] = []
        for found in state.found:
            if found.block is not None:
                secret = next(p for p in state.prints if p.name == found.secret)
                if found.block in secret.public:
                    continue
            for index in positions.get(found.member, ()):
                if index >= state.base_layers:
                    where = removed_in(scan.layers, index, found.path)
                    matches.append(
                        SecretMatch(
                            found.secret,
                            index,
                            scan.layers[index].diff_id,
                            "/" + found.path,
                            found.how,
                            where,
                        )
                    )
        return _strongest(matches)


def _strength(how: str) -> int:
    """0 for a copy of the file, 1 for a copy inside another file, 2 for PEM blocks."""
    if how.split(" (", maxsplit=1)[0] in (WHOLE, NO_LAST, NO_FIRST):
        return 0
    return 1 if "inside it" in how else 2


def _strongest(matches: list[SecretMatch]) -> list[SecretMatch]:
    """One match per secret, layer and file: a copy before an embedded copy before PEM blocks (the
    blocks of one file named together)."""
    best: dict[tuple[str, int, str], list[SecretMatch]] = {}
    for match in matches:
        key = (match.secret, match.layer, match.path)
        held = best.get(key)
        if held is None or _strength(match.how) < _strength(held[0].how):
            best[key] = [match]
        elif _strength(match.how) == _strength(held[0].how) == 2 and match.how not in {m.how for m in held}:
            held.append(match)
    out = []
    for group in best.values():
        first = group[0]
        how = "; ".join(m.how for m in group)
        out.append(SecretMatch(first.secret, first.layer, first.diff_id, first.path, how, first.removed_in))
    out.sort(key=lambda m: (m.layer, m.path, m.secret))
    return out


# Where a base image keeps certificates: CA stores, bundles, certifi; what its layers are read for.
_CERT_PLACES = re.compile(r"\.(?:pem|crt|cer|cert|ca-bundle)$|/certs?/|ca-certificates|/pki/|/certifi/")


class _BaseLayer:
    """A base layer: only which secret PEM blocks its certificate stores hold (those are public)."""

    def __init__(self, state: _State, digests: set[bytes]) -> None:
        self.state, self.digests = state, digests

    def file(self, path: str, size: int) -> FileSink | None:
        return _BlockFile(self._seen) if size >= 64 and _CERT_PLACES.search(path) else None

    def _seen(self, block: pem.Block) -> None:
        if block.digest in self.digests:
            self.state.public.add(block.digest)

    def close(self, diff_id: str) -> None:
        pass


class _BlockFile:
    def __init__(self, found: Callable[[pem.Block], None]) -> None:
        self.stream, self.found, self.first = BlockStream(), found, True

    def feed(self, data: bytes) -> bool:
        if self.first:
            self.first = False
            if b"\0" in data[:8192]:
                return False
        for block in self.stream.feed(data):
            self.found(block)
        return True

    def close(self) -> None:
        pass


class _AddedLayer:
    def __init__(self, state: _State, member: str, digests: set[bytes]) -> None:
        self.state, self.member, self.digests = state, member, digests

    def file(self, path: str, size: int) -> FileSink | None:
        return _SecretFile(self.state, self.member, path, size, self.digests) if size else None

    def close(self, diff_id: str) -> None:
        pass


class _SecretFile:
    """One file (or its decoded content) against every secret print."""

    def __init__(
        self, state: _State, member: str, path: str, size: int | None, digests: set[bytes], shown: str = ""
    ) -> None:
        self.state, self.member, self.path, self.shown = state, member, path, shown or path
        self.digests = digests
        self.size = size
        self.read = 0
        prints = state.prints
        # whole-file candidates: a size that fits one of a secret's normalised lengths
        self.whole = [
            p
            for p in prints
            if size is None or any(n <= size <= 2 * n + 4096 for n, _ in p.variants.values())
        ]
        self.normaliser = Normaliser() if self.whole else None
        self.digest = _Digests() if self.whole else None
        self.needles = [
            (p.name, what, needle)
            for p in prints
            for what, needle in p.needles().items()
            if size is None or len(needle) <= size
        ]
        self.keep = max((len(n) for _, _, n in self.needles), default=1) - 1
        self.tail = b""
        self.blocks = BlockStream() if digests else None
        self.decoder: _Decoder | None = None
        self.first = True
        self.binary = False

    def feed(self, data: bytes) -> bool:
        if self.first:
            self.first = False
            self.decoder = _Decoder.open(self, data)
            self.binary = b"\0" in data[:8192]
        self.read += len(data)
        if self.decoder is not None and not self.decoder.feed(data):
            self.decoder = None
        if self.normaliser is not None and self.digest is not None:
            if (
                self.size is None
                and self.read > 2 * max(n for p in self.whole for n, _ in p.variants.values()) + 4096
            ):
                self.normaliser = self.digest = None
            else:
                self.digest.feed(self.normaliser.feed(data))
        if self.needles:
            self._needles(data)
        if self.blocks is not None and not self.binary:
            for block in self.blocks.feed(data):
                self._block(block)
            if b"LS0tLS1CRUdJTi" in data:
                for match in _BASE64_PEM.finditer(data):
                    run = match.group(0)
                    decoded = _b64(run[: len(run) // 4 * 4])
                    for block in pem.blocks(decoded or b""):
                        self._block(block, " (base64-decoded)")
        return bool(self.needles or self.normaliser or self.blocks or self.decoder)

    def _needles(self, data: bytes) -> None:
        tail, still = self.tail, []
        for name, what, needle in self.needles:
            n = len(needle)
            if needle in data or (n > 1 and tail and needle in tail[-(n - 1) :] + data[: n - 1]):
                self._found(name, what)
            else:
                still.append((name, what, needle))
        self.needles = still
        if self.keep:
            self.tail = data[-self.keep :] if len(data) >= self.keep else (tail + data)[-self.keep :]

    def _block(self, block: pem.Block, how: str = "") -> None:
        if block.digest not in self.digests:
            return
        how += self.shown[len(self.path) :]
        for secret in self.state.prints:
            if block.digest in secret.blocks:
                position, label = secret.blocks[block.digest]
                what = f"{label.lower()} {position} of {len(secret.blocks)}{how}"
                self.state.found.append(_Found(secret.name, self.member, self.path, what, position))
        self.state.block_files.append((self.member, self.path, block.digest))

    def _found(self, name: str, how: str) -> None:
        suffix = self.shown[len(self.path) :]
        self.state.found.append(_Found(name, self.member, self.path, how + suffix))

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
        if self.digest is None:
            return
        variants = self.digest.variants()
        length, digest = variants[WHOLE]
        for secret in self.whole:
            for how, (n, expected) in secret.variants.items():
                if n == length and expected == digest:
                    self._found(secret.name, how)
                    break


def _bound(length: int) -> int:
    """The largest file that can normalise to `length` bytes (CRLF doubles it; some whitespace)."""
    return 2 * length + 4096


def _fits(length: int, size: int) -> bool:
    return length <= size <= _bound(length)


def _b64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


class _Decoder:
    """gzip or base64 content of a file, decoded as it streams, into a `_SecretFile` of its own."""

    def __init__(self, outer: _SecretFile, kind: str) -> None:
        self.kind = kind
        self.inner = _SecretFile(
            outer.state, outer.member, outer.path, None, outer.digests, f"{outer.path} ({kind})"
        )
        self.inner.first = False
        self.zlib = zlib.decompressobj(47) if kind == "gunzipped" else None
        self.pending = b""
        self.out = 0

    @classmethod
    def open(cls, outer: _SecretFile, head: bytes) -> _Decoder | None:
        if outer.size is None or outer.size > DECODE_MAX:
            return None
        if head[:2] == b"\x1f\x8b":
            return cls(outer, "gunzipped")
        if outer.size >= 16 and _BASE64_TEXT.fullmatch(head[:4096]) and not head[:4096].isdigit():
            return cls(outer, "base64-decoded")
        return None

    def feed(self, data: bytes) -> bool:
        try:
            if self.zlib is not None:
                decoded = self.zlib.decompress(data, _DECODED_MAX - self.out)
            else:
                text = self.pending + re.sub(rb"\s+", b"", data)
                cut = len(text) // 4 * 4
                decoded, self.pending = base64.b64decode(text[:cut], validate=True), text[cut:]
        except (zlib.error, binascii.Error, ValueError):
            return False
        self.out += len(decoded)
        if decoded:
            self.inner.feed(decoded)
        return self.out < _DECODED_MAX

    def close(self) -> None:
        self.inner.close()
