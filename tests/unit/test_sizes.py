"""The size report from recorded metadata: grouping, shares, budget, delta and its flags, history,
waste attribution, and the table, Markdown and JSON renderings."""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import os
import re
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console

from dockyard.config import Settings, SizeSettings
from dockyard.engine import Engine
from dockyard.errors import DockyardError, ImageNotFound, UsageError
from dockyard.image import export as imagefs
from dockyard.image import metadata as images
from dockyard.image.metadata import Base, ImageInfo
from dockyard.registry import Descriptor, Manifest
from dockyard.sizes import history as size_history
from dockyard.sizes import model as size_model
from dockyard.sizes import render as size_render
from dockyard.sizes.history import BuildRecord, LayerRecord

RECORDED = json.loads((Path(__file__).parent / "data" / "dockyard-image.json").read_text())
INFO = ImageInfo.from_inspect("dockyard:0.1.0", RECORDED["attrs"], RECORDED["history"])
BASE_REF = "dockyard-standin/python:3.13-minbase"
BASE = Base(BASE_REF, INFO.diff_ids[:1])
TOTAL = 146_767_851
# The recorded image's layers: (index, size, in base).
LAYERS = [
    (0, 113_713_437, True),
    (1, 4_303, False),
    (2, 0, False),
    (3, 32_847_627, False),
    (4, 202_484, False),
]
VENV, STAGING = 3, 4


def report(**overrides: Any) -> size_model.SizeReport:
    options: dict[str, Any] = {
        "name": "dockyard",
        "budget": 200_000_000,
        "growth_threshold": 0.10,
        "top": 3,
        "base": BASE,
    }
    options.update(overrides)
    return size_model.compose_report(INFO, **options)


def previous(**sizes_by_layer: int) -> BuildRecord:
    """The recorded image as an earlier build: layers named in `sizes_by_layer` (layer_3=...) differ."""
    record = size_history.breakdown(INFO, BASE.diff_ids)
    layers = list(record.layers)
    for key, size in sizes_by_layer.items():
        index = int(key.removeprefix("layer_"))
        layers[index] = dataclasses.replace(layers[index], diff_id=f"sha256:old{index}", size=size)
    return dataclasses.replace(
        record, image_id="sha256:" + "0" * 64, ref="dockyard:old", layers=tuple(layers),
        total=sum(layer.size for layer in layers),
    )  # fmt: skip


def settings(tmp_path: Path, **size: Any) -> Settings:
    return Settings(
        project_dir=tmp_path,
        project_name="dockyard",
        project_version="0.1.0",
        image="dockyard",
        dockerfile=tmp_path / "Dockerfile",
        context=tmp_path,
        size=SizeSettings(**size),
    )


# --- layers, shares, budget ---------------------------------------------------------------------------


def test_layers_are_grouped_into_base_and_added_with_their_shares() -> None:
    made = report()
    assert [(row.index, row.size, row.in_base) for row in made.layers] == LAYERS
    assert [row.instruction for row in made.layers[1:]] == [
        "RUN groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid app --home-di…",
        "WORKDIR /app",
        "COPY /app/.venv /app/.venv",
        "COPY /staging/ /app/.venv/",
    ]
    assert made.total == TOTAL == sum(row.size for row in made.layers)
    assert made.base_ref == BASE_REF
    assert made.base_size == 113_713_437
    assert [round(row.share, 4) for row in made.layers] == [0.7748, 0.0, 0.0, 0.2238, 0.0014]
    assert made.delta is None
    assert made.waste is None
    assert made.flags == ()
    assert made.ok


def test_without_a_base_every_layer_is_added_and_the_report_says_why() -> None:
    made = report(base=Base(None, note="base image unknown: pass --base IMAGE"))
    assert not any(row.in_base for row in made.layers)
    assert made.base_size == 0
    assert made.notes == ("base image unknown: pass --base IMAGE",)
    out = render(made)
    assert "layers (base image not identified)" in out
    assert "note: base image unknown: pass --base IMAGE" in out


