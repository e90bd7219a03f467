"""Peak memory of no-build-secrets' scan with a large secret file: streamed prints against the old way.

    uv run python bench/secret_memory.py [IMAGE] [--size 1GiB]    # default: the project's image

Writes a random secret file of `--size` to a temporary directory, then runs, each in a process of its
own (its peak resident set size read from the kernel's accounting of that child):

* the export scan alone (the floor: no secret);
* dockyard's scan: the secret read once into a `SecretPrint`, the export streamed through the hooks;
* the way before: the secret read whole into memory and searched for as one needle.

The target: the streamed scan's peak stays under 150 MB whatever the secret's size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dockyard import config, engine
from dockyard.config import parse_size
from dockyard.credentials.fingerprint import SecretHook, SecretPrint
from dockyard.credentials.layers import CredentialHook
from dockyard.image import metadata as images

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "floor": "export scan, no secret",
    "streamed": "streamed print (dockyard)",
    "whole": "secret read whole (before)",
}


def child(mode: str, secret: Path, ref: str) -> None:
    settings = config.load(ROOT)
    docker = engine.connect(settings.docker)
    info = images.inspect_image(docker, ref)
    started = time.perf_counter()
    found = 0
    if mode == "floor":
        images.scan_export(docker, info.id)
    elif mode == "streamed":
        prints = [SecretPrint.from_file("secret", secret)]
        hook, owners = SecretHook(prints, 0), CredentialHook(0, content=False)
        scan = images.scan_export(docker, info.id, hooks=[owners, hook], diff_ids=info.diff_ids)
        found = len(hook.result(scan, owners.owned, set()))
    else:
        scan = images.scan_export(docker, info.id, needles={"secret": secret.read_bytes()})
        found = len(scan.hits)
    print(json.dumps({"seconds": time.perf_counter() - started, "found": found}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?")
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SECRET", "REF"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2])
        return 0
    settings = config.load(ROOT)
    ref = args.image or f"{settings.image}:{settings.project_version}"
    size = parse_size(args.size)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as scratch:
        secret = Path(scratch) / "secret.bin"
        with secret.open("wb") as out:
            for _ in range(size >> 20):
                out.write(os.urandom(1 << 20))
        for mode, title in MODES.items():
            process = subprocess.Popen(
                [sys.executable, __file__, "--child", mode, str(secret), ref],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert process.stdout is not None
            answer = process.stdout.read()
            _, status, usage = os.wait4(process.pid, 0)
            if status != 0:
                raise SystemExit(f"{mode} failed with status {status}")
            result = json.loads(answer)
            rows.append((title, usage.ru_maxrss / 1024, result["seconds"], result["found"]))
    console = Console(highlight=False, width=100)
    console.print(f"secret-memory bench: {ref}, a random {args.size} secret file ({size} bytes)")
    table = Table()
    for column in ("what", "peak RSS MB", "seconds", "matches"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for title, rss, seconds, found in rows:
        table.add_row(title, f"{rss:.0f}", f"{seconds:.2f}", str(found))
    console.print(table)
    streamed = rows[1][1]
    verdict = "within" if streamed < 150 else "OVER"
    console.print(f"streamed scan peak {streamed:.0f} MB: {verdict} the 150 MB target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
