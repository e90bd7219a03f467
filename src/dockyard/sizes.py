"""`size-report`: where an image's bytes are, and how they changed since the previous build.

The metadata path reads `docker image inspect` and the history endpoint only (milliseconds, whatever the
image's size) and runs dockyard's probe once, concurrently, for the largest installed distributions.
`deep` streams the image export once through `dockyard.imagefs` to find the bytes that later layers
made unreachable. Each build's breakdown goes to a small local history file (`[tool.dockyard.size]
history`), which the delta compares against.

A report is `ok` unless the image exceeds its size budget, or a layer (or the whole image) grew past
the growth threshold since the previous build; `size-report` exits 1 when it is not, so CI can gate on
it. Growth under `NOISE_FLOOR` bytes is never flagged, and neither is a layer with no counterpart in
the previous build (the total catches a large new layer).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import humanize
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dockyard import imagefs, probing
from dockyard.config import Settings
from dockyard.engine import Engine
from dockyard.errors import DockyardError, UsageError
from dockyard.images import (
    Base,
    ImageInfo,
    Layer,
    find_base,
    image_name,
    inspect_image,
    scan_export,
    subject_name,
)

HISTORY_VERSION = 1
HISTORY_KEEP = 50  # builds kept per image name
NOISE_FLOOR = 100_000  # bytes: less growth than this is a few files, never flagged
# The distributions only: no imports, no commands, no walk of the image's filesystem.
PROBE_SPEC: Mapping[str, object] = {
    "imports": [],
    "commands": [],
    "forbidden_names": [],
    "forbidden_paths": [],
    "sniff_private_keys": False,
    "walk_roots": [],
}
_T = TypeVar("_T")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


# --- models ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerRecord:
    """One layer as the history keeps it."""

    diff_id: str
    size: int
    instruction: str
    in_base: bool


@dataclass(frozen=True)
class BuildRecord:
    """One build's size breakdown, as the history keeps it."""

    image_id: str
    ref: str
    recorded: str  # UTC, ISO 8601
    total: int
    layers: tuple[LayerRecord, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildRecord:
        return cls(
            image_id=str(data["image_id"]),
            ref=str(data["ref"]),
            recorded=str(data["recorded"]),
            total=int(data["total"]),
            layers=tuple(LayerRecord(**layer) for layer in data["layers"]),
        )


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


def _waste(scan: imagefs.ExportScan, layers: Sequence[Layer], ref: str) -> Waste:
    if scan.diff_ids != [layer.diff_id for layer in layers]:
        raise DockyardError(
            f"the export of {ref} holds other layers than its metadata lists (was it rebuilt meanwhile?): "
            "run the report again"
        )
    found = imagefs.compute_waste(scan.layers)
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
    since = f"since build {_short(previous.image_id)}, past the {threshold:.0%} growth threshold"
    deltas: dict[int, LayerDelta] = {}
    flags: list[str] = []
    for layer in layers:
        before = previous.layers[pairs[layer.index]] if layer.index in pairs else None
        deltas[layer.index] = change = _delta_of(layer, before, threshold)
        if change.flagged:
            flags.append(
                f"layer {layer.index} ({layer.created_by}) grew {_growth(change.growth, change.ratio)} "
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
            f"{info.ref} grew {_growth(growth, ratio)} {since}: see the layers that grew, or raise "
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
    scan: imagefs.ExportScan | None = None,
    notes: Sequence[str] = (),
    timings: Mapping[str, float] | None = None,
) -> SizeReport:
    """The report from what was gathered: metadata, base, previous build, probe answer, export scan."""
    base = base or Base(None)
    layers = info.layers(base.diff_ids)
    total = info.size
    all_notes = list(notes)
    if base.note:
        all_notes.append(base.note)
    if any(layer.created_by == "?" for layer in layers):
        all_notes.append("the image's history does not pair with its layers: per-layer sizes unknown")
    flags: list[str] = []
    if total > budget:
        flags.append(
            f"{info.ref} is {_size(total)}, {_size(total - budget)} over its {_size(budget)} size budget: "
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
        flags=tuple(flags),
        notes=tuple(all_notes),
        timings=dict(timings or {}),
    )


# --- gathering (engine) ------------------------------------------------------------------------------


def _probe(engine: Engine, image_id: str) -> tuple[dict[str, Any] | None, str | None, float]:
    """(probe answer, note when it could not run, seconds)."""
    started = time.perf_counter()
    try:
        answer = probing.run_probe(engine, image_id, PROBE_SPEC, timeout=60)
    except DockyardError as exc:
        return None, f"largest distributions unknown: {exc.message}", time.perf_counter() - started
    return answer, None, time.perf_counter() - started


def _timed(fn: Callable[[], _T]) -> tuple[_T, float]:
    started = time.perf_counter()
    return fn(), time.perf_counter() - started


def size_report(
    engine: Engine,
    settings: Settings,
    ref: str | None,
    *,
    deep: bool,
    console: Console,
    json_path: Path | None,
    markdown_path: Path | None,
    base: str | None = None,
    distributions: bool = True,
    record: bool = True,
) -> SizeReport:
    """Report on `ref` (None: the project's image, see `default_ref`), print it, write the files asked.

    The probe (one container) and, with `deep`, the export scan run in threads while the metadata is
    read. `base` names the base image when it is not the project's Dockerfile's. With `record`, an
    image the history does not know yet is recorded, so the next report has something to compare.
    Flags never raise here: callers exit 1 when `not report.ok`.
    """
    started = time.perf_counter()
    path = history_path(settings)
    history = read_history(path)
    ref = ref or default_ref(engine, settings, history)
    info = inspect_image(engine, ref)
    name = subject_name(ref, info)
    stop = threading.Event()
    timings: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dockyard-size") as pool:
        probing_: Future[tuple[dict[str, Any] | None, str | None, float]] | None = None
        if distributions and settings.size.top > 0:
            probing_ = pool.submit(_probe, engine, info.id)
        exporting = pool.submit(_timed, lambda: scan_export(engine, info.id, stop=stop)) if deep else None
        try:
            found_base = find_base(engine, settings, info, name, base)
            previous = previous_build(history, name, info.id)
            timings["metadata"] = time.perf_counter() - started
            answer, note = None, None
            if probing_ is not None:
                answer, note, timings["distributions"] = probing_.result()
            scan = None
            if exporting is not None:
                scan, timings["deep"] = exporting.result()
        except BaseException:
            stop.set()
            raise
    report = compose_report(
        info,
        name=name,
        budget=settings.size_budget,
        growth_threshold=settings.size.growth_threshold,
        top=settings.size.top,
        base=found_base,
        previous=previous,
        probe=answer,
        scan=scan,
        notes=[note] if note else [],
        timings={**timings, "total": time.perf_counter() - started},
    )
    if record and not any(e.image_id == info.id for e in history.get(name, [])):
        add_build(history, name, breakdown(info, found_base.diff_ids))
        write_history(path, history)
    render(report, console, top=settings.size.top, history=path)
    written_files = write_outputs(
        report, json_path=json_path, markdown_path=markdown_path, top=settings.size.top
    )
    for written in written_files:
        console.print(f"wrote {escape(str(written))}")
    return report


# --- rendering ---------------------------------------------------------------------------------------


def _size(n: int) -> str:
    return humanize.naturalsize(n)


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _growth(growth: int, ratio: float | None) -> str:
    sign = "+" if growth > 0 else ""
    text = f"{sign}{_size(growth)}" if growth else "±0 B"
    return f"{text} ({ratio:+.1%})" if ratio is not None and growth else text


def _change(delta: LayerDelta | None) -> str:
    if delta is None:
        return ""
    if delta.unchanged:
        return "="
    if delta.previous is None:
        return "new"
    return _growth(delta.growth, delta.ratio)


def _groups(report: SizeReport) -> list[tuple[str, list[LayerRow]]]:
    base = [row for row in report.layers if row.in_base]
    added = [row for row in report.layers if not row.in_base]
    if not base:
        return [("layers (base image not identified)" if report.base_ref is None else "added", added)]
    title = f"base image {report.base_ref}" if report.base_ref else "base image"
    return [(title, base), ("added by the Dockerfile", added)]


def _budget_line(report: SizeReport) -> str:
    if report.over_budget:
        return f"total {_size(report.total)}: {_size(-report.margin)} over the {_size(report.budget)} budget"
    share = report.margin / report.budget if report.budget else 0.0
    return (
        f"total {_size(report.total)} of a {_size(report.budget)} budget: "
        f"{_size(report.margin)} to spare ({share:.0%})"
    )


def _delta_line(report: SizeReport) -> str:
    delta = report.delta
    if delta is None:
        return f"no previous build of {report.image_name} recorded"
    return (
        f"vs previous build {_short(delta.previous_id)} ({delta.previous_ref}, {delta.previous_recorded}): "
        f"{_growth(delta.growth, delta.ratio)}, was {_size(delta.previous_total)}"
    )


def _how(entry: WastedFile) -> str:
    return f"{entry.how} by layer {entry.removed_in} ({entry.removed_by})"


def render(report: SizeReport, console: Console, *, top: int = 10, history: Path | None = None) -> None:
    """The report as tables a person reads at a glance."""
    created = report.created[:19].replace("T", " ")
    console.print(f"[bold]size-report[/] {escape(report.ref)} ({_short(report.image_id)}), created {created}")
    console.print(_layer_table(report, console.width))
    style = "red" if report.over_budget else "green"
    console.print(f"[{style}]{escape(_budget_line(report))}[/]")
    where = f" in {history}" if report.delta is None and history is not None else ""
    console.print(escape(_delta_line(report) + where))
    for gone in report.delta.gone if report.delta else ():
        console.print(f"  gone since then: {escape(gone.instruction)} ({_size(gone.size)})")
    if report.distributions:
        where = ", ".join(report.environments)
        console.print(
            f"\n[bold]largest distributions[/] ({len(report.distributions)} of "
            f"{report.distribution_count} in {escape(where)})"
        )
        console.print(_distribution_table(report))
    if report.waste is not None:
        _render_waste(report.waste, console, top=top)
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    for flag in report.flags:
        console.print(f"[bold yellow]warning:[/] {escape(flag)}")
    console.print(f"[dim]{escape(_timings(report.timings))}[/]")


def _layer_table(report: SizeReport, width: int) -> Table:
    columns = ["size", "share"]
    columns += ["vs previous"] if report.delta is not None else []
    columns += ["wasted"] if report.waste is not None else []
    groups: list[list[list[Text]]] = []
    for title, rows in _groups(report):
        subtotal = sum(row.size for row in rows)
        heading = [
            Text(""),
            Text(title, "bold"),
            Text(_size(subtotal), "bold"),
            Text(_share(subtotal, report)),
        ]
        group = [heading + [Text("")] * (len(columns) - 2)]
        for row in rows:
            cells = [
                Text(str(row.index)),
                Text(row.instruction),
                Text(_size(row.size)),
                Text(f"{row.share:.1%}"),
            ]
            if report.delta is not None:
                flagged = row.delta is not None and row.delta.flagged
                cells.append(Text(_change(row.delta), "bold red" if flagged else ""))
            if report.waste is not None:
                cells.append(Text(_size(row.wasted) if row.wasted else ""))
            group.append(cells)
        groups.append(group)
    widths = [max(len(name), *(len(cells[i].plain) for group in groups for cells in group))
              for i, name in enumerate(["#", "layer", *columns])]  # fmt: skip
    # Numbers keep their width on a narrow terminal; the instruction is shortened instead.
    widths[1] = max(20, min(widths[1], width - sum(widths) + widths[1] - 3 * len(widths)))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for name, size in zip(["#", "layer", *columns], widths, strict=True):
        table.add_column(
            name,
            justify="left" if name == "layer" else "right",
            no_wrap=True,
            overflow="ellipsis",
            width=size,
        )
    for group in groups:
        for cells in group:
            table.add_row(*cells)
        table.add_section()
    return table


def _distribution_table(report: SizeReport) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("distribution", "version", "size", "share", "files"):
        table.add_column(column, justify="left" if column in ("distribution", "version") else "right")
    for dist in report.distributions:
        table.add_row(dist.name, dist.version, _size(dist.size), f"{dist.share:.1%}", str(dist.files))
    return table


def _render_waste(waste: Waste, console: Console, *, top: int) -> None:
    if not waste.files:
        console.print(
            "\n[bold]wasted space[/]: none (no layer overwrites or deletes an earlier layer's files)"
        )
        return
    console.print(
        f"\n[bold]wasted space[/]: {_size(waste.total)} in {len(waste.files)} files that a later layer "
        "overwrites or deletes (they ship, but cannot be reached)"
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("path", overflow="fold", min_width=24)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("added by", overflow="ellipsis", no_wrap=True, max_width=40)
    table.add_column("then", overflow="ellipsis", no_wrap=True, max_width=50)
    for entry in waste.files[:top]:
        table.add_row(
            escape(entry.path),
            _size(entry.bytes),
            escape(f"layer {entry.added_in} {entry.added_by}"),
            escape(f"{entry.how} by layer {entry.removed_in} {entry.removed_by}"),
        )
    console.print(table)
    if len(waste.files) > top:
        rest = sum(entry.bytes for entry in waste.files[top:])
        console.print(f"  and {len(waste.files) - top} more files ({_size(rest)}): see --json for all")


def _share(part: int, report: SizeReport) -> str:
    return f"{part / report.total:.1%}" if report.total else ""


def _timings(timings: Mapping[str, float]) -> str:
    names = {"metadata": "metadata", "distributions": "distributions probe", "deep": "export scan"}
    shown = [f"{label} {timings[key]:.2f} s" for key, label in names.items() if key in timings]
    return ", ".join(shown)


# --- files -------------------------------------------------------------------------------------------


def to_json(report: SizeReport) -> str:
    data = asdict(report)
    data.update(
        margin=report.margin, over_budget=report.over_budget, ok=report.ok, base_size=report.base_size
    )
    return json.dumps(data, indent=2) + "\n"


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\n", " "))


def to_markdown(report: SizeReport, *, top: int = 10) -> str:
    """GitHub-flavoured Markdown for a CI step summary or a pull-request comment."""
    out = [
        f"## {'✅' if report.ok else '❌'} size-report {_md(report.ref)}",
        "",
        f"{_md(_budget_line(report))}  ",
        _md(_delta_line(report)),
        "",
    ]
    header = ["#", "Layer", "Size", "Share"]
    header += ["vs previous"] if report.delta is not None else []
    header += ["Wasted"] if report.waste is not None else []
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for title, rows in _groups(report):
        subtotal = sum(row.size for row in rows)
        blanks = [""] * (len(header) - 4)
        out.append("| " + " | ".join(["", f"**{_md(title)}**", f"**{_size(subtotal)}**",
                                      _share(subtotal, report), *blanks]) + " |")  # fmt: skip
        for row in rows:
            cells = [str(row.index), _md(row.instruction), _size(row.size), f"{row.share:.1%}"]
            if report.delta is not None:
                change = _change(row.delta)
                cells.append(f"**{_md(change)}** ⚠️" if row.delta and row.delta.flagged else _md(change))
            if report.waste is not None:
                cells.append(_size(row.wasted) if row.wasted else "")
            out.append("| " + " | ".join(cells) + " |")
    if report.distributions:
        where = ", ".join(report.environments)
        out += ["", f"### Largest distributions ({report.distribution_count} in {_md(where)})", "",
                "| Distribution | Version | Size | Share |", "|---|---|---|---|"]  # fmt: skip
        out += [
            f"| {_md(d.name)} | {_md(d.version)} | {_size(d.size)} | {d.share:.1%} |"
            for d in report.distributions
        ]
    if report.waste is not None:
        out += ["", f"### Wasted space: {_size(report.waste.total)} in {len(report.waste.files)} files", ""]
        if report.waste.files:
            out += ["| Path | Bytes | Added by | Made unreachable |", "|---|---|---|---|"]
            out += [
                f"| {_md(e.path)} | {e.bytes:,} | layer {e.added_in} ({_md(e.added_by)}) | {_md(_how(e))} |"
                for e in report.waste.files[:top]
            ]
            if len(report.waste.files) > top:
                out.append(
                    f"\n…and {len(report.waste.files) - top} more files (all of them in the JSON report)"
                )
    if report.flags or report.notes:
        out.append("")
        out += [f"- ⚠️ {_md(flag)}" for flag in report.flags]
        out += [f"- {_md(note)}" for note in report.notes]
    return "\n".join(out) + "\n"


def write_outputs(
    report: SizeReport, *, json_path: Path | None, markdown_path: Path | None, top: int = 10
) -> list[Path]:
    """Write each requested format (creating parent directories); return the paths written."""
    written = []
    for path, text in ((json_path, to_json), (markdown_path, lambda r: to_markdown(r, top=top))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text(report), encoding="utf-8")
            written.append(path)
    return written
