"""Files dockyard writes and paths it is given: atomic writes, writability checked before work starts,
paths confined to a tree, and text that was not UTF-8 made printable.

Every file dockyard writes goes through `atomic_write` (a temp file beside the target, then a rename:
a reader sees the old file or the new one, never half of one) or `atomic_append` (one write that is
undone when it cannot be completed). `check_writable` proves an output path can be written the way
`atomic_write` will write it, so a run fails in its first second rather than after its last check.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from dockyard.errors import ConfigError, DockyardError, UsageError

__all__ = [
    "atomic_append",
    "atomic_write",
    "check_writable",
    "confined",
    "printable",
    "printable_tree",
    "write_reports",
]


# --- writing -----------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _writes_in_place(path: Path) -> bool:
    """A device, FIFO or socket (`/dev/stdout`, `/dev/null`, a pipe) is written through, not replaced."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _target(path: Path) -> Path:
    """Where the bytes go: through a symlink to the file it names (the link itself stays)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def atomic_write(path: Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write `data` to `path` atomically: a temp file beside it, flushed to disk, then renamed over it.

    Missing parent directories are created. An existing file keeps its permissions; a new one gets
    the usual ones (0666 less the umask), not the temp file's 0600. A device or FIFO is written
    through directly. Returns the path written.
    """
    payload = data.encode(encoding) if isinstance(data, str) else data  # encoding errors: before any I/O
    if _writes_in_place(path):
        with path.open("wb") as handle:
            handle.write(payload)
        return path
    target = _target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    scratch = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        scratch.chmod(mode)
        scratch.replace(target)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    return path


def atomic_append(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    """Append `text` to `path` (created when missing) all or nothing: a write that cannot complete
    (a full disk, an interruption) is cut back off, so the file never ends in half a report.

    The file keeps its identity (no rename): a CI runner that reads `$GITHUB_STEP_SUMMARY` by its open
    handle or by its name sees the same file.
    """
    payload = text.encode(encoding)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        before = os.fstat(fd).st_size
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            raise
    finally:
        os.close(fd)


class ReportNotWritten(DockyardError):
    """One or more report files could not be written (the others were)."""


def write_reports(files: Sequence[tuple[Path | None, str, Callable[[], str]]]) -> list[Path]:
    """Write each (path, option, render) whose path is set, atomically and each on its own: one that
    cannot be rendered or written does not stop the others, which are written first; then
    `ReportNotWritten` names every one that failed. Returns the paths written."""
    written: list[Path] = []
    problems: list[str] = []
    for path, what, render in files:
        if path is None:
            continue
        try:
            atomic_write(path, render())
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(f"{what} {printable(str(path))}: {reason}")
            continue
        written.append(path)
    if problems:
        raise ReportNotWritten(f"report not written: {'; '.join(problems)} (the others were)")
    return written


# --- checking ----------------------------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def check_writable(path: Path, what: str) -> None:
    """Raise UsageError (exit 2) unless `atomic_write(path, ...)` can succeed: `path` is not a directory,
    and its directory (or the nearest one that exists, where the missing ones would be made) accepts
    a new file. Nothing is left behind by the check."""
    shown = printable(str(path))
    if path.is_dir():
        raise UsageError(f"{what} {shown} is a directory: name a file")
    if _writes_in_place(path):
        if not os.access(path, os.W_OK):
            raise UsageError(f"{what} {shown} is not writable")
        return
    target = _target(path)
    parent = _nearest_existing(target.parent)
    if not parent.is_dir():
        raise UsageError(f"{what} {shown}: {printable(str(parent))} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".dockyard-write-check-")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno == 2 or not os.access(parent, os.W_OK):  # /proc, /sys: no new files at all
            reason = f"{reason}; {printable(str(parent))} does not accept new files"
        raise UsageError(
            f"cannot write {what} {shown} ({reason}): choose a path in a writable directory"
        ) from None
    os.close(fd)
    Path(probe).unlink()
    if target.exists() and not os.access(target, os.W_OK):
        # The rename would still succeed, but a file its owner made read-only is not ours to replace.
        raise UsageError(f"{what} {shown} is read-only: make it writable or choose another path")


# --- confining ---------------------------------------------------------------------------------------


def confined(root: Path, relative: str | Path, what: str) -> Path:
    """`root / relative`, resolved (symlinks followed), when it stays inside `root`; else ConfigError.

    An absolute path, `..` components that climb out, or a symlink that leads out of `root` are all
    refused: a value read from a project's files must never make dockyard touch the host outside it.
    """
    text = str(relative)
    if not text or "\0" in text:
        raise ConfigError(f"{what}: {text!r} is not a path")
    if Path(text).is_absolute():
        raise ConfigError(f"{what}: {printable(text)} is absolute; give a path relative to {root}")
    real_root = Path(os.path.realpath(root))
    resolved = Path(os.path.realpath(real_root / text))
    if not resolved.is_relative_to(real_root):
        raise ConfigError(f"{what}: {printable(text)} leads outside {root}; give a path inside it")
    return resolved


# --- printing ----------------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, decoded with `surrogateescape`
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every byte that was not UTF-8 shown as `\\xNN` (e.g. the file name b'nasty\\x80'
    arrives as 'nasty\\udc80' and leaves as 'nasty\\\\x80'), so it can be encoded, printed and parsed
    in every format; valid text is unchanged."""
    return _SURROGATE.sub(_escape_surrogate, text)


def printable_tree(value: object) -> object:
    """`printable` applied to every string (keys included) of a JSON-like tree."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_tree(k): printable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_tree(v) for v in value]
    return value
