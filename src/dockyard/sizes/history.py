"""The size history: each build's size breakdown per image name, kept in a small local JSON file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.config import Settings
from dockyard.engine import Engine
from dockyard.errors import UsageError
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


def history_path(settings: Settings) -> Path:
    return settings.project_dir / settings.size.history


History = dict[str, list[BuildRecord]]  # image name -> builds, oldest first


def read_history(path: Path) -> History:
    """The recorded builds per image name; a missing file is an empty history."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        return _parse_history(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{path} is not a dockyard size history ({exc}): delete it (it holds past builds' sizes only)"
        ) from None


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
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1)
            out.write("\n")
        Path(scratch).replace(path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


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


def record_build(settings: Settings, info: ImageInfo, base_diff_ids: Sequence[str]) -> None:
    """Record a build's breakdown under each image name it is tagged with (untagged: the project's)."""
    names = dict.fromkeys(image_name(tag) for tag in info.tags) or {settings.image: None}
    path = history_path(settings)
    history = read_history(path)
    entry = breakdown(info, base_diff_ids)
    for name in names:
        add_build(history, name, entry)
    write_history(path, history)


def record_built_image(engine: Engine, settings: Settings, ref: str) -> None:
    """`record_build` for a freshly built image of the project, its base found as `find_base` does."""
    info = inspect_image(engine, ref)
    record_build(settings, info, find_base(engine, settings, info, settings.image).diff_ids)


# --- base image --------------------------------------------------------------------------------------


def default_ref(engine: Engine, settings: Settings, history: History | None = None) -> str:
    """The project's image: `<image>:<version>`, else the newest recorded build, else `<image>:latest`."""
    candidates = [f"{settings.image}:{settings.project_version}"] if settings.project_version else []
    if entries := (history or {}).get(settings.image):
        candidates += [entries[-1].ref, entries[-1].image_id]
    candidates.append(f"{settings.image}:latest")
    return next((ref for ref in candidates if engine.image_exists(ref)), candidates[0])
