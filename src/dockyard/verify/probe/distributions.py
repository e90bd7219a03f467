"""Installed distributions: their footprint, their RECORD checked against the disk, and where their
top-level import names really resolve."""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: never evaluated at runtime, so fine on Python 3.8
    PycCache = dict[str, dict[str, list[tuple[str, int]]]]  # directory -> {stem: [(pyc, size)]}

# probe: parts (these imports are dropped when source() joins the parts into one program)
from dockyard.verify.probe.common import (
    DIST_SUFFIXES,
    LIST_LIMIT,
    _canonical_name,
    _describe,
    _sha256_b64,
)

# probe: end parts

# The probe runs in images of ~20k files: os.path strings, not a pathlib object per entry.
# ruff: noqa: PTH112, PTH113, PTH116, PTH118, PTH119, PTH120, PTH123, PTH206, PTH208


def venv_root(site_dir: str) -> str | None:
    """The dir holding ``pyvenv.cfg`` above ``site_dir`` (``ROOT/lib/pythonX.Y/site-packages``)."""
    parent = site_dir
    for _ in range(3):
        parent = os.path.dirname(parent)
        if os.path.isfile(os.path.join(parent, "pyvenv.cfg")):
            return parent
    return None


def interpreter_ok(root: str) -> bool:
    """Whether the venv's interpreter resolves to an existing file in this filesystem."""
    return any(os.path.isfile(os.path.join(root, "bin", name)) for name in ("python", "python3"))


def _pycache(directory: str, cache: PycCache) -> dict[str, list[tuple[str, int]]]:
    """``{module stem: [(pyc path, size)]}`` for ``directory/__pycache__``, listed once."""
    found = cache.get(directory)
    if found is None:
        found = {}
        try:
            entries = list(os.scandir(os.path.join(directory, "__pycache__")))
        except OSError:  # no __pycache__: nothing to add
            entries = []
        for entry in entries:
            if entry.name.endswith(".pyc"):
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except OSError:  # vanished since listed
                    size = 0
                stem = entry.name.split(".", 1)[0]  # mod.cpython-313.opt-1.pyc -> mod
                found.setdefault(stem, []).append((entry.path, size))
        cache[directory] = found
    return found


class _Dist:
    """An installed distribution in a folder on the path, read the way ``importlib.metadata`` reads it
    (its ``PathDistribution``), without importing it (35 ms of a probe's start): the METADATA (or
    PKG-INFO, or an egg-info file itself) headers up to the first blank line, files of the metadata
    folder, entry_points.txt. Only ``files`` (a listing without RECORD: egg-info's) asks
    ``importlib.metadata``."""

    def __init__(self, path: str) -> None:
        self._path = path  # the .dist-info / .egg-info folder (or file)
        self._headers: dict[str, str] | None = None

    def read_text(self, filename: str) -> str | None:
        try:
            with open(
                os.path.join(self._path, filename) if filename else self._path, encoding="utf-8"
            ) as handle:
                return handle.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            return None

    @property
    def metadata(self) -> dict[str, str]:
        """The headers, the first of each name (as ``Message[name]`` gives it); a continued value
        keeps its lines."""
        if self._headers is None:
            text = self.read_text("METADATA") or self.read_text("PKG-INFO") or self.read_text("") or ""
            headers: dict[str, str] = {}
            last = None  # the header a continuation line belongs to, when it is the first of its name
            for line in text.splitlines():
                if not line.strip():
                    break
                if line[:1] in (" ", "\t"):
                    if last is not None:
                        headers[last] += "\n" + line
                    continue
                key, sep, value = line.partition(":")
                if not sep:
                    break
                key = key.strip()
                last = key if key not in headers else None
                headers.setdefault(key, value.strip())
            self._headers = headers
        return self._headers

    @property
    def version(self) -> str | None:
        return self.metadata.get("Version")

    def locate_file(self, path: str) -> str:
        parent = os.path.dirname(self._path)
        return os.path.join(parent, path) if path else parent

    @property
    def files(self) -> Any:
        import pathlib  # noqa: PLC0415
        from importlib import metadata  # noqa: PLC0415 - no RECORD: as importlib.metadata lists them

        return metadata.PathDistribution(pathlib.Path(self._path)).files

    @property
    def entry_points(self) -> list[_EntryPoint]:
        points, group = [], None
        for raw in (self.read_text("entry_points.txt") or "").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                group = line[1:-1].strip()
            elif group is not None:
                name, _, value = line.partition("=")
                points.append(_EntryPoint(name.strip(), value.strip(), group))
        return points


