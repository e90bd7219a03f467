"""The probe finds and reads installed distributions without importing importlib.metadata: the same
distributions, in the same order, with the same names, versions, files and entry points, as
importlib.metadata gives, on this project's own environment and on awkward hand-made ones."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from dockyard.verify.probe.common import _canonical_name
from dockyard.verify.probe.distributions import _dist_name, _listed, find_distributions


def described(dist: Any) -> tuple[object, ...]:
    points = sorted((p.group, p.name, p.value) for p in dist.entry_points)
    return (
        str(dist._path),
        _dist_name(dist),
        dist.version,
        str(dist.locate_file("")),
        dist.read_text("RECORD"),
        points,
    )


def both(entry: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    ours = [described(dist) for dist in find_distributions(entry)]
    theirs = [described(dist) for dist in metadata.distributions(path=[entry])]
    return ours, theirs


def test_this_environment_reads_the_same_name_for_name() -> None:
    entries = [entry for entry in sys.path if entry.endswith("site-packages")]
    assert entries
    for entry in entries:
        ours, theirs = both(entry)
        assert len(ours) > 20
        assert ours == theirs
        for dist in metadata.distributions(path=[entry]):  # PEP 503 names, as packaging normalizes them
            assert _dist_name(dist) == _canonical_name(dist.metadata["Name"])
    listed = [_listed(dist)[1] for dist in find_distributions(entries[0])[:5]]
    assert listed == [_listed(dist)[1] for dist in metadata.distributions(path=[entries[0]])][:5]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def awkward(tmp_path: Path) -> Path:
    site = tmp_path / "site-packages"
    write(site / "Foo.Bar-1.0.dist-info" / "METADATA", "Metadata-Version: 2.1\nName: Foo.Bar\nVersion: 1.0\n")
    write(site / "foo_bar-2.0.dist-info" / "METADATA", "Name: foo_bar\nVersion: 2.0\n")  # same group
    write(
        site / "Wrapped-3.dist-info" / "METADATA",
        "Name: Wrapped\nSummary: one\n  two\nVersion: 3\nName: Second\n\nBody: not a header\n",
    )
    write(
        site / "Wrapped-3.dist-info" / "entry_points.txt",
        "# comment\n[console_scripts]\nwrapped = wrapped.cli:main [extra]\n# more\n\n"
        "[gui_scripts]\nw = w:m\n",
    )
    write(site / "Wrapped-3.dist-info" / "RECORD", "wrapped/__init__.py,sha256=abc,3\n")
    write(site / "old-0.1-py3.8.egg-info" / "PKG-INFO", "Name: old\nVersion: 0.1\n")
    write(site / "single-1.0.egg-info", "Name: single\nVersion: 1.0\n")  # an egg-info file
    (site / "nometa-1.dist-info").mkdir()
    write(site / "UPPER-1.DIST-INFO" / "METADATA", "Name: UPPER\nVersion: 1\n")
    write(site / "unrelated.txt", "x")
    return site


def test_awkward_environments_read_the_same(awkward: Path) -> None:
    ours, theirs = both(str(awkward))
    assert len(ours) == 7
    assert ours == theirs


def test_a_path_entry_that_is_not_a_folder(tmp_path: Path) -> None:
    assert both(str(tmp_path / "absent")) == ([], [])
