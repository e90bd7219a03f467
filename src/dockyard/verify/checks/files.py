"""Checks of what files the image ships: no stray development files, keys or build secrets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from dockyard.project.lock import canonical
from dockyard.results import Outcome
from dockyard.verify.facts import ExportFacts, Facts, Verdict, failed, mb, passed, require

# Stray names: matched anywhere in the image, case-insensitively, and against what an editor backup
# (`.env~`, `#.env#`, `.env.swp`) is a copy of.
DEFAULT_FORBIDDEN_NAMES = (
    ".env", ".env.*", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox",
    ".nox", ".coverage", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "*.key", ".netrc", ".pypirc",
)  # fmt: skip
# Stray paths: the project's own development folders, relative to the image's working directory.
DEFAULT_FORBIDDEN_DIRS = ("tests", "test", "docs", ".github", ".ci", "examples", "bench")
# The project's development folders, recognised anywhere in the image by what they hold.
PROJECT_TREE_DIRS = (
    "tests", "test", "docs", "doc", "examples", "bench", "benchmarks", ".github", ".ci", "notebooks",
)  # fmt: skip
# Names too common to tell the project's folder from another package's (numpy/tests/__init__.py).
GENERIC_NAMES = frozenset(
    {"__init__.py", "__main__.py", "conftest.py", "conf.py", "index.rst", "index.md", "Makefile",
     "README.md", "README.rst", "README", ".gitkeep", "py.typed", "make.bat", "requirements.txt"}
)  # fmt: skip
PROJECT_TREE_MARKERS = 40  # files per folder the probe looks for
_SKIPPED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "_build", ".git"})


def check_no_stray_files(facts: Facts) -> Verdict:
    probe = require(facts.probe)
    walk = probe.get("walk", {})
    project = canonical(facts.settings.project_name)
    stray, published = [], []
    for item in probe.get("stray_files", []):
        owner = item.get("owner") or {}
        # A third-party package's own file, byte for byte as published: not something this build leaked.
        if owner.get("verified") and owner.get("name") != project:
            published.append(
                f"{item['path']} ({item['reason']}): shipped as published by {owner.get('label')}"
            )
        else:
            stray.append(item)
    unreadable = walk.get("unreadable") or 0
    unread = [f"unreadable: {path}" for path in walk.get("unreadable_paths", [])]
    if stray:
        lines = [f"{s['path']} ({s['reason']}, {mb(s.get('size', 0))})" for s in stray]
        shown = ", ".join(lines[:5]) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
        return failed(f"files that do not belong in the image: {shown}", *lines, *unread, *published)
    if walk.get("truncated"):
        return Verdict(
            Outcome.ERROR, f"the file walk stopped at its deadline after {walk.get('files')} files"
        )
    if unreadable:
        return Verdict(
            Outcome.ERROR,
            f"{unreadable} entries could not be read, even as root: "
            + ", ".join(walk.get("unreadable_paths", [])[:3]),
            tuple(unread),
        )
    files = walk.get("files", 0)
    return passed(
        f"{files} files checked as root: no .env, VCS data, the project's tests or docs, host venvs or keys",
        *published,
    )


def check_no_build_secrets(facts: Facts) -> Verdict:
    """The build's secrets (the CA bundle, `verify.secrets`) in no added layer, however copied (see
    `dockyard.credentials.fingerprint`), nor in ENV, labels or history; and nothing at a secret
    mount's path (`/run/secrets/...`) written into a layer or named by an ENV."""
    export = require(facts.export)
    found = _secrets_in_metadata(facts) + _secrets_in_layers(export)
    added = len(export.scan.layers) - export.base_layers
    source = f"layers read from {export.source}"
    if found:
        return failed(f"build secret found in the image: {found[0]}", *found, source)
    if not facts.secrets:
        return passed(
            f"no build secrets configured (ca-bundle, verify.secrets); nothing under /run/secrets in "
            f"{added} added layers, no ENV pointing there",
            source,
        )
    names = ", ".join(secret.name for secret in facts.secrets)
    public = [
        f"{secret.name}: {len(secret.public)} of its {len(secret.blocks)} PEM blocks are public (the "
        "base image, an installed distribution or certifi ship them): not looked for alone"
        for secret in facts.secrets
        if secret.public
    ]
    evidence = (
        f"{names}: in none of {added} added layers (copies, encodings, PEM blocks), history, ENV or labels"
    )
    return passed(evidence, *public, source)


def _secrets_in_metadata(facts: Facts) -> list[str]:
    image, found = facts.image, []
    for secret in facts.secrets:
        markers = secret.markers()
        found += [f"ENV {k} holds secret {secret.name}" for k, v in image.env.items() if _holds(v, markers)]
        found += [
            f"LABEL {k} holds secret {secret.name}" for k, v in image.labels.items() if _holds(v, markers)
        ]
        found += [
            f"history entry `{entry.created_by[:60]}` holds secret {secret.name}"
            for entry in image.history
            if _holds(entry.created_by, markers)
        ]
    found += [f"ENV {k} points at a secret mount ({v})" for k, v in image.env.items() if "/run/secrets" in v]
    return found


def _holds(value: str, markers: Sequence[str]) -> bool:
    return any(marker in value for marker in markers)


def _secrets_in_layers(export: ExportFacts) -> list[str]:
    found = []
    for match in export.secrets:
        gone = f"; layer {match.removed_in} deletes it, but it stays in the image" if match.removed_in else ""
        layer = f"layer {match.layer} ({match.diff_id[7:19]})"
        found.append(f"{layer} file {match.path} holds {match.how} of {match.secret}{gone}")
    layers = export.scan.layers
    for index in range(export.base_layers, len(layers)):
        for path, entry in layers[index].files.items():
            if entry.kind == "file" and path.startswith("run/secrets/"):
                found.append(
                    f"layer {index} ({layers[index].diff_id[7:19]}) writes /{path}: a secret mount's path"
                )
    return found


def project_trees(project_dir: Path) -> dict[str, list[list[object]]]:
    """The project's own development folders (tests/, docs/, ...) as the probe recognises them:
    up to PROJECT_TREE_MARKERS of their distinctive files, as (path relative to the folder, size)."""
    trees: dict[str, list[list[object]]] = {}
    for name in PROJECT_TREE_DIRS:
        folder = project_dir / name
        if not folder.is_dir() or folder.is_symlink():
            continue
        markers: list[list[object]] = []
        for directory, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
            for filename in sorted(files):
                path = Path(directory, filename)
                if filename in GENERIC_NAMES or filename.endswith(".pyc") or path.is_symlink():
                    continue
                markers.append([path.relative_to(folder).as_posix(), path.stat().st_size])
            if len(markers) >= PROJECT_TREE_MARKERS:
                break
        if markers:
            trees[name] = markers[:PROJECT_TREE_MARKERS]
    return trees


# Installers' download caches, anywhere (`uv sync` or `pip install` without a cache mount or
# --no-cache): stray when they hold something (the probe lets an empty mount point go).
PACKAGE_CACHE_PATHS = ("*/.cache/uv", "*/.cache/pip")


def forbidden_paths(working_dir: str, project_dir_names: Sequence[str] = DEFAULT_FORBIDDEN_DIRS) -> list[str]:
    """The project's development folders, where they would land in the image, and package caches."""
    roots = {working_dir or "/", "/app", "/src"}
    folders = sorted(str(PurePosixPath(root) / name) for root in roots for name in project_dir_names)
    return [*folders, *PACKAGE_CACHE_PATHS]
