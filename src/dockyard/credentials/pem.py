"""PEM blocks, and private keys told apart from mentions of them, in every encoding seen in practice.

A private key is reported only when its block holds real key material, so documentation that shows
a `-----BEGIN RSA PRIVATE KEY-----` line, a placeholder body (`MIIE...`) or a library's marker
constant is not one. Real key material means: the body decodes as base64 and has the structure of
its kind (a DER SEQUENCE whose length fits exactly for PKCS#1/PKCS#8/SEC1, the `openssh-key-v1`
magic for OpenSSH, the ssh.com magic for SSH2, an OpenPGP packet for PGP, whole cipher blocks for a
legacy encrypted PEM), or, for PuTTY, a `Private-Lines` section of base64 lines.

Encodings: PEM as is (LF or CRLF), PEM escaped inside a JSON or YAML string (`\\n` sequences, the
shape of a GCP service-account file), PEM base64-encoded whole (kubeconfig's `client-key-data`,
Kubernetes secrets), PuTTY `.ppk` (versions 2 and 3), OpenSSH and SSH2.

This module needs only the standard library, so code that runs inside a container can use it too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

MAX_BLOCK: Final = 64 * 1024  # a PEM body longer than this is not looked at (keys are a few KiB)

# Cheap literal pre-filters: a text holding none of these holds no private key this module finds.
# "LS0tLS1CRUdJTi" is base64 of "-----BEGIN" (a PEM file base64-encoded whole).
KEY_ANCHORS: Final = (b"PRIVATE KEY", b"PuTTY-User-Key-File-", b"LS0tLS1CRUdJTi")
BLOCK_ANCHOR: Final = b"BEGIN "

_BLOCK = re.compile(
    rb"(-{4,5}) ?BEGIN ([A-Z0-9][A-Z0-9 ]{0,60}?) ?\1(.{0,%d}?)\1 ?END \2 ?\1" % MAX_BLOCK, re.DOTALL
)
_KEY_LABEL = re.compile(rb"PRIVATE KEY(?: BLOCK)?$")
_ESCAPED_BREAK = re.compile(rb"\\+[nr]")  # a line break escaped once or more inside a string
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/=]+")
_BASE64_PEM = re.compile(rb"LS0tLS1CRUdJTi[A-Za-z0-9+/]{16,%d}={0,2}" % (MAX_BLOCK * 4 // 3))
_PUTTY = re.compile(rb"PuTTY-User-Key-File-([23]): ?([\w@.-]{1,64})")
_PUTTY_PRIVATE = re.compile(rb"Private-Lines: ?(\d{1,4})")

_OPENSSH_MAGIC: Final = b"openssh-key-v1\x00"
_SSH2_MAGIC: Final = b"\x3f\x6f\xf9\xeb"


@dataclass(frozen=True, slots=True)
class Block:
    """One PEM block: its label (`CERTIFICATE`, `RSA PRIVATE KEY`...), its body normalised to the bare
    base64 text (headers, line breaks, escapes and whitespace removed), and where it sits."""

    label: str
    body: bytes
    start: int
    end: int
    encrypted: bool  # a `Proc-Type: 4,ENCRYPTED` header (legacy OpenSSL encryption)
    escaped: bool  # its line breaks were escapes inside a string (JSON, YAML)

    @property
    def digest(self) -> bytes:
        """A digest of the body alone: the same for the block in any of the encodings above."""
        return hashlib.sha256(self.body).digest()

    def decoded(self) -> bytes | None:
        return _b64decode(self.body)


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """Real private-key material found in a text. Nothing of the key itself is kept."""

    offset: int  # where it starts in the text searched
    label: str  # "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "PuTTY-User-Key-File-3: ssh-ed25519"...
    encoding: str  # "pem", "escaped pem", "base64 pem", "putty"
    size: int  # bytes of key material

    @property
    def preview(self) -> str:
        how = "" if self.encoding == "pem" else f", {self.encoding}"
        return f"{self.label} ({self.size} bytes of key material{how})"


def blocks(text: bytes, *, limit: int = 100_000) -> Iterator[Block]:
    """Every PEM block of `text`, in order (at most `limit`)."""
    if BLOCK_ANCHOR not in text:
        return
    for count, match in enumerate(_BLOCK.finditer(text)):
        if count >= limit:
            return
        raw = match.group(3)
        escaped = b"\\" in raw and _ESCAPED_BREAK.search(raw) is not None
        body, encrypted = _normalise_body(raw)
        yield Block(
            label=match.group(2).decode("ascii"),
            body=body,
            start=match.start(),
            end=match.end(),
            encrypted=encrypted,
            escaped=escaped,
        )


def _normalise_body(raw: bytes) -> tuple[bytes, bool]:
    """The bare base64 of a block's body, and whether a header says it is encrypted. Headers are
    the lines holding a colon (`Proc-Type:`, `DEK-Info:`, `Comment:`, `Version:`); PGP's checksum
    line (`=AbCd`) is left out. Anything else that is not base64 keeps the body from validating."""
    text = _ESCAPED_BREAK.sub(b"\n", raw) if b"\\" in raw else raw
    lines = [line.strip(b" \t\r\"',") for line in text.split(b"\n")]
    lines = [line for line in lines if line]
    encrypted = False
    parts: list[bytes] = []
    for index, line in enumerate(lines):
        if b":" in line:
            encrypted = encrypted or (line.startswith(b"Proc-Type:") and b"ENCRYPTED" in line)
            continue
        if index == len(lines) - 1 and line.startswith(b"=") and len(line) == 5 and parts:
            continue  # PGP armour checksum
        parts.append(line)
    return b"".join(parts), encrypted


def _b64decode(body: bytes) -> bytes | None:
    if not body or _BASE64_LINE.fullmatch(body) is None:
        return None
    try:
        return base64.b64decode(body + b"=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _der_sequence(data: bytes) -> bool:
    """A DER SEQUENCE whose encoded length covers exactly the data (PKCS#1, PKCS#8, SEC1, DSA)."""
    if len(data) < 32 or data[0] != 0x30:
        return False
    first = data[1]
    if first < 0x80:
        length, header = first, 2
    elif 0x81 <= first <= 0x83:
        count = first & 0x7F
        length, header = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    else:
        return False
    return header + length == len(data)


def key_material(block: Block) -> int:
    """Bytes of private-key material `block` holds; 0 when it is not a private key, or only looks
    like one (no body, a placeholder, a body that does not decode to a key's structure)."""
    if _KEY_LABEL.search(block.label.encode("ascii")) is None:
        return 0
    data = block.decoded()
    if data is None:
        return 0
    label = block.label
    if label == "OPENSSH PRIVATE KEY":
        ok = data.startswith(_OPENSSH_MAGIC) and len(data) > len(_OPENSSH_MAGIC) + 32
    elif label.startswith("SSH2 "):
        ok = data.startswith(_SSH2_MAGIC) and len(data) >= 64
    elif label.startswith("PGP "):
        ok = len(data) >= 32 and bool(data[0] & 0x80)
    elif block.encrypted:
        ok = len(data) >= 32 and len(data) % 8 == 0
    else:
        ok = _der_sequence(data)
    return len(data) if ok else 0


def private_keys(text: bytes, *, decode_base64: bool = True) -> list[PrivateKey]:
    """The private keys in `text` that hold real key material, in order of position."""
    found: list[PrivateKey] = []
    if b"PRIVATE KEY" in text:
        for block in blocks(text):
            size = key_material(block)
            if size:
                encoding = "escaped pem" if block.escaped else "pem"
                found.append(PrivateKey(block.start, block.label, encoding, size))
    if b"PuTTY-User-Key-File-" in text:
        found.extend(_putty_keys(text))
    if decode_base64 and b"LS0tLS1CRUdJTi" in text:
        for match in _BASE64_PEM.finditer(text):
            decoded = _b64decode(match.group(0)[: len(match.group(0)) // 4 * 4])
            if decoded is None:
                continue
            for key in private_keys(decoded, decode_base64=False):
                found.append(PrivateKey(match.start(), key.label, "base64 pem", key.size))
    found.sort(key=lambda key: key.offset)
    return found


def _putty_keys(text: bytes) -> Iterator[PrivateKey]:
    for match in _PUTTY.finditer(text):
        window = text[match.end() : match.end() + 16 * 1024]
        if b"\\" in window:
            window = _ESCAPED_BREAK.sub(b"\n", window)
        private = _PUTTY_PRIVATE.search(window)
        if private is None:
            continue
        count = int(private.group(1))
        lines = window[private.end() :].split(b"\n")[1 : count + 1]
        body = b"".join(line.strip() for line in lines)
        data = _b64decode(body) if count and len(lines) == count else None
        if data is not None and len(data) >= 16:
            label = f"PuTTY-User-Key-File-{match.group(1).decode()}: {match.group(2).decode()}"
            yield PrivateKey(match.start(), label, "putty", len(data))
