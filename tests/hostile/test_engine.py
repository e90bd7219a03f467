"""Hostile input that needs the engine: the project's tree left as it was by every command, weird images
(FROM scratch, no Python, a hanging entrypoint and healthcheck, symlink loops, an unreadable directory,
a FIFO, non-UTF-8 names, 200,000 files), damaged size histories, compose errors. Each row: the exit
code, one clear line, nothing left behind, nothing from outside the project in an image (see
`harness`)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dockyard import engine, state
from tests.hostile.conftest import RUN, SESSION, Images, labelled, remove_labelled
from tests.hostile.harness import (
    Ran,
    Untouched,
    check_no_temp,
    check_outcome,
    environment,
    git,
    run,
    unprivileged,
)

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group("hostile-engine")]


@dataclass
class Context:
    project: Path
    scratch: Path
    state: Path
    temp: Path
    images: Images

    def history(self) -> Path:
        """Where dockyard keeps this project's size history (in the row's state directory)."""
        return (
            state.project_state_dir(self.project, {"XDG_STATE_HOME": str(self.state)}) / "size-history.json"
        )


@dataclass(frozen=True)
class Row:
    id: str
    argv: tuple[str, ...]  # "{img:NAME}" is a session image, "{scratch}" a directory outside the project
    code: int
    says: str = ""
    verify: str = ""  # keys added to [tool.dockyard.verify]
    toml: str = ""  # tables appended to pyproject.toml
    service: bool = False  # [tool.dockyard] service = true
    env: Mapping[str, str] = field(default_factory=dict)
    prepare: Callable[[Context], None] | None = None
    check: Callable[[Context, Ran], None] | None = None
    writes: tuple[str, ...] = ()  # project files the row names, so dockyard may write them
    keeps: bool = False  # the row builds the project's image (tagged, kept; removed by the test)
    unprivileged: bool = False
    seconds: float = 300  # the row must finish within this (bounded waits, not hangs)


def _json(name: str) -> Callable[[Context, Ran], None]:
    def check(ctx: Context, ran: Ran) -> None:
        json.loads((ctx.scratch / name).read_text(encoding="utf-8"))

    return check


def _one_probe_error(ctx: Context, ran: Ran) -> None:
    results = json.loads((ctx.scratch / "r.json").read_text())["results"]
    errors = [r for r in results if r["outcome"] == "error" and "no Python" in r["evidence"]]
    assert len(errors) == 1, results
    skipped = [r for r in results if r["evidence"] == f"probe failed: see {errors[0]['id']}"]
    assert len(skipped) >= 4, results
    assert ran.output.count("no Python in") == 1, "the cause is told once"


def _reports_parse(ctx: Context, ran: Ran) -> None:
    document = json.loads((ctx.scratch / "r.json").read_text(encoding="utf-8"))
    (result,) = document["results"]
    assert "/app/nasty\\x80/.env" in result["details"][0]  # the byte 0x80 shown as \x80
    ET.parse(ctx.scratch / "r.xml")  # noqa: S314 - dockyard's own output: it must parse
    assert "nasty\\\\x80" in (ctx.scratch / "r.md").read_text(encoding="utf-8")
    assert "nasty\\x80" in ran.output


def _history_recorded(ctx: Context, ran: Ran) -> None:
    assert ctx.history().is_file(), "size-report records the image in the state directory"


def _damaged_history(content: bytes) -> Callable[[Context], None]:
    def prepare(ctx: Context) -> None:
        ctx.history().parent.mkdir(parents=True)
        ctx.history().write_bytes(content)

    return prepare


def _set_aside(ctx: Context, ran: Ran) -> None:
    assert "is not a dockyard size history" in ran.output
    (aside,) = ctx.history().parent.glob("size-history.json.corrupt-*")
    assert aside.stat().st_size > 0 or aside.read_bytes() == b""
    assert json.loads(ctx.history().read_text())["version"] == 1, "started afresh"


def _unreadable_history(ctx: Context) -> None:
    _damaged_history(b'{"version": 1, "images": {}}')(ctx)
    ctx.history().chmod(0)


def _history_dir(ctx: Context) -> None:
    ctx.history().mkdir(parents=True)
    (ctx.history() / "keep.txt").write_text("not dockyard's")


def _history_dir_kept(ctx: Context, ran: Ran) -> None:
    assert "is a directory, not a file" in ran.output
    assert (ctx.history() / "keep.txt").read_text() == "not dockyard's"


def _previous_report(ctx: Context) -> None:
    (ctx.scratch / "r.json").write_text('{"previous": "report"}')
    (ctx.scratch / "summary.md").write_text("# earlier step\n")


def _summary_appended(ctx: Context, ran: Ran) -> None:
    text = (ctx.scratch / "summary.md").read_text(encoding="utf-8")
    assert text.startswith("# earlier step\n## ")
    assert json.loads((ctx.scratch / "r.json").read_text())["results"]


def _compose_file(text: str) -> Callable[[Context], None]:
    def prepare(ctx: Context) -> None:
        (ctx.scratch / "compose.yaml").write_text(text)

    return prepare


def _warned_once(ctx: Context, ran: Ran) -> None:
    assert ran.output.count('The "NOPE_TAG" variable is not set') == 1, ran.output


def _unset_variable_in_tag(ctx: Context) -> None:
    compose = ctx.project / "compose.yaml"
    text = compose.read_text().replace("compose-web:${HOSTILE_RUN", "compose-web${NOPE_TAG}:${HOSTILE_RUN", 1)
    compose.write_text(text)
    git(ctx.project, "-c", "user.name=h", "-c", "user.email=h@h", "commit", "-qam", "an unset variable")


APP = "{img:app}"
ROWS = [
    # --- the project's tree is untouched by every command -----------------------------------------------------
    Row("untouched-build", ("build",), 0, keeps=True),
    Row("untouched-verify", ("verify", "--only", "non-root", "--only", "size", "--only", "imports", "--only", "smoke",
                             "--only", "lock-current", "--only", "no-stray-files", "--only", "layer-cache"), 0, keeps=True),
    Row("untouched-size-report", ("size-report", APP), 0, check=_history_recorded),
    Row("untouched-compose-build", ("compose-build",), 0, keeps=True),
    Row("untouched-verify-compose", ("verify-compose", "--only", "command", "--only", "non-root", "--only", "size"), 0,
        keeps=True),
    # --- the layer-cache scratch copy: links stay links, the touched file stays inside -----------------------------
    Row("layer-cache-keeps-symlinks", ("verify", APP, "--only", "layer-cache"), 0),
    Row("layer-cache-touch-inside", ("verify", APP, "--only", "layer-cache"), 0,
        verify="layer-cache-touch = 'src/plainapp/__main__.py'\n"),
    # --- weird images ------------------------------------------------------------------------------------------
    Row("scratch-verify", ("verify", "{img:scratch}", "--skip", "layer-cache", "--json", "{scratch}/r.json"), 1,
        "check(s) failed", check=_one_probe_error),
    Row("scratch-size-report", ("size-report", "{img:scratch}"), 0),
    Row("scratch-size-deep", ("size-report", "--deep", "{img:scratch}", "--json", "{scratch}/r.json"), 0,
        check=_json("r.json")),
    Row("nopython-verify", ("verify", "{img:nopython}", "--skip", "layer-cache", "--json", "{scratch}/r.json"), 1,
        "check(s) failed", check=_one_probe_error),
    Row("nopython-size-report", ("size-report", "{img:nopython}"), 0),
    Row("hanging-verify", ("verify", "{img:hanging}", "--skip", "layer-cache"), 1, "check(s) failed",
        verify="healthcheck-timeout = 4\nsmoke = [{ command = ['sleep', '3600'], timeout = 3 }]\n",
        service=True, seconds=120),
    Row("hanging-size-report", ("size-report", "{img:hanging}"), 0),
    Row("weird-reports", ("verify", "{img:weird}", "--only", "no-stray-files", "--json", "{scratch}/r.json",
                          "--junit", "{scratch}/r.xml", "--markdown", "{scratch}/r.md"), 1, "no-stray-files",
        check=_reports_parse),
    Row("weird-verify", ("verify", "{img:weird}", "--skip", "layer-cache"), 1, "check(s) failed", seconds=180),
    Row("weird-size-deep", ("size-report", "--deep", "{img:weird}", "--json", "{scratch}/w.json", "--markdown",
                            "{scratch}/w.md"), 0, check=_json("w.json")),
    Row("many-size-report", ("size-report", "{img:many}"), 0),
    Row("many-verify-files", ("verify", "{img:many}", "--only", "no-stray-files", "--only", "non-root"), 0, seconds=200),
    Row("unknown-image", ("verify", f"dockyard-hostile/none:{RUN}"), 2, "no image"),
    Row("unknown-image-size", ("size-report", f"dockyard-hostile/none:{RUN}"), 2, "no image"),
    # --- size history: never fails a run -------------------------------------------------------------------------
    Row("history-not-json", ("size-report", APP), 0, prepare=_damaged_history(b"{ this is not json"), check=_set_aside),
    Row("history-not-utf8", ("size-report", APP), 0, prepare=_damaged_history(b"\xff\xfe\x00{}"), check=_set_aside),
    Row("history-wrong-shape", ("size-report", APP), 0, prepare=_damaged_history(b"[1, 2]"), check=_set_aside),
    Row("history-unreadable", ("size-report", APP), 0, prepare=_unreadable_history, check=_set_aside,
        unprivileged=True),
    Row("history-a-directory", ("size-report", APP), 0, prepare=_history_dir, check=_history_dir_kept),
    Row("history-named-in-project", ("size-report", APP), 0, writes=("sizes.json",),
        toml="[tool.dockyard.size]\nhistory = 'sizes.json'\n"),
    # --- report files ------------------------------------------------------------------------------------------
    Row("reports-replaced-whole", ("verify", APP, "--only", "size", "--json", "{scratch}/r.json"), 0,
        env={"GITHUB_STEP_SUMMARY": "{scratch}/summary.md"}, prepare=_previous_report, check=_summary_appended),
    # --- compose errors ------------------------------------------------------------------------------------------
    Row("compose-not-yaml", ("compose-build", "--file", "{scratch}/compose.yaml"), 2, "is not a valid compose model",
        prepare=_compose_file("services: [this: is: not]\n")),
    Row("compose-unknown-service", ("compose-build", "--service", "nope"), 2, "no service 'nope'"),
    Row("compose-missing-file", ("compose-build", "--file", "{scratch}/nope.yaml"), 2, "does not exist"),
    Row("compose-unsupported-key", ("compose-build", "--file", "{scratch}/compose.yaml"), 2, "network",
        prepare=_compose_file(f"services:\n  a:\n    build:\n      context: .\n      network: host\n    image: x/y:{RUN}\n")),
    Row("compose-nothing-to-build", ("compose-build", "--file", "{scratch}/compose.yaml"), 2, "nothing to build",
        prepare=_compose_file("services:\n  a:\n    image: busybox\n")),
    Row("compose-unset-variable", ("compose-build", "--service", "web"), 0, keeps=True, check=_warned_once,
        prepare=_unset_variable_in_tag),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_hostile_engine_row(
    row: Row, app: Callable[..., Path], images: Images, docker: engine.Engine, tmp_path: Path
) -> None:
    project = app(row.verify + row.toml, service=row.service)
    ctx = Context(project, tmp_path / "scratch", tmp_path / "state", tmp_path / "tmp", images)
    for directory in (ctx.scratch, ctx.state, ctx.temp):
        directory.mkdir()
    label = f"{RUN}-{row.id}"

    def fill(text: str) -> str:
        for name in ("app", "scratch", "nopython", "hanging", "weird", "many"):
            if f"{{img:{name}}}" in text:
                text = text.replace(f"{{img:{name}}}", images[name])
        return text.replace("{scratch}", str(ctx.scratch)).replace("{project}", str(project))

    argv = [fill(a) for a in row.argv]  # builds the session images first: not part of the row
    if row.prepare is not None:
        row.prepare(ctx)
    untouched = Untouched.of(project)
    extra = {k: fill(v) for k, v in row.env.items()}
    extra |= {"DOCKYARD_IMAGE": f"dockyard-hostile/{row.id}", "DOCKYARD_BUILD_ARG_HOSTILE_RUN": label}
    env = environment(ctx.temp, ctx.state, extra, machine=True)
    try:
        ran = run(argv, cwd=project, env=env, prefix=unprivileged() if row.unprivileged else [])
        check_outcome(ran, row.code, row.says)
        assert ran.seconds < row.seconds, f"{row.id} took {ran.seconds:.0f} s"
        if row.check is not None:
            row.check(ctx, ran)
        for name in row.writes:  # a file the user named: written where they said, and only there
            assert (project / name).is_file()
            (project / name).unlink()
        untouched.check()
        check_no_temp(ctx.temp)
        containers, made = labelled(docker, label)
        assert containers == [], f"containers left: {containers}"
        assert labelled(docker, SESSION)[0] == [], "containers of the session's images left"
        if not row.keeps:
            assert made == [], f"images left: {made}"
        for image_id in made:  # a build the row asked for: tagged, never a scratch image
            assert docker.client.images.get(image_id).tags, f"an untagged image left: {image_id}"
    finally:
        if ctx.history().exists() and not ctx.history().is_dir():
            ctx.history().chmod(0o644)
        remove_labelled(docker, label)


def test_the_engine_table_is_large_enough() -> None:
    assert len(ROWS) >= 30
    assert len({row.id for row in ROWS}) == len(ROWS)
