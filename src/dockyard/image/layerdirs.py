"""Read an image's layers from the overlay2 storage driver's diff directories, in place of an export.

When the engine runs on this machine (reached over a local unix socket), stores images with the
overlay2 driver and this process can read its directories (root, typically CI), each layer of an
image is a directory on disk: `<root>/overlay2/<cache id>/diff`. Walking those directories gives
what a pass over `docker save` gives (every layer's entries, whiteouts and opaque directories, file
contents for the content hooks) without the engine staging and sending the whole image first, and
without parsing tar streams.

`locate` maps the image's layers (RootFS.Layers, bottom first) to directories and verifies the
mapping three ways, or says why it cannot: `docker image inspect`'s GraphDriver.Data (UpperDir, the
top layer, and LowerDir, the others top-most first) has one directory per layer; each directory's
`../link` names the short link `<root>/overlay2/l/<link>` that points back at it and its `../lower`
lists its parents' links in order; and the engine's layer database
(`<root>/image/overlay2/layerdb/sha256/<chain id>/{diff,cache-id}`) names, for each layer's chain
id, that diff id and that directory. Anything that does not add up is a reason to use the export.

`scan_layer_dirs` walks each layer once and feeds the same `ContentHook` interface the export scan
feeds (`dockyard.image.export`), translating overlay2's own records into the export's: a deletion is
a 0/0 character device here and a `.wh.<name>` entry there; an opaque directory is the xattr
`trusted.overlay.opaque=y` here and a `.wh..wh..opq` entry there. The walk visits each directory's
entries in byte order (the order the engine writes a layer tar in), never follows a symbolic link
(every open is relative to an open parent directory, with O_NOFOLLOW), never leaves the layer's
directory, and reads file contents a chunk at a time, as the export scan does. A second name of a
file already seen in the layer is a hard link, as in a tar. What the walk cannot give is a layer's
tar size: `LayerScan.size` is the bytes of its regular files here.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from dockyard.errors import DockyardError
from dockyard.image.export import (
    _AUFS_META_PREFIX,
    _OPAQUE_MARKER,
    _READ_SIZE,
    _WHITEOUT_PREFIX,
    DIR,
    FILE,
    HARDLINK,
    OTHER,
    SYMLINK,
    ContentHook,
    ExportScan,
    FileEntry,
    FileSink,
    LayerScan,
    LayerSink,
)

OVERLAY2: Final = "overlay2"
# The diff id of a layer with no entries (a tar of two zero blocks)
EMPTY_LAYER: Final = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
# overlayfs' own xattrs: trusted.* as root mounts it, user.* with the userxattr option (rootless)
_OPAQUE_XATTRS: Final = ("trusted.overlay.opaque", "user.overlay.opaque")
_REDIRECT_XATTRS: Final = ("trusted.overlay.redirect", "user.overlay.redirect")  # a renamed directory
_METACOPY_PARAM: Final = Path("/sys/module/overlay/parameters/metacopy")
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class LayerDirsUnusable(DockyardError):
    """The diff directories cannot stand in for the export (the reason is the message)."""


@dataclass(frozen=True, slots=True)
class LayerDirs:
    """One verified diff directory per layer of an image, bottom first."""

    dirs: tuple[Path, ...]
    diff_ids: tuple[str, ...]
    records: tuple[Path, ...]  # each layer's entry in the engine's layer database (its tar-split)


def _chain_ids(diff_ids: Sequence[str]) -> list[str]:
    import hashlib  # noqa: PLC0415

    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append("sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


def _read_text(path: Path) -> str:
    """A small bookkeeping file of the engine's, read without following a link at its last part."""
    fd = os.open(path, _FILE_FLAGS)
    try:
        return os.read(fd, 1 << 16).decode().strip()
    finally:
        os.close(fd)