class _EntryPoint:
    def __init__(self, name: str, value: str, group: str) -> None:
        self.name, self.value, self.group = name, value, group


def find_distributions(entry: str) -> list[Any]:
    """The distributions ``importlib.metadata.distributions(path=[entry])`` finds, in its order (grouped
    by normalized name, each group in listing order), read by ``_Dist``; an entry that is not a plain
    folder (a zip, an .egg) goes to ``importlib.metadata`` itself."""
    if not os.path.isdir(entry) or entry.lower().endswith(".egg"):
        from importlib import metadata  # noqa: PLC0415

        return list(metadata.distributions(path=[entry]))
    try:
        children = os.listdir(entry)
    except OSError:
        return []
    grouped: dict[str, list[Any]] = {}
    for child in children:
        low = child.lower()
        if low.endswith(DIST_SUFFIXES):
            name = re.sub(r"[-_.]+", "_", low.rpartition(".")[0].partition("-")[0])
            grouped.setdefault(name, []).append(_Dist(os.path.join(entry, child)))
    return [dist for dists in grouped.values() for dist in dists]


def _dist_name(dist: Any) -> str | None:
    meta = dist.metadata
    if meta is not None and "Name" in meta and meta["Name"]:
        return _canonical_name(str(meta["Name"]))
    folder = os.path.basename(str(getattr(dist, "_path", "")))  # foo-1.0.dist-info
    return _canonical_name(folder.split("-", 1)[0]) if folder else None


def _record_rows(dist: Any) -> list[tuple[str, str, str]] | None:
    """RECORD's rows (path, hash, size), or None without a RECORD (read directly: ``files`` drops
    missing files on Python >= 3.12)."""
    text = dist.read_text("RECORD")
    if text is None:
        return None
    import csv  # noqa: PLC0415 - only when a RECORD is read

    rows = []
    for row in csv.reader(text.splitlines()):
        if row:
            rows.append((row[0], row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else ""))
    return rows


def _listed(dist: Any) -> tuple[str, list[tuple[str, str, str]], bool]:
    """(base folder, rows with absolute paths, whether they come from a RECORD)."""
    base = str(dist.locate_file(""))
    rows = _record_rows(dist)
    from_record = rows is not None
    if rows is None:
        rows = [(str(item), "", "") for item in dist.files or []]
    absolute = [(os.path.normpath(os.path.join(base, p)), h, s) for p, h, s in rows]
    return base, absolute, from_record


# A missing file of these kinds leaves the code intact: slimming steps remove them on purpose.
def _prunable(relative: str) -> bool:
    parts = relative.replace("\\", "/").split("/")
    name = parts[-1]
    return (
        name.endswith((".pyc", ".pyi"))
        or name == "py.typed"
        or "__pycache__" in parts
        or any(part in ("tests", "test") for part in parts[:-1])
        or (len(parts) > 2 and parts[0].endswith(DIST_SUFFIXES) and parts[1] == "licenses")
    )


