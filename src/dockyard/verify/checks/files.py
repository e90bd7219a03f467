"""Checks of what files the image ships: no stray development files, keys or build secrets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from dockyard.results import Outcome
from dockyard.verify.facts import ExportFacts, Facts, Verdict, failed, mb, passed, require

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
    """The build's secrets (the CA bundle, `verify.secrets`) in no added layer, however copied (see
    `dockyard.credentials.fingerprint`), nor in ENV, labels or history; and nothing at a secret
    mount's path (`/run/secrets/...`) written into a layer or named by an ENV."""
    export = require(facts.export)
    found = _secrets_in_metadata(facts) + _secrets_in_layers(export)
    added = len(export.scan.layers) - export.base_layers
    if found:
        return failed(f"build secret found in the image: {found[0]}", *found)
    if not facts.secrets:
        return passed(
            f"no build secrets configured (ca-bundle, verify.secrets); nothing under /run/secrets in "
            f"{added} added layers, no ENV pointing there"
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
    return passed(evidence, *public)


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


def forbidden_paths(working_dir: str, project_dir_names: Sequence[str] = DEFAULT_FORBIDDEN_DIRS) -> list[str]:
    """The project's development folders, where they would land in the image."""
    roots = {working_dir or "/", "/app", "/src"}
    return sorted(str(PurePosixPath(root) / name) for root in roots for name in project_dir_names)
