"""fsutil: atomic writes and appends, writability checked up front, confinement, printable text."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dockyard import fsutil
from dockyard.errors import ConfigError, UsageError


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "report.json"
    fsutil.atomic_write(target, "one")
    fsutil.atomic_write(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_atomic_write_keeps_an_existing_files_mode_and_gives_a_new_one_the_usual_mode(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.write_text("x")
    kept.chmod(0o640)
    fsutil.atomic_write(kept, "y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    new = tmp_path / "new"
    fsutil.atomic_write(new, "z")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask


def test_a_text_that_cannot_be_encoded_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "keep.json"
    target.write_text('{"good": true}')
    with pytest.raises(UnicodeEncodeError):
        fsutil.atomic_write(target, "bad \udc80 name")
    assert target.read_text() == '{"good": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["keep.json"]


def test_atomic_write_through_a_symlink_writes_the_file_it_names(tmp_path: Path) -> None:
    real = tmp_path / "real.md"
    real.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(real)
    fsutil.atomic_write(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_atomic_write_to_a_device_writes_through(tmp_path: Path) -> None:
    fsutil.atomic_write(Path("/dev/null"), "discarded")  # not replaced by a regular file
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)


def test_atomic_append_adds_to_the_same_file(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("first\n")
    inode = summary.stat().st_ino
    fsutil.atomic_append(summary, "second\n")
    assert summary.read_text() == "first\nsecond\n"
    assert summary.stat().st_ino == inode


def test_atomic_append_of_unencodable_text_changes_nothing(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("first\n")
    with pytest.raises(UnicodeEncodeError):
        fsutil.atomic_append(summary, "\udc80")
    assert summary.read_text() == "first\n"


def test_atomic_append_cuts_off_a_write_that_fails_halfway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("first\n")
    real_write = os.write
    calls = []

    def short_then_full_disk(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:3]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full_disk)
    with pytest.raises(OSError, match="No space"):
        fsutil.atomic_append(summary, "second report\n")
    monkeypatch.undo()
    assert summary.read_text() == "first\n"


def _file(path: Path) -> Path:
    path.write_text("")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp, "is a directory"),
        (lambda tmp: Path("/proc/version"), "does not accept new files"),
        (lambda tmp: Path("/proc/dockyard/report.json"), "does not accept new files"),
        (lambda tmp: _file(tmp / "file") / "x.json", "is not a directory"),
    ],
    ids=["directory", "proc-file", "proc-new", "under-a-file"],
)
def test_check_writable_refuses(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(UsageError, match=message):
        fsutil.check_writable(path, "--json")


def test_check_writable_accepts_new_paths_and_leaves_nothing(tmp_path: Path) -> None:
    fsutil.check_writable(tmp_path / "a" / "b" / "report.json", "--json")
    fsutil.check_writable(Path("/dev/null"), "--json")
    assert list(tmp_path.iterdir()) == []


def test_confined_accepts_paths_inside_and_refuses_the_rest(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("")
    (tmp_path / "out").symlink_to("/etc")
    assert fsutil.confined(tmp_path, "src/a.py", "key") == (tmp_path / "src" / "a.py").resolve()
    assert fsutil.confined(tmp_path, "src/../src/a.py", "key").name == "a.py"
    for bad, why in (
        ("/etc/passwd", "is absolute"),
        ("../x", "leads outside"),
        ("src/../../x", "leads outside"),
        ("out/passwd", "leads outside"),
        ("", "is not a path"),
    ):
        with pytest.raises(ConfigError, match=why):
            fsutil.confined(tmp_path, bad, "key")


def test_printable_escapes_bytes_that_were_not_utf8_and_nothing_else() -> None:
    name = os.fsdecode(b"/nasty\x80/.env")
    assert fsutil.printable(name) == "/nasty\\x80/.env"
    assert fsutil.printable("caf\u00e9 \u2603 \\x80") == "caf\u00e9 \u2603 \\x80"
    assert fsutil.printable("\ud800") == "\\ud800"
    tree = fsutil.printable_tree({"files": [name], name: 1})
    assert json.dumps(tree, ensure_ascii=False).encode("utf-8")
