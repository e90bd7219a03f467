"""The size history: each build's size breakdown per image name, kept in a small JSON file.

The file lives in dockyard's state directory (see `dockyard.state`), one per project, unless
`[tool.dockyard.size] history` names a file in the project. Updates hold a lock and replace the file
atomically, so concurrent runs keep every entry; a damaged file is set aside, never a failed build.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard import fsutil, state
from dockyard.config import Settings
from dockyard.engine import Engine
from dockyard.image.metadata import (
    ImageInfo,
    find_base,
    image_name,
    inspect_image,
)

HISTORY_VERSION = 1
HISTORY_KEEP = 50  # builds kept per image name


@dataclass(frozen=True)
class LayerRecord:
    """One layer as the history keeps it."""

    diff_id: str
    size: int
    instruction: str
    in_base: bool
    compressed: int | None = None  # bytes in the registry (a pushed image's entry only)


@dataclass(frozen=True)
class BuildRecord:
    """One build's size breakdown, as the history keeps it."""

    image_id: str
    ref: str
    recorded: str  # UTC, ISO 8601
    total: int
    layers: tuple[LayerRecord, ...]
    digest: str | None = None  # a push's entry: the manifest digest in the registry
    moved: int | None = None  # a push's entry: bytes the push uploaded

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildRecord:
        return cls(
            image_id=str(data["image_id"]),
            ref=str(data["ref"]),
            recorded=str(data["recorded"]),
            total=int(data["total"]),
            layers=tuple(LayerRecord(**layer) for layer in data["layers"]),
            digest=str(data["digest"]) if data.get("digest") else None,
            moved=int(data["moved"]) if data.get("moved") is not None else None,
        )


# --- history -----------------------------------------------------------------------------------------

History = dict[str, list[BuildRecord]]  # image name -> builds, oldest first
Warn = Callable[[str], None]

LOCK_WAIT = 30.0  # seconds to wait for another run's update before giving up on recording


def _warn_on_stderr(message: str) -> None:
    print(f"dockyard: warning: {message}", file=sys.stderr)


def history_path(settings: Settings) -> Path:
    """`[tool.dockyard.size] history` (a file of the user's, inside the project), else the project's
    file in dockyard's state directory: never a file dockyard made up inside the user's tree."""
    if settings.size.history is not None:
        return fsutil.confined(settings.project_dir, settings.size.history, "[tool.dockyard.size] history")
    return state.project_state_dir(settings.project_dir) / "size-history.json"


def read_history(path: Path, *, warn: Warn | None = None) -> History:
    """The recorded builds per image name; a missing file is an empty history.

    A file that is no history (unreadable, not UTF-8, not JSON, another shape) never fails a run: it
    is set aside as `<name>.corrupt-<time>` (kept, for whoever wants to look), `warn` says so in one
    line, and the history starts afresh. A directory in its place is left alone and reads as empty.
    """
    warn = warn or _warn_on_stderr
    if path.is_dir():
        warn(f"size history {path} is a directory, not a file: sizes are not recorded there")
        return {}
    try:
        return _parse_history(json.loads(path.read_bytes().decode("utf-8")))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) else str(exc)
        kept = _set_aside(path)
        where = f"kept as {kept.name}" if kept else "it could not be moved aside"
        warn(f"size history {path} is not a dockyard size history ({problem}): {where}, starting afresh")
        return {}


def _set_aside(path: Path) -> Path | None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(100):
        aside = path.with_name(f"{path.name}.corrupt-{stamp}" + (f"-{attempt}" if attempt else ""))
        if os.path.lexists(aside):
            continue
        try:
            path.rename(aside)
        except OSError:
            return None
        return aside
    return None


def _parse_history(data: Mapping[str, Any]) -> History:
    if data.get("version") != HISTORY_VERSION:
        raise ValueError(f"version {data.get('version')!r}, expected {HISTORY_VERSION}")
    return {
        str(name): [BuildRecord.from_json(entry) for entry in entries]
        for name, entries in data["images"].items()
    }