def locate(graph_driver: Mapping[str, Any], diff_ids: Sequence[str]) -> LayerDirs:
    """The image's layer directories, verified (see the module docstring); raises LayerDirsUnusable
    with the reason when they are not there, not readable or do not match the image's layers."""
    name = graph_driver.get("Name")
    if os.geteuid() != 0:  # overlayfs' trusted.* xattrs (opaque directories) are root's to read
        raise LayerDirsUnusable("reading the engine's layer directories needs root")
    if name != OVERLAY2:
        raise LayerDirsUnusable(f"the engine's storage driver is {name or 'unknown'}, not overlay2")
    data = graph_driver.get("Data") or {}
    upper, lower = data.get("UpperDir"), data.get("LowerDir")
    if not isinstance(upper, str) or not upper or not diff_ids:
        raise LayerDirsUnusable("inspect names no layer directory for the image")
    top_down = [upper, *(lower.split(":") if isinstance(lower, str) and lower else [])]
    if len(top_down) != len(diff_ids):
        raise LayerDirsUnusable(f"{len(top_down)} layer directories for {len(diff_ids)} layers")
    dirs = tuple(Path(d) for d in reversed(top_down))
    if any(not d.is_absolute() or d.name != "diff" or ".." in d.parts for d in dirs):
        raise LayerDirsUnusable("inspect names layer directories of an unexpected shape")
    driver_root = dirs[0].parent.parent
    if any(d.parent.parent != driver_root for d in dirs):
        raise LayerDirsUnusable("the layer directories are not under one storage root")
    try:
        if _METACOPY_PARAM.is_file() and _METACOPY_PARAM.read_text().strip() == "Y":
            raise LayerDirsUnusable("overlayfs copies metadata only (metacopy=on): contents are elsewhere")
        links: list[str] = []
        layerdb = driver_root.parent / "image" / OVERLAY2 / "layerdb" / "sha256"
        records = tuple(layerdb / chain.removeprefix("sha256:") for chain in _chain_ids(diff_ids))
        for index, (directory, record) in enumerate(zip(dirs, records, strict=True)):
            links.append(_verify_layer(index, directory, record, diff_ids[index], links))
    except OSError as exc:
        raise LayerDirsUnusable(f"the layer directories cannot be read ({exc.strerror or exc})") from None
    return LayerDirs(dirs=dirs, diff_ids=tuple(diff_ids), records=records)


def _verify_layer(index: int, directory: Path, record: Path, diff_id: str, links: Sequence[str]) -> str:
    """Check one layer's directory against its short link, its parents' links and the engine's layer
    database; its short link."""
    layer_home, driver_root = directory.parent, directory.parent.parent
    link = _read_text(layer_home / "link")
    target = Path("..", layer_home.name, "diff")
    if not link or "/" in link or (driver_root / "l" / link).readlink() != target:
        raise LayerDirsUnusable(f"layer {index}'s directory and its short link do not agree")
    lower = _read_text(layer_home / "lower") if (layer_home / "lower").exists() else ""
    if lower != ":".join(f"l/{parent}" for parent in reversed(links)):
        raise LayerDirsUnusable(f"layer {index}'s directory does not list its parents in order")
    if _read_text(record / "diff") != diff_id:
        raise LayerDirsUnusable(f"the engine's layer database does not know layer {index}")
    # An empty layer (BuildKit's, of a step that changed nothing) may have a directory of its own
    # in each image that repeats it: any empty directory is that layer.
    empty = diff_id == EMPTY_LAYER and next(directory.iterdir(), None) is None
    if _read_text(record / "cache-id") != layer_home.name and not empty:
        raise LayerDirsUnusable(f"the engine's layer database does not map layer {index} to its directory")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise LayerDirsUnusable(f"layer {index}'s directory is not readable by this process")
    return link


def scan_layer_dirs(
    layer_dirs: LayerDirs, *, hooks: Sequence[ContentHook] = (), repo_tags: Sequence[str] = ()
) -> ExportScan:
    """Walk every layer directory once, bottom first, feeding `hooks` as `scan_export` does; each
    layer is offered to the hooks with its index. A layer listed twice is walked once, the first
    time, and is the same object at both places. Raises LayerDirsUnusable when a directory cannot
    be read to its end (the hooks have then seen part of the image: make new ones for the export)."""
    started = time.perf_counter()
    layers: list[LayerScan] = []
    walked: dict[str, LayerScan] = {}
    total = 0
    where = zip(layer_dirs.dirs, layer_dirs.diff_ids, layer_dirs.records, strict=True)
    for index, (directory, diff_id, record) in enumerate(where):
        seen = walked.get(diff_id)
        if seen is not None:
            layers.append(seen)
            continue
        member = f"{diff_id.removeprefix('sha256:')}/diff"
        sinks = [sink for hook in hooks if (sink := hook.layer(member, index)) is not None]
        try:
            layer = scan_tree(directory, member, sinks, tar_split=record / "tar-split.json.gz")
        except OSError as exc:
            raise LayerDirsUnusable(
                f"layer {index}'s directory could not be read ({exc.strerror or exc}: {exc.filename or ''})"
            ) from None
        layer.diff_id = diff_id
        for sink in sinks:
            sink.close(diff_id)
        total += layer.size
        walked[diff_id] = layer
        layers.append(layer)
    return ExportScan(
        layers=layers,
        config={},
        repo_tags=list(repo_tags),
        hits=[],
        seconds=time.perf_counter() - started,
        bytes_read=total,
    )