def verify_record(base: str, rows: list[tuple[str, str, str]], hashes: bool) -> dict[str, Any]:
    """RECORD against the disk: missing files (apart from prunable ones), and files whose size or
    sha256 differs from what RECORD says (``.pyc`` excepted: installers compile after recording)."""
    missing: list[str] = []
    pruned = 0
    changed: list[str] = []
    unreadable: list[str] = []
    checked = hashed = 0
    for path, digest, size in rows:
        relative = os.path.relpath(path, base)
        if relative.endswith(".dist-info/RECORD") or relative.endswith(".dist-info" + os.sep + "RECORD"):
            continue
        checked += 1
        try:
            st = os.stat(path)
        except PermissionError:
            unreadable.append(path)
            continue
        except OSError:
            if _prunable(relative):
                pruned += 1
            else:
                missing.append(path)
            continue
        if path.endswith(".pyc"):
            continue
        if size.isdigit() and int(size) != st.st_size:
            changed.append(path)
            continue
        if hashes and digest.startswith("sha256="):
            hashed += 1
            try:
                if _sha256_b64(path) != digest[len("sha256=") :]:
                    changed.append(path)
            except OSError:
                unreadable.append(path)
    return {
        "checked": checked,
        "hashed": hashed,
        "missing": missing[:LIST_LIMIT],
        "missing_count": len(missing),
        "pruned": pruned,
        "changed": changed[:LIST_LIMIT],
        "changed_count": len(changed),
        "unreadable": unreadable[:LIST_LIMIT],
        "unreadable_count": len(unreadable),
    }


_MODULE_FILE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z0-9_-]+)?\.(?:py|so|pyd|pyc)$")


def top_level_names(base: str, rows: list[tuple[str, str, str]]) -> dict[str, str]:
    """{import name: its file or folder} of what a distribution installed at its top level."""
    names: dict[str, str] = {}
    for path, _, _ in rows:
        relative = os.path.relpath(path, base)
        parts = relative.split(os.sep)
        if parts[0] in ("..", "__pycache__") or parts[0].endswith((*DIST_SUFFIXES, ".data")):
            continue
        if len(parts) == 1:
            match = _MODULE_FILE.match(parts[0])
            if match and not parts[0].endswith(".pyc"):
                names.setdefault(match.group(1), path)
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", parts[0]) and parts[-1].endswith((".py", ".so")):
            names.setdefault(parts[0], os.path.join(base, parts[0]))
    return names


def resolve_imports(names: dict[str, str], files: set[str]) -> list[dict[str, Any]]:
    """Where each top-level name really imports from on this sys.path (``find_spec``, nothing
    imported but parents), and whether that is the distribution's own file."""
    import importlib.util  # noqa: PLC0415 - app probe only

    found = []
    for name, own in sorted(names.items()):
        item: dict[str, Any] = {"name": name, "own": own, "origin": None, "ok": False}
        try:
            spec = importlib.util.find_spec(name)
        except Exception as exc:  # a broken finder or parent: that name does not import
            item["error"] = _describe(exc)
            found.append(item)
            continue
        if spec is None:
            item["error"] = "not found"
        elif spec.origin and spec.origin not in ("namespace", "built-in", "frozen"):
            item["origin"] = spec.origin
            item["ok"] = os.path.realpath(spec.origin) in files
        else:
            locations = [os.path.realpath(p) for p in (spec.submodule_search_locations or [])]
            item["origin"] = spec.origin or (locations[0] if locations else None)
            item["locations"] = locations
            item["ok"] = os.path.realpath(own) in locations
        found.append(item)
    return found


def _editable(dist: Any) -> bool:
    try:
        text = dist.read_text("direct_url.json")
        return bool(text and json.loads(text).get("dir_info", {}).get("editable"))
    except (ValueError, AttributeError):
        return False


def distribution_record(
    dist: Any, cache: PycCache, verify: bool = False, footprint: bool = True
) -> dict[str, Any]:
    """Name, version, folder and on-disk footprint of one installed distribution; with ``verify``,
    its RECORD checked against the disk and its top-level import names resolved.

    Size is the bytes of every file its RECORD lists (missing ones count 0, counted in ``missing``)
    plus the ``__pycache__/<stem>.*.pyc`` files of its listed ``.py`` files, which a byte-compiling
    installer writes without listing them.
    """
    record: dict[str, Any] = {
        "name": None,
        "version": None,
        "path": str(getattr(dist, "_path", "")) or None,
        "size": 0,
        "files": 0,
        "missing": 0,
        "error": None,
    }
    try:
        record["name"] = _dist_name(dist)
        record["version"] = dist.version
        if not (footprint or verify):  # name and version are all that is asked
            record.update(size=None, files=None, missing=None)
            return record
        base, listed, from_record = _listed(dist)
    except Exception as exc:  # broken metadata of one distribution
        record["error"] = _describe(exc)
        return record
    record.update(_footprint(listed, cache) if footprint else {"size": None, "files": None, "missing": None})
    if verify:
        record["editable"] = _editable(dist)
        record["has_record"] = from_record
        if os.path.isdir(base):
            record["record"] = verify_record(base, listed, hashes=from_record)
            if not record["editable"]:
                real_files = {os.path.realpath(p) for p, _, _ in listed}
                record["imports"] = resolve_imports(top_level_names(base, listed), real_files)
        else:
            record["record"] = None  # inside a zip: not verified file by file
    return record