def write_history(path: Path, history: History) -> None:
    """Write the history atomically: a reader never sees half a file."""
    data = {
        "version": HISTORY_VERSION,
        "images": {name: [asdict(entry) for entry in entries] for name, entries in history.items()},
    }
    fsutil.atomic_write(path, json.dumps(data, indent=1) + "\n")


@contextlib.contextmanager
def _locked(path: Path, wait: float) -> Iterator[bool]:
    """Hold the lock that serialises updates of `path` (an flock on a file in the state directory);
    yields False when it could not be had within `wait` seconds."""
    lock = state.lock_file(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # no state directory to lock in (a read-only home): the rename still keeps it whole
        yield True
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.01)
        yield True
    finally:
        os.close(fd)  # releases the lock


def update_history(
    path: Path, change: Callable[[History], bool], *, warn: Warn | None = None, wait: float = LOCK_WAIT
) -> bool:
    """Read, `change` and write back the history under a lock, so runs at the same time all keep
    their entries. `change` returns whether it changed anything. Never raises for the history's own
    problems: `warn` tells them in one line. Returns whether the history was written."""
    warn = warn or _warn_on_stderr
    with _locked(path, wait) as held:
        if not held:
            warn(f"size history {path} stayed locked by another run for {wait:g} s: this build not recorded")
            return False
        if path.is_dir():
            warn(f"size history {path} is a directory, not a file: this build not recorded")
            return False
        history = read_history(path, warn=warn)
        if not change(history):
            return False
        try:
            write_history(path, history)
        except OSError as exc:
            warn(f"size history {path} not updated ({exc.strerror or exc}): this build not recorded")
            return False
        return True


def add_build(history: History, name: str, entry: BuildRecord, *, keep: int = HISTORY_KEEP) -> None:
    """Append `entry` as the newest build of `name` (a rebuild of a known image id moves it)."""
    entries = [e for e in history.get(name, []) if e.image_id != entry.image_id]
    entries.append(entry)
    history[name] = entries[-keep:]


def previous_build(history: History, name: str, image_id: str) -> BuildRecord | None:
    """The newest recorded build of `name` that is another image than `image_id`."""
    return next((e for e in reversed(history.get(name, [])) if e.image_id != image_id), None)


def breakdown(info: ImageInfo, base_diff_ids: Sequence[str], *, now: datetime | None = None) -> BuildRecord:
    """The image's size breakdown as the history keeps it."""
    return BuildRecord(
        image_id=info.id,
        ref=info.tags[0] if info.tags else info.ref,
        recorded=(now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        total=info.size,
        layers=tuple(
            LayerRecord(layer.diff_id, layer.size, layer.created_by, layer.in_base)
            for layer in info.layers(base_diff_ids)
        ),
    )


def record_build(
    settings: Settings, info: ImageInfo, base_diff_ids: Sequence[str], *, warn: Warn | None = None
) -> bool:
    """Record a build's breakdown under each image name it is tagged with (untagged: the project's).

    Never fails the build that made it: history problems are warned about (see `update_history`).
    """
    names = dict.fromkeys(image_name(tag) for tag in info.tags) or {settings.image: None}
    entry = breakdown(info, base_diff_ids)

    def add(history: History) -> bool:
        for name in names:
            add_build(history, name, entry)
        return True

    return update_history(history_path(settings), add, warn=warn)


def record_built_image(engine: Engine, settings: Settings, ref: str, *, warn: Warn | None = None) -> bool:
    """`record_build` for a freshly built image of the project, its base found as `find_base` does."""
    info = inspect_image(engine, ref)
    base = find_base(engine, settings, info, settings.image).diff_ids
    return record_build(settings, info, base, warn=warn)


# --- base image --------------------------------------------------------------------------------------


def default_ref(engine: Engine, settings: Settings, history: History | None = None) -> str:
    """The project's image: `<image>:<version>`, else the newest recorded build, else `<image>:latest`."""
    candidates = [f"{settings.image}:{settings.project_version}"] if settings.project_version else []
    if entries := (history or {}).get(settings.image):
        candidates += [entries[-1].ref, entries[-1].image_id]
    candidates.append(f"{settings.image}:latest")
    return next((ref for ref in candidates if engine.image_exists(ref)), candidates[0])
