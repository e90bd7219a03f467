"""One-pass, streaming analysis of an image export (the byte stream of `docker save IMAGE`).

`scan_export` reads the export as an iterable of byte chunks (docker-py's
`image.save(chunk_size=...)` generator, or a `docker save` subprocess's stdout read in chunks)
exactly once. It never holds a layer, or the export, in memory or on disk: the outer tar is read
in stream mode, each layer member is read as an inner tar in stream mode over the outer member, and
only metadata (path, type, size) is kept.

For every layer it computes the `diff_id` (sha256 of the uncompressed layer tar, the value
`docker image inspect` lists under RootFS.Layers), the uncompressed size, the file entries, the
whiteouts and the opaque directories; optionally it searches every regular file for "needles"
(secret byte strings that must not be in an image) and hands file contents to content hooks
(`ContentHook`: the credential and build-secret scanners), so every file is read once for all of
them, a chunk at a time. Both export layouts are read: Docker's legacy layout (`<id>/layer.tar`,
Engine < 25) and the OCI layout (`blobs/sha256/<digest>`, Engine 25+, layer blobs plain or
gzip-compressed).

Given the image's diff ids, the scan tells a hook which layer a member holds before reading it
(`predict_layer_members`), so a hook can pass over the base image's layers: the legacy layout names
every layer but the top one by an id derived from the diff ids alone, and the OCI layout names an
uncompressed layer by its diff id. A member it cannot place is handed over with no index.

`compute_waste` is a pure function over the scanned layers: it finds the bytes that a later layer
made unreachable (overwritten, deleted, hidden by an opaque directory) and counts each file version
once.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import posixpath
import tarfile
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from dockyard.errors import DockyardError, UsageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# Entry kinds.
FILE: Final = "file"
DIR: Final = "dir"
SYMLINK: Final = "symlink"
HARDLINK: Final = "hardlink"
OTHER: Final = "other"

# How a file version became unreachable.
OVERWRITTEN: Final = "overwritten"
DELETED: Final = "deleted"

_WHITEOUT_PREFIX: Final = ".wh."
_OPAQUE_MARKER: Final = ".wh..wh..opq"
_AUFS_META_PREFIX: Final = ".wh..wh."  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not files

_READ_SIZE: Final = 1 << 20  # bytes per read of file contents and of drains
# tarfile's stream buffers (measured: larger ones cost more in tarfile's buffer slicing than they save)
_OUTER_BUFSIZE: Final = 64 * 1024
_INNER_BUFSIZE: Final = 32 * 1024
_PEEK_SIZE: Final = 512
_MAX_JSON_BLOB: Final = 8 << 20  # JSON members larger than this are not kept (configs are a few KiB)
_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"


# --------------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One entry of a layer: a normalized path (no leading "./" or "/"), its kind and, for regular
    files, its size in bytes (0 for every other kind)."""

    path: str
    kind: str  # FILE | DIR | SYMLINK | HARDLINK | OTHER
    size: int


@dataclass(slots=True)
class LayerScan:
    """What one layer holds: metadata only, never contents."""

    member: str  # the export member that holds the layer tar, e.g. "<id>/layer.tar"
    diff_id: str  # "sha256:" + sha256 of the uncompressed layer tar
    size: int  # bytes of the uncompressed layer tar
    files: dict[str, FileEntry] = field(default_factory=dict)  # path -> entry, in tar order
    whiteouts: list[str] = field(default_factory=list)  # paths this layer deletes from lower layers
    opaque_dirs: list[str] = field(default_factory=list)  # dirs whose lower contents are hidden


@dataclass(frozen=True, slots=True)
class NeedleHit:
    """A needle found in a regular file of a layer."""

    needle: str
    layer_index: int
    diff_id: str
    path: str


@dataclass(slots=True)
class ExportScan:
    """The result of one pass over an image export."""

    layers: list[LayerScan]  # in manifest order; a layer listed twice is the same object twice
    config: dict[str, object]  # the image config JSON, {} when the stream holds none
    repo_tags: list[str]
    hits: list[NeedleHit]
    seconds: float
    bytes_read: int  # bytes of the export stream

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]


@dataclass(frozen=True, slots=True)
class WasteEntry:
    """A file version that a later layer made unreachable."""

    path: str
    bytes: int
    added_in: int  # index of the layer that added this version
    removed_in: int  # index of the layer that first made it unreachable
    how: str  # OVERWRITTEN | DELETED


