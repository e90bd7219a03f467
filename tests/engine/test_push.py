"""`push` against the machine's real registry: what moved layer by layer, the digest to deploy, the
size history, and each failure as one line."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard import cli, engine, registry
from dockyard.build import push as pushes
from dockyard.config import load
from dockyard.sizes import history as size_history
from dockyard.verify.gather import copy_project
from tests.engine.conftest import ROOT, ImageBuilder

Repository = Callable[[str], str]
DOCKERFILE = "ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\nCOPY deps.bin /opt/deps.bin\n"


def test_a_push_moves_only_what_the_registry_lacks(
    docker: engine.Engine, build_image: ImageBuilder, registry_repository: Repository
) -> None:
    deps = os.urandom(300_000)  # incompressible, and new to the registry on every run
    first = build_image(DOCKERFILE, {"deps.bin": deps}, name="push-a")
    name = registry.parse_reference(registry_repository("push"))

    cold = pushes.push_image(docker, first.image_id, [name.with_tag("a")])[0]
    base, added = cold.layers
    assert base.status in (pushes.PRESENT, pushes.MOUNTED), "the base is in the registry already"
    assert added.status == pushes.PUSHED
    assert 300_000 < added.compressed < 310_000
    assert cold.config_pushed
    assert cold.moved == added.compressed + cold.config_size + cold.manifest_size
    # The digest is the one the engine recorded for the push, and the registry serves that image.
    assert cold.pinned in docker.image(first.image_id).attrs["RepoDigests"]
    served = registry.connect(name.host or "").manifest(name.repository, cold.digest)
    assert served is not None
    assert served.config.digest == first.image_id
    assert [blob.size for blob in served.layers] == [layer.compressed for layer in cold.layers]

    again = pushes.push_image(docker, first.image_id, [name.with_tag("again")])[0]
    assert {layer.status for layer in again.layers} == {pushes.PRESENT}
    assert not again.config_pushed
    assert again.moved == again.manifest_size
    assert again.digest == cold.digest

    # A source-only change: the same dependency layer, one small layer more. Only that one moves.
    source = f"print('{uuid.uuid4().hex}')\n"
    changed = build_image(
        DOCKERFILE + "COPY app.py /opt/app.py\n", {"deps.bin": deps, "app.py": source}, name="push-b"
    )
    assert changed.layers[:2] == first.layers
    small = pushes.push_image(docker, changed.image_id, [name.with_tag("b")])[0]
    assert [layer.status for layer in small.layers][1:] == [pushes.PRESENT, pushes.PUSHED]
    assert small.moved == small.layers[2].compressed + small.config_size + small.manifest_size
    assert small.moved < 5_000


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    project = tmp_path / "tinyapp"
    copy_project(ROOT / "tests" / "fixtures" / "tinyapp", project)
    return project


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_dockyard_push_reports_the_digest_records_the_push_and_size_report_reads_it(
    tiny_project: Path,
    registry_repository: Repository,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    image = registry_repository("cli")
    monkeypatch.setenv("DOCKYARD_IMAGE", image)
    project = ["--project", str(tiny_project)]
    code, _, err = _run([*project, "build", "--quiet"], capsys)
    assert code == 0, err
    try:
        report = tmp_path / "push.json"
        code, out, err = _run(
            [*project, "push", "--json", str(report), "--markdown", str(tmp_path / "p.md")], capsys
        )
        assert code == 0, err
        pushed = json.loads(report.read_text())["pushes"]
        assert [entry["name"] for entry in pushed] == [image]
        assert pushed[0]["tags"][0] == "0.1.0"
        pinned = pushed[0]["pinned"]
        assert pinned.startswith(f"{image}@sha256:")
        assert f"deploy  {pinned}" in out
        assert "moved " in out
        assert (tmp_path / "p.md").read_text().count(pinned) == 1

        settings = load(tiny_project)
        entry = size_history.read_history(size_history.history_path(settings))[image][-1]
        assert entry.digest == pinned.split("@")[1]
        assert entry.moved == pushed[0]["moved"]
        compressed = [layer["compressed"] for layer in pushed[0]["layers"]]
        assert [layer.compressed for layer in entry.layers] == compressed

        sized = tmp_path / "size.json"
        code, out, err = _run([*project, "size-report", "--json", str(sized)], capsys)
        assert code == 0, err
        data = json.loads(sized.read_text())
        assert data["pushed_as"] == pinned
        assert [row["compressed"] for row in data["layers"]] == compressed
        assert "compressed" in out
    finally:
        _untag(image)


def _untag(image: str) -> None:
    made = engine.connect(load(ROOT).docker)
    for found in made.client.images.list(name=image):
        for tag in found.tags:
            if tag.startswith(f"{image}:"):
                made.client.images.remove(tag)


@pytest.mark.parametrize(
    ("image", "extra", "code", "message"),
    [
        ("dockyard-test/no-registry", [], 2, "names no registry, so it cannot be pushed: name it HOST"),
        ("{registry}/dockyard-test/never-built-{run}", [], 2, "no build of"),
        ("dockyard-test/x", ["--to", "127.0.0.1:9/dockyard-test/x:1"], None, "127.0.0.1:9 does not answer"),
    ],
)  # fmt: skip
def test_push_failures_are_one_line(
    image: str,
    extra: list[str],
    code: int | None,
    message: str,
    tiny_project: Path,
    registry_host: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKYARD_IMAGE", image.format(registry=registry_host, run=uuid.uuid4().hex[:8]))
    if extra:  # pushing a built image to a registry that is down: tag the fixture image's base as it
        made = engine.connect(load(ROOT).docker)
        made.client.api.tag(load(tiny_project).build_args["PYTHON_IMAGE"], "dockyard-test/x", "0.1.0")
    try:
        got, _, err = _run(["--project", str(tiny_project), "push", *extra], capsys)
    finally:
        if extra:
            engine.connect(load(ROOT).docker).client.images.remove("dockyard-test/x:0.1.0")
    assert got == (code or 1)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert message in lines[0]
