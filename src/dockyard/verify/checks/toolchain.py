"""The check that the runtime image ships no build toolchain: installers (uv, pip), compilers, build
systems, `-dev` packages and C headers, or the builder stage's source tree.

What belongs to the base interpreter's own installation (the pip and the C headers a python:3.x image
installs under its prefix, /usr/local) is part of the base image: reported, never failed. Anything the
project's lock installs at runtime is the app's, and `verify.build-tools-allow` (globs matched against
a tool's name, its package and its path) allows the rest.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.results import Outcome
from dockyard.verify.facts import Facts, Verdict, failed, mb, passed, require

INSTALLER_DISTRIBUTIONS = frozenset({"pip", "uv", "pipx", "poetry", "pdm"})


@dataclass
class _Findings:
    findings: list[str] = field(default_factory=list)  # each in full, for the details
    short: list[str] = field(default_factory=list)  # each in a few words, for the evidence
    notes: list[str] = field(default_factory=list)  # looked at and accepted, with the reason

    def add(self, short: str, full: str) -> None:
        self.short.append(short)
        self.findings.append(full)


def _tool_name(tool: Mapping[str, Any]) -> str:
    """What people call the tool: the file it runs, without a target triplet or a version."""
    name = str(tool.get("real") or tool.get("path") or "").rsplit("/", 1)[-1]
    return re.sub(r"-\d+(\.\d+)*$", "", re.sub(r"^[a-z0-9_]+-linux-gnu-", "", name)) or str(tool.get("name"))


def _allowed(allow: Sequence[str], *names: str | None) -> bool:
    return any(fnmatch.fnmatch(name.lower(), pattern.lower()) for pattern in allow for name in names if name)


def _size(item: Mapping[str, Any]) -> str:
    if item.get("package"):
        size = item.get("package_size")
        return f"dpkg {item['package']}" + (f" {mb(int(size))}" if size else "")
    return mb(int(item.get("size") or 0))


def _grouped(tools: Iterable[Mapping[str, Any]]) -> list[tuple[list[Mapping[str, Any]], Mapping[str, Any]]]:
    """Tools by the file they run (cc, gcc and gcc-14 are one compiler)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for tool in tools:
        groups.setdefault(str(tool.get("real") or tool.get("path")), []).append(tool)
    return [(members, members[0]) for members in groups.values()]


def _run_by_the_app(probe: Mapping[str, Any]) -> set[str]:
    """The executables the app's command runs on its way to the app (`uv run ...`: uv): its own tools."""
    app = probe.get("app") or {}
    ran = {str(step).split(" -> ")[-1] for step in app.get("steps") or [] if " -> " in str(step)}
    ran |= {
        str(p.get("path")) for p in (probe.get("privileged") or {}).get("execution_path", []) if p.get("path")
    }
    return ran


def _tool_findings(facts: Facts, found: Mapping[str, Any], out: _Findings) -> None:
    allow = facts.settings.verify.build_tools_allow
    runtime = set(facts.locked.runtime) if facts.locked is not None else set()
    ran = _run_by_the_app(facts.probe or {})
    for members, tool in _grouped(found.get("tools") or []):
        names = sorted({str(m["name"]) for m in members})
        paths = sorted({str(m["path"]) for m in members})
        shown = f"{', '.join(names)} ({', '.join(paths[:3])} -> {tool.get('real')}, {_size(tool)})"
        if _allowed(allow, *names, tool.get("package"), *paths):
            out.notes.append(f"allowed: {shown}")
        elif ran & {*paths, str(tool.get("real"))}:
            out.notes.append(f"run by the app's command: {shown}")
        elif all(m.get("in_base_python") for m in members):
            out.notes.append(f"part of the base interpreter's installation: {shown}")
        elif tool.get("kind") == "installer" and any(re.sub(r"[\d.]+$", "", n) in runtime for n in names):
            out.notes.append(f"a runtime dependency in uv.lock: {shown}")
        else:
            size = tool.get("package_size") or tool.get("size") or 0
            out.add(f"{_tool_name(tool)} ({mb(int(size))})", f"{tool.get('kind', 'tool')} {shown}")


def _installer_findings(facts: Facts, probe: Mapping[str, Any], out: _Findings) -> None:
    """pip or uv as distributions the app's interpreter sees (`python -m pip` needs no executable)."""
    allow = facts.settings.verify.build_tools_allow
    runtime = set(facts.locked.runtime) if facts.locked is not None else set()
    in_venv = bool((probe.get("python") or {}).get("in_venv"))
    for env in probe.get("environments", []):
        for dist in env.get("distributions", []) if env.get("active") else []:
            name = dist.get("name")
            if name not in INSTALLER_DISTRIBUTIONS or dist.get("shadowed"):
                continue
            shown = f"{name} {dist.get('version')} in {env['path']} ({mb(int(dist.get('size') or 0))})"
            if _allowed(allow, name) or name in runtime:
                out.notes.append(f"allowed: {shown}")
            elif not in_venv:
                out.notes.append(f"part of the base interpreter's installation: {shown}")
            else:
                out.add(f"{name} in the app's environment", f"installer {shown}, in the app's environment")


def _package_findings(facts: Facts, found: Mapping[str, Any], out: _Findings) -> None:
    """-dev packages, C headers and the builder's source tree."""
    allow = facts.settings.verify.build_tools_allow
    for package in found.get("dev_packages") or []:
        shown = f"{package['name']} ({package.get('manager')}, {mb(int(package.get('size') or 0))})"
        if _allowed(allow, package["name"]):
            out.notes.append(f"allowed: {shown}")
        else:
            out.add(package["name"], f"-dev package {shown}")
    for header in found.get("headers") or []:
        shown = f"{header['path']} ({mb(int(header.get('size') or 0))})"
        if header.get("package"):
            continue  # its -dev package is the finding
        if header.get("in_base_python") or _allowed(allow, "Python.h", header["path"]):
            out.notes.append(f"C headers of the base interpreter: {shown}")
        else:
            out.add(header["path"], f"C headers {shown}")
    for tree in found.get("source_trees") or []:
        shown = f"{tree['path']} ({', '.join(tree.get('holds', []))}; {mb(int(tree.get('size') or 0))})"
        if tree.get("app"):
            out.notes.append(f"the app's own project folder: {shown}")
        elif _allowed(allow, tree["path"], "source-tree"):
            out.notes.append(f"allowed: {shown}")
        else:
            full = f"builder source tree {shown}: the app runs from its installed copy"
            out.add(f"source tree {tree['path']}", full)


def check_no_build_tools(facts: Facts) -> Verdict:
    probe = require(facts.probe)
    found = probe.get("build_tools") or {}
    if "error" in found:
        return Verdict(Outcome.ERROR, f"the probe could not look for build tools: {found['error']}")
    out = _Findings()
    _tool_findings(facts, found, out)
    _installer_findings(facts, probe, out)
    _package_findings(facts, found, out)
    if out.findings:
        return failed(
            f"the runtime image ships build tools: {', '.join(out.short)}", *out.findings, *out.notes
        )
    summary = "no uv, pip, compilers, build systems, -dev packages or builder source tree"
    return passed(summary + (f" ({len(out.notes)} noted)" if out.notes else ""), *out.notes)
