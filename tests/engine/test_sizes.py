"""`size-report` against the real engine: exact wasted bytes from an export, and growth flagged against
the previous build."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from rich.console import Console

from dockyard import engine
from dockyard.config import Settings, SizeSettings
from dockyard.sizes import history as size_history
from dockyard.sizes import report as sizes
from tests.engine.conftest import TEST_RUN, ImageBuilder

WASTE = """\
    ARG PYTHON_IMAGE
    FROM ${PYTHON_IMAGE}
    RUN mkdir -p /waste && head -c 300000 /dev/urandom > /waste/replaced.bin
    RUN head -c 100000 /dev/urandom > /waste/replaced.bin
    RUN head -c 50000 /dev/urandom > /waste/deleted.bin
    RUN rm /waste/deleted.bin
"""

GROWTH = """\
    ARG PYTHON_IMAGE
    FROM ${PYTHON_IMAGE}
    COPY steady.bin /data/steady.bin
    COPY blob.bin /data/blob.bin
"""


def project_settings(tmp_path: Path, name: str, context: Path, base_image: str) -> Settings:
    """A project whose image is the test image: `name:<TEST_RUN>`, built from context/Dockerfile."""
    return Settings(
        project_dir=tmp_path,
        project_name=name,
        project_version=TEST_RUN,
        image=f"dockyard-test/{name}",
        dockerfile=context / "Dockerfile",
        context=context,
        build_args={"PYTHON_IMAGE": base_image},
        size=SizeSettings(history=Path("history.json")),
    )


def quiet() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=140, color_system=None), out


def test_deep_report_counts_overwritten_and_deleted_bytes_exactly(
    docker: engine.Engine, build_image: ImageBuilder, base_image: str, tmp_path: Path
) -> None:
    context = tmp_path / "waste"
    build_image(WASTE, name="sizes-waste", context=context)
    settings = project_settings(tmp_path, "sizes-waste", context, base_image)
    console, out = quiet()

    report = sizes.size_report(
        docker, settings, None, deep=True, console=console,
        json_path=tmp_path / "report.json", markdown_path=tmp_path / "report.md",
    )  # fmt: skip

    assert report.ref == f"dockyard-test/sizes-waste:{TEST_RUN}"
    assert report.base_ref == base_image
    first = sum(1 for row in report.layers if row.in_base)
    assert first >= 1, "the base image's layers are grouped apart"
    assert len(report.layers) == first + 4
    assert report.waste is not None
    ours = [f for f in report.waste.files if f.added_in >= first]
    assert [(f.path, f.bytes, f.added_in, f.removed_in, f.how) for f in ours] == [
        ("/waste/replaced.bin", 300_000, first, first + 1, "overwritten"),
        ("/waste/deleted.bin", 50_000, first + 2, first + 3, "deleted"),
    ]
    assert ours[0].added_by.startswith("RUN mkdir -p /waste && head -c 300000")
    assert ours[0].removed_by == "RUN head -c 100000 /dev/urandom > /waste/replaced.bin"
    assert ours[1].removed_by == "RUN rm /waste/deleted.bin"
    in_base = sum(f.bytes for f in report.waste.files if f.added_in < first)
    assert report.waste.total == 350_000 + in_base
    assert [row.wasted for row in report.layers[first:]] == [300_000, 0, 50_000, 0]
    assert "deep" in report.timings

    text = out.getvalue()
    assert "/waste/replaced.bin" in text
    assert "overwritten by layer" in text
    assert json.loads((tmp_path / "report.json").read_text())["waste"]["total"] == 350_000 + in_base
    assert "| /waste/deleted.bin | 50,000 |" in (tmp_path / "report.md").read_text()


def test_a_layer_that_grows_past_the_threshold_is_flagged_against_the_previous_build(
    docker: engine.Engine, build_image: ImageBuilder, base_image: str, tmp_path: Path
) -> None:
    context = tmp_path / "growth"
    settings = project_settings(tmp_path, "sizes-growth", context, base_image)
    before = build_image(
        GROWTH, {"steady.bin": os.urandom(3_000_000), "blob.bin": os.urandom(100_000)},
        name="sizes-growth", context=context,
    )  # fmt: skip
    size_history.record_built_image(docker, settings, before.image_id)
    after = build_image(
        GROWTH, {"steady.bin": os.urandom(3_150_000), "blob.bin": os.urandom(2_000_000)},
        name="sizes-growth", context=context,
    )  # fmt: skip
    console, out = quiet()

    report = sizes.size_report(
        docker, settings, None, deep=False, console=console, json_path=None, markdown_path=None
    )

    assert report.image_id == after.image_id
    assert report.delta is not None
    assert report.delta.previous_id == before.image_id
    first = sum(1 for row in report.layers if row.in_base)
    steady, blob = report.layers[first:]
    assert all(row.delta is not None and row.delta.unchanged for row in report.layers[:first])
    assert steady.delta is not None
    assert blob.delta is not None
    assert (steady.delta.growth, steady.delta.flagged) == (150_000, False), "5%: under the 10% threshold"
    assert (blob.delta.previous, blob.delta.growth, blob.delta.flagged) == (100_000, 1_900_000, True)
    assert not report.delta.flagged, "2 MB on a base of 100+ MB is under the threshold"
    assert report.flags == (
        f"layer {blob.index} (COPY blob.bin /data/blob.bin) grew +1.9 MB (+1900.0%) since build "
        f"{before.image_id.removeprefix('sha256:')[:12]}, past the 10% growth threshold: check what it adds, "
        "or raise [tool.dockyard.size] growth-threshold",
    )
    assert not report.ok
    assert f"warning: layer {blob.index} (COPY blob.bin /data/blob.bin) grew" in out.getvalue()
    # The metadata path exports nothing and stays far under a second.
    assert report.waste is None
    assert "deep" not in report.timings
    assert report.timings["metadata"] < 1.0
    history = size_history.read_history(tmp_path / "history.json")
    assert [e.image_id for e in history["dockyard-test/sizes-growth"]] == [before.image_id, after.image_id]