def test_margin_under_and_over_the_budget() -> None:
    under = report(budget=200_000_000)
    assert (under.margin, under.over_budget, under.ok) == (53_232_149, False, True)
    over = report(budget=140_000_000)
    assert (over.margin, over.over_budget, over.ok) == (-6_767_851, True, False)
    assert over.flags == (
        "dockyard:0.1.0 is 146.8 MB, 6.8 MB over its 140.0 MB size budget: shrink it (see the largest "
        "layers and distributions) or raise size-budget",
    )
    assert over.summary() == over.flags[0]


# --- delta against the previous build -----------------------------------------------------------------


def test_a_layer_growing_past_the_threshold_is_flagged() -> None:
    made = report(previous=previous(layer_3=29_000_000, layer_4=195_000))
    venv, staging = made.layers[VENV].delta, made.layers[STAGING].delta
    assert venv is not None
    assert staging is not None
    assert (venv.previous, venv.growth, round(venv.ratio or 0, 4), venv.flagged) == (
        29_000_000, 3_847_627, 0.1327, True,
    )  # fmt: skip
    assert (staging.previous, staging.growth, staging.flagged) == (195_000, 7_484, False)
    assert [row.delta.unchanged for row in made.layers if row.delta] == [True, True, True, False, False]
    assert made.delta is not None
    assert (made.delta.previous_total, made.delta.growth, made.delta.flagged) == (
        142_912_740,
        3_855_111,
        False,
    )
    assert made.flags == (
        "layer 3 (COPY /app/.venv /app/.venv) grew +3.8 MB (+13.3%) since build 000000000000, past the 10% "
        "growth threshold: check what it adds, or raise [tool.dockyard.size] growth-threshold",
    )
    assert not made.ok


def test_growth_under_the_threshold_is_not_flagged() -> None:
    made = report(previous=previous(layer_3=31_000_000))  # +1.8 MB, 5.96%
    venv = made.layers[VENV].delta
    assert venv is not None
    assert (venv.growth, venv.flagged) == (1_847_627, False)
    assert made.flags == ()
    assert made.ok


def test_growth_under_the_noise_floor_is_not_flagged_however_large_its_ratio() -> None:
    small = report(previous=previous(layer_4=150_000))  # +52 kB, 35%
    assert small.layers[STAGING].delta == size_model.LayerDelta(
        150_000, 52_484, 52_484 / 150_000, False, False
    )
    assert small.ok
    large = report(previous=previous(layer_4=100_000))  # +102 kB, 102%
    delta = large.layers[STAGING].delta
    assert delta is not None
    assert delta.flagged


def test_the_whole_image_growing_past_the_threshold_is_flagged() -> None:
    made = report(previous=previous(layer_3=15_000_000))
    assert made.delta is not None
    assert (made.delta.growth, made.delta.flagged) == (17_847_627, True)
    assert len(made.flags) == 2
    assert made.flags[1].startswith("dockyard:0.1.0 grew +17.8 MB (+13.8%) since build 000000000000")
    assert made.summary().endswith("(and 1 more problems above)")


def test_layers_pair_by_diff_id_then_instruction_then_position() -> None:
    layers = INFO.layers(BASE.diff_ids)
    old = [
        LayerRecord(layers[0].diff_id, 1, "base", True),
        LayerRecord("sha256:a", 3, "RUN useradd app", False),  # edited instruction, same position
        LayerRecord("sha256:b", 2, "COPY /app/.venv /app/.venv", False),  # moved, same instruction
        LayerRecord("sha256:c", 4, "RUN apt-get install gcc", False),  # gone
    ]
    assert size_model.pair_layers(layers, old) == {0: 0, 3: 2, 1: 1}
    made = report(previous=dataclasses.replace(previous(), layers=tuple(old), total=10))
    assert [row.delta.previous if row.delta else "-" for row in made.layers] == [1, 3, None, 2, None]
    assert made.layers[STAGING].delta == size_model.LayerDelta(
        None, 202_484, None, False, False
    )  # new: not flagged
    assert made.delta is not None
    assert made.delta.gone == (old[3],)


