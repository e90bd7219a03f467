"""Render a `Report` for people (a rich table) and for machines (JSON, JUnit XML, Markdown).

Every format takes its counts from `summarize`, so the numbers cannot drift apart between them, and
its text from `printable_report`, so a file name that is not UTF-8 (`b'/nasty\x80/.env'`, which the
probe reports with surrogate escapes) reads `/nasty\x80/.env` the same way in all of them. Each file
is written atomically and on its own: one that cannot be written leaves the others written and the
previous version of itself whole.

The table and Markdown say a run of SKIPs once (`condensed`): consecutive SKIP rows of one subject
with the same reason are one row listing their check ids (an image that never built: its `builds`
row, then one row of the 14 checks it skipped), so no row is silently missing and none is repeated.
JSON and JUnit keep every row, as the tools that read them count checks.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import re
import xml.etree.ElementTree as ET  # building XML only; nothing untrusted is parsed here
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard import fsutil
from dockyard.results import CheckResult, Outcome, Report

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "Summary",
    "append_summary",
    "condensed",
    "printable_report",
    "render_table",
    "summarize",
    "summary_line",
    "to_json",
    "to_junit",
    "to_markdown",
    "write_outputs",
]

_STYLES = {
    Outcome.PASS: "green",
    Outcome.FAIL: "red",
    Outcome.SKIP: "yellow",
    Outcome.ERROR: "bold red",
}
_EMOJI = {Outcome.PASS: "✅", Outcome.FAIL: "❌", Outcome.SKIP: "⏭️", Outcome.ERROR: "💥"}
_JUNIT_TAGS = {Outcome.FAIL: "failure", Outcome.ERROR: "error", Outcome.SKIP: "skipped"}

# Characters XML 1.0 cannot carry at all (e.g. the ESC of ANSI colours in a captured log).
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Inline Markdown that would otherwise format, link, or swallow (as HTML) part of a cell.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


@dataclass(frozen=True)
class Summary:
    """Counts per outcome; `failed` is FAIL only, so the four add up to the number of results."""

    passed: int
    failed: int
    skipped: int
    errors: int


def summarize(report: Report) -> Summary:
    return Summary(
        passed=report.count(Outcome.PASS),
        failed=report.count(Outcome.FAIL),
        skipped=report.count(Outcome.SKIP),
        errors=report.count(Outcome.ERROR),
    )


def summary_line(report: Report) -> str:
    """`12 passed, 1 failed, 2 skipped in 3.41s`, with ERROR counted as failed."""
    s = summarize(report)
    failed = s.failed + s.errors
    return f"{s.passed} passed, {failed} failed, {s.skipped} skipped in {report.seconds:.2f}s"


def _seconds(seconds: float) -> str:
    return f"{seconds:.2f}s"


def _many_subjects(report: Report) -> bool:
    return len({r.subject for r in report.results}) > 1


def _heading(result: CheckResult) -> str:
    where = f" ({result.subject})" if result.subject else ""
    return f"{result.outcome.name} {result.check_id}{where}"


def _failures_with_details(report: Report) -> list[CheckResult]:
    return [r for r in report.results if r.failed and r.details]


def condensed(results: tuple[CheckResult, ...]) -> list[CheckResult]:
    """The rows people read: consecutive SKIP rows of one subject with the same evidence become one row
    whose check id lists theirs (`command, non-root, healthcheck`), their times added."""
    rows: list[CheckResult] = []
    for r in results:
        last = rows[-1] if rows else None
        if (
            last is not None
            and r.outcome is Outcome.SKIP
            and last.outcome is Outcome.SKIP
            and (last.subject, last.evidence) == (r.subject, r.evidence)
        ):
            rows[-1] = dataclasses.replace(
                last, check_id=f"{last.check_id}, {r.check_id}", seconds=last.seconds + r.seconds
            )
        else:
            rows.append(r)
    return rows


def printable_report(report: Report) -> Report:
    """The report with every text made printable (`fsutil.printable`): what each format renders."""
    p = fsutil.printable
    return Report(
        title=p(report.title),
        results=tuple(
            dataclasses.replace(
                r,
                check_id=p(r.check_id),
                title=p(r.title),
                evidence=p(r.evidence),
                details=tuple(p(line) for line in r.details),
                subject=p(r.subject),
            )
            for r in report.results
        ),
        seconds=report.seconds,
        meta={p(k): p(v) for k, v in report.meta.items()},
    )


# --- rich table ----------------------------------------------------------------------------------


def render_table(report: Report, console: Console) -> None:
    """Print the results table, the details of each failure, and the summary line."""
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    report = printable_report(report)
    many = _many_subjects(report)
    table = Table(title=Text(report.title), title_justify="left")
    if many:
        table.add_column("Subject", overflow="fold")
    table.add_column("Check")  # a condensed row's ids wrap between ids; a single id is one word
    table.add_column("Result", no_wrap=True)
    table.add_column("Evidence", overflow="fold")
    table.add_column("Time", justify="right", no_wrap=True)
    for r in condensed(report.results):
        # Text, not str: evidence such as "[tool.dockyard]" must not be read as rich markup.
        cells = [
            Text(r.check_id),
            Text(r.outcome.name, style=_STYLES[r.outcome]),
            Text(r.evidence),
            Text(_seconds(r.seconds)),
        ]
        table.add_row(*([Text(r.subject)] if many else []), *cells)
    console.print(table)

    for r in _failures_with_details(report):
        console.print(Text(_heading(r), style=_STYLES[r.outcome]))
        for line in r.details:
            console.print(Text(f"    {line}"))
    console.print(Text(summary_line(report), style="green" if report.ok else "red"))


# --- JSON ----------------------------------------------------------------------------------------


def to_json(report: Report) -> str:
    """Stable JSON: fixed key order, meta sorted by key, seconds rounded to milliseconds."""
    report = printable_report(report)
    doc = {
        "title": report.title,
        "ok": report.ok,
        "seconds": round(report.seconds, 3),
        "meta": dict(sorted(report.meta.items())),
        "summary": asdict(summarize(report)),
        "results": [
            {
                "id": r.check_id,
                "title": r.title,
                "outcome": r.outcome.value,
                "evidence": r.evidence,
                "details": list(r.details),
                "seconds": round(r.seconds, 3),
                "subject": r.subject,
            }
            for r in report.results
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --- JUnit XML -----------------------------------------------------------------------------------


def _xml(text: str) -> str:
    """Make text storable in XML 1.0: illegal control characters become visible `\\xNN` escapes."""
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def to_junit(report: Report) -> str:
    """JUnit XML as GitLab, Jenkins and the GitHub test reporters read it."""
    report = printable_report(report)
    s = summarize(report)
    counts = {
        "tests": str(len(report.results)),
        "failures": str(s.failed),
        "errors": str(s.errors),
        "skipped": str(s.skipped),
        "time": f"{report.seconds:.3f}",
    }
    root = ET.Element("testsuites", {"name": _xml(report.title), **counts})
    suite = ET.SubElement(root, "testsuite", {"name": _xml(report.title), **counts})
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_xml(f"dockyard.{r.subject or 'image'}"),
            name=_xml(r.check_id),
            time=f"{r.seconds:.3f}",
        )
        tag = _JUNIT_TAGS.get(r.outcome)
        if tag is not None:
            outcome = ET.SubElement(case, tag, message=_xml(r.evidence))
            if tag != "skipped" and r.details:
                outcome.text = _xml("\n".join(r.details))
        ET.SubElement(case, "system-out").text = _xml(f"{r.title}\n{r.evidence}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- Markdown ------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    """One table cell: Markdown specials (the pipe included) escaped, line breaks as `<br>`."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "<br>".join(_MD_SPECIAL.sub(r"\\\1", line) for line in lines)


