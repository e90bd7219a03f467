"""The streaming image-export analyzer, over synthetic `docker save` streams built in memory."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tracemalloc
from collections.abc import Iterator, Sequence

import pytest

from dockyard.errors import DockyardError, UsageError
from dockyard.image import export
from dockyard.image.export import (
    DELETED,
    OVERWRITTEN,
    FileEntry,
    LayerScan,
    NeedleHit,
    WasteEntry,
    compute_waste,
    scan_export,
)

# A layer entry: (path, spec). spec is the file content (bytes), or one of "dir", "wh" (whiteout of
# path), "opq" (opaque marker in dir path), "fifo", "sym:<target>", "link:<target>".
Spec = tuple[str, bytes | str]

TOKEN = b"ghp_0123456789abcdefSECRET"
CONFIG: dict[str, object] = {"architecture": "amd64", "config": {"User": "app"}, "rootfs": {"type": "layers"}}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", **attrs: object) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def layer_tar(entries: Sequence[Spec]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, spec in entries:
            head, _, base = path.rpartition("/")
            prefix = f"{head}/" if head else ""
            if isinstance(spec, bytes):
                add(tar, path, spec)
            elif spec == "dir":
                add(tar, path, type=tarfile.DIRTYPE, mode=0o755)
            elif spec == "wh":
                add(tar, f"{prefix}.wh.{base}")
            elif spec == "opq":
                add(tar, f"{path}/.wh..wh..opq")
            elif spec == "fifo":
                add(tar, path, type=tarfile.FIFOTYPE)
            elif spec.startswith("sym:"):
                add(tar, path, type=tarfile.SYMTYPE, linkname=spec[4:])
            elif spec.startswith("link:"):
                add(tar, path, type=tarfile.LNKTYPE, linkname=spec[5:])
            else:
                raise AssertionError(spec)
    return buf.getvalue()


def docker_save(
    layers: Sequence[bytes],
    *,
    order: Sequence[int] | None = None,
    tags: Sequence[str] = ("app:1.0",),
) -> bytes:
    """A legacy (Engine < 25) export: layer dirs in `order`, then config, manifest.json LAST."""
    config_bytes = json.dumps(CONFIG).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    ids = [hashlib.sha256(b"v1-%d" % i).hexdigest() for i in range(len(layers))]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in order if order is not None else range(len(layers)):
            add(tar, ids[i], type=tarfile.DIRTYPE)
            add(tar, f"{ids[i]}/VERSION", b"1.0")
            add(tar, f"{ids[i]}/json", b'{"id": "%s"}' % ids[i].encode())
            add(tar, f"{ids[i]}/layer.tar", layers[i])
        add(tar, config_name, config_bytes)
        manifest = [
            {"Config": config_name, "RepoTags": list(tags), "Layers": [f"{i}/layer.tar" for i in ids]}
        ]
        add(tar, "manifest.json", json.dumps(manifest).encode())
        add(tar, "repositories", b"{}")
    return buf.getvalue()


def oci_save(
    layers: Sequence[bytes], *, gzip_layers: Sequence[int] = (), tags: Sequence[str] = ("app:2.0",)
) -> bytes:
    """An OCI-layout (Engine 25+) export: blobs (config, layers, image manifest), then index.json,
    manifest.json, oci-layout. A layer listed twice is stored once."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return f"blobs/sha256/{digest}"

    config_member = blob(json.dumps(CONFIG).encode())
    layer_members = [
        blob(gzip.compress(data, mtime=0) if i in gzip_layers else data) for i, data in enumerate(layers)
    ]
    image_manifest = {
        "schemaVersion": 2,
        "config": {"digest": "sha256:" + config_member.rsplit("/", 1)[1]},
        "layers": [{"digest": "sha256:" + m.rsplit("/", 1)[1]} for m in layer_members],
    }
    manifest_member = blob(json.dumps(image_manifest).encode())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "blobs", type=tarfile.DIRTYPE)
        add(tar, "blobs/sha256", type=tarfile.DIRTYPE)
        for digest in sorted(blobs):
            add(tar, f"blobs/sha256/{digest}", blobs[digest])
        index = {"manifests": [{"digest": "sha256:" + manifest_member.rsplit("/", 1)[1]}]}
        add(tar, "index.json", json.dumps(index).encode())
        manifest = [{"Config": config_member, "RepoTags": list(tags), "Layers": layer_members}]
        add(tar, "manifest.json", json.dumps(manifest).encode())
        add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    return buf.getvalue()