# --- history ------------------------------------------------------------------------------------------


def test_history_round_trip_through_record_build(tmp_path: Path) -> None:
    config = settings(tmp_path, history=Path(".dockyard/sizes.json"))
    size_history.record_build(config, INFO, BASE.diff_ids)
    path = tmp_path / ".dockyard" / "sizes.json"
    history = size_history.read_history(path)
    assert list(history) == ["dockyard"]
    (entry,) = history["dockyard"]
    assert (entry.image_id, entry.ref, entry.total) == (INFO.id, "dockyard:0.1.0", TOTAL)
    assert [(layer.size, layer.in_base) for layer in entry.layers] == [(s, b) for _, s, b in LAYERS]
    assert entry.layers[VENV].instruction == "COPY /app/.venv /app/.venv"
    assert not list(path.parent.glob("*.tmp")), "the atomic write leaves no scratch file"
    size_history.record_build(config, INFO, BASE.diff_ids)  # a rebuild of the same image id
    assert len(size_history.read_history(path)["dockyard"]) == 1


def test_history_keeps_the_last_entries_per_image(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    history: size_history.History = {}
    base = size_history.breakdown(INFO, BASE.diff_ids)
    for number in range(55):
        size_history.add_build(
            history, "dockyard", dataclasses.replace(base, image_id=f"sha256:{number:064x}")
        )
    size_history.add_build(history, "other/app", base)
    size_history.write_history(path, history)
    again = size_history.read_history(path)
    ids = [int(entry.image_id.removeprefix("sha256:"), 16) for entry in again["dockyard"]]
    assert ids == list(range(5, 55))
    assert again["other/app"] == [base]
    size_history.add_build(again, "dockyard", again["dockyard"][0])  # rebuilt: moves to the end, once
    ids = [int(entry.image_id.removeprefix("sha256:"), 16) for entry in again["dockyard"]]
    assert ids == [*range(6, 55), 5]
    assert size_history.previous_build(again, "dockyard", f"sha256:{5:064x}") == again["dockyard"][-2]
    assert size_history.previous_build(again, "nothing", "x") is None


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "images": {"dockyard": [{"image_id": "x"}]}}',
        b"not json at all",
        b"\xff\xfe{}",
        b'{"version": 99, "images": {}}',
        b"[]",
        b"",
    ],
    ids=["wrong-shape", "not-json", "not-utf8", "other-version", "a-list", "empty"],
)
def test_a_damaged_history_is_set_aside_with_one_warning_and_starts_afresh(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "history.json"
    assert size_history.read_history(path) == {}
    path.write_bytes(content)
    warnings: list[str] = []
    assert size_history.read_history(path, warn=warnings.append) == {}
    (warning,) = warnings
    assert "is not a dockyard size history" in warning
    assert "starting afresh" in warning
    (aside,) = tmp_path.glob("history.json.corrupt-*")
    assert aside.read_bytes() == content, "the damaged file is kept, not deleted"
    assert not path.exists()


def test_recording_over_a_damaged_history_keeps_the_new_build(tmp_path: Path) -> None:
    config = settings(tmp_path, history=Path("sizes.json"))
    (tmp_path / "sizes.json").write_text("{")
    warnings: list[str] = []
    assert size_history.record_build(config, INFO, BASE.diff_ids, warn=warnings.append)
    assert len(warnings) == 1
    assert list(size_history.read_history(tmp_path / "sizes.json")) == ["dockyard"]


def test_a_history_path_that_is_a_directory_is_left_alone_and_the_build_not_recorded(tmp_path: Path) -> None:
    config = settings(tmp_path, history=Path("sizes"))
    (tmp_path / "sizes").mkdir()
    (tmp_path / "sizes" / "mine.txt").write_text("the user's")
    warnings: list[str] = []
    assert not size_history.record_build(config, INFO, BASE.diff_ids, warn=warnings.append)
    assert warnings == [
        f"size history {tmp_path / 'sizes'} is a directory, not a file: this build not recorded"
    ]
    assert (tmp_path / "sizes" / "mine.txt").read_text() == "the user's"


def test_the_default_history_lives_in_the_state_directory_not_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    project = tmp_path / "home" / "ana" / "src" / "api"
    project.mkdir(parents=True)
    config = settings(project)
    path = size_history.history_path(config)
    assert path.is_relative_to(tmp_path / "state" / "dockyard" / "projects")
    assert re.search(r"-home-ana-src-api-[0-9a-f]{8}$", path.parent.name), "readable slug plus a hash"
    size_history.record_build(config, INFO, BASE.diff_ids)
    assert list(project.iterdir()) == []
    assert list(size_history.read_history(path)) == ["dockyard"]


@pytest.mark.parametrize("value", ["/tmp/sizes.json", "../sizes.json", "a/../../sizes.json"])
def test_a_configured_history_outside_the_project_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(UsageError, match="history"):
        size_history.history_path(settings(tmp_path, history=Path(value)))


def _record_one(args: tuple[str, str, int]) -> None:
    project, state, number = args
    os.environ["XDG_STATE_HOME"] = state
    config = settings(Path(project))
    for build in range(10):
        info = dataclasses.replace(INFO, id=f"sha256:{build:064x}", tags=(f"app{number}:{build}",))
        size_history.record_build(config, info, BASE.diff_ids)


def test_concurrent_recordings_keep_every_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        pool.map(_record_one, [(str(tmp_path), str(tmp_path / "state"), n) for n in range(8)])
    history = size_history.read_history(size_history.history_path(settings(tmp_path)))
    assert sorted(history) == [f"app{n}" for n in range(8)]
    assert all(len(entries) == 10 for entries in history.values()), "8 runs x 10 builds, none lost"


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("acme/api:1.0", "acme/api"),
        ("acme/api", "acme/api"),
        ("localhost:5000/acme/api", "localhost:5000/acme/api"),
        ("localhost:5000/acme/api:2", "localhost:5000/acme/api"),
        ("acme/api@sha256:abc", "acme/api"),
    ],
)
def test_image_name_drops_tag_and_digest(ref: str, name: str) -> None:
    assert images.image_name(ref) == name


