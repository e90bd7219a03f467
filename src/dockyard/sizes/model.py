"""size-report's models, and the report built from what was gathered (pure: no engine, no files).

A report is `ok` unless the image exceeds its size budget, or a layer (or the whole image) grew past
the growth threshold since the previous build. Growth under `NOISE_FLOOR` bytes is never flagged,
and neither is a layer with no counterpart in the previous build (the total catches a large new layer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import humanize

from dockyard.errors import DockyardError
from dockyard.image import export
from dockyard.image.metadata import (
    Base,
    ImageInfo,
    Layer,
)
from dockyard.registry import Manifest
from dockyard.sizes.history import BuildRecord, LayerRecord

NOISE_FLOOR = 100_000  # bytes: less growth than this is a few files, never flagged


@dataclass(frozen=True)
class LayerDelta:
    previous: int | None  # its size in the previous build; None: no counterpart there (a new layer)
    growth: int
    ratio: float | None  # growth / previous size; None for a new or previously empty layer
    unchanged: bool  # the very same layer (same diff_id)
    flagged: bool


@dataclass(frozen=True)
class LayerRow:
    index: int
    diff_id: str
    size: int
    share: float  # of the image's total
    instruction: str
    in_base: bool
    delta: LayerDelta | None = None  # None: no previous build to compare with
    wasted: int | None = None  # deep: bytes this layer added that later layers made unreachable
    compressed: int | None = None  # in a registry: the layer's compressed blob, what a pull moves


@dataclass(frozen=True)
class Delta:
    """The image against the previous build of the same image name."""

    previous_id: str
    previous_ref: str
    previous_recorded: str
    previous_total: int
    growth: int
    ratio: float
    flagged: bool
    gone: tuple[LayerRecord, ...]  # previous layers with no counterpart in this image


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    size: int  # bytes on disk, byte-compiled files included
    files: int
    share: float  # of the image's total


@dataclass(frozen=True)
class WastedFile:
    """A file version a later layer overwrote or deleted: its bytes ship but cannot be reached."""

    path: str
    bytes: int
    added_in: int
    added_by: str
    removed_in: int
    removed_by: str
    how: str  # "overwritten" or "deleted"


@dataclass(frozen=True)
class Waste:
    total: int
    files: tuple[WastedFile, ...]  # largest first
    by_layer: Mapping[int, int]  # adding layer -> wasted bytes
    export_bytes: int  # bytes of the export stream read


@dataclass(frozen=True)
class SizeReport:
    ref: str
    image_id: str
    image_name: str  # the history key: the ref without its tag
    created: str
    total: int
    budget: int
    growth_threshold: float
    base_ref: str | None  # the image the Dockerfile starts from, when known
    layers: tuple[LayerRow, ...]
    delta: Delta | None = None
    distributions: tuple[Distribution, ...] = ()  # largest first, the top N
    distribution_count: int = 0  # in the active environment, all of them
    environments: tuple[str, ...] = ()  # the active site directories they were read from
    waste: Waste | None = None
    pushed_as: str | None = None  # in a registry: the digest-pinned reference its manifest was read from
    compressed_total: int | None = None  # in a registry: layers + config + manifest, what a pull moves
    flags: tuple[str, ...] = ()  # what makes the report fail, one line each
    notes: tuple[str, ...] = ()  # what the report could not do, one line each
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds: metadata, distributions...

    @property
    def margin(self) -> int:
        """Bytes left under the budget; negative when over it."""
        return self.budget - self.total

    @property
    def over_budget(self) -> bool:
        return self.total > self.budget

    @property
    def ok(self) -> bool:
        """False when over the budget or a growth was flagged: size-report then exits 1."""
        return not self.flags

    @property
    def base_size(self) -> int:
        return sum(layer.size for layer in self.layers if layer.in_base)

    def summary(self) -> str:
        """One line for the exit message: the first problem, and how many more there are."""
        if self.ok:
            return f"{self.ref}: within its size budget, no growth flagged"
        more = f" (and {len(self.flags) - 1} more problems above)" if len(self.flags) > 1 else ""
        return self.flags[0] + more


def size_text(n: int) -> str:
    """Bytes as people read them: `12.3 MB`."""
    return humanize.naturalsize(n)


def short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def growth_text(growth: int, ratio: float | None) -> str:
    """`+1.2 MB (+3.4%)`, `-5 kB`, or `±0 B`."""
    sign = "+" if growth > 0 else ""
    text = f"{sign}{size_text(growth)}" if growth else "±0 B"
    return f"{text} ({ratio:+.1%})" if ratio is not None and growth else text


# --- the report, from what was gathered (pure) -------------------------------------------------------


def _grew_too_much(growth: int, previous: int, threshold: float) -> bool:
    return previous > 0 and growth >= NOISE_FLOOR and growth > threshold * previous


def pair_layers(layers: Sequence[Layer], previous: Sequence[LayerRecord]) -> dict[int, int]:
    """Current layer index -> previous layer index: the same layer (diff_id) first, then the same
    instruction (in order), then the same position (an edited instruction)."""
    free = list(range(len(previous)))
    pairs: dict[int, int] = {}

    def same(test: int, layer: Layer, j: int) -> bool:
        if test == 0:
            return layer.diff_id == previous[j].diff_id
        if test == 1:
            return layer.created_by != "?" and layer.created_by == previous[j].instruction
        return layer.index == j and layer.in_base == previous[j].in_base

    for test in range(3):
        for layer in layers:
            if layer.index in pairs:
                continue
            match = next((j for j in free if same(test, layer, j)), None)
            if match is not None:
                pairs[layer.index] = match
                free.remove(match)
    return pairs


def _delta_of(layer: Layer, before: LayerRecord | None, threshold: float) -> LayerDelta:
    if before is None:
        return LayerDelta(previous=None, growth=layer.size, ratio=None, unchanged=False, flagged=False)
    growth = layer.size - before.size
    return LayerDelta(
        previous=before.size,
        growth=growth,
        ratio=growth / before.size if before.size else None,
        unchanged=layer.diff_id == before.diff_id,
        flagged=_grew_too_much(growth, before.size, threshold),
    )


def _distributions(
    answer: Mapping[str, Any], total: int, top: int
) -> tuple[tuple[Distribution, ...], int, tuple[str, ...], list[str]]:
    """(top distributions, how many, site directories, notes) of the probe's active environment."""
    active = [env for env in answer.get("environments") or [] if isinstance(env, dict) and env.get("active")]
    if not active:
        return (), 0, (), ["no active Python environment found in the image: no distributions listed"]
    found: dict[str, Distribution] = {}
    for env in active:
        for dist in env.get("distributions") or []:
            name = dist.get("name")
            if isinstance(name, str) and name not in found:
                size = int(dist.get("size") or 0)
                found[name] = Distribution(
                    name=name,
                    version=str(dist.get("version") or "?"),
                    size=size,
                    files=int(dist.get("files") or 0),
                    share=size / total if total else 0.0,
                )
    ranked = sorted(found.values(), key=lambda d: (-d.size, d.name))
    return tuple(ranked[:top]), len(found), tuple(str(env.get("path")) for env in active), []


