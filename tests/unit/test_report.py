"""The renderers of check results: rich table, JSON, JUnit XML, Markdown, and their files."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from dockyard import config, fsutil
from dockyard.errors import BaseImageUnavailable
from dockyard.results import CheckResult, Outcome, Report
from dockyard.verify import gather
from dockyard.verify.report import (
    append_summary,
    condensed,
    render_table,
    summarize,
    summary_line,
    to_json,
    to_junit,
    to_markdown,
    write_outputs,
)

XML_SPECIALS = 'expected <uid> & "app"'


def result(
    check_id: str,
    outcome: Outcome,
    evidence: str = "seen",
    *,
    details: tuple[str, ...] = (),
    seconds: float = 0.1,
    subject: str = "app:1",
) -> CheckResult:
    return CheckResult(
        check_id=check_id,
        title=f"title of {check_id}",
        outcome=outcome,
        evidence=evidence,
        details=details,
        seconds=seconds,
        subject=subject,
    )


@pytest.fixture
def mixed() -> Report:
    """6 passed, 2 failed, 1 error, 4 skipped: every count differs, so a swapped count shows."""
    passes = [result(f"pass-{i}", Outcome.PASS, details=("never shown",)) for i in range(6)]
    skips = [result(f"skip-{i}", Outcome.SKIP, f"skipped {i}", subject="worker") for i in range(4)]
    return Report(
        title="verify-image app:1",
        results=(
            *passes,
            result("non-root", Outcome.FAIL, XML_SPECIALS, details=("user: root", "uid: 0")),
            result("healthy", Outcome.FAIL, "unhealthy", details=("probe failed",), subject=""),
            result("size", Outcome.ERROR, "engine timeout", details=("timed out after 30s",)),
            *skips,
        ),
        seconds=3.41,
        meta={"size": "120MB", "image-id": "sha256:abc"},
    )


def all_passing() -> Report:
    return Report("verify-image ok:1", (result("non-root", Outcome.PASS, "user app"),), seconds=0.5)


def table_text(report: Report) -> str:
    buffer = io.StringIO()
    render_table(report, Console(file=buffer, width=120, color_system=None))
    return buffer.getvalue()


def parse_junit(report: Report) -> ET.Element:
    return ET.fromstring(to_junit(report))  # noqa: S314 - our own output, not untrusted input


# --- summary -------------------------------------------------------------------------------------


def test_summarize_keeps_fail_and_error_apart(mixed: Report) -> None:
    s = summarize(mixed)
    assert (s.passed, s.failed, s.skipped, s.errors) == (6, 2, 4, 1)


def test_summary_line_counts_errors_as_failed(mixed: Report) -> None:
    assert summary_line(mixed) == "6 passed, 3 failed, 4 skipped in 3.41s"


# --- rich table ----------------------------------------------------------------------------------


def test_table_ends_with_the_exact_summary_line(mixed: Report) -> None:
    lines = table_text(mixed).rstrip("\n").splitlines()
    assert lines[-1] == "6 passed, 3 failed, 4 skipped in 3.41s"


def test_table_row_shows_check_result_evidence_and_time(mixed: Report) -> None:
    row = next(line for line in table_text(mixed).splitlines() if " size " in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells == ["app:1", "size", "ERROR", "engine timeout", "0.10s"]


def test_table_has_subject_column_only_with_several_subjects(mixed: Report) -> None:
    assert "Subject" in table_text(mixed)
    assert "Subject" not in table_text(all_passing())
    assert "Check" in table_text(all_passing())


def test_table_lists_details_of_failures_only_under_a_heading(mixed: Report) -> None:
    lines = table_text(mixed).splitlines()
    heading = lines.index("FAIL non-root (app:1)")
    assert lines[heading + 1 : heading + 3] == ["    user: root", "    uid: 0"]
    assert "ERROR size (app:1)" in lines
    assert "    timed out after 30s" in lines
    assert "FAIL healthy" in lines  # no subject: no empty parentheses
    assert "never shown" not in table_text(mixed)


def test_table_folds_long_evidence_instead_of_truncating() -> None:
    evidence = "".join(f"{i:03d}" for i in range(100))  # 300 characters, no space to wrap at
    out = table_text(Report("long", (result("digest", Outcome.FAIL, evidence),)))
    # Reassemble the Evidence column (the 3rd cell) from every table line.
    column = "".join(parts[3].strip() for line in out.splitlines() if len(parts := line.split("│")) == 6)
    assert evidence in column
    assert "…" not in out


def test_table_prints_evidence_literally_not_as_markup() -> None:
    out = table_text(Report("t", (result("cfg", Outcome.FAIL, "[tool.dockyard] [bold]x[/bold]"),)))
    assert "[tool.dockyard] [bold]x[/bold]" in out


def test_table_colors_outcomes_on_a_terminal(mixed: Report) -> None:
    buffer = io.StringIO()
    render_table(mixed, Console(file=buffer, width=120, force_terminal=True, color_system="standard"))
    out = buffer.getvalue()
    assert "\x1b[32mPASS" in out
    assert "\x1b[31mFAIL" in out
    assert "\x1b[33mSKIP" in out
    assert "\x1b[1;31mERROR" in out


def test_table_has_no_color_codes_when_not_a_terminal(mixed: Report) -> None:
    buffer = io.StringIO()
    render_table(mixed, Console(file=buffer, width=120))  # what a CI log looks like to rich
    out = buffer.getvalue()
    assert "PASS" in out
    assert "\x1b[" not in out


# --- JSON ----------------------------------------------------------------------------------------


def test_json_round_trips_report_values(mixed: Report) -> None:
    doc = json.loads(to_json(mixed))
    assert list(doc) == ["title", "ok", "seconds", "meta", "summary", "results"]
    assert doc["title"] == "verify-image app:1"
    assert doc["ok"] is False
    assert doc["seconds"] == 3.41
    assert doc["meta"] == {"image-id": "sha256:abc", "size": "120MB"}
    assert doc["summary"] == {"passed": 6, "failed": 2, "skipped": 4, "errors": 1}
    assert [r["id"] for r in doc["results"]] == [r.check_id for r in mixed.results]
    assert doc["results"][6] == {
        "id": "non-root",
        "title": "title of non-root",
        "outcome": "fail",
        "evidence": XML_SPECIALS,
        "details": ["user: root", "uid: 0"],
        "seconds": 0.1,
        "subject": "app:1",
    }


def test_json_is_ok_when_nothing_failed() -> None:
    assert json.loads(to_json(all_passing()))["ok"] is True


def test_json_is_stable_whatever_the_meta_order() -> None:
    a = Report("t", (), meta={"a": "1", "b": "2"})
    b = Report("t", (), meta={"b": "2", "a": "1"})
    assert to_json(a) == to_json(b)


# --- JUnit XML -----------------------------------------------------------------------------------


def test_junit_suite_counts(mixed: Report) -> None:
    root = parse_junit(mixed)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.attrib == {
        "name": "verify-image app:1",
        "tests": "13",
        "failures": "2",
        "errors": "1",
        "skipped": "4",
        "time": "3.410",
    }
    assert len(suite.findall("testcase")) == 13


def test_junit_failure_keeps_xml_specials_and_details(mixed: Report) -> None:
    case = parse_junit(mixed).find("testsuite/testcase[@name='non-root']")
    assert case is not None
    assert case.attrib == {"classname": "dockyard.app:1", "name": "non-root", "time": "0.100"}
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == XML_SPECIALS
    assert failure.text == "user: root\nuid: 0"
    assert case.findtext("system-out") == f"title of non-root\n{XML_SPECIALS}"


def test_junit_error_skipped_and_passed_cases(mixed: Report) -> None:
    suite = parse_junit(mixed).find("testsuite")
    assert suite is not None
    error = suite.find("testcase[@name='size']/error")
    assert error is not None
    assert error.get("message") == "engine timeout"
    assert error.text == "timed out after 30s"

    skipped = suite.find("testcase[@name='skip-2']/skipped")
    assert skipped is not None
    assert skipped.get("message") == "skipped 2"
    assert suite.find("testcase[@name='skip-2'][@classname='dockyard.worker']") is not None

    passed = suite.find("testcase[@name='pass-0']")
    assert passed is not None
    assert [child.tag for child in passed] == ["system-out"]


def test_junit_classname_falls_back_to_image_without_subject(mixed: Report) -> None:
    case = parse_junit(mixed).find("testsuite/testcase[@name='healthy']")
    assert case is not None
    assert case.get("classname") == "dockyard.image"


def test_junit_stays_well_formed_with_control_characters() -> None:
    log = "\x1b[31mred\x1b[0m\x00"  # ANSI colours from a captured log: illegal in XML 1.0
    report = Report("t", (result("health", Outcome.FAIL, log, details=(log,)),))
    failure = parse_junit(report).find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "\\x1b[31mred\\x1b[0m\\x00"
    assert failure.text == "\\x1b[31mred\\x1b[0m\\x00"


# --- Markdown ------------------------------------------------------------------------------------

UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def test_markdown_heading_shows_overall_status(mixed: Report) -> None:
    assert to_markdown(mixed).startswith("## ❌ verify-image app:1\n")
    assert to_markdown(all_passing()).startswith("## ✅ verify-image ok:1\n")


def test_markdown_table_header_and_summary(mixed: Report) -> None:
    lines = to_markdown(all_passing()).splitlines()
    assert "1 passed, 0 failed, 0 skipped in 0.50s" in lines
    assert "| Check | Result | Evidence | Time |" in lines
    assert "| non-root | ✅ PASS | user app | 0.10s |" in lines
    assert "| Subject | Check | Result | Evidence | Time |" in to_markdown(mixed).splitlines()


def test_markdown_escapes_pipes_newlines_and_html_in_cells() -> None:
    report = Report("t", (result("pipe|id", Outcome.FAIL, "a | b\nc <none>\r\nd"),))
    row = next(line for line in to_markdown(report).splitlines() if line.startswith("| pipe"))
    assert row == r"| pipe\|id | ❌ FAIL | a \| b<br>c \<none\><br>d | 0.10s |"
    assert len(UNESCAPED_PIPE.split(row)) == 6  # 4 cells between 5 delimiters: none added


def test_markdown_details_block_per_failure_with_detail_lines(mixed: Report) -> None:
    md = to_markdown(mixed)
    assert md.count("<details>") == 3
    assert "never shown" not in md
    block = md[md.index("<summary>FAIL non-root (app:1)</summary>") :]
    assert block.split("</details>")[0].splitlines()[1:] == [
        "",
        "```text",
        "user: root",
        "uid: 0",
        "```",
        "",
    ]


def test_markdown_fence_outlasts_backticks_in_details() -> None:
    report = Report("t", (result("x", Outcome.FAIL, details=("```", "````")),))
    lines = to_markdown(report).splitlines()
    start = lines.index("`````text")
    assert lines[start + 1 : start + 4] == ["```", "````", "`````"]


# --- files ---------------------------------------------------------------------------------------


def test_write_outputs_creates_nested_dirs(mixed: Report, tmp_path: Path) -> None:
    json_path = tmp_path / "out" / "json" / "report.json"
    junit_path = tmp_path / "out" / "junit" / "deep" / "report.xml"
    md_path = tmp_path / "summary.md"
    written = write_outputs(mixed, json_path=json_path, junit_path=junit_path, markdown_path=md_path)
    assert written == [json_path, junit_path, md_path]
    assert json_path.read_text(encoding="utf-8") == to_json(mixed)
    assert junit_path.read_text(encoding="utf-8") == to_junit(mixed)
    assert md_path.read_text(encoding="utf-8") == to_markdown(mixed)


def test_write_outputs_writes_only_what_was_asked(mixed: Report, tmp_path: Path) -> None:
    md_path = tmp_path / "a" / "summary.md"
    assert write_outputs(mixed, json_path=None, junit_path=None, markdown_path=md_path) == [md_path]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("a"),
        Path("a/summary.md"),
    ]


# --- text that was not UTF-8 --------------------------------------------------------------------

NASTY = os.fsdecode(b"/nasty\x80/.env")  # as the probe returns it: a surrogate escape


@pytest.fixture
def nasty() -> Report:
    return Report(
        title="verify-image app:1",
        results=(
            result("no-stray-files", Outcome.FAIL, f"found {NASTY}", details=(f"{NASTY} (12 bytes)",)),
            result("size", Outcome.PASS, subject=NASTY),
        ),
        meta={"image": NASTY},
    )


def test_non_utf8_names_read_the_same_in_every_format(nasty: Report, tmp_path: Path) -> None:
    shown = "/nasty\\x80/.env"
    document = json.loads(to_json(nasty))
    assert document["results"][0]["evidence"] == f"found {shown}"
    assert document["meta"]["image"] == shown
    root = ET.fromstring(to_junit(nasty).encode("utf-8"))  # noqa: S314 - our own output: it parses
    assert root.find(".//failure").get("message") == f"found {shown}"  # type: ignore[union-attr]
    markdown = to_markdown(nasty)
    assert "found /nasty\\\\x80/.env" in markdown  # the backslash escaped for Markdown, as any other
    buffer = io.StringIO()
    render_table(nasty, Console(file=buffer, width=200, color_system=None))
    assert shown in buffer.getvalue()
    paths = {
        "json_path": tmp_path / "r.json",
        "junit_path": tmp_path / "r.xml",
        "markdown_path": tmp_path / "r.md",
    }
    assert write_outputs(nasty, **paths) == list(paths.values())
    ET.parse(paths["junit_path"])  # noqa: S314 - our own output


def test_one_unwritable_report_leaves_the_others_written(mixed: Report, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    good = tmp_path / "keep.md"
    with pytest.raises(fsutil.ReportNotWritten, match=r"--json .*blocker/r\.json.* \(the others were\)"):
        write_outputs(mixed, json_path=tmp_path / "blocker" / "r.json", junit_path=None, markdown_path=good)
    assert good.read_text(encoding="utf-8") == to_markdown(mixed)


def test_the_step_summary_is_appended_whole(mixed: Report, nasty: Report, tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    append_summary(mixed, summary)
    append_summary(nasty, summary)
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + to_markdown(mixed) + to_markdown(nasty)


# --- a run of SKIPs said once ----------------------------------------------------------------------


def unbuildable_web(tmp_path: Path) -> Report:
    """dataset-processor's `web` (a Node image that could not be pulled) in verify-compose: the
    service's `built` ERROR and its three skipped checks, then the image's `builds` ERROR and its 14
    skipped checks, as verify-compose produces them; then the next service."""
    settings = config.Settings(
        project_dir=tmp_path, project_name="dp", project_version="1", image="dp-web",
        dockerfile=tmp_path / "Dockerfile", context=tmp_path,
    )  # fmt: skip
    message = "build of web/Dockerfile could not start: node:22-alpine could not be pulled (no such host)"
    error = BaseImageUnavailable(message, argv=["docker"], returncode=1, output="#2 load metadata")
    image_rows = gather.build_failed_report(settings, error, gather.VerifyOptions()).results
    services = [
        result("built", Outcome.ERROR, message, subject="web"),
        *(result(c, Outcome.SKIP, "the image did not build", subject="web") for c in ("command", "non-root")),
        result("healthcheck", Outcome.SKIP, "the image did not build", subject="web"),
        result("built", Outcome.PASS, "dp-worker:latest", subject="worker"),
        result("command", Outcome.SKIP, "turned off on the command line (--skip)", subject="worker"),
        result("non-root", Outcome.SKIP, "turned off on the command line (--skip)", subject="worker"),
    ]
    web_image = [dataclasses.replace(r, subject="dp-web:latest") for r in image_rows]
    return Report("verify-compose dp", (*services, *web_image), seconds=1.0)


def test_an_image_that_never_built_is_said_once_in_the_table_and_markdown(tmp_path: Path) -> None:
    report = unbuildable_web(tmp_path)
    assert len(report.results) == 22  # 19 rows of web and its image, 3 of the worker

    rows = condensed(report.results)
    shown = [(r.subject, r.check_id, r.outcome) for r in rows]
    skipped_by_image = [r.check_id for r in report.results[7:] if r.outcome is Outcome.SKIP]
    assert len(skipped_by_image) == 14
    assert shown == [
        ("web", "built", Outcome.ERROR),
        ("web", "command, non-root, healthcheck", Outcome.SKIP),
        ("worker", "built", Outcome.PASS),
        ("worker", "command, non-root", Outcome.SKIP),  # the same reason: also one row
        ("dp-web:latest", "builds", Outcome.ERROR),
        ("dp-web:latest", ", ".join(skipped_by_image), Outcome.SKIP),
    ]
    assert rows[-1].evidence == "the image did not build"

    table = table_text(report)
    for check in skipped_by_image:  # no row silently missing: every id is in the table
        assert check in table
    assert table.count("the image did not build") == 2
    assert table.rstrip().endswith("1 passed, 2 failed, 19 skipped in 1.00s"), "the counts are every row's"

    markdown = to_markdown(report)
    body = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(body) == 1 + 6  # the header and the six rows
    assert "command, non-root, healthcheck" in markdown

    # JSON and JUnit keep every row: the tools that read them count checks.
    assert len(json.loads(to_json(report))["results"]) == 22
    assert len(parse_junit(report).findall(".//testcase")) == 22


def test_skips_with_different_reasons_or_subjects_or_apart_stay_rows_of_their_own() -> None:
    results = (
        result("a", Outcome.SKIP, "one", subject="x"),
        result("b", Outcome.SKIP, "two", subject="x"),
        result("c", Outcome.SKIP, "two", subject="y"),
        result("d", Outcome.PASS, "two", subject="y"),
        result("e", Outcome.SKIP, "two", subject="y"),
    )
    assert [r.check_id for r in condensed(results)] == ["a", "b", "c", "d", "e"]
