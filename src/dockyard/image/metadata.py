"""Image metadata as models: what `docker image inspect` and the history endpoint say, paired up.

Everything here reads metadata only (no export, no container), so it answers in milliseconds.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dockyard import engine_api
from dockyard.engine import Engine, first_line
from dockyard.errors import DockyardError, ImageNotFound, UsageError
from dockyard.project import dockerfile

if TYPE_CHECKING:
    from dockyard.config import Settings
    from dockyard.engine import Inspected
    from dockyard.image import export

EXPORT_CHUNK = 1 << 20
BASE_LABEL = "org.opencontainers.image.base.name"  # set by dockyard's builds: what the image started from

# History entries that only change the image config; every other entry made a layer.
_METADATA_ONLY = re.compile(
    r"^(/bin/sh -c #\(nop\)\s+)?(ENV|LABEL|CMD|ENTRYPOINT|EXPOSE|USER|ARG|HEALTHCHECK|STOPSIGNAL|"
    r"SHELL|VOLUME|ONBUILD|MAINTAINER)\b|^\|\d+ "
)


@dataclass(frozen=True)
class HistoryEntry:
    created_by: str
    size: int
    comment: str


@dataclass(frozen=True)
class Layer:
    index: int
    diff_id: str
    size: int
    created_by: str  # the instruction that made it ("?" when history cannot be paired)
    in_base: bool  # part of the base image the Dockerfile starts from


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str
    tags: tuple[str, ...]
    size: int
    user: str
    env: Mapping[str, str]
    cmd: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    exposed_ports: tuple[str, ...]
    healthcheck: Mapping[str, Any] | None
    labels: Mapping[str, str]
    working_dir: str
    diff_ids: tuple[str, ...]
    history: tuple[HistoryEntry, ...]  # oldest first
    created: str
    repo_digests: tuple[str, ...] = ()  # `name@sha256:...` of the manifests it was pushed or pulled as
    volumes: tuple[str, ...] = ()  # VOLUME paths: a container mounts a copy of the image's content there
    # inspect's GraphDriver: the storage driver's name and, for overlay2, the layers' directories
    graph_driver: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_inspect(
        cls, ref: str, attrs: Mapping[str, Any], history: Sequence[Mapping[str, Any]]
    ) -> ImageInfo:
        """From `docker image inspect` JSON and the history endpoint's entries (newest first)."""
        conf = attrs.get("Config") or {}
        env = {}
        for item in conf.get("Env") or []:
            key, _, value = item.partition("=")
            env[key] = value
        health = conf.get("Healthcheck")
        return cls(
            ref=ref,
            id=attrs["Id"],
            tags=tuple(attrs.get("RepoTags") or ()),
            size=int(attrs.get("Size", 0)),
            user=conf.get("User") or "",
            env=env,
            cmd=tuple(conf["Cmd"]) if conf.get("Cmd") else None,
            entrypoint=tuple(conf["Entrypoint"]) if conf.get("Entrypoint") else None,
            exposed_ports=tuple(sorted((conf.get("ExposedPorts") or {}).keys())),
            healthcheck=health if health and health.get("Test") not in (None, ["NONE"]) else None,
            labels=dict(conf.get("Labels") or {}),
            working_dir=conf.get("WorkingDir") or "",
            diff_ids=tuple((attrs.get("RootFS") or {}).get("Layers") or ()),
            history=tuple(
                HistoryEntry(
                    created_by=h.get("CreatedBy", ""),
                    size=int(h.get("Size", 0)),
                    comment=h.get("Comment", ""),
                )
                for h in reversed(history)
            ),
            created=str(attrs.get("Created", "")),
            repo_digests=tuple(attrs.get("RepoDigests") or ()),
            volumes=tuple(sorted((conf.get("Volumes") or {}).keys())),
            graph_driver=dict(attrs.get("GraphDriver") or {}),
        )

    def layers(self, base_diff_ids: Sequence[str] = ()) -> list[Layer]:
        """Each layer with its size and the instruction that made it, oldest first."""
        makers = [h for h in self.history if h.size > 0 or not _METADATA_ONLY.search(h.created_by)]
        paired = len(makers) == len(self.diff_ids)
        if not paired:  # fall back to the entries that certainly made a layer
            makers = [h for h in self.history if h.size > 0]
        base = common_prefix(self.diff_ids, base_diff_ids)
        layers = []
        for index, diff_id in enumerate(self.diff_ids):
            entry = makers[index] if index < len(makers) and paired else None
            layers.append(
                Layer(
                    index=index,
                    diff_id=diff_id,
                    size=entry.size if entry else 0,
                    created_by=shorten_instruction(entry.created_by or entry.comment) if entry else "?",
                    in_base=index < base,
                )
            )
        return layers


def common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    count = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        count += 1
    return count