def _waste(scan: export.ExportScan, layers: Sequence[Layer], ref: str) -> Waste:
    if scan.diff_ids != [layer.diff_id for layer in layers]:
        raise DockyardError(
            f"the export of {ref} holds other layers than its metadata lists (was it rebuilt meanwhile?): "
            "run the report again"
        )
    found = export.compute_waste(scan.layers)
    files = tuple(
        WastedFile(
            path="/" + entry.path,
            bytes=entry.bytes,
            added_in=entry.added_in,
            added_by=layers[entry.added_in].created_by,
            removed_in=entry.removed_in,
            removed_by=layers[entry.removed_in].created_by,
            how=entry.how,
        )
        for entry in found.top(len(found.entries))
    )
    return Waste(
        total=found.total_bytes,
        files=files,
        by_layer=dict(found.by_layer),
        export_bytes=scan.bytes_read,
    )


def _compare(
    info: ImageInfo, layers: Sequence[Layer], previous: BuildRecord, threshold: float
) -> tuple[dict[int, LayerDelta], Delta, list[str]]:
    """Per-layer deltas, the image's delta, and a flag line for each growth past the threshold."""
    pairs = pair_layers(layers, previous.layers)
    since = f"since build {short_id(previous.image_id)}, past the {threshold:.0%} growth threshold"
    deltas: dict[int, LayerDelta] = {}
    flags: list[str] = []
    for layer in layers:
        before = previous.layers[pairs[layer.index]] if layer.index in pairs else None
        deltas[layer.index] = change = _delta_of(layer, before, threshold)
        if change.flagged:
            flags.append(
                f"layer {layer.index} ({layer.created_by}) grew {growth_text(change.growth, change.ratio)} "
                f"{since}: check what it adds, or raise [tool.dockyard.size] growth-threshold"
            )
    growth = info.size - previous.total
    ratio = growth / previous.total if previous.total else 0.0
    paired = set(pairs.values())
    delta = Delta(
        previous_id=previous.image_id,
        previous_ref=previous.ref,
        previous_recorded=previous.recorded,
        previous_total=previous.total,
        growth=growth,
        ratio=ratio,
        flagged=_grew_too_much(growth, previous.total, threshold),
        gone=tuple(record for j, record in enumerate(previous.layers) if j not in paired),
    )
    if delta.flagged:
        flags.append(
            f"{info.ref} grew {growth_text(growth, ratio)} {since}: see the layers that grew, or raise "
            "[tool.dockyard.size] growth-threshold"
        )
    return deltas, delta, flags