def _fence(lines: tuple[str, ...]) -> str:
    """A backtick fence longer than any backtick run in the block, so it cannot be closed early."""
    longest = max((len(run) for run in re.findall(r"`+", "\n".join(lines))), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(report: Report) -> str:
    """GitHub-flavoured Markdown for a CI step summary or a pull-request comment."""
    report = printable_report(report)
    many = _many_subjects(report)
    header = (["Subject"] if many else []) + ["Check", "Result", "Evidence", "Time"]
    out = [
        f"## {'✅' if report.ok else '❌'} {_md_cell(report.title)}",
        "",
        summary_line(report),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in condensed(report.results):
        cells = [
            _md_cell(r.check_id),
            f"{_EMOJI[r.outcome]} {r.outcome.name}",
            _md_cell(r.evidence),
            _seconds(r.seconds),
        ]
        out.append("| " + " | ".join(([_md_cell(r.subject)] if many else []) + cells) + " |")

    for r in _failures_with_details(report):
        fence = _fence(r.details)
        out += [
            "",
            "<details>",
            f"<summary>{html.escape(_heading(r))}</summary>",
            "",
            f"{fence}text",
            *r.details,
            fence,
            "",
            "</details>",
        ]
    return "\n".join(out) + "\n"


# --- files ---------------------------------------------------------------------------------------


def write_outputs(
    report: Report,
    *,
    json_path: Path | None,
    junit_path: Path | None,
    markdown_path: Path | None,
) -> list[Path]:
    """Write each requested format atomically, each on its own (see `fsutil.write_reports`); return
    the paths written."""
    wanted: list[tuple[Path | None, str, Callable[[Report], str]]] = [
        (json_path, "--json", to_json),
        (junit_path, "--junit", to_junit),
        (markdown_path, "--markdown", to_markdown),
    ]
    return fsutil.write_reports(
        [(path, what, functools.partial(render, report)) for path, what, render in wanted]
    )


def append_summary(report: Report, path: Path) -> None:
    """Append the Markdown report to a CI step summary (`$GITHUB_STEP_SUMMARY`), whole or not at all."""
    fsutil.atomic_append(path, to_markdown(report))
