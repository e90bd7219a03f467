"""Reading layers from overlay2's diff directories (dockyard.image.layerdirs) against reading the same
layers from an export: the same entries, whiteouts, opaque directories, hard links and file contents
for the content hooks; links never followed; a layer mapping that does not add up is refused.

overlayfs' records (a 0/0 character device, the trusted.overlay.opaque xattr) take root to write,
as reading an engine's directories takes root: these tests run as root (as CI does).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from dockyard.image import layerdirs
from dockyard.image.export import DIR, FILE, HARDLINK, SYMLINK, FileSink, LayerScan, LayerSink, scan_export
from dockyard.image.layerdirs import LayerDirsUnusable, locate, scan_tree
from tests.unit.test_imagefs import Spec, docker_save, layer_tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlayfs' whiteouts and xattrs take root to make")

SECRET = b"-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n"

# One added layer: files, a deleted file and directory, an opaque directory (its lower content
# hidden) holding a file of its own, links that point out of the layer, a fifo.
ENTRIES: list[Spec] = [
    ("app", "dir"),
    ("app/.env", b"TOKEN=abc\n"),
    ("app/cache", "dir"),
    ("app/cache", "opq"),
    ("app/cache/fresh.txt", b"fresh"),
    ("app/config.json", b'{"a": 1}'),
    ("app/key.pem", SECRET),
    ("app/old.txt", "wh"),
    ("app/passwd", "sym:../../../../../etc/passwd"),
    ("app/pipe", "fifo"),
    ("etc", "sym:/etc"),
    ("gone", "wh"),
]


def materialize(root: Path, entries: Sequence[Spec]) -> None:
    """Write `entries` as overlayfs writes a layer's upper directory."""
    root.mkdir(parents=True, exist_ok=True)
    for path, spec in entries:
        target = root / path
        if isinstance(spec, bytes):
            target.write_bytes(spec)
        elif spec == "dir":
            target.mkdir()
        elif spec == "opq":
            target.mkdir(exist_ok=True)
            os.setxattr(target, "trusted.overlay.opaque", b"y")
        elif spec == "wh":
            os.mknod(target, 0o600 | 0o020000, os.makedev(0, 0))
        elif spec == "fifo":
            os.mkfifo(target)
        elif spec.startswith("sym:"):
            target.symlink_to(spec[4:])
        elif spec.startswith("link:"):
            os.link(root / spec[5:], target)
        else:
            raise AssertionError(spec)