def chunked(data: bytes, size: int = 7) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def layer(index: int, entries: Sequence[tuple[str, str, int]], *, whiteouts: Sequence[str] = (),
          opaque: Sequence[str] = ()) -> LayerScan:  # fmt: skip
    """A LayerScan built directly, for the pure waste function."""
    return LayerScan(
        member=f"L{index}",
        diff_id=f"sha256:{index:064x}",
        size=0,
        files={path: FileEntry(path, kind, size) for path, kind, size in entries},
        whiteouts=list(whiteouts),
        opaque_dirs=list(opaque),
    )


# --------------------------------------------------------------------------------------------------
# Scanning


BASE: list[Spec] = [
    ("etc", "dir"),
    ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    ("usr/lib/libbig.so", b"\x7fELF" + b"\0" * 996),
    ("tmp/cache", "dir"),
    ("tmp/cache/a.bin", b"a" * 300),
    ("tmp/cache/sub/b.bin", b"b" * 200),
]
APP: list[Spec] = [
    ("./app/", "dir"),
    ("./app/main.py", b"print('hi')\n"),
    ("/app/run", "sym:main.py"),
    ("app/run2", "link:app/main.py"),
    ("app/pipe", "fifo"),
    ("etc/passwd", b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n"),
    ("tmp/cache", "wh"),
    ("usr/lib", "opq"),
]


def test_legacy_export_layers_come_in_manifest_order_with_exact_diff_ids() -> None:
    tars = [layer_tar(BASE), layer_tar(APP), layer_tar([("srv/data", b"x" * 5000)])]
    export = docker_save(tars, order=[2, 0, 1], tags=["app:1.0", "app:latest"])

    scan = scan_export(chunked(export))

    assert [layer.diff_id for layer in scan.layers] == [sha256(t) for t in tars]
    assert scan.diff_ids == [sha256(t) for t in tars]
    assert [layer.size for layer in scan.layers] == [len(t) for t in tars]
    assert scan.repo_tags == ["app:1.0", "app:latest"]
    assert scan.config == CONFIG
    assert scan.bytes_read == len(export)
    assert scan.hits == []
    assert scan.seconds > 0
    assert all(layer.member.endswith("/layer.tar") for layer in scan.layers)


def test_entries_are_normalized_and_typed_with_whiteouts_and_opaque_dirs() -> None:
    scan = scan_export(chunked(docker_save([layer_tar(BASE), layer_tar(APP)])))
    base, app = scan.layers

    assert base.files["usr/lib/libbig.so"] == FileEntry("usr/lib/libbig.so", "file", 1000)
    assert base.files["tmp/cache"] == FileEntry("tmp/cache", "dir", 0)
    assert base.whiteouts == []
    assert base.opaque_dirs == []
    assert app.files == {
        "app": FileEntry("app", "dir", 0),
        "app/main.py": FileEntry("app/main.py", "file", 12),
        "app/run": FileEntry("app/run", "symlink", 0),
        "app/run2": FileEntry("app/run2", "hardlink", 0),
        "app/pipe": FileEntry("app/pipe", "other", 0),
        "etc/passwd": FileEntry("etc/passwd", "file", 56),
    }
    assert app.whiteouts == ["tmp/cache"]
    assert app.opaque_dirs == ["usr/lib"]


def test_whiteout_and_opaque_marker_at_the_root() -> None:
    tar = layer_tar([("top", "wh"), (".", "dir"), ("keep", b"k")])
    # an opaque marker on the root itself: "./.wh..wh..opq"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        add(t, "./.wh..wh..opq")
        add(t, ".wh..wh.plnk", type=tarfile.DIRTYPE)  # aufs bookkeeping: ignored
    scan = scan_export(chunked(docker_save([tar, buf.getvalue()])))

    assert scan.layers[0].whiteouts == ["top"]
    assert list(scan.layers[0].files) == ["keep"]  # "." (the root) is not an entry
    assert scan.layers[1].opaque_dirs == [""]
    assert scan.layers[1].whiteouts == []
    assert scan.layers[1].files == {}


def test_oci_layout_with_plain_and_gzip_layers_and_a_repeated_layer() -> None:
    plain = layer_tar(BASE)
    zipped = layer_tar(APP)
    export = oci_save([plain, zipped, plain], gzip_layers=[1])

    scan = scan_export(chunked(export, 13))

    assert scan.diff_ids == [sha256(plain), sha256(zipped), sha256(plain)]
    assert [layer.size for layer in scan.layers] == [len(plain), len(zipped), len(plain)]
    assert scan.layers[0] is scan.layers[2]  # one scan, reused
    assert scan.layers[1].whiteouts == ["tmp/cache"]
    assert "app/main.py" in scan.layers[1].files
    assert scan.config == CONFIG
    assert scan.repo_tags == ["app:2.0"]


def test_empty_layer_is_recognized_in_the_oci_layout() -> None:
    empty = layer_tar([])  # zero blocks only: no ustar magic to peek at
    scan = scan_export(chunked(oci_save([layer_tar(BASE), empty]), 64))
    assert scan.diff_ids == [sha256(layer_tar(BASE)), sha256(empty)]
    assert scan.layers[1].files == {}


def test_legacy_layer_tar_symlink_to_an_identical_layer_is_resolved() -> None:
    tar = layer_tar([("x", b"same")])
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        add(out, "bbb/layer.tar", type=tarfile.SYMTYPE, linkname="../aaa/layer.tar")  # before it
        add(out, "aaa/layer.tar", tar)
        add(out, "cfg.json", b'{"os": "linux"}')
        manifest = [{"Config": "cfg.json", "RepoTags": None, "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]
        add(out, "manifest.json", json.dumps(manifest).encode())

    scan = scan_export(chunked(buf.getvalue()))

    assert scan.diff_ids == [sha256(tar), sha256(tar)]
    assert scan.layers[0] is scan.layers[1]
    assert scan.repo_tags == []
    assert scan.config == {"os": "linux"}


def test_a_gzipped_export_is_read_too() -> None:
    tar = layer_tar(BASE)
    scan = scan_export(chunked(gzip.compress(docker_save([tar])), 1000))
    assert scan.diff_ids == [sha256(tar)]


def test_chunks_of_any_size_and_buffer_type_give_the_same_scan() -> None:
    export = docker_save([layer_tar(BASE), layer_tar(APP)])
    reference = scan_export([export])
    for size in (1, 511, 512, 513, 1 << 20):
        scan = scan_export(chunked(export, size))
        assert scan.layers == reference.layers
    scan = scan_export(bytearray(c) for c in chunked(export, 1000))
    assert scan.layers == reference.layers


def test_memory_stays_flat_while_a_large_layer_streams_through() -> None:
    big = layer_tar([("data/big.bin", bytes(range(256)) * (64 << 12))])  # a 16 MiB file
    export = docker_save([big])
    tracemalloc.start()
    try:
        scan = scan_export(chunked(export, 1 << 20), needles={"t": TOKEN})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.diff_ids == [sha256(big)]
    assert peak < 8 << 20  # a few 1 MiB buffers, never the layer


# --------------------------------------------------------------------------------------------------
# Needles


def test_needle_found_across_a_read_boundary_in_the_right_layer() -> None:
    big = b"x" * ((1 << 20) - 10) + TOKEN + b"y" * 100  # straddles the 1 MiB read boundary
    tars = [
        layer_tar([("etc/ca.pem", b"-----BEGIN CERTIFICATE-----\n")]),
        layer_tar([("app/blob.bin", big), ("app/other", b"z" * 2000)]),
    ]
    scan = scan_export(chunked(docker_save(tars), 4099), needles={"token": TOKEN, "ca": b"BEGIN CERTIFICATE"})

    assert scan.hits == [
        NeedleHit("ca", 0, sha256(tars[0]), "etc/ca.pem"),
        NeedleHit("token", 1, sha256(tars[1]), "app/blob.bin"),
    ]


def test_needle_split_across_tiny_chunks_is_found() -> None:
    content = b"....." + TOKEN + b"....."
    for read_size in (1, 2, 3, 7, len(TOKEN) - 1, len(TOKEN), 64):
        search = export._NeedleSearch({"t": TOKEN, "short": b"..", "miss": b"nope"})
        hits: list[tuple[str, str, str]] = []
        sink = export._NeedleLayer(search, "layer", hits).file("f", len(content))
        assert sink is not None
        for start in range(0, len(content), read_size):
            if not sink.feed(content[start : start + read_size]):
                break
        sink.close()
        assert hits == [("short", "layer", "f"), ("t", "layer", "f")], read_size


def test_no_hit_in_a_file_shorter_than_the_needle_and_one_hit_per_file() -> None:
    tars = [
        layer_tar([("a/short", TOKEN[:-1]), ("a/exact", TOKEN), ("a/twice", TOKEN + TOKEN)]),
    ]
    scan = scan_export(chunked(docker_save(tars)), needles={"token": TOKEN})
    assert [hit.path for hit in scan.hits] == ["a/exact", "a/twice"]


def test_needle_in_a_repeated_layer_is_reported_for_each_position() -> None:
    tar = layer_tar([("secret", TOKEN)])
    scan = scan_export(chunked(oci_save([tar, layer_tar([("x", b"1")]), tar])), needles={"t": TOKEN})
    assert [(hit.layer_index, hit.path) for hit in scan.hits] == [(0, "secret"), (2, "secret")]


def test_without_needles_file_contents_are_not_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object) -> bool:
        raise AssertionError("searched")

    monkeypatch.setattr(export._NeedleFile, "feed", fail)
    scan = scan_export(chunked(docker_save([layer_tar(BASE)])), needles={})
    assert scan.hits == []


def test_an_empty_needle_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="needle 'x' is empty"):
        scan_export([docker_save([layer_tar(BASE)])], needles={"x": b""})


# --------------------------------------------------------------------------------------------------
# Waste


def test_overwritten_then_deleted_file_counts_each_version_once() -> None:
    layers = [
        layer(0, [("f", "file", 10)]),
        layer(1, [("f", "file", 20)]),
        layer(2, [], whiteouts=["f"]),
    ]
    report = compute_waste(layers)
    assert report.entries == [
        WasteEntry("f", 10, 0, 1, OVERWRITTEN),
        WasteEntry("f", 20, 1, 2, DELETED),
    ]
    assert report.total_bytes == 30
    assert report.by_layer == {0: 10, 1: 20}


def test_surviving_versions_dirs_links_and_markers_cost_nothing() -> None:
    layers = [
        layer(0, [("d", "dir", 0), ("d/f", "file", 7), ("l", "symlink", 0), ("h", "hardlink", 0)]),
        layer(1, [("d", "dir", 0), ("l", "file", 3), ("h", "symlink", 0), ("e", "file", 0)]),
        layer(2, [("e", "file", 1)], whiteouts=["missing", "l"]),
    ]
    report = compute_waste(layers)
    assert report.entries == [WasteEntry("l", 3, 1, 2, DELETED)]  # d/f survives; e was empty
    assert report.total_bytes == 3


def test_identical_file_added_again_is_counted_once() -> None:
    again = compute_waste([layer(0, [("f", "file", 100)]), layer(1, [("f", "file", 100)])])
    assert again.entries == [WasteEntry("f", 100, 0, 1, OVERWRITTEN)]
    assert again.total_bytes == 100

    readded = compute_waste(
        [layer(0, [("f", "file", 100)]), layer(1, [], whiteouts=["f"]), layer(2, [("f", "file", 100)])]
    )
    assert readded.entries == [WasteEntry("f", 100, 0, 1, DELETED)]
    assert readded.total_bytes == 100


def test_whiteout_of_a_directory_deletes_the_subtree_only() -> None:
    layers = [
        layer(0, [("a", "dir", 0), ("a/x", "file", 5), ("a/b", "dir", 0), ("a/b/y", "file", 7)]),
        layer(1, [("ab", "file", 11), ("a/b/z", "file", 13)]),
        layer(2, [], whiteouts=["a"]),
    ]
    report = compute_waste(layers)
    assert sorted((e.path, e.bytes, e.added_in, e.removed_in, e.how) for e in report.entries) == [
        ("a/b/y", 7, 0, 2, DELETED),
        ("a/b/z", 13, 1, 2, DELETED),
        ("a/x", 5, 0, 2, DELETED),
    ]
    assert report.total_bytes == 25  # "ab" is a sibling, not under "a/"
    assert report.by_layer == {0: 12, 1: 13}


def test_opaque_dir_hides_lower_entries_but_not_its_own_layer() -> None:
    layers = [
        layer(0, [("v", "dir", 0), ("v/old", "file", 40), ("v/sub/deep", "file", 2), ("w", "file", 1)]),
        layer(1, [("v", "dir", 0), ("v/new", "file", 9)], opaque=["v"]),
        layer(2, [("v/new2", "file", 1)]),
    ]
    report = compute_waste(layers)
    assert report.total_bytes == 42
    assert {(e.path, e.removed_in, e.how) for e in report.entries} == {
        ("v/old", 1, DELETED),
        ("v/sub/deep", 1, DELETED),
    }
    root_opaque = compute_waste([*layers, layer(3, [("n", "file", 1)], opaque=[""])])
    assert root_opaque.total_bytes == 42 + 1 + 9 + 1  # w, v/new, v/new2: everything below


def test_ancestor_replaced_by_a_file_or_symlink_or_a_dir_over_a_file() -> None:
    layers = [
        layer(0, [("opt", "dir", 0), ("opt/tool/bin", "file", 30), ("lib", "dir", 0), ("lib/x", "file", 4)]),
        layer(1, [("opt/tool", "symlink", 0), ("lib", "file", 6)]),
        layer(2, [("lib/y", "file", 1)]),  # "lib" (a file) becomes a directory again
    ]
    report = compute_waste(layers)
    assert report.entries == [
        WasteEntry("opt/tool/bin", 30, 0, 1, OVERWRITTEN),
        WasteEntry("lib/x", 4, 0, 1, OVERWRITTEN),
        WasteEntry("lib", 6, 1, 2, OVERWRITTEN),
    ]


def test_top_returns_the_largest_entries_first() -> None:
    layers = [
        layer(0, [("a", "file", 5), ("b", "file", 50), ("c", "file", 20), ("d", "file", 20)]),
        layer(1, [], whiteouts=["a", "b", "c", "d"]),
    ]
    report = compute_waste(layers)
    assert [e.path for e in report.top(3)] == ["b", "c", "d"]
    assert report.top(0) == []
    assert len(report.top(10)) == 4


def test_waste_of_a_scanned_export() -> None:
    scan = scan_export(chunked(docker_save([layer_tar(BASE), layer_tar(APP)]), 7))
    report = compute_waste(scan.layers)
    assert sorted((e.path, e.bytes, e.how) for e in report.entries) == [
        ("etc/passwd", 26, OVERWRITTEN),
        ("tmp/cache/a.bin", 300, DELETED),
        ("tmp/cache/sub/b.bin", 200, DELETED),
        ("usr/lib/libbig.so", 1000, DELETED),
    ]
    assert report.total_bytes == 1526
    assert report.by_layer == {0: 1526}


# --------------------------------------------------------------------------------------------------
# Malformed input


def test_not_a_tar_is_a_clear_error() -> None:
    with pytest.raises(DockyardError, match=r"^image export is not a tar archive"):
        scan_export(chunked(b"this is not a tar archive at all" * 40))


def test_an_empty_stream_is_a_clear_error() -> None:
    with pytest.raises(DockyardError, match=r"^image export stream is empty"):
        scan_export([])


def test_a_tar_without_manifest_is_a_clear_error() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add(tar, "hello.txt", b"hi")
    with pytest.raises(DockyardError, match=r"^image export has no manifest\.json \(\d+ bytes, 1 "):
        scan_export(chunked(buf.getvalue()))


def test_a_stream_cut_inside_a_layer_is_reported_truncated() -> None:
    export = docker_save([layer_tar([("big", b"q" * 100_000)])])
    with pytest.raises(DockyardError, match=r"^image export stream is truncated: .*layer\.tar"):
        scan_export(chunked(export[: len(export) // 2], 4096))


def test_a_stream_cut_between_members_has_no_manifest() -> None:
    export = docker_save([layer_tar(BASE)])
    cut = export.index(b"manifest.json") // 512 * 512  # at the manifest's header
    with pytest.raises(DockyardError, match=r"no manifest\.json"):
        scan_export(chunked(export[:cut]))


def test_a_manifest_naming_a_missing_layer_is_a_clear_error() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add(tar, "manifest.json", b'[{"Config": "c.json", "Layers": ["abc/layer.tar"]}]')
    with pytest.raises(DockyardError, match=r"lists layer abc/layer\.tar, .*not in the stream"):
        scan_export([buf.getvalue()])


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"not json", "manifest.json of the image export is not valid JSON"),
        (b"[]", "manifest.json of the image export lists no image"),
        (b'[{"Layers": []}, {"Layers": []}]', "holds 2 images"),
        (b'[{"Config": "c.json"}]', "has no valid Layers list"),
    ],
)
def test_a_bad_manifest_is_a_clear_error(manifest: bytes, message: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add(tar, "manifest.json", manifest)
    with pytest.raises(DockyardError, match=message):
        scan_export([buf.getvalue()])


def test_layer_members_are_predicted_from_the_diff_ids() -> None:
    """Recorded from Engine 20.10's `docker save` of dockyard's image: every layer but the top one
    sits in a directory named by an id that follows from the diff ids alone."""
    diff_ids = [
        "sha256:6f1e38daff1bd45ff2a575e7e02e7df4c1cd43a8211ae913b1c63cbed69c3d75",
        "sha256:8b2da24d05b673e080daed2a58094e266659d42586c13c5243600cbb1dcea932",
        "sha256:a4ec03dea8bca9b431b580180d3452948dbd2a89d6c0ac5a06d092725fea87f1",
        "sha256:c53a2d00b0ca443043466342f9445df11ff607138d574735bbd59ec476210a4e",
        "sha256:9d8e764fae38e7ac6cf31bc177da824f5f5b33d45447ac524707798a99896ac2",
    ]
    saved = [  # the export's layer directories, in layer order
        "d54bfd23089a462dd557a88a917c47a70407b6906eae38aefbbba8c9c455519c",
        "eff949b2db295a157b1d03e1e0dc118e9fe5dadfb37f5e5974250e3bf5a70852",
        "9e82cff8e1c173b67c987643d36256ddf9be2b36be02547d67468a196dd8832d",
        "6756d7b72215d6de58c3278e35708cb53a576c1e62c2a36907e84a4583ca63e1",
        "0a0bd2587cc621689546e7cf1a6c1f905e04c89c2ce584341388e593b637daa5",  # the top: config-derived
    ]
    predicted = export.predict_layer_members(diff_ids)
    assert [predicted.get(f"{d}/layer.tar") for d in saved] == [0, 1, 2, 3, None]
    assert predicted[f"blobs/sha256/{diff_ids[2].removeprefix('sha256:')}"] == 2  # OCI: by diff id


def test_hooks_are_told_the_layer_an_oci_member_holds() -> None:
    tars = [layer_tar([("a", b"1")]), layer_tar([("b", b"2")])]
    seen: list[tuple[str, int | None]] = []

    class Hook:
        def layer(self, member: str, index: int | None) -> None:
            seen.append((member, index))

    scan_export(chunked(oci_save(tars)), hooks=[Hook()], diff_ids=[sha256(t) for t in tars])
    assert sorted(index for _, index in seen if index is not None) == [0, 1]