def scan_tree(
    root: Path, member: str, sinks: Sequence[LayerSink], *, tar_split: Path | None = None
) -> LayerScan:
    """One overlay2 diff directory as the export's `LayerScan` (diff id left empty, size the bytes of
    its regular files), handing file contents to `sinks` (their `close` is the caller's).

    A file with several names in the layer is, in the layer's tar, a regular file under the name the
    tar lists first and a hard link under the others; `tar_split` (the engine's record of the tar's
    headers, in order) tells which name that is. Without it, such a file cannot be told as the
    export tells it: LayerDirsUnusable."""
    walk = _Walk(LayerScan(member=member, diff_id="", size=0), sinks)
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        walk.tree(root_fd)
        if walk.linked:
            walk.hard_links(root_fd, tar_split)
    finally:
        os.close(root_fd)
    return walk.layer


class _Walk:
    def __init__(self, layer: LayerScan, sinks: Sequence[LayerSink]) -> None:
        self.layer, self.sinks = layer, sinks
        self.linked: dict[tuple[int, int], list[tuple[str, int]]] = {}  # inode -> (path, size) of each name

    def tree(self, root_fd: int) -> None:
        """Depth-first, pre-order, each directory's entries in byte order."""
        stack: list[tuple[int, str, list[str], list[int]]] = [(os.dup(root_fd), "", _names(root_fd), [0])]
        try:
            while stack:
                fd, prefix, names, cursor = stack[-1]
                if cursor[0] >= len(names):
                    os.close(fd)
                    stack.pop()
                    continue
                name = names[cursor[0]]
                cursor[0] += 1
                path = f"{prefix}/{name}" if prefix else name
                child = self.entry(fd, name, path)
                if child is not None:
                    stack.append((child, path, _names(child), [0]))
        finally:
            for fd, *_ in stack:
                os.close(fd)

    def entry(self, fd: int, name: str, path: str) -> int | None:
        """Record one entry; a directory's descriptor when it is one (to walk next)."""
        layer = self.layer
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            child = _open_dir(fd, name, path)
            _record(layer, path, DIR, 0)
            if any(_xattr(child, name) == b"y" for name in _OPAQUE_XATTRS):
                _record(layer, f"{path}/{_OPAQUE_MARKER}", OTHER, 0)
            return child
        if stat.S_ISCHR(mode) and info.st_rdev == 0:  # overlayfs' whiteout
            parent, _, base = path.rpartition("/")
            whiteout = f"{_WHITEOUT_PREFIX}{base}"
            _record(layer, f"{parent}/{whiteout}" if parent else whiteout, OTHER, 0)
        elif stat.S_ISREG(mode):
            key, size = (info.st_dev, info.st_ino), info.st_size
            if info.st_nlink > 1:  # which name is the file and which the links: see hard_links
                self.linked.setdefault(key, []).append((path, size))
                _record(layer, path, HARDLINK, 0)
                return None
            layer.size += size
            if _record(layer, path, FILE, size) and self.sinks and size:
                self.feed(fd, name, path, size, key)
        else:
            _record(layer, path, SYMLINK if stat.S_ISLNK(mode) else OTHER, 0)
        return None

    def feed(self, dir_fd: int, name: str, path: str, size: int, key: tuple[int, int]) -> None:
        wanting = [s for sink in self.sinks if (s := sink.file(path, size)) is not None]
        if wanting:
            _feed(dir_fd, name, size, key, wanting)

    def hard_links(self, root_fd: int, tar_split: Path | None) -> None:
        """Each file with several names: a file under the name the layer's tar lists first."""
        groups = {key: names for key, names in self.linked.items() if len(names) > 1}
        rank = _tar_order({path for names in groups.values() for path, _ in names}, tar_split)
        for key, names in self.linked.items():
            path, size = min(names, key=lambda name: rank[name[0]]) if len(names) > 1 else names[0]
            self.layer.size += size
            if not _record(self.layer, path, FILE, size) or not self.sinks or not size:
                continue
            parent, _, base = path.rpartition("/")
            dir_fd = _open_path(root_fd, parent)
            try:
                self.feed(dir_fd, base, path, size, key)
            finally:
                os.close(dir_fd)


