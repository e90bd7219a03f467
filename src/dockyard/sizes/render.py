"""size-report for people (rich tables) and for machines (JSON, Markdown).

Text from the image (paths, instructions, distribution names) goes through `fsutil.printable` in every
format, so a name that is not UTF-8 shows as `\\xNN` everywhere and never breaks a write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dockyard import fsutil
from dockyard.sizes.model import LayerDelta, LayerRow, SizeReport, Waste, WastedFile
from dockyard.sizes.model import growth_text as _growth
from dockyard.sizes.model import short_id as _short
from dockyard.sizes.model import size_text as _size

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


# --- rendering ---------------------------------------------------------------------------------------


_p = fsutil.printable


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
    title = f"base image {_p(report.base_ref)}" if report.base_ref else "base image"
    return [(title, base), ("added by the Dockerfile", added)]


def _budget_line(report: SizeReport) -> str:
    if report.over_budget:
        return f"total {_size(report.total)}: {_size(-report.margin)} over the {_size(report.budget)} budget"
    share = report.margin / report.budget if report.budget else 0.0
    return (
        f"total {_size(report.total)} of a {_size(report.budget)} budget: "
        f"{_size(report.margin)} to spare ({share:.0%})"
    )


def _registry_line(report: SizeReport) -> str | None:
    if report.compressed_total is None:
        return None
    where = report.pushed_as
    return f"compressed {_size(report.compressed_total)} in {where}: what a pull onto an empty engine moves"


def _delta_line(report: SizeReport) -> str:
    delta = report.delta
    if delta is None:
        return f"no previous build of {_p(report.image_name)} recorded"
    return (
        f"vs previous build {_short(delta.previous_id)} "
        f"({_p(delta.previous_ref)}, {delta.previous_recorded}): "
        f"{_growth(delta.growth, delta.ratio)}, was {_size(delta.previous_total)}"
    )


def _how(entry: WastedFile) -> str:
    return f"{entry.how} by layer {entry.removed_in} ({_p(entry.removed_by)})"


def render(report: SizeReport, console: Console, *, top: int = 10, history: Path | None = None) -> None:
    """The report as tables a person reads at a glance."""
    created = report.created[:19].replace("T", " ")
    shown = escape(_p(report.ref))
    console.print(f"[bold]size-report[/] {shown} ({_short(report.image_id)}), created {created}")
    console.print(_layer_table(report, console.width))
    style = "red" if report.over_budget else "green"
    console.print(f"[{style}]{escape(_budget_line(report))}[/]")
    if registry_line := _registry_line(report):
        console.print(escape(registry_line), soft_wrap=True)  # the pinned reference stays whole
    where = f" in {_p(str(history))}" if report.delta is None and history is not None else ""
    console.print(escape(_delta_line(report) + where))
    for gone in report.delta.gone if report.delta else ():
        console.print(f"  gone since then: {escape(_p(gone.instruction))} ({_size(gone.size)})")
    if report.distributions:
        where = _p(", ".join(report.environments))
        console.print(
            f"\n[bold]largest distributions[/] ({len(report.distributions)} of "
            f"{report.distribution_count} in {escape(where)})"
        )
        console.print(_distribution_table(report))
    if report.waste is not None:
        _render_waste(report.waste, console, top=top)
    for note in report.notes:
        console.print(f"[dim]note: {escape(_p(note))}[/]")
    for flag in report.flags:
        console.print(f"[bold yellow]warning:[/] {escape(_p(flag))}")
    console.print(f"[dim]{escape(_timings(report.timings))}[/]")


def _layer_table(report: SizeReport, width: int) -> Table:
    pulled = report.compressed_total is not None
    columns = ["size", "compressed", "share"] if pulled else ["size", "share"]
    columns += ["vs previous"] if report.delta is not None else []
    columns += ["wasted"] if report.waste is not None else []
    groups: list[list[list[Text]]] = []
    for title, rows in _groups(report):
        subtotal = sum(row.size for row in rows)
        heading = [Text(""), Text(title, "bold"), Text(_size(subtotal), "bold")]
        if pulled:
            heading.append(Text(_size(sum(row.compressed or 0 for row in rows)), "bold"))
        heading.append(Text(_share(subtotal, report)))
        group = [heading + [Text("")] * (len(columns) + 2 - len(heading))]
        for row in rows:
            cells = [Text(str(row.index)), Text(_p(row.instruction)), Text(_size(row.size))]
            if pulled:
                cells.append(Text(_size(row.compressed) if row.compressed is not None else "?"))
            cells.append(Text(f"{row.share:.1%}"))
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
        name, version = Text(_p(dist.name)), Text(_p(dist.version))
        table.add_row(name, version, _size(dist.size), f"{dist.share:.1%}", str(dist.files))
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
            Text(_p(entry.path)),
            _size(entry.bytes),
            Text(_p(f"layer {entry.added_in} {entry.added_by}")),
            Text(_p(f"{entry.how} by layer {entry.removed_in} {entry.removed_by}")),
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
    return json.dumps(fsutil.printable_tree(data), indent=2) + "\n"


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", _p(text).replace("\n", " "))


def to_markdown(report: SizeReport, *, top: int = 10) -> str:
    """GitHub-flavoured Markdown for a CI step summary or a pull-request comment."""
    out = [
        f"## {'✅' if report.ok else '❌'} size-report {_md(report.ref)}",
        "",
        f"{_md(_budget_line(report))}  ",
        *([f"{_md(line)}  "] if (line := _registry_line(report)) else []),
        _md(_delta_line(report)),
        "",
    ]
    pulled = report.compressed_total is not None
    header = ["#", "Layer", "Size", "Compressed", "Share"] if pulled else ["#", "Layer", "Size", "Share"]
    header += ["vs previous"] if report.delta is not None else []
    header += ["Wasted"] if report.waste is not None else []
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for title, rows in _groups(report):
        subtotal = sum(row.size for row in rows)
        squeezed = [f"**{_size(sum(row.compressed or 0 for row in rows))}**"] if pulled else []
        lead = ["", f"**{_md(title)}**", f"**{_size(subtotal)}**", *squeezed, _share(subtotal, report)]
        out.append("| " + " | ".join([*lead, *[""] * (len(header) - len(lead))]) + " |")
        for row in rows:
            packed = [_size(row.compressed) if row.compressed is not None else "?"] if pulled else []
            cells = [str(row.index), _md(row.instruction), _size(row.size), *packed, f"{row.share:.1%}"]
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
    """Write each requested format atomically, each on its own (see `fsutil.write_reports`); return
    the paths written."""
    return fsutil.write_reports(
        [
            (json_path, "--json", lambda: to_json(report)),
            (markdown_path, "--markdown", lambda: to_markdown(report, top=top)),
        ]
    )
