"""How fast dockyard stops on Ctrl-C or SIGTERM, cleanup included, next to how long the work it cut
short would have gone on.

    uv run python bench/interrupt.py [--runs 3] [--at 0.5 2 5] [--image MANY_FILES_IMAGE]

For `build` (a RUN step that sleeps), `verify` (a healthcheck that never passes while the layer-cache
check builds a scratch copy that sleeps too) and `size-report --deep` (the export of an image of
200,000 files, built here unless given), it starts `python -m dockyard` as a user would, sends SIGINT
(odd runs) or SIGTERM (even runs) at each moment, and times the exit. It then checks what was left:
containers and images carrying the bench's label, files in the run's TMPDIR. The last column is the
uninterrupted `--deep` time on the same image: what an interrupt used to wait out.

Everything the bench makes carries the label `dev.dockyard.bench-interrupt=<id>` and is removed at
the end; the project is a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import docker.errors as docker_errors
from rich.console import Console
from rich.table import Table

from dockyard import engine
from dockyard.build import buildkit
from dockyard.config import effective_environment

LABEL = "dev.dockyard.bench-interrupt"
RUN = uuid.uuid4().hex[:10]

PYPROJECT = """\
[project]
name = "benchapp"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = []

[tool.dockyard]
image = "dockyard-bench/interrupt-app"
service = true

[tool.dockyard.verify]
healthcheck-timeout = 300
layer-cache-touch = "src/benchapp/__init__.py"
"""
DOCKERFILE = """\
ARG PYTHON_IMAGE=python:3.13-slim
FROM ${PYTHON_IMAGE}
ARG BENCH=none
ARG SLOW=0
LABEL dev.dockyard.bench-interrupt=${BENCH}
RUN useradd --uid 10001 app
COPY . /app
RUN sleep ${SLOW}
USER 10001
HEALTHCHECK --interval=1s CMD ["python3", "-c", "raise SystemExit(1)"]
CMD ["sleep", "infinity"]
"""
MANY = """\
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
RUN python3 -c "import os; [os.makedirs(f'/data/{i // 1000}', exist_ok=True) or \\
    open(f'/data/{i // 1000}/{i}', 'w').write('x') for i in range(200000)]"
RUN rm -rf /data/1*
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def project(root: Path) -> Path:
    (root / "src" / "benchapp").mkdir(parents=True)
    (root / "src" / "benchapp" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / ".dockerignore").write_text(".git\n")
    subprocess.run(["uv", "lock", "--offline", "--quiet"], cwd=root, check=True)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench")
    return root


def build(docker: engine.Engine, machine: dict[str, str], context: Path, dockerfile: str, tag: str) -> str:
    (context / "Dockerfile").write_text(textwrap.dedent(dockerfile))
    request = buildkit.BuildRequest(
        dockerfile=context / "Dockerfile",
        context=context,
        tags=(tag,),
        build_args={
            "PYTHON_IMAGE": machine.get("DOCKYARD_BUILD_ARG_PYTHON_IMAGE", "python:3.13-slim"),
            "BENCH": RUN,
        },
        labels={LABEL: RUN, engine.LABEL_MANAGED: "true"},
    )
    return buildkit.build(docker, request).tags[0]


def leftovers(docker: engine.Engine) -> int:
    containers = docker.client.api.containers(all=True, filters={"label": f"{LABEL}={RUN}"})
    images = [
        i for i in docker.client.api.images(filters={"label": f"{LABEL}={RUN}"}) if not i.get("RepoTags")
    ]
    return len(containers) + len(images)


def stop_time(
    argv: list[str], cwd: Path, at: float, sig: signal.Signals, env: dict[str, str]
) -> tuple[float, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard", *argv], cwd=cwd, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(at)
    sent = time.monotonic()
    proc.send_signal(sig)
    code = proc.wait(timeout=300)
    return time.monotonic() - sent, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--at", type=float, nargs="+", default=[0.5, 2.0, 5.0])
    parser.add_argument("--image", help="an image with very many files (default: build one, ~1 min)")
    args = parser.parse_args()
    machine = effective_environment()
    docker = engine.connect(machine.get("DOCKYARD_DOCKER"))
    console = Console()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as scratch:
        root = Path(scratch)
        app = project(root / "app")
        many = args.image
        try:
            if many is None:
                (root / "many").mkdir()
                console.print("building an image of 200,000 files...")
                many = build(docker, machine, root / "many", MANY, f"dockyard-bench/interrupt-many:{RUN}")
            app_image = build(docker, machine, app, DOCKERFILE, f"dockyard-bench/interrupt-app:{RUN}")
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "dockyard", "size-report", "--deep", many], cwd=app,
                env={**os.environ, "XDG_STATE_HOME": str(root / "state")},  # its history: the bench's
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
            )  # fmt: skip
            deep_whole = time.monotonic() - started
            commands = {
                "build": ["build", "--build-arg", "SLOW=120", "--tag", f"dockyard-bench/interrupt-b:{RUN}"],
                "verify": ["verify", app_image, "--skip", "smoke"],
                "size-report --deep": ["size-report", "--deep", many],
            }
            table = Table(title="seconds from the signal to dockyard's exit (cleanup included)")
            for column in ("command", *(f"at {at:g} s" for at in args.at), "exit codes", "left behind"):
                table.add_column(column, justify="left" if column == "command" else "right")
            for name, argv in commands.items():
                cells, codes, left = [], set(), 0
                for at in args.at:
                    times = []
                    for run in range(args.runs):
                        temp = root / f"tmp-{name.split()[0]}-{at}-{run}"
                        temp.mkdir()
                        env = {
                            **os.environ,
                            "TMPDIR": str(temp),
                            "DOCKYARD_BUILD_ARG_BENCH": RUN,
                            "DOCKYARD_BUILD_ARG_SLOW": "120",
                            "XDG_STATE_HOME": str(root / "state"),
                        }
                        sig = signal.SIGINT if run % 2 == 0 else signal.SIGTERM
                        seconds, code = stop_time(argv, app, at, sig, env)
                        times.append(seconds)
                        codes.add(code)
                        left += leftovers(docker) + len(list(temp.iterdir()))
                    cells.append(f"{statistics.median(times):.2f} (max {max(times):.2f})")
                table.add_row(name, *cells, ", ".join(map(str, sorted(codes))), str(left))
            console.print(table)
            console.print(f"size-report --deep uninterrupted on the same image: {deep_whole:.1f} s")
        finally:
            for image in docker.client.api.images(filters={"label": f"{LABEL}={RUN}"}):
                for ref in [*(image.get("RepoTags") or []), image["Id"]]:
                    with contextlib.suppress(docker_errors.APIError):
                        docker.client.images.remove(ref, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