@dataclass(slots=True)
class WasteReport:
    entries: list[WasteEntry]  # in the order the versions became unreachable
    total_bytes: int
    by_layer: dict[int, int]  # adding layer index -> bytes wasted (layers with waste only)

    def top(self, n: int) -> list[WasteEntry]:
        """The `n` largest entries, largest first (ties by path, then layer)."""
        ranked = sorted(self.entries, key=lambda e: (-e.bytes, e.path, e.added_in))
        return ranked[: max(n, 0)]


# --------------------------------------------------------------------------------------------------
# Content hooks


class FileSink(Protocol):
    """Takes one regular file's content, a chunk at a time (chunks of at most 1 MiB)."""

    def feed(self, data: bytes) -> bool:
        """Take the next chunk; return False when no more of this file is wanted."""
        ...

    def close(self) -> None:
        """The file ended (or every sink stopped wanting it)."""
        ...


class LayerSink(Protocol):
    """One hook's view of one layer."""

    def file(self, path: str, size: int) -> FileSink | None:
        """A sink for the content of the regular file `path` (normalized, no leading "/"), or None
        when its content is not wanted."""
        ...

    def close(self, diff_id: str) -> None:
        """The layer ended; `diff_id` is its digest."""
        ...


class ContentHook(Protocol):
    """Something that reads file contents during the one pass over an export."""

    def layer(self, member: str, index: int | None) -> LayerSink | None:
        """A sink for the layer in export member `member`, or None to pass over its contents.
        `index` is the layer's position in the image when known before reading it (see
        `predict_layer_members`); a layer listed twice gets its highest position."""
        ...


# The legacy layout's per-layer `json` of every layer but the top one: this container_config, as the
# engine's JSON encoder writes it, goes into the layer's id (moby image/v1 CreateID).
_V1_CONTAINER_CONFIG: Final = (
    '{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,'
    '"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,'
    '"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}'
)


def predict_layer_members(diff_ids: Sequence[str]) -> dict[str, int]:
    """Export member name -> layer index, for the members whose name follows from the diff ids.

    Legacy layout: layer i (but the top one) sits in `<v1 id>/layer.tar`, where the v1 id is the
    digest of a JSON object holding an empty container config, the epoch as creation time, the chain
    id of layers 0..i and the v1 id of layer i-1. OCI layout: an uncompressed layer is the blob named
    by its diff id. A name that is not predicted is simply not in the map.
    """
    members: dict[str, int] = {}
    chain = parent = ""
    for index, diff_id in enumerate(diff_ids):
        chain = _sha256(f"{chain} {diff_id}") if chain else diff_id
        body = (
            f'{{"container_config":{_V1_CONTAINER_CONFIG},"created":"1970-01-01T00:00:00Z",'
            f'"layer_id":"{chain}"' + (f',"parent":"{parent}"' if parent else "") + "}"
        )
        parent = _sha256(body)
        members[f"{parent.removeprefix('sha256:')}/layer.tar"] = index
        members[f"blobs/sha256/{diff_id.removeprefix('sha256:')}"] = index
    return members


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# Stream plumbing


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Reader(io.RawIOBase):
    """A read-only stream whose subclasses implement `read`."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class _ChunkReader(_Reader):
    """A read-only raw stream over an iterable of byte chunks (no copy of a chunk read whole)."""

    def __init__(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        super().__init__()
        self._chunks: Iterator[bytes | bytearray | memoryview] = iter(chunks)
        self._chunk: bytes = b""
        self._pos = 0
        self.bytes_read = 0
        self.exhausted = False

    def _fill(self) -> bool:
        while self._pos >= len(self._chunk):
            if self.exhausted:
                return False
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self.exhausted = True
                self._chunk, self._pos = b"", 0
                return False
            self._chunk = chunk if type(chunk) is bytes else bytes(chunk)
            self._pos = 0
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_READ_SIZE), b""))
        if size == 0 or not self._fill():
            return b""
        chunk, pos = self._chunk, self._pos
        end = pos + size
        data = chunk if pos == 0 and end >= len(chunk) else chunk[pos:end]
        self._pos = pos + len(data)
        self.bytes_read += len(data)
        return data


class _LayerReader(_Reader):
    """Reads a layer tar for the inner tarfile: serves a peeked prefix first, then the source, and
    hashes and counts every byte it serves."""

    def __init__(self, source: _Readable, prefix: bytes = b"") -> None:
        super().__init__()
        self._source = source
        self._prefix = prefix
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        if self._prefix:
            if 0 <= size < len(self._prefix):
                data, self._prefix = self._prefix[:size], self._prefix[size:]
            else:
                data, self._prefix = self._prefix, b""
        else:
            data = self._source.read(size)
        if data:
            self.digest.update(data)
            self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) what the tar reader left: end-of-archive blocks and record padding."""
        while self.read(_READ_SIZE):
            pass