def shorten_instruction(created_by: str, width: int = 90) -> str:
    """A history entry as a person reads it: no `/bin/sh -c`, no mount flags, one line."""
    text = created_by.strip()
    text = re.sub(r"^/bin/sh -c #\(nop\)\s+", "", text)
    text = re.sub(r"^(RUN )?/bin/sh -c ", "RUN ", text)
    text = re.sub(r"^\|\d+ (\S+=\S* )*", "", text)  # legacy builder's ARG prefix
    text = re.sub(r"--mount=\S+\s*", "", text)
    text = text.removesuffix("# buildkit").strip()
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _until(chunks: Iterable[bytes], stop: threading.Event) -> Iterator[bytes]:
    for chunk in chunks:
        if stop.is_set():  # the caller was interrupted: stop reading the export
            return
        yield chunk


def scan_export(
    engine: Engine,
    image_id: str,
    *,
    needles: Mapping[str, bytes] | None = None,
    hooks: Sequence[export.ContentHook] = (),
    diff_ids: Sequence[str] = (),
    stop: threading.Event | None = None,
) -> export.ExportScan:
    """One streaming pass over the image's export (never held in memory or written to disk).

    The engine may prepare the export before its first byte (Engine 20.10 stages it on disk): that
    wait is part of the cost, and of `docker save`'s too. `stop` ends the read early. `hooks` and
    `diff_ids`: see `dockyard.image.export.scan_export`.
    """
    import docker.errors  # noqa: PLC0415
    import requests.exceptions  # noqa: PLC0415

    from dockyard.image import export  # noqa: PLC0415

    # The low-level call: `Image.save` would inspect the image first, one more round trip.
    chunks = engine.client.api.get_image(image_id, chunk_size=EXPORT_CHUNK)
    try:
        stream = _until(chunks, stop or threading.Event())
        return export.scan_export(stream, needles=needles, hooks=hooks, diff_ids=diff_ids)
    except docker.errors.NotFound:
        raise ImageNotFound(f"no image {image_id!r} on this engine (removed meanwhile?)") from None
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise DockyardError(
            f"the export of {image_id.removeprefix('sha256:')[:12]} broke off ({first_line(exc)}): check "
            "that dockerd is running and has disk space for `docker save`, then try again"
        ) from None
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def image_name(ref: str) -> str:
    """The repository of a reference: `acme/api` of `acme/api:1.0` or `host:5000/acme/api@sha256:...`."""
    name = ref.split("@", 1)[0]
    tag = name.rfind(":")
    return name[:tag] if tag > name.rfind("/") else name


def subject_name(ref: str, info: ImageInfo) -> str:
    """The image name a report is filed under; an id reference takes its image's first tag's name."""
    bare = ref.removeprefix("sha256:")
    if ref.startswith("sha256:") or info.id.removeprefix("sha256:").startswith(bare):
        return image_name(info.tags[0]) if info.tags else info.id
    return image_name(ref)


@dataclass(frozen=True)
class Base:
    ref: str | None
    diff_ids: tuple[str, ...] = ()
    note: str | None = None  # why no (or not every) layer is grouped as base


def find_base(
    engine: Engine, settings: Settings, info: ImageInfo, name: str, explicit: str | None = None
) -> Base:
    """The base image's layers: `explicit`, else the image's `org.opencontainers.image.base.name` label
    (what it was really built on), else the project's Dockerfile (for the project's image)."""
    if explicit:
        ref = explicit
    elif label := info.labels.get(BASE_LABEL):
        ref = label
    elif name == settings.image and settings.has_project:
        try:
            found = dockerfile.parse(settings.dockerfile).final_base(settings.build_args)
        except UsageError as exc:
            return Base(None, note=f"base image unknown ({exc.message}); no layers grouped as base")
        if found is None:
            return Base(None, note="the final stage starts FROM scratch: every layer is the Dockerfile's")
        ref = found
    else:
        return Base(
            None,
            note=f"base image unknown: {name} is not the project's image ({settings.image}) and has no "
            f"{BASE_LABEL} label; pass --base IMAGE to group its layers",
        )
    try:
        diff_ids = tuple(engine.inspect_image(ref).get("RootFS", {}).get("Layers") or ())
    except ImageNotFound:
        return Base(ref, note=f"base image {ref} is not on this engine: no layers grouped as base (pull it)")
    shared = common_prefix(info.diff_ids, diff_ids)
    if shared < len(diff_ids):
        return Base(
            ref,
            diff_ids,
            note=f"{info.ref} starts with {shared} of the {len(diff_ids)} layers of {ref} (built on "
            "another version of it?): only those are grouped as base",
        )
    return Base(ref, diff_ids)


def inspect_image(
    engine: Engine, ref: str, ahead: concurrent.futures.Future[Inspected] | None = None
) -> ImageInfo:
    """The image's inspect and history; `ahead` is `engine.warm`'s answer for `ref`, when it was asked
    (any failure of it is met again here, and said)."""
    if ahead is not None:
        with contextlib.suppress(Exception):
            attrs, history = ahead.result(timeout=engine_api.TIMEOUT)
            return ImageInfo.from_inspect(ref, attrs, history)
    attrs = engine.inspect_image(ref)
    history = engine.image_history(str(attrs.get("Id", ref)))
    return ImageInfo.from_inspect(ref, attrs, history)