def _tar_order(paths: set[str], tar_split: Path | None) -> dict[str, int]:
    """Where each of `paths` comes in the layer's tar, from the engine's tar-split record (a gzipped
    JSON line per tar header and per file); LayerDirsUnusable when it does not list them all."""
    import base64  # noqa: PLC0415
    import gzip  # noqa: PLC0415
    import json  # noqa: PLC0415

    from dockyard.image.export import _norm  # noqa: PLC0415

    if not paths:
        return {}
    if tar_split is None or not tar_split.is_file():
        raise LayerDirsUnusable("a file with several names, and no record of the layer's tar order")
    rank: dict[str, int] = {}
    with gzip.open(tar_split, "rb") as lines:
        for position, line in enumerate(lines):
            if b'"name' not in line:  # a segment (raw header bytes), not an entry
                continue
            entry = json.loads(line)
            if entry.get("type") != 1:
                continue
            name = entry.get("name")
            if name is None and entry.get("name_raw"):
                name = os.fsdecode(base64.b64decode(entry["name_raw"]))
            path = _norm(name or "")
            if path in paths and path not in rank:
                rank[path] = position
                if len(rank) == len(paths):
                    break
    if len(rank) != len(paths):
        raise LayerDirsUnusable("the record of the layer's tar order does not list every hard link")
    return rank


def _open_path(root_fd: int, relative: str) -> int:
    """A directory below the root, opened a component at a time, never through a link."""
    fd = os.dup(root_fd)
    for part in relative.split("/") if relative else ():
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _open_dir(parent: int, name: str, path: str) -> int:
    """A subdirectory, opened without following a link; one overlayfs renamed (its content lies in
    another layer) cannot be walked as a tar of the layer would be read."""
    child = os.open(name, _DIR_FLAGS, dir_fd=parent)
    try:
        redirected = any(_xattr(child, name) is not None for name in _REDIRECT_XATTRS)
    except BaseException:
        os.close(child)
        raise
    if redirected:
        os.close(child)
        raise LayerDirsUnusable(f"/{path} is a renamed directory (redirect_dir): not walked")
    return child


def _names(fd: int) -> list[str]:
    """A directory's entries in byte order (scandir of a descriptor does not close it)."""
    with os.scandir(fd) as entries:
        return sorted((entry.name for entry in entries), key=os.fsencode)


def _xattr(fd: int, name: str) -> bytes | None:
    try:
        return os.getxattr(fd, name)
    except OSError as exc:
        import errno  # noqa: PLC0415

        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise


def _record(layer: LayerScan, path: str, kind: str, size: int) -> bool:
    """Record an entry as the export scan records a tar member of that name: a `.wh.` name is a
    whiteout or an opaque marker, not a file. True when it is a file or directory entry."""
    parent, _, base = path.rpartition("/")
    if base.startswith(_WHITEOUT_PREFIX):
        if base == _OPAQUE_MARKER:
            layer.opaque_dirs.append(parent)
        elif not base.startswith(_AUFS_META_PREFIX):
            target = base[len(_WHITEOUT_PREFIX) :]
            layer.whiteouts.append(f"{parent}/{target}" if parent else target)
        return False
    layer.files[path] = FileEntry(path, kind, size)
    return True


def _feed(dir_fd: int, name: str, size: int, key: tuple[int, int], sinks: list[FileSink]) -> None:
    """Read one file's first `size` bytes once, a chunk at a time, for every sink that wants it."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != key or not stat.S_ISREG(opened.st_mode):
                raise LayerDirsUnusable(f"{name} changed while the layer was read")
            left, active = size, sinks
            while active and left > 0:
                chunk = os.read(fd, min(_READ_SIZE, left))
                if not chunk:
                    break
                left -= len(chunk)
                active = [sink for sink in active if sink.feed(chunk)]
        finally:
            os.close(fd)
    finally:
        for sink in sinks:
            sink.close()