class _Prefixed(_Reader):
    """A peeked prefix, then the rest of the source (for the compressed side of a gzip layer)."""

    def __init__(self, source: _Readable, prefix: bytes) -> None:
        super().__init__()
        self._source = source
        self._prefix = prefix

    def read(self, size: int = -1, /) -> bytes:
        if not self._prefix:
            return self._source.read(size)
        if 0 <= size < len(self._prefix):
            data, self._prefix = self._prefix[:size], self._prefix[size:]
        else:
            data, self._prefix = self._prefix, b""
        return data


# --------------------------------------------------------------------------------------------------
# Needle search


class _NeedleSearch:
    """Finds needles in a file's content read in chunks, across chunk boundaries."""

    def __init__(self, needles: Mapping[str, bytes]) -> None:
        self.needles = sorted(needles.items(), key=lambda item: len(item[1]))
        self.min_len = len(self.needles[0][1])
        self.max_len = len(self.needles[-1][1])


class _NeedleLayer:
    """The needle search as a layer sink: hits go to `hits` as (needle, member, path)."""

    def __init__(self, search: _NeedleSearch, member: str, hits: list[tuple[str, str, str]]) -> None:
        self.search, self.member, self.hits = search, member, hits

    def file(self, path: str, size: int) -> FileSink | None:
        if size < self.search.min_len:
            return None
        return _NeedleFile(self, path, size)

    def close(self, diff_id: str) -> None:
        pass


class _NeedleFile:
    def __init__(self, layer: _NeedleLayer, path: str, size: int) -> None:
        self.layer, self.path = layer, path
        self.pending = [(name, needle) for name, needle in layer.search.needles if len(needle) <= size]
        self.found: list[str] = []
        self.keep = max((len(needle) for _, needle in self.pending), default=1) - 1
        self.tail = b""

    def feed(self, chunk: bytes) -> bool:
        still: list[tuple[str, bytes]] = []
        tail = self.tail
        for name, needle in self.pending:
            n = len(needle)
            if needle in chunk or (n > 1 and tail and needle in tail[-(n - 1) :] + chunk[: n - 1]):
                self.found.append(name)
            else:
                still.append((name, needle))
        self.pending = still
        if self.keep:
            self.tail = chunk[-self.keep :] if len(chunk) >= self.keep else (tail + chunk)[-self.keep :]
        return bool(still)

    def close(self) -> None:
        self.layer.hits.extend((name, self.layer.member, self.path) for name in sorted(self.found))


# --------------------------------------------------------------------------------------------------
# Scanning


def _norm(name: str) -> str:
    """A tar member name as a path relative to the filesystem root: no "./", no leading or trailing
    "/"; "" for the root itself."""
    if "//" in name or "/./" in name or "/../" in name or name.endswith(("/.", "/..")):
        name = posixpath.normpath(name)
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name == "." else name


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return FILE
    if info.isdir():
        return DIR
    if info.issym():
        return SYMLINK
    if info.islnk():
        return HARDLINK
    return OTHER