def compose_report(
    info: ImageInfo,
    *,
    name: str,
    budget: int,
    growth_threshold: float,
    top: int,
    base: Base | None = None,
    previous: BuildRecord | None = None,
    probe: Mapping[str, Any] | None = None,
    scan: export.ExportScan | None = None,
    manifest: Manifest | None = None,
    pushed_as: str | None = None,
    notes: Sequence[str] = (),
    timings: Mapping[str, float] | None = None,
) -> SizeReport:
    """The report from what was gathered: metadata, base, previous build, probe answer, export scan,
    and the image's manifest in a registry (for the compressed sizes)."""
    base = base or Base(None)
    layers = info.layers(base.diff_ids)
    total = info.size
    all_notes = list(notes)
    compressed: dict[int, int] = {}
    if manifest is not None and len(manifest.layers) == len(layers):
        compressed = {layer.index: blob.size for layer, blob in zip(layers, manifest.layers, strict=True)}
    elif manifest is not None:
        all_notes.append(f"the manifest of {pushed_as} lists another number of layers: no compressed sizes")
        manifest = None
    if base.note:
        all_notes.append(base.note)
    if any(layer.created_by == "?" for layer in layers):
        all_notes.append("the image's history does not pair with its layers: per-layer sizes unknown")
    flags: list[str] = []
    if total > budget:
        flags.append(
            f"{info.ref} is {size_text(total)}, {size_text(total - budget)} over its "
            f"{size_text(budget)} size budget: "
            "shrink it (see the largest layers and distributions) or raise size-budget"
        )

    deltas: dict[int, LayerDelta] = {}
    delta = None
    if previous is not None:
        deltas, delta, grew = _compare(info, layers, previous, growth_threshold)
        flags += grew

    dists: tuple[Distribution, ...] = ()
    count, environments = 0, tuple[str, ...]()
    if probe is not None:
        dists, count, environments, more = _distributions(probe, total, top)
        all_notes += more
    waste = _waste(scan, layers, info.ref) if scan is not None else None

    rows = tuple(
        LayerRow(
            index=layer.index,
            diff_id=layer.diff_id,
            size=layer.size,
            share=layer.size / total if total else 0.0,
            instruction=layer.created_by,
            in_base=layer.in_base,
            delta=deltas.get(layer.index),
            wasted=waste.by_layer.get(layer.index, 0) if waste else None,
            compressed=compressed.get(layer.index),
        )
        for layer in layers
    )
    return SizeReport(
        ref=info.ref,
        image_id=info.id,
        image_name=name,
        created=info.created,
        total=total,
        budget=budget,
        growth_threshold=growth_threshold,
        base_ref=base.ref,
        layers=rows,
        delta=delta,
        distributions=dists,
        distribution_count=count,
        environments=environments,
        waste=waste,
        pushed_as=pushed_as if manifest is not None else None,
        compressed_total=(
            manifest.compressed_size + manifest.config.size + manifest.size if manifest is not None else None
        ),
        flags=tuple(flags),
        notes=tuple(all_notes),
        timings=dict(timings or {}),
    )
