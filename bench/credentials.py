"""What the credential scan adds to the export scan verify already makes, side by side in one run.

    uv run python bench/credentials.py [IMAGE] [--runs N]    # default: the project's image

Rows, interleaved per round so a busy engine weighs on all alike:

* the export scan as `no-build-secrets` runs it (the machine's CA bundle as the build secret, the
  distribution lists read), without the credential scan;
* the same single pass with the credential scan of the added layers (what `verify` runs when
  `no-credentials` and `no-build-secrets` are both selected);
* the same two from an export saved to a file, so the engine's own time is out and only dockyard's
  reading and matching are compared (wall and CPU seconds);
* the same two read from overlay2's layer directories instead of an export (what `verify` does when
  the engine is local and this process is root: `verify.layer-source = "auto"`), when they can be;
* for reference, detect-secrets' own CLI (`detect-secrets scan --all-files`) over an extracted copy
  of the added layers' files, once, with the number of findings it reports there.

The ratio the target is about: added seconds of the credential scan / seconds of the scan without it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dockyard import config, engine
from dockyard.credentials.fingerprint import SecretHook, SecretPrint
from dockyard.credentials.layers import CredentialHook
from dockyard.credentials.rules import rule_set
from dockyard.image import export as exports
from dockyard.image import layerdirs
from dockyard.image import metadata as images
from dockyard.image.export import ContentHook

ROOT = Path(__file__).resolve().parents[1]


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(1 << 20), b"")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="image to scan (default: the project's, latest tag)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    settings = config.load(ROOT)
    docker = engine.connect(settings.docker)
    ref = args.image or f"{settings.image}:{settings.project_version}"
    info = images.inspect_image(docker, ref)
    base = images.find_base(docker, settings, info, images.subject_name(ref, info))
    base_layers = images.common_prefix(info.diff_ids, base.diff_ids)
    prints = [SecretPrint.from_file(settings.ca_secret_id, settings.ca_bundle)] if settings.ca_bundle else []
    own = (settings.project_name, settings.package)
    rule_set()  # compiled once per process, as in verify

    def hooks(credentials: bool) -> list[ContentHook]:
        owners = CredentialHook(base_layers, own, content=credentials)
        return [owners, SecretHook(prints, base_layers)] if prints else [owners]

    def engine_scan(credentials: bool) -> None:
        images.scan_export(docker, info.id, hooks=hooks(credentials), diff_ids=info.diff_ids)

    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as scratch:
        saved = Path(scratch) / "image.tar"
        with saved.open("wb") as out:
            for chunk in docker.image(info.id).save(chunk_size=1 << 20):
                out.write(chunk)

        def file_scan(credentials: bool) -> None:
            exports.scan_export(file_chunks(saved), hooks=hooks(credentials), diff_ids=info.diff_ids)

        cases: dict[str, Callable[[], None]] = {
            "engine export, no-build-secrets scan": lambda: engine_scan(False),
            "engine export, + credential scan": lambda: engine_scan(True),
            "saved export, no-build-secrets scan": lambda: file_scan(False),
            "saved export, + credential scan": lambda: file_scan(True),
        }
        dirs, why = directory_cases(info, hooks, cases)
        wall: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for run in cases.values():  # warm-up: page cache, connections
            run()
        for _ in range(args.runs):
            for name, run in cases.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                run()
                wall[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - started_cpu)
        reference = detect_secrets_reference(saved, base_layers, Path(scratch) / "added")

    console = Console(highlight=False, width=110)
    names = ", ".join(p.name for p in prints) or "none"
    console.print(
        f"credential-scan bench: {ref} ({info.id.removeprefix('sha256:')[:12]}), {len(info.diff_ids)} layers "
        f"({len(info.diff_ids) - base_layers} added), build secrets: {names}; {args.runs} runs each"
    )
    table = Table()
    for column, justify in (("what", "left"), ("median wall s", "right"), ("median CPU s", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name in cases:
        table.add_row(name, f"{statistics.median(wall[name]):.3f}", f"{statistics.median(cpu[name]):.3f}")
    seconds, findings, files = reference
    table.add_row(
        f"detect-secrets scan --all-files, added layers' files ({files} files)", f"{seconds:.3f}", ""
    )
    console.print(table)
    if dirs is None:
        console.print(f"layer directories: not read ({why})")
    for where in ("engine export", "saved export", "layer directories")[: 3 if dirs is not None else 2]:
        without = statistics.median(wall[f"{where}, no-build-secrets scan"])
        with_creds = statistics.median(wall[f"{where}, + credential scan"])
        cpu_without = statistics.median(cpu[f"{where}, no-build-secrets scan"])
        cpu_with = statistics.median(cpu[f"{where}, + credential scan"])
        console.print(
            f"{where}: the credential scan adds {with_creds - without:+.3f} s wall "
            f"({(with_creds - without) / without:+.0%}), {cpu_with - cpu_without:+.3f} s CPU "
            f"({(cpu_with - cpu_without) / cpu_without:+.0%} of the scan's CPU)"
        )
    console.print(
        f"detect-secrets reported {findings} findings in the added layers' files, installed distributions "
        "included (no-credentials reports none on this image)"
    )
    return 0


def directory_cases(
    info: images.ImageInfo,
    hooks: Callable[[bool], list[ContentHook]],
    cases: dict[str, Callable[[], None]],
) -> tuple[layerdirs.LayerDirs | None, str]:
    """Add the layer-directory rows when the image's directories can be read here; else say why."""
    try:
        found = layerdirs.locate(info.graph_driver, info.diff_ids)
    except layerdirs.LayerDirsUnusable as exc:
        return None, exc.message

    def dir_scan(credentials: bool) -> None:
        layerdirs.scan_layer_dirs(found, hooks=hooks(credentials))

    cases["layer directories, no-build-secrets scan"] = lambda: dir_scan(False)
    cases["layer directories, + credential scan"] = lambda: dir_scan(True)
    return found, ""


def detect_secrets_reference(saved: Path, base_layers: int, target: Path) -> tuple[float, int, int]:
    """Extract the added layers' regular files and time detect-secrets' CLI over them."""
    target.mkdir()
    with tarfile.open(saved) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        files = 0
        for index, member in enumerate(manifest[0]["Layers"]):
            if index < base_layers:
                continue
            with tarfile.open(fileobj=outer.extractfile(member)) as layer:
                for entry in layer:
                    if entry.isreg() and not entry.name.rsplit("/", 1)[-1].startswith(".wh."):
                        layer.extract(entry, target / str(index), filter="data")
                        files += 1
    cli = Path(sys.executable).with_name("detect-secrets")
    started = time.perf_counter()
    # run from inside the copy: detect-secrets leaves out paths outside its working directory
    argv = [str(cli), "scan", "--all-files", "."]
    done = subprocess.run(argv, cwd=target, capture_output=True, text=True, check=True, timeout=3600)
    seconds = time.perf_counter() - started
    results = json.loads(done.stdout).get("results", {})
    return seconds, sum(len(found) for found in results.values()), files


if __name__ == "__main__":
    raise SystemExit(main())