def _scan_layer_tar(reader: _LayerReader, member: str, sinks: Sequence[LayerSink]) -> LayerScan:
    """Scan one uncompressed layer tar from `reader` to its end, handing file contents to `sinks`."""
    layer = LayerScan(member=member, diff_id="", size=0)
    files, whiteouts, opaque = layer.files, layer.whiteouts, layer.opaque_dirs
    with tarfile.open(fileobj=reader, mode="r|", bufsize=_INNER_BUFSIZE) as tar:
        members: list[tarfile.TarInfo] = tar.members  # type: ignore[attr-defined]  # not in stubs
        while (info := tar.next()) is not None:
            members.clear()  # stream mode keeps every TarInfo otherwise
            path = _norm(info.name)
            if not path:
                continue
            parent, _, base = path.rpartition("/")
            if base.startswith(_WHITEOUT_PREFIX):
                if base == _OPAQUE_MARKER:
                    opaque.append(parent)
                elif not base.startswith(_AUFS_META_PREFIX):
                    target = base[len(_WHITEOUT_PREFIX) :]
                    whiteouts.append(f"{parent}/{target}" if parent else target)
                continue
            if info.isreg():
                files[path] = FileEntry(path, FILE, info.size)
                if sinks and info.size:
                    wanting = [s for sink in sinks if (s := sink.file(path, info.size)) is not None]
                    if wanting:
                        _feed(tar, info, wanting)
            else:
                files[path] = FileEntry(path, _kind(info), 0)
    reader.drain()
    layer.diff_id = "sha256:" + reader.digest.hexdigest()
    layer.size = reader.size
    for sink in sinks:
        sink.close(layer.diff_id)
    return layer


def _feed(tar: tarfile.TarFile, info: tarfile.TarInfo, sinks: list[FileSink]) -> None:
    """Read one file's content once, a chunk at a time, for every sink that still wants it."""
    content = tar.extractfile(info)
    active = sinks
    try:
        while active and content is not None:
            chunk = content.read(_READ_SIZE)
            if not chunk:
                break
            active = [sink for sink in active if sink.feed(chunk)]
    finally:
        for sink in sinks:
            sink.close()


def _is_tar_header(block: bytes) -> bool:
    if len(block) < _PEEK_SIZE:
        return False
    if block[257:262] == b"ustar" or not block.strip(b"\0"):  # ustar/gnu magic, or an empty tar
        return True
    try:  # a v7 header without magic: accept when its checksum is right
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:512])  # checksum field counts as spaces
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:512] if b > 127)
    return stored in (unsigned, signed)


def _is_json(head: bytes) -> bool:
    return head.lstrip()[:1] == b"{"


