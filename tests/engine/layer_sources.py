"""The layer content checks read an image's layers two ways: from overlay2's layer directories (the
engine is local, tests run as root) and from the export. Both must give the same layers and the
same findings; `assert_sources_agree` reads an image both ways and compares everything the checks
use."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dockyard import config, engine
from dockyard.image import metadata as images
from dockyard.verify import facts, gather

DIRECTORIES = "overlay2's layer directories"


def read_layers(
    docker: engine.Engine,
    settings: config.Settings,
    ref: str,
    source: str,
    *,
    secrets: Sequence[Path] = (),
    graph_driver: Mapping[str, Any] | None = None,
) -> facts.ExportFacts:
    """What the build-secret and credential scans found in `ref`'s layers, read from `source`
    ("auto" or "export"); `graph_driver` stands in for inspect's."""
    verify = dataclasses.replace(settings.verify, layer_source=source, secrets=tuple(secrets))
    settings = dataclasses.replace(settings, verify=verify)
    info = images.inspect_image(docker, ref)
    if graph_driver is not None:
        info = dataclasses.replace(info, graph_driver=graph_driver)
    base = images.find_base(docker, settings, info, images.subject_name(ref, info))
    prints = gather._secrets(settings)
    return gather._export(docker, settings, info, base, prints, credentials=True)


def assert_sources_agree(
    docker: engine.Engine, settings: config.Settings, ref: str, *, secrets: Sequence[Path] = ()
) -> facts.ExportFacts:
    """Read `ref` from its layer directories and from its export: the same layers (entries,
    whiteouts, opaque directories), the same build-secret matches and credential findings."""
    dirs = read_layers(docker, settings, ref, "auto", secrets=secrets)
    export = read_layers(docker, settings, ref, "export", secrets=secrets)
    assert dirs.source.startswith(DIRECTORIES), dirs.source
    assert export.source.endswith("verify.layer-source is export"), export.source
    assert dirs.base_layers == export.base_layers
    assert dirs.scan.diff_ids == export.scan.diff_ids
    for index, (mine, theirs) in enumerate(zip(dirs.scan.layers, export.scan.layers, strict=True)):
        assert mine.files == theirs.files, index
        assert sorted(mine.whiteouts) == sorted(theirs.whiteouts), index
        assert sorted(mine.opaque_dirs) == sorted(theirs.opaque_dirs), index
    assert dirs.secrets == export.secrets
    assert dirs.credentials is not None
    assert export.credentials is not None
    assert dirs.credentials.findings == export.credentials.findings
    left = dataclasses.replace(dirs.credentials, findings=[])
    right = dataclasses.replace(export.credentials, findings=[])
    assert left == right  # layers scanned, files, bytes, distributions' files, exempt matches
    return dirs
