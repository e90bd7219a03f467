"""`size-report`: where an image's bytes are, and how they changed since the previous build.

The metadata path reads `docker image inspect` and the history endpoint only (milliseconds, whatever the
image's size) and runs dockyard's probe once, concurrently, for the largest installed distributions.
`deep` streams the image export once through `dockyard.image.export` to find the bytes that later layers
made unreachable. Each build's breakdown goes to a small local history file (`[tool.dockyard.size]
history`), which the delta compares against.

A report is `ok` unless the image exceeds its size budget, or a layer (or the whole image) grew past
the growth threshold since the previous build; `size-report` exits 1 when it is not, so CI can gate on
it. Growth under `NOISE_FLOOR` bytes is never flagged, and neither is a layer with no counterpart in
the previous build (the total catches a large new layer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape

from dockyard import fsutil, interrupt, registry
from dockyard.config import Settings
from dockyard.engine import Engine
from dockyard.errors import DockyardError
from dockyard.image.export import ExportScan
from dockyard.image.metadata import (
    ImageInfo,
    find_base,
    inspect_image,
    scan_export,
    subject_name,
)
from dockyard.sizes.history import (
    History,
    add_build,
    breakdown,
    default_ref,
    history_path,
    previous_build,
    read_history,
    update_history,
)
from dockyard.sizes.model import SizeReport, compose_report
from dockyard.sizes.render import render, write_outputs
from dockyard.verify import runner

# The distributions the app sees and their footprint: no walk, no import (not even the entry point's),
# no command.
PROBE_SPEC: Mapping[str, object] = {
    "imports": [],
    "commands": [],
    "forbidden_names": [],
    "forbidden_paths": [],
    "sniff_private_keys": False,
    "walk_roots": [],
    "facts": ["footprint"],
}
_T = TypeVar("_T")


# --- gathering (engine) ------------------------------------------------------------------------------


def _probe(engine: Engine, info: ImageInfo) -> tuple[dict[str, Any] | None, str | None, float]:
    """(probe answer, note when it could not run, seconds): the distributions the app's own
    interpreter sees (the probe resolves it from the image's command)."""
    started = time.perf_counter()
    try:
        spec = {**PROBE_SPEC, "app": runner.app_config(info)}
        answer = runner.run_probe(engine, info.id, spec, timeout=60)
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

    def warn(message: str) -> None:
        console.print(f"[yellow]warning:[/] {escape(fsutil.printable(message))}")

    path = history_path(settings)
    history = read_history(path, warn=warn)
    ref = ref or default_ref(engine, settings, history)
    info = inspect_image(engine, ref)
    name = subject_name(ref, info)
    stop = threading.Event()
    timings: dict[str, float] = {}
    # Background threads (not a pool that Ctrl-C would have to wait for): the probe's container is
    # removed by an interrupt; the export read and the registry lookup hold nothing to clean up.
    probing_: Future[tuple[dict[str, Any] | None, str | None, float]] | None = None
    if distributions and settings.size.top > 0:
        probing_ = interrupt.background(lambda: _probe(engine, info), name="size-probe")
    exporting = None
    if deep:

        def export() -> tuple[ExportScan, float]:
            return _timed(lambda: scan_export(engine, info.id, stop=stop))

        exporting = interrupt.background(export, name="size-export", wait=False)
    # In a registry (pushed or pulled, or named so): its manifest says what a pull moves per layer.
    in_registry = interrupt.background(
        lambda: registry.find_pushed(info.id, ref, info.repo_digests), name="size-registry", wait=False
    )
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
        manifest, pushed_as, registry_note = in_registry.result()
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
        manifest=manifest,
        pushed_as=pushed_as,
        notes=[n for n in (note, registry_note) if n],
        timings={**timings, "total": time.perf_counter() - started},
    )
    if record and not any(e.image_id == info.id for e in history.get(name, [])):
        entry = breakdown(info, found_base.diff_ids)

        def add(current: History) -> bool:
            if any(e.image_id == entry.image_id for e in current.get(name, [])):
                return False  # another run recorded it meanwhile
            add_build(current, name, entry)
            return True

        update_history(path, add, warn=warn)
    render(report, console, top=settings.size.top, history=path)
    written_files = write_outputs(
        report, json_path=json_path, markdown_path=markdown_path, top=settings.size.top
    )
    for written in written_files:
        console.print(f"wrote {escape(fsutil.printable(str(written)))}")
    return report