class Recorder:
    """A content hook that keeps every file it is given, whole (tests only)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.closed: list[str] = []

    def layer(self, member: str, index: int | None) -> LayerSink | None:
        return _RecorderLayer(self)


class _RecorderLayer:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def file(self, path: str, size: int) -> FileSink | None:
        return _RecorderFile(self.recorder, path)

    def close(self, diff_id: str) -> None:
        self.recorder.closed.append(diff_id)


class _RecorderFile:
    def __init__(self, recorder: Recorder, path: str) -> None:
        self.recorder, self.path, self.data = recorder, path, b""

    def feed(self, data: bytes) -> bool:
        self.data += data
        return True

    def close(self) -> None:
        self.recorder.files[self.path] = self.data


def both_ways(
    tmp_path: Path, entries: Sequence[Spec], tar_order: Sequence[str] | None = None
) -> tuple[tuple[LayerScan, Recorder], tuple[LayerScan, Recorder]]:
    root = tmp_path / "diff"
    materialize(root, entries)
    split = None
    if tar_order is not None:
        split = tmp_path / "tar-split.json.gz"
        lines = [json.dumps({"type": 1, "name": f"./{name}", "payload": None}) for name in tar_order]
        split.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    from_dirs = Recorder()
    sink = from_dirs.layer("d", 0)
    assert sink is not None
    dirs = scan_tree(root, "d", [sink], tar_split=split)
    from_export = Recorder()
    tar = scan_export([docker_save([layer_tar(entries)])], hooks=[from_export]).layers[0]
    return (dirs, from_dirs), (tar, from_export)


def test_whiteouts_opaque_dirs_and_contents_are_what_the_export_gives(tmp_path: Path) -> None:
    (dirs, from_dirs), (tar, from_export) = both_ways(tmp_path, ENTRIES)
    assert dirs.files == tar.files
    assert sorted(dirs.whiteouts) == sorted(tar.whiteouts) == ["app/old.txt", "gone"]
    assert dirs.opaque_dirs == tar.opaque_dirs == ["app/cache"]
    assert from_dirs.files == from_export.files
    assert from_dirs.files["app/key.pem"] == SECRET
    # a deletion is no file, an opaque directory is a directory; links are links, never followed
    files = dirs.files
    assert "gone" not in files
    assert "app/old.txt" not in files
    assert files["app/cache"].kind == DIR
    assert files["etc"].kind == SYMLINK
    assert files["app/passwd"].kind == SYMLINK
    assert not any(path.startswith("etc/") for path in files)
    assert "passwd" not in "".join(from_dirs.files)


def test_a_file_with_two_names_is_a_file_under_the_name_the_tar_lists_first(tmp_path: Path) -> None:
    # "app/z" comes first in the tar, after "app/a" in a walk by name
    entries: list[Spec] = [("app", "dir"), ("app/z", SECRET), ("app/a", "link:app/z")]
    (dirs, from_dirs), (tar, from_export) = both_ways(tmp_path, entries, ["app", "app/z", "app/a"])
    assert dirs.files == tar.files
    assert tar.files["app/z"].kind == FILE
    assert tar.files["app/a"].kind == HARDLINK
    assert from_dirs.files == from_export.files == {"app/z": SECRET}


def test_a_file_with_two_names_and_no_record_of_the_tar_order_is_refused(tmp_path: Path) -> None:
    materialize(tmp_path / "diff", [("z", SECRET), ("a", "link:z")])
    with pytest.raises(LayerDirsUnusable, match="several names"):
        scan_tree(tmp_path / "diff", "d", [], tar_split=None)


# --- locating the layers ------------------------------------------------------------------------------


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(
            "sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest() if chain else diff_id
        )
    return chain


def storage(root: Path, layers: int) -> tuple[dict[str, object], list[str], list[Path]]:
    """An engine's overlay2 storage holding one image of `layers` layers: (inspect's GraphDriver,
    the diff ids, the diff directories bottom first)."""
    driver = root / "overlay2"
    (driver / "l").mkdir(parents=True)
    diff_ids = [f"sha256:{hashlib.sha256(b'layer %d' % i).hexdigest()}" for i in range(layers)]
    dirs: list[Path] = []
    links: list[str] = []
    for index, chain in enumerate(chain_ids(diff_ids)):
        cache_id = hashlib.sha256(b"cache %d" % index).hexdigest()[:25]
        home = driver / cache_id
        (home / "diff").mkdir(parents=True)
        link = f"LINK{index:022d}"
        (home / "link").write_text(link)
        if links:
            (home / "lower").write_text(":".join(f"l/{parent}" for parent in reversed(links)))
        (driver / "l" / link).symlink_to(f"../{cache_id}/diff")
        record = root / "image" / "overlay2" / "layerdb" / "sha256" / chain.removeprefix("sha256:")
        record.mkdir(parents=True)
        (record / "diff").write_text(diff_ids[index])
        (record / "cache-id").write_text(cache_id)
        dirs.append(home / "diff")
        links.append(link)
    top_down = [str(d) for d in reversed(dirs)]
    data = {"UpperDir": top_down[0], "LowerDir": ":".join(top_down[1:])}
    return {"Name": "overlay2", "Data": data}, diff_ids, dirs


def test_each_layer_is_mapped_to_its_directory_bottom_first(tmp_path: Path) -> None:
    graph, diff_ids, dirs = storage(tmp_path, 3)
    found = locate(graph, diff_ids)
    assert found.dirs == tuple(dirs)
    assert found.diff_ids == tuple(diff_ids)


@pytest.mark.parametrize(
    ("break_it", "why"),
    [
        (lambda g, d: g.__setitem__("Name", "btrfs"), "btrfs, not overlay2"),
        (lambda g, d: d.pop(), "3 layer directories for 2 layers"),
        (lambda g, d: d.reverse(), "cannot be read"),  # the layers in the wrong order: no such chain
        (lambda g, d: d.__setitem__(1, "sha256:" + "0" * 64), "cannot be read"),  # no such chain
        (lambda g, d: g["Data"].pop("LowerDir"), "1 layer directories for 3 layers"),
    ],
)
def test_a_mapping_that_does_not_add_up_is_refused(tmp_path: Path, break_it: object, why: str) -> None:
    graph, diff_ids, _ = storage(tmp_path, 3)
    break_it(graph, diff_ids)  # type: ignore[operator]
    with pytest.raises(LayerDirsUnusable, match=why):
        locate(graph, diff_ids)


def test_directories_swapped_behind_the_links_are_refused(tmp_path: Path) -> None:
    graph, diff_ids, _ = storage(tmp_path, 3)
    data = graph["Data"]
    assert isinstance(data, dict)
    lower = data["LowerDir"].split(":")
    data["LowerDir"] = ":".join(reversed(lower))  # the two lower layers swapped
    with pytest.raises(LayerDirsUnusable, match=r"short link|parents in order|layer database"):
        locate(graph, diff_ids)
    # and a layer database that names another directory
    graph, diff_ids, _ = storage(tmp_path / "again", 2)
    record = layerdirs._chain_ids(diff_ids)[1].removeprefix("sha256:")
    (tmp_path / "again" / "image" / "overlay2" / "layerdb" / "sha256" / record / "cache-id").write_text(
        "other"
    )
    with pytest.raises(LayerDirsUnusable, match="does not map layer 1"):
        locate(graph, diff_ids)


def test_rootless_overlayfs_xattrs_count_and_a_renamed_directory_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "diff"
    (root / "cache").mkdir(parents=True)
    os.setxattr(root / "cache", "user.overlay.opaque", b"y")
    assert scan_tree(root, "d", []).opaque_dirs == ["cache"]
    (root / "moved").mkdir()
    os.setxattr(root / "moved", "trusted.overlay.redirect", b"/old")
    with pytest.raises(LayerDirsUnusable, match="renamed directory"):
        scan_tree(root, "d", [])


def test_not_root_is_refused_before_anything_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph, diff_ids, _ = storage(tmp_path, 2)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LayerDirsUnusable, match="needs root"):
        locate(graph, diff_ids)
