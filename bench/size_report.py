"""Time `size-report` on one image, side by side in one run: the metadata path without and with the
distributions probe, `--deep`, and a plain `docker save` of the same image.

    uv run python bench/size_report.py [IMAGE] [--runs N]    # default: the project's image

Runs are interleaved (one of each per round) so a busy disk or engine weighs on all of them alike;
the table shows the median and the fastest run of each. The report's history is read, never written.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import humanize
from rich.console import Console
from rich.table import Table

from dockyard import config, engine
from dockyard.sizes import history as size_history
from dockyard.sizes import model as size_model
from dockyard.sizes import report as sizes

ROOT = Path(__file__).resolve().parents[1]


def docker_save(docker: engine.Engine, ref: str) -> None:
    """`docker save IMAGE`, its output discarded, through the CLI dockyard builds with.

    Not `docker save -o /dev/null`: the CLI (20.10 here) writes a temporary file beside the output and
    renames it over the output, which would replace /dev/null itself when run as root. Not through
    dockyard.process either: it captures output as text, and this is 100+ MB of tar to throw away.
    """
    done = subprocess.run(
        [docker.cli.path, "save", ref],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"docker save {ref} failed: {done.stderr.decode(errors='replace').strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="image to report on (default: the project's image)")
    parser.add_argument("--runs", type=int, default=5, help="rounds of measurements (default 5)")
    args = parser.parse_args()
    settings = config.load(ROOT)
    docker = engine.connect(settings.docker)
    ref = args.image or size_history.default_ref(
        docker, settings, size_history.read_history(size_history.history_path(settings))
    )
    silent = Console(file=io.StringIO(), width=120)

    def report(*, deep: bool, distributions: bool) -> size_model.SizeReport:
        return sizes.size_report(
            docker, settings, ref, deep=deep, console=silent, json_path=None, markdown_path=None,
            distributions=distributions, record=False,
        )  # fmt: skip

    cases: dict[str, Callable[[], object]] = {
        "metadata, no probe": lambda: report(deep=False, distributions=False),
        "metadata + distributions probe": lambda: report(deep=False, distributions=True),
        "--deep, no probe": lambda: report(deep=True, distributions=False),
        "--deep (probe alongside)": lambda: report(deep=True, distributions=True),
        "docker save > /dev/null": lambda: docker_save(docker, ref),
    }
    report(deep=True, distributions=True)  # warm-up: connections, page cache
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    deep: list[size_model.SizeReport] = []
    for _ in range(args.runs):
        for name, run in cases.items():
            started = time.perf_counter()
            done = run()
            seconds[name].append(time.perf_counter() - started)
            if isinstance(done, size_model.SizeReport) and done.waste is not None:
                deep.append(done)

    last = deep[-1]
    export = last.waste.export_bytes if last.waste else 0
    console = Console(highlight=False, width=100)
    console.print(
        f"size-report bench: {ref} ({last.image_id.removeprefix('sha256:')[:12]}), "
        f"{humanize.naturalsize(last.total)} in {len(last.layers)} layers, export "
        f"{humanize.naturalsize(export)}; engine {docker.server_version()}, {docker.cli.describe()}; "
        f"{args.runs} runs each"
    )
    save = statistics.median(seconds["docker save > /dev/null"])
    table = Table()
    table.add_column("what")
    for column in ("median s", "fastest s", "vs docker save"):
        table.add_column(column, justify="right")
    for name, times in seconds.items():
        median = statistics.median(times)
        table.add_row(name, f"{median:.3f}", f"{min(times):.3f}", f"{median / save:.2f}x")
    console.print(table)
    metadata = statistics.median(r.timings["metadata"] for r in deep)
    scan = statistics.median(r.timings["deep"] for r in deep)
    console.print(
        f"inside --deep (medians): metadata {metadata * 1000:.1f} ms; export request + scan {scan:.2f} s "
        f"({humanize.naturalsize(export / scan if scan else 0)}/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