@dataclass(slots=True)
class _Collector:
    """Everything gathered from the export before manifest.json says how it fits together."""

    search: _NeedleSearch | None
    hooks: Sequence[ContentHook] = ()
    predicted: Mapping[str, int] = field(default_factory=dict)  # member name -> layer index
    layers: dict[str, LayerScan] = field(default_factory=dict)  # member name -> scan
    aliases: dict[str, str] = field(default_factory=dict)  # link member -> target member
    json_blobs: dict[str, bytes] = field(default_factory=dict)  # member name -> raw JSON
    unsupported: dict[str, str] = field(default_factory=dict)  # member name -> why not scanned
    manifest: bytes | None = None
    hits: list[tuple[str, str, str]] = field(default_factory=list)  # (needle, member, path)
    members: int = 0

    def add(self, outer: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        self.members += 1
        name = _norm(info.name)
        if info.issym() or info.islnk():
            base = posixpath.dirname(name) if info.issym() else ""
            self.aliases[name] = _norm(posixpath.join(base, info.linkname))
            return
        if not info.isreg():
            return
        if name == "manifest.json":
            self.manifest = self._read_all(outer, info)
            return
        if name in ("repositories", "index.json", "oci-layout") or name.endswith(("/VERSION", "/json")):
            return  # bookkeeping this scan does not need
        stream = outer.extractfile(info)
        if stream is None:
            return
        head = stream.read(_PEEK_SIZE)
        if head[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=_Prefixed(stream, head), mode="rb") as unzipped:
                self.layers[name] = _scan_layer_tar(_LayerReader(unzipped), name, self._sinks(name))
        elif _is_tar_header(head):
            self.layers[name] = _scan_layer_tar(_LayerReader(stream, head), name, self._sinks(name))
        elif _is_json(head):
            if info.size <= _MAX_JSON_BLOB:
                self.json_blobs[name] = head + stream.read()
        elif head[:4] == _ZSTD_MAGIC:
            self.unsupported[name] = "zstd-compressed layers are not supported"
        else:
            self.unsupported[name] = "neither a tar, a gzip stream nor JSON"

    def _sinks(self, member: str) -> list[LayerSink]:
        sinks: list[LayerSink] = []
        if self.search is not None:
            sinks.append(_NeedleLayer(self.search, member, self.hits))
        index = self.predicted.get(member)
        sinks += [sink for hook in self.hooks if (sink := hook.layer(member, index)) is not None]
        return sinks

    @staticmethod
    def _read_all(outer: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
        stream = outer.extractfile(info)
        return b"" if stream is None else stream.read()

    def resolve(self, name: str) -> str:
        seen: set[str] = set()
        name = _norm(name)
        while name in self.aliases and name not in seen:
            seen.add(name)
            name = self.aliases[name]
        return name


def _open_outer(reader: _ChunkReader) -> tarfile.TarFile:
    try:
        # "r|*": a plain export, or one piped through gzip/bzip2/xz
        return tarfile.open(fileobj=reader, mode="r|*", bufsize=_OUTER_BUFSIZE)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if reader.bytes_read == 0:
            raise DockyardError("image export stream is empty: `docker save` produced no bytes") from exc
        raise DockyardError(
            f"image export is not a tar archive ({exc}): expected `docker save` output"
        ) from exc


def _parse_manifest(raw: bytes) -> tuple[str, list[str], list[str]]:
    """(config member, layer members, repo tags) of the one image manifest.json describes."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DockyardError(f"manifest.json of the image export is not valid JSON: {exc}") from exc
    if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
        raise DockyardError("manifest.json of the image export lists no image")
    if len(data) > 1:
        raise DockyardError(f"the image export holds {len(data)} images: `docker save` one image at a time")
    entry = data[0]
    layers = entry.get("Layers")
    if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
        raise DockyardError("manifest.json of the image export has no valid Layers list")
    config = entry.get("Config")
    tags = entry.get("RepoTags") or []
    return (
        config if isinstance(config, str) else "",
        list(layers),
        [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else [],
    )


def _load_config(collector: _Collector, config_member: str) -> dict[str, object]:
    raw = collector.json_blobs.get(collector.resolve(config_member)) if config_member else None
    if raw is None:
        return {}
    try:
        config = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DockyardError(f"image config {config_member} in the export is not valid JSON: {exc}") from exc
    return config if isinstance(config, dict) else {}


def scan_export(
    chunks: Iterable[bytes | bytearray | memoryview],
    *,
    needles: Mapping[str, bytes] | None = None,
    hooks: Sequence[ContentHook] = (),
    diff_ids: Sequence[str] = (),
) -> ExportScan:
    """Scan the byte stream of `docker save IMAGE` in one pass; see the module docstring.

    `needles` maps a name to secret bytes; every regular file at least as long as a needle is
    searched for it, and each (needle, layer, path) found is reported in `ExportScan.hits`. `hooks`
    get the content of the files they ask for; `diff_ids` (the image's, from inspect) let the scan
    tell them which layer a member holds before it is read. Raises DockyardError when the stream is
    not a complete image export.
    """
    started = time.perf_counter()
    search: _NeedleSearch | None = None
    if needles:
        for name, needle in needles.items():
            if not needle:
                raise UsageError(f"needle {name!r} is empty: give the secret bytes to search for")
        search = _NeedleSearch({name: bytes(needle) for name, needle in needles.items()})

    reader = _ChunkReader(chunks)
    collector = _Collector(search, hooks, predict_layer_members(diff_ids) if hooks else {})
    where = "the start"
    try:
        with _open_outer(reader) as outer:
            members: list[tarfile.TarInfo] = outer.members  # type: ignore[attr-defined]
            while (info := outer.next()) is not None:
                members.clear()
                where = info.name
                collector.add(outer, info)
        while reader.read(_READ_SIZE):  # trailing padding: let the producer finish
            pass
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if reader.exhausted:
            raise DockyardError(f"image export stream is truncated: it ended inside {where} ({exc})") from exc
        raise DockyardError(f"image export is corrupt at {where}: {exc}") from exc

    if collector.manifest is None:
        raise DockyardError(
            f"image export has no manifest.json ({reader.bytes_read} bytes, {collector.members} "
            "members read): the stream is truncated or not `docker save` output"
        )
    config_member, layer_members, repo_tags = _parse_manifest(collector.manifest)

    layers: list[LayerScan] = []
    for listed in layer_members:
        member = collector.resolve(listed)
        scan = collector.layers.get(member)
        if scan is None:
            why = collector.unsupported.get(member, "it is not in the stream")
            raise DockyardError(f"manifest.json lists layer {listed}, which cannot be read: {why}")
        layers.append(scan)

    hits_by_member: dict[str, list[tuple[str, str]]] = {}
    for needle_name, member, path in collector.hits:
        hits_by_member.setdefault(member, []).append((needle_name, path))
    hits = [
        NeedleHit(needle_name, index, layer.diff_id, path)
        for index, layer in enumerate(layers)
        for needle_name, path in hits_by_member.get(layer.member, ())
    ]
    return ExportScan(
        layers=layers,
        config=_load_config(collector, config_member),
        repo_tags=repo_tags,
        hits=hits,
        seconds=time.perf_counter() - started,
        bytes_read=reader.bytes_read,
    )


# --------------------------------------------------------------------------------------------------
# Waste


class _Overlay:
    """The final filesystem as layers are stacked, recording file versions made unreachable."""

    def __init__(self) -> None:
        self.live: dict[str, tuple[int, FileEntry]] = {}  # path -> (adding layer, entry)
        # Every path seen, live or an implicit directory (a parent no tar entry names): dir path ->
        # child paths ("" is the root). A path that is a key here is linked into its parent's dict.
        self.children: dict[str, dict[str, None]] = {}
        self.waste: list[WasteEntry] = []

    def stack(self, index: int, layer: LayerScan) -> None:
        live, children = self.live, self.children
        for path in layer.whiteouts:
            self._drop_tree(path, index, DELETED, include_root=True)
        for path in layer.opaque_dirs:
            self._drop_tree(path, index, DELETED, include_root=False)
        for path, entry in layer.files.items():
            old = live.get(path)
            if entry.kind == DIR:
                if old is not None and old[1].kind != DIR:
                    self._drop(path, index, OVERWRITTEN)
            elif old is not None or path in children:
                self._drop_tree(path, index, OVERWRITTEN, include_root=True)  # and all below it
            if old is None:
                # A non-directory ancestor gets replaced by a directory. Live ancestors of a live
                # directory are directories, so stop at the first live directory.
                ancestor = path.rpartition("/")[0]
                while ancestor:
                    above = live.get(ancestor)
                    if above is not None:
                        if above[1].kind != DIR:
                            self._drop(ancestor, index, OVERWRITTEN)
                        break
                    ancestor = ancestor.rpartition("/")[0]
            live[path] = (index, entry)
            self._link(path)

    def _drop(self, path: str, removed_in: int, how: str) -> None:
        added_in, entry = self.live.pop(path)
        if entry.kind == FILE and entry.size > 0:
            self.waste.append(WasteEntry(path, entry.size, added_in, removed_in, how))

    def _drop_tree(self, root: str, removed_in: int, how: str, *, include_root: bool) -> None:
        live, children = self.live, self.children
        below = children.pop(root, {})
        if include_root:
            if root in live:
                self._drop(root, removed_in, how)
            siblings = children.get(root.rpartition("/")[0])
            if siblings is not None:
                siblings.pop(root, None)
        todo = list(reversed(below))
        while todo:
            path = todo.pop()
            if path in live:
                self._drop(path, removed_in, how)
            grand = children.pop(path, None)
            if grand:
                todo.extend(reversed(grand))

    def _link(self, path: str) -> None:
        children = self.children
        while path:
            parent = path.rpartition("/")[0]
            siblings = children.get(parent)
            if siblings is not None:
                siblings[path] = None
                return
            children[parent] = {path: None}
            path = parent


def compute_waste(layers: Sequence[LayerScan]) -> WasteReport:
    """Bytes of file versions that a later layer made unreachable in the final filesystem.

    A regular file version is waste when a later layer writes its path again (any kind) or writes a
    non-directory over an ancestor directory ("overwritten"), or deletes it with a whiteout of the
    path or of an ancestor, or hides it with an opaque marker on an ancestor ("deleted"). Each
    version is counted once, attributed to the layer that added it and to the first layer that made
    it unreachable; surviving versions, directories, links and markers cost nothing.
    """
    overlay = _Overlay()
    for index, layer in enumerate(layers):
        overlay.stack(index, layer)
    entries = overlay.waste
    by_layer: dict[int, int] = {}
    for waste in entries:
        by_layer[waste.added_in] = by_layer.get(waste.added_in, 0) + waste.bytes
    return WasteReport(
        entries=entries,
        total_bytes=sum(waste.bytes for waste in entries),
        by_layer=dict(sorted(by_layer.items())),
    )
