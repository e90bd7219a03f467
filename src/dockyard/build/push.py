"""`push`: the project's latest build (or a given image) to its registry, and what really moved.

The engine pushes (through the SDK: credentials come from the docker config, read once by the
registry client, and go to the engine in a request header, never into argv or output). Its own
progress says, layer by layer, whether the layer was pushed, already present or mounted from another
repository; the registry's manifest then gives each layer's compressed size and digest. Bytes moved
are exact: the compressed layers pushed, the image config when the registry lacked it, and the
manifest. The result names the manifest digest and the digest-pinned reference to deploy, and the
push is recorded in the size history under the pushed name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import docker.errors
import humanize
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dockyard import registry
from dockyard.config import Settings
from dockyard.engine import Engine
from dockyard.errors import DockyardError, ImageNotFound, UsageError
from dockyard.image import metadata as images
from dockyard.registry import Reference, RegistryError
from dockyard.sizes import history as size_history

PUSHED, PRESENT, MOUNTED = "pushed", "present", "mounted"
_NAME_FIX = " in [tool.dockyard] image or DOCKYARD_IMAGE, or push with --to REF"


@dataclass(frozen=True)
class LayerPush:
    index: int
    diff_id: str
    instruction: str
    size: int  # uncompressed, as the image history says
    digest: str  # the compressed blob's digest in the registry
    compressed: int  # bytes of that blob: what a push or a pull moves
    status: str  # pushed, present (already in the repository) or mounted (from another repository)


@dataclass(frozen=True)
class PushResult:
    """One image pushed to one repository, under one or more tags (they share the manifest)."""

    name: str  # host/repository
    tags: tuple[str, ...]
    image_id: str
    digest: str  # the manifest's
    manifest_size: int
    config_size: int
    config_pushed: bool
    layers: tuple[LayerPush, ...]
    seconds: float

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(f"{self.name}:{tag}" for tag in self.tags)

    @property
    def pinned(self) -> str:
        """What to deploy: the name pinned to the manifest digest."""
        return f"{self.name}@{self.digest}"

    @property
    def pushed_layers(self) -> tuple[LayerPush, ...]:
        return tuple(layer for layer in self.layers if layer.status == PUSHED)

    @property
    def moved(self) -> int:
        """Bytes uploaded: the pushed layers, the config when it was new, and the manifest."""
        config = self.config_size if self.config_pushed else 0
        return sum(layer.compressed for layer in self.pushed_layers) + config + self.manifest_size

    @property
    def compressed(self) -> int:
        """The whole image as the registry stores it: what a pull onto an empty engine moves."""
        return sum(layer.compressed for layer in self.layers) + self.config_size + self.manifest_size


# --- what to push ------------------------------------------------------------------------------------


def latest_build(engine: Engine, settings: Settings) -> tuple[str, tuple[str, ...]]:
    """(image id, its tags under the project's image name) of the project's latest build."""
    history = size_history.read_history(size_history.history_path(settings))
    ref = size_history.default_ref(engine, settings, history)
    try:
        image = engine.image(ref)
    except ImageNotFound:
        raise ImageNotFound(
            f"no build of {settings.image} on this engine: build it first (invoke build)"
        ) from None
    tags = tuple(tag for tag in image.tags if images.image_name(tag) == settings.image)
    return str(image.id), tags or (ref,)


def plan(
    engine: Engine, settings: Settings, image: str | None, to: Sequence[str]
) -> tuple[str, tuple[Reference, ...]]:
    """(image id, the references to push it as): `to` when given, else the image's own tags.

    Names are checked before the engine is asked anything: a name that cannot be pushed is the
    problem to fix, whether or not the image is built yet.
    """
    named = [registry.pushable(ref, what="--to") for ref in to]
    if pinned := next((target for target in named if target.digest), None):
        raise UsageError(f"cannot push to a digest ({pinned}): name a tag, e.g. --to {pinned.name}:1.0")
    if not named:
        registry.pushable(image or settings.image, fix="" if image else _NAME_FIX)
    own: tuple[str, ...]
    if image:
        try:
            source_id, own = str(engine.image(image).id), (image,)
        except ImageNotFound:
            raise ImageNotFound(f"no image {image!r} on this engine: build it first (invoke build)") from None
    else:
        source_id, own = latest_build(engine, settings)
    named = named or [registry.pushable(ref, fix=_NAME_FIX) for ref in own]
    return source_id, tuple(target if target.tag else target.with_tag("latest") for target in named)


# --- pushing -----------------------------------------------------------------------------------------


def _progress_error(event: Mapping[str, Any], ref: str, host: str) -> DockyardError:
    """One line for an error the engine's push reported."""
    text = str(event.get("error") or (event.get("errorDetail") or {}).get("message") or "push failed")
    text = (text.strip().splitlines() or ["push failed"])[0]
    lowered = text.lower()
    if "unauthorized" in lowered or "authentication required" in lowered or "denied" in lowered:
        return RegistryError(f"{host} refused the push of {ref} ({text}): run `docker login {host}`")
    if "connection refused" in lowered or "no such host" in lowered or "dial tcp" in lowered:
        return RegistryError(
            f"registry {host} does not answer ({text}): start it "
            "(scripts/provision-engine starts the local one) or check the image name"
        )
    return RegistryError(f"pushing {ref} failed: {text}")


def _engine_push(engine: Engine, target: Reference, credentials: Mapping[str, Any]) -> dict[str, str]:
    """Push one tag through the engine with `credentials` (the registry client's, so the ping before
    and the push agree; empty: anonymous); the status of each layer by short diff id."""
    statuses: dict[str, str] = {}
    try:
        stream: Iterable[Mapping[str, Any]] = engine.client.api.push(
            target.name, tag=target.tag, stream=True, decode=True, auth_config=dict(credentials)
        )
        for event in stream:
            if "error" in event or "errorDetail" in event:
                raise _progress_error(event, str(target), target.host or "")
            layer, status = str(event.get("id") or ""), str(event.get("status") or "")
            if status == "Pushed":
                statuses[layer] = PUSHED
            elif status == "Layer already exists":
                statuses[layer] = PRESENT
            elif status.startswith("Mounted from"):
                statuses[layer] = MOUNTED
    except docker.errors.APIError as exc:
        event = {"error": str(exc.explanation or exc)}
        raise _progress_error(event, str(target), target.host or "") from None
    return statuses


def push_image(engine: Engine, image_id: str, targets: Sequence[Reference]) -> list[PushResult]:
    """Tag `image_id` as each target and push it; one result per repository, in order."""
    info = images.inspect_image(engine, image_id)
    layers = info.layers()
    by_name: dict[str, list[Reference]] = {}
    for target in targets:
        by_name.setdefault(target.name, []).append(target)
    results = []
    for name, refs in by_name.items():
        host = refs[0].host or ""
        client = registry.connect(host)
        client.ping()  # registry down or credentials refused: one line, before anything moves
        repository = refs[0].repository
        config_known = client.has_blob(repository, info.id)
        started = time.monotonic()
        statuses: dict[str, str] = {}
        for ref in refs:
            if str(ref) not in info.tags:
                engine.client.api.tag(info.id, ref.name, ref.tag)
            found = _engine_push(engine, ref, client.credentials())
            for layer, status in found.items():
                statuses.setdefault(layer, status)  # the first tag's push is the one that moved bytes
        seconds = time.monotonic() - started
        manifest = client.manifest(repository, refs[0].tag or "latest")
        if manifest is None or manifest.config.digest != info.id:
            raise RegistryError(
                f"{refs[0]} on {host} is not the image just pushed (another push raced this one?): push again"
            )
        if len(manifest.layers) != len(layers):
            raise RegistryError(
                f"the manifest of {refs[0]} lists {len(manifest.layers)} layers, the image {len(layers)}"
            )
        results.append(
            PushResult(
                name=name,
                tags=tuple(ref.tag or "latest" for ref in refs),
                image_id=info.id,
                digest=manifest.digest,
                manifest_size=manifest.size,
                config_size=manifest.config.size,
                config_pushed=not config_known,
                layers=tuple(
                    LayerPush(
                        index=layer.index,
                        diff_id=layer.diff_id,
                        instruction=layer.created_by,
                        size=layer.size,
                        digest=blob.digest,
                        compressed=blob.size,
                        status=statuses.get(layer.diff_id.removeprefix("sha256:")[:12], PRESENT),
                    )
                    for layer, blob in zip(layers, manifest.layers, strict=True)
                ),
                seconds=seconds,
            )
        )
    return results


def push_refs(engine: Engine, refs: Sequence[str]) -> list[PushResult]:
    """Push local images by their own names (the cache-to images of a build)."""
    targets = [registry.pushable(ref, what="cache-to") for ref in refs]
    results = []
    for target in targets:
        results += push_image(engine, str(engine.image(str(target)).id), [target])
    return results


# --- the size history ---------------------------------------------------------------------------------


def record(
    settings: Settings, engine: Engine, result: PushResult, *, warn: size_history.Warn | None = None
) -> None:
    """The push as an entry of the size history under the pushed name, with the compressed sizes."""
    info = images.inspect_image(engine, result.image_id)
    base = images.find_base(engine, settings, info, result.name).diff_ids
    entry = size_history.breakdown(info, base, now=datetime.now(UTC))
    compressed = {layer.diff_id: layer.compressed for layer in result.layers}
    entry = size_history.BuildRecord(
        image_id=entry.image_id,
        ref=result.refs[0],
        recorded=entry.recorded,
        total=entry.total,
        layers=tuple(
            size_history.LayerRecord(
                layer.diff_id, layer.size, layer.instruction, layer.in_base, compressed.get(layer.diff_id)
            )
            for layer in entry.layers
        ),
        digest=result.digest,
        moved=result.moved,
    )

    def add(history: size_history.History) -> bool:
        size_history.add_build(history, result.name, entry)
        return True

    size_history.update_history(size_history.history_path(settings), add, warn=warn)


# --- output -------------------------------------------------------------------------------------------


def _size(n: int) -> str:
    return str(humanize.naturalsize(n))


def summary(result: PushResult) -> str:
    """One line: what moved, and what was already there."""
    pushed = result.pushed_layers
    present = [layer for layer in result.layers if layer.status != PUSHED]
    return (
        f"moved {_size(result.moved)}: {len(pushed)} of {len(result.layers)} layers pushed "
        f"({_size(sum(layer.compressed for layer in pushed))}), {len(present)} already in the registry "
        f"({_size(sum(layer.compressed for layer in present))}); config "
        f"{'pushed' if result.config_pushed else 'present'}, manifest {_size(result.manifest_size)}"
    )


def render(results: Sequence[PushResult], console: Console) -> None:
    """Per layer (uncompressed and compressed size, pushed or present), the totals, the digest."""
    for result in results:
        refs = escape(", ".join(result.refs))
        console.print(f"[bold]pushed[/] {refs} ({result.image_id[7:19]}) in {result.seconds:.1f}s")
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("#", "layer", "size", "compressed", "blob", "push"):
            left = column in ("layer", "blob", "push")
            table.add_column(
                column,
                justify="left" if left else "right",
                no_wrap=True,
                overflow="ellipsis",
                max_width=60 if column == "layer" else None,
            )
        for layer in result.layers:
            status = {PUSHED: "[green]pushed[/]", PRESENT: "present", MOUNTED: "mounted"}[layer.status]
            table.add_row(
                str(layer.index), escape(layer.instruction), _size(layer.size), _size(layer.compressed),
                layer.digest[7:19], status,
            )  # fmt: skip
        console.print(table)
        console.print(escape(summary(result)))
        console.print(f"digest  {result.digest}", soft_wrap=True)
        console.print(f"deploy  [bold]{escape(result.pinned)}[/]", soft_wrap=True)


def to_json(results: Sequence[PushResult]) -> str:
    data = [
        {
            **asdict(result),
            "refs": result.refs,
            "pinned": result.pinned,
            "moved": result.moved,
            "compressed": result.compressed,
        }
        for result in results
    ]
    return json.dumps({"pushes": data}, indent=2) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(results: Sequence[PushResult]) -> str:
    out = []
    for result in results:
        out += [
            f"## push {', '.join(f'`{ref}`' for ref in result.refs)}",
            "",
            f"{summary(result)}  ",
            f"deploy: `{result.pinned}`",
            "",
            "| # | Layer | Size | Compressed | Push |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {layer.index} | {_md(layer.instruction)} | {_size(layer.size)} | "
            f"{_size(layer.compressed)} | {layer.status} |"
            for layer in result.layers
        ]
        out.append("")
    return "\n".join(out)
