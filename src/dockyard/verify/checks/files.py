"""Checks of what files the image ships: no stray development files, keys or build secrets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from dockyard.image.metadata import common_prefix
from dockyard.results import Outcome
from dockyard.verify.facts import Facts, Verdict, failed, mb, passed, require, skipped

# Stray names: matched anywhere in the image outside installed packages.
DEFAULT_FORBIDDEN_NAMES = (
    ".env", ".env.*", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox",
    ".nox", ".coverage", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "*.key", ".netrc", ".pypirc",
)  # fmt: skip
# Stray paths: the project's own development folders, relative to the image's working directory.
DEFAULT_FORBIDDEN_DIRS = ("tests", "test", "docs", ".github", ".ci", "examples", "bench")
# Tools that live in an environment without being a project dependency.


def check_no_stray_files(facts: Facts) -> Verdict:
    probe = require(facts.probe)
    stray = probe.get("stray_files", [])
    walk = probe.get("walk", {})
    if stray:
        lines = [f"{s['path']} ({s['reason']}, {mb(s.get('size', 0))})" for s in stray]
        shown = ", ".join(lines[:5]) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
        return failed(f"files that do not belong in the image: {shown}", *lines)
    if walk.get("truncated"):
        return Verdict(
            Outcome.ERROR, f"the file walk stopped at its deadline after {walk.get('files')} files"
        )
    return passed(f"{walk.get('files', 0)} files checked: no .env, VCS data, tests, host venvs or keys")


def check_no_build_secrets(facts: Facts) -> Verdict:
    if not facts.secrets:
        return skipped("no build secrets configured (ca-bundle, verify.secrets)")
    image, found = facts.image, []
    for name, content in facts.secrets.items():
        text = content.decode(errors="replace").strip()
        markers = [text] if len(text) >= 8 else []
        for key, value in image.env.items():
            if any(m in value for m in markers) or "/run/secrets" in value:
                found.append(f"ENV {key} holds or points at secret {name}")
        for key, value in image.labels.items():
            if any(m in value for m in markers):
                found.append(f"LABEL {key} holds secret {name}")
        for entry in image.history:
            if any(m in entry.created_by for m in markers):
                found.append(f"history entry `{entry.created_by[:60]}` holds secret {name}")
    export = facts.export
    export = require(export)
    base_layers = common_prefix(image.diff_ids, facts.base.diff_ids) if facts.base else 0
    for hit in export.hits:
        if hit.layer_index >= base_layers:
            found.append(f"layer {hit.layer_index} ({hit.diff_id[7:19]}) file /{hit.path} holds {hit.needle}")
    names = ", ".join(facts.secrets)
    if found:
        return failed(f"build secret found in the image: {found[0]}", *found)
    layers = len(export.layers) - base_layers
    return passed(f"{names}: in none of {layers} added layers, history, ENV or labels")


def forbidden_paths(working_dir: str, project_dir_names: Sequence[str] = DEFAULT_FORBIDDEN_DIRS) -> list[str]:
    """The project's development folders, where they would land in the image."""
    roots = {working_dir or "/", "/app", "/src"}
    return sorted(str(PurePosixPath(root) / name) for root in roots for name in project_dir_names)