def test_an_id_reference_is_filed_under_its_tag() -> None:
    assert images.subject_name("28ee0d1f48cd", INFO) == "dockyard"
    assert images.subject_name(INFO.id, INFO) == "dockyard"
    assert images.subject_name("dockyard:manual", INFO) == "dockyard"


# --- base image lookup ------------------------------------------------------------------------------


class FakeEngine:
    def __init__(self, images: dict[str, list[str]]) -> None:
        self.images = images

    def inspect_image(self, ref: str) -> dict[str, Any]:
        if ref not in self.images:
            raise ImageNotFound(f"no image {ref!r}")
        return {"RootFS": {"Layers": self.images[ref]}}


def test_base_comes_from_the_dockerfile_for_the_project_image(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("ARG PYTHON_IMAGE=python:3.13-slim\nFROM ${PYTHON_IMAGE}\n")
    engine = cast(Engine, FakeEngine({"python:3.13-slim": list(INFO.diff_ids[:1])}))
    found = images.find_base(engine, settings(tmp_path), INFO, "dockyard")
    assert found == Base("python:3.13-slim", INFO.diff_ids[:1])
    missing = images.find_base(cast(Engine, FakeEngine({})), settings(tmp_path), INFO, "dockyard")
    assert missing.diff_ids == ()
    assert (
        missing.note
        == "base image python:3.13-slim is not on this engine: no layers grouped as base (pull it)"
    )
    other = images.find_base(engine, settings(tmp_path), INFO, "acme/api")
    assert other.ref is None
    assert other.note is not None
    assert "pass --base IMAGE" in other.note
    explicit = images.find_base(engine, settings(tmp_path), INFO, "acme/api", "python:3.13-slim")
    assert explicit.diff_ids == INFO.diff_ids[:1]


def test_a_base_the_image_does_not_start_with_is_said(tmp_path: Path) -> None:
    engine = cast(Engine, FakeEngine({"python:3.12": ["sha256:other", "sha256:more"]}))
    found = images.find_base(engine, settings(tmp_path), INFO, "acme/api", "python:3.12")
    made = report(base=found)
    assert not any(row.in_base for row in made.layers)
    assert made.notes == (
        "dockyard:0.1.0 starts with 0 of the 2 layers of python:3.12 (built on another version of it?): "
        "only those are grouped as base",
    )


# --- distributions and waste ------------------------------------------------------------------------


def probe_answer() -> dict[str, Any]:
    def dist(name: str, size: int) -> dict[str, Any]:
        return {"name": name, "version": "1.0", "size": size, "files": 3, "missing": 0, "error": None}

    return {
        "environments": [
            {"path": "/app/.venv/lib/python3.13/site-packages", "active": True,
             "distributions": [dist("rich", 2_584_552), dist("pygments", 8_523_422), dist("idna", 300_000),
                               dist("docker", 1_100_000)]},
            {"path": "/usr/lib/python3/dist-packages", "active": False,
             "distributions": [dist("huge-system-thing", 90_000_000)]},
        ]
    }  # fmt: skip


def export(*layers: tuple[dict[str, int], list[str]]) -> imagefs.ExportScan:
    """An export scan of the recorded image: per layer, (files path -> size, whiteouts)."""
    scans = []
    for (files, whiteouts), diff_id in zip(layers, INFO.diff_ids, strict=True):
        entries = {path: imagefs.FileEntry(path, imagefs.FILE, size) for path, size in files.items()}
        scans.append(imagefs.LayerScan(f"{diff_id}/layer.tar", diff_id, 0, entries, whiteouts))
    return imagefs.ExportScan(scans, {}, [], [], 0.5, 123_456)


EXPORT = export(
    ({"etc/passwd": 839, "usr/bin/python3": 5_000_000}, []),
    ({"etc/passwd": 900}, []),
    ({}, []),
    ({"app/.venv/cache.bin": 5_000, "app/.venv/ok": 10}, []),
    ({}, ["app/.venv/cache.bin"]),
)


def test_the_largest_distributions_come_from_the_active_environment() -> None:
    made = report(probe=probe_answer(), top=3)
    assert [(d.name, d.size) for d in made.distributions] == [
        ("pygments", 8_523_422), ("rich", 2_584_552), ("docker", 1_100_000),
    ]  # fmt: skip
    assert made.distribution_count == 4
    assert made.environments == ("/app/.venv/lib/python3.13/site-packages",)
    assert round(made.distributions[0].share, 4) == 0.0581
    none = report(probe={"environments": []})
    assert none.distributions == ()
    assert "no active Python environment" in none.notes[0]


def test_waste_is_attributed_to_the_layers_that_added_and_removed_it() -> None:
    made = report(scan=EXPORT)
    assert made.waste is not None
    assert made.waste.total == 5_839
    assert made.waste.export_bytes == 123_456
    assert made.waste.files == (
        size_model.WastedFile("/app/.venv/cache.bin", 5_000, 3, "COPY /app/.venv /app/.venv", 4,
                         "COPY /staging/ /app/.venv/", "deleted"),
        size_model.WastedFile("/etc/passwd", 839, 0, made.layers[0].instruction, 1,
                              made.layers[1].instruction, "overwritten"),
    )  # fmt: skip
    assert [row.wasted for row in made.layers] == [839, 0, 0, 5_000, 0]


def test_an_export_of_other_layers_is_refused() -> None:
    scan = dataclasses.replace(EXPORT, layers=EXPORT.layers[:-1])
    with pytest.raises(DockyardError, match="holds other layers than its metadata lists"):
        report(scan=scan)


# --- renderings -------------------------------------------------------------------------------------


def full_report() -> size_model.SizeReport:
    return report(
        previous=previous(layer_3=29_000_000),
        probe=probe_answer(),
        scan=EXPORT,
        timings={"metadata": 0.012, "distributions": 0.45, "deep": 2.1},
    )


def render(made: size_model.SizeReport) -> str:
    out = io.StringIO()
    size_render.render(made, Console(file=out, width=120, color_system=None), top=5)
    return out.getvalue()


def test_the_table_groups_layers_and_warns_of_flags() -> None:
    out = render(full_report())
    lines = [line.strip() for line in out.splitlines()]
    assert "size-report dockyard:0.1.0 (28ee0d1f48cd)" in out
    assert any(line.startswith(f"base image {BASE_REF}") and "113.7 MB" in line for line in lines)
    assert any(line.startswith("added by the Dockerfile") and "33.1 MB   22.5%" in line for line in lines)
    assert any(
        line.startswith("3   COPY /app/.venv /app/.venv") and "+3.8 MB (+13.3%)" in line for line in lines
    )
    assert "total 146.8 MB of a 200.0 MB budget: 53.2 MB to spare (27%)" in lines
    assert "vs previous build 000000000000 (dockyard:old" in out
    assert any(line.startswith("pygments") and "8.5 MB" in line for line in lines)
    assert any(line.startswith("/app/.venv/cache.bin") and "deleted by layer 4" in line for line in lines)
    assert "warning: layer 3 (COPY /app/.venv /app/.venv) grew +3.8 MB (+13.3%)" in out
    assert "metadata 0.01 s, distributions probe 0.45 s, export scan 2.10 s" in out


def test_json_holds_every_number_and_the_verdict() -> None:
    data = json.loads(size_render.to_json(full_report()))
    assert (data["total"], data["budget"], data["margin"], data["over_budget"], data["ok"]) == (
        TOTAL, 200_000_000, 53_232_149, False, False,
    )  # fmt: skip
    assert data["base_ref"] == BASE_REF
    assert data["base_size"] == 113_713_437
    assert data["layers"][VENV]["delta"] == {
        "previous": 29_000_000, "growth": 3_847_627, "ratio": 3_847_627 / 29_000_000, "unchanged": False,
        "flagged": True,
    }  # fmt: skip
    assert data["delta"]["previous_id"] == "sha256:" + "0" * 64
    assert data["distributions"][0] == {
        "name": "pygments", "version": "1.0", "size": 8_523_422, "files": 3, "share": 8_523_422 / TOTAL,
    }  # fmt: skip
    assert data["waste"]["total"] == 5_839
    assert data["waste"]["by_layer"] == {"0": 839, "3": 5_000}
    assert data["waste"]["files"][0]["path"] == "/app/.venv/cache.bin"
    assert len(data["flags"]) == 1


def test_markdown_has_the_grouped_table_distributions_and_waste() -> None:
    text = size_render.to_markdown(full_report(), top=5)
    lines = text.splitlines()
    assert lines[0] == "## ❌ size-report dockyard:0.1.0"
    assert "| # | Layer | Size | Share | vs previous | Wasted |" in lines
    assert f"|  | **base image {BASE_REF}** | **113.7 MB** | 77.5% |  |  |" in lines
    assert "| 3 | COPY /app/.venv /app/.venv | 32.8 MB | 22.4% | **+3.8 MB (+13.3%)** ⚠️ | 5.0 kB |" in lines
    assert "| 1 | RUN groupadd --system --gid 10001 app \\&\\& useradd --system --uid 10001 --gid app " \
        "--home-di… | 4.3 kB | 0.0% | = |  |" in lines  # fmt: skip
    assert "| pygments | 1.0 | 8.5 MB | 5.8% |" in lines
    assert "### Wasted space: 5.8 kB in 2 files" in lines
    assert (
        "| /app/.venv/cache.bin | 5,000 | layer 3 (COPY /app/.venv /app/.venv) | deleted by layer 4 "
        "(COPY /staging/ /app/.venv/) |"
    ) in lines
    assert lines[-1].startswith("- ⚠️ layer 3 (COPY /app/.venv /app/.venv) grew")


def test_write_outputs_writes_each_requested_file(tmp_path: Path) -> None:
    made = full_report()
    written = size_render.write_outputs(made, json_path=tmp_path / "a" / "r.json", markdown_path=None)
    assert written == [tmp_path / "a" / "r.json"]
    assert json.loads(written[0].read_text())["ok"] is False


# --- compressed sizes, for an image in a registry ----------------------------------------------------


def _manifest(layers: int) -> Manifest:
    blobs = tuple(Descriptor("gzip", f"sha256:{i:064x}", 1_000 * (i + 1)) for i in range(layers))
    return Manifest("sha256:" + "9" * 64, "manifest", 1_400, Descriptor("config", INFO.id, 5_000), blobs)


def test_an_image_in_a_registry_shows_what_a_pull_moves_per_layer() -> None:
    pinned = "127.0.0.1:5000/team/dockyard@sha256:" + "9" * 64
    made = report(manifest=_manifest(len(LAYERS)), pushed_as=pinned)
    assert [row.compressed for row in made.layers] == [1_000, 2_000, 3_000, 4_000, 5_000]
    assert made.compressed_total == 15_000 + 5_000 + 1_400
    assert made.pushed_as == pinned
    out = io.StringIO()
    size_render.render(made, Console(file=out, width=160, color_system=None))
    lines = [line.strip() for line in out.getvalue().splitlines()]
    assert any(line.startswith("#") and "size   compressed   share" in line for line in lines)
    assert any(
        line.startswith("4 ") and line.split()[-5:] == ["202.5", "kB", "5.0", "kB", "0.1%"] for line in lines
    )
    assert f"compressed 21.4 kB in {pinned}: what a pull onto an empty engine moves" in lines
    markdown = size_render.to_markdown(made).splitlines()
    assert "| # | Layer | Size | Compressed | Share |" in markdown
    assert json.loads(size_render.to_json(made))["layers"][4]["compressed"] == 5_000


def test_no_registry_no_compressed_column_and_a_mismatched_manifest_is_said() -> None:
    plain = report()
    assert plain.compressed_total is None
    assert all(row.compressed is None for row in plain.layers)
    assert "compressed" not in size_render.to_markdown(plain).lower()
    odd = report(manifest=_manifest(2), pushed_as="r:5000/t/d@sha256:" + "9" * 64)
    assert odd.compressed_total is None
    assert any("another number of layers" in note for note in odd.notes)


def test_a_non_utf8_path_reads_the_same_in_every_format(tmp_path: Path) -> None:
    nasty = os.fsdecode(b"app/nasty\x80/.env")  # how tarfile hands out a name that is not UTF-8
    made = report(
        scan=export(({"etc/passwd": 839}, []), ({}, []), ({}, []), ({nasty: 5_000}, []), ({}, [nasty]))
    )
    shown = "/app/nasty\\x80/.env"
    assert json.loads(size_render.to_json(made))["waste"]["files"][0]["path"] == shown
    assert "/app/nasty\\\\x80/.env" in size_render.to_markdown(made)  # backslash escaped, as any other
    assert shown in render(made)
    json_path, md_path = tmp_path / "r.json", tmp_path / "r.md"
    written = size_render.write_outputs(made, json_path=json_path, markdown_path=md_path)
    assert written == [json_path, md_path]