def _footprint(listed: list[tuple[str, str, str]], cache: PycCache) -> dict[str, int]:
    """Bytes and files of what RECORD lists (missing ones counted apart), with the listed ``.py``
    files' bytecode."""
    seen: set[str] = set()
    size = files = missing = 0
    py_files: list[str] = []
    for path, _, _ in listed:
        if path in seen:
            continue
        seen.add(path)
        try:
            size += os.lstat(path).st_size
        except OSError:
            missing += 1
            continue
        files += 1
        if path.endswith(".py"):
            py_files.append(path)
    for path in py_files:
        directory, filename = os.path.split(path)
        for pyc, pyc_size in _pycache(directory, cache).get(filename[:-3], ()):
            if pyc not in seen:
                seen.add(pyc)
                size += pyc_size
                files += 1
    return {"size": size, "files": files, "missing": missing}


def _distributions_at(
    entry: str, verify: set[str] | None, cache: PycCache, footprint: bool = True
) -> list[dict[str, Any]]:
    found = []
    dists = find_distributions(entry)
    for dist in dists:
        name = _dist_name(dist)
        wanted = verify is not None and (name in verify or "*" in verify)
        found.append(distribution_record(dist, cache, verify=wanted, footprint=footprint))
    if any((r.get("record") or {}).get("changed_count") for r in found):
        _settle_overwrites(found, dists)
    found.sort(key=lambda r: (str(r["name"]), str(r["version"])))
    return found


def _settle_overwrites(found: list[dict[str, Any]], dists: list[Any]) -> None:
    """A file two distributions of one environment both install (a console script: fastapi and
    fastapi-cli both write bin/fastapi) holds what the one installed last wrote: for the other it was
    overwritten, not changed. Such files move from ``changed`` to ``overwritten`` (with their owner)."""
    owners: dict[str, list[tuple[str, str]]] = {}
    for dist in dists:
        try:
            name, (_, rows, _) = _dist_name(dist), _listed(dist)
        except Exception:  # noqa: S112 - broken metadata is reported by distribution_record
            continue
        for path, digest, _ in rows:
            if digest.startswith("sha256="):
                owners.setdefault(os.path.realpath(path), []).append((str(name), digest[len("sha256=") :]))
    for record in found:
        check = record.get("record") or {}
        if not check.get("changed_count"):
            continue
        kept, moved = [], []
        for path in check.get("changed", []):
            try:
                actual = _sha256_b64(path)
            except OSError:
                kept.append(path)
                continue
            by = next(
                (n for n, d in owners.get(os.path.realpath(path), []) if n != record["name"] and d == actual),
                None,
            )
            if by is None:
                kept.append(path)
            else:
                moved.append({"path": path, "by": by})
        if moved:
            check["changed"] = kept
            check["changed_count"] -= len(moved)
            check["overwritten"] = moved


def environment(
    path: str, active: bool, verify: set[str] | None = None, footprint: bool = True
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "path": path,
        "active": active,
        "venv_root": None,
        "interpreter_ok": None,
        "distributions": [],
        "error": None,
    }
    try:
        root = venv_root(path)
        record["venv_root"] = root
        if root is not None:
            record["interpreter_ok"] = interpreter_ok(root)
        record["distributions"] = _distributions_at(path, verify, {}, footprint)
    except Exception as exc:
        record["error"] = _describe(exc)
    return record
