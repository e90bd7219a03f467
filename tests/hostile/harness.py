"""The hostile-input suite's harness: projects in fresh git repositories, dockyard run as a subprocess
the way users run it (`python -m dockyard`, `python -m invoke`, `python -m nox`), and the checks every
row makes.

Every row asserts:
- the exit code;
- exactly one `dockyard: error:` line when it fails (none when it passes or is interrupted), and no
  `Traceback` anywhere;
- nothing left behind: no file of the project added, changed or removed (`git status` and a full tree
  snapshot, ignored files included), no temp directory (each run gets a TMPDIR of its own that must
  be empty afterwards), and for engine rows no container and no image carrying the row's label;
- no file outside the project read into an image: the engine project links to a file outside itself,
  and its Dockerfile fails the build if that file's bytes ever reach the image (every row that builds
  passes through that step).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABEL = "dev.dockyard.hostile-run"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LEAK_MARK = "HOSTILE" + "-LEAK-" + "MARK"  # built here so that no file of the suite spells it out whole

# Variables from the person running the tests that would change what dockyard does.
_DROPPED = ("GITHUB_STEP_SUMMARY", "COLUMNS", "FORCE_COLOR", "INVOKE_RUNTIME_CONFIG")


@dataclass(frozen=True)
class Ran:
    """One finished run of dockyard."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return ANSI.sub("", self.stdout + self.stderr)

    @property
    def error_lines(self) -> list[str]:
        return [
            line for line in ANSI.sub("", self.stderr).splitlines() if line.startswith("dockyard: error:")
        ]

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.code} in {self.seconds:.1f}s\n{self.output[-4000:]}"


def unprivileged() -> list[str]:
    """A command prefix under which permission bits hold: root without the capabilities that ignore
    them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH); nothing for anyone else."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("setpriv (util-linux) is needed to test permission errors as root")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


def environment(
    tmp: Path, state: Path, extra: Mapping[str, str] | None = None, *, machine: bool
) -> dict[str, str]:
    """A run's environment: the caller's, less dockyard's own variables (and those of CI services that
    would change the output), with a TMPDIR and a state directory of the run's own. Without `machine`,
    no machine file either: such a row needs no engine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_") and k not in _DROPPED}
    if machine and (file := os.environ.get("DOCKYARD_MACHINE_FILE")):
        env["DOCKYARD_MACHINE_FILE"] = file
    if not machine:
        env["DOCKYARD_MACHINE_FILE"] = str(tmp.parent / "no-machine-file")
    env.update(TMPDIR=str(tmp), XDG_STATE_HOME=str(state), NO_COLOR="1", TERM="dumb", CI="true")
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    door: str = "cli",
    prefix: Sequence[str] = (),
    timeout: float = 600,
) -> Ran:
    """Run a door of dockyard to completion as a subprocess (real exit codes, real signals)."""
    module = {"cli": "dockyard", "invoke": "invoke", "nox": "nox"}[door]
    command = [*prefix, sys.executable, "-m", module, *argv]
    start = time.monotonic()
    done = subprocess.run(
        command, cwd=cwd, env=dict(env), capture_output=True, text=True, errors="replace", timeout=timeout,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    return Ran(tuple(argv), done.returncode, done.stdout, done.stderr, time.monotonic() - start)


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    return done.stdout


def make_repo(root: Path, files: Mapping[str, str | bytes]) -> Path:
    """A git repository at `root` holding `files` (a value starting with "->" is a symlink to the rest),
    all committed."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str) and content.startswith("->"):
            path.symlink_to(content[2:])
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=hostile", "-c", "user.email=hostile@example.com", "commit", "-qm", "fixture")
    return root


def tree(root: Path) -> dict[str, tuple[str, ...]]:
    """Every entry under `root` except `.git` (which `git status` itself refreshes), ignored files
    included: kind, mode, and content hash or link target."""
    entries: dict[str, tuple[str, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not (dirpath == str(root) and d == ".git")]
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            info = path.lstat()
            key = os.fsdecode(path.relative_to(root))
            if path.is_symlink():
                entries[key] = ("link", str(path.readlink()))
            elif path.is_dir():
                entries[key] = ("dir", oct(info.st_mode))
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                entries[key] = ("file", oct(info.st_mode), digest)
            else:
                entries[key] = ("other", oct(info.st_mode))
    return entries


@dataclass
class Untouched:
    """What must be the same after a run as before it: the project's tree and git's view of it."""

    root: Path
    before: dict[str, tuple[str, ...]]
    status: str

    @classmethod
    def of(cls, root: Path) -> Untouched:
        return cls(root, tree(root), git(root, "status", "--porcelain", "--ignored"))

    def check(self) -> None:
        after = tree(self.root)
        changed = sorted(k for k in {*self.before, *after} if self.before.get(k) != after.get(k))
        assert not changed, f"dockyard changed the project's tree: {changed}"
        assert git(self.root, "status", "--porcelain", "--ignored") == self.status


def check_outcome(ran: Ran, code: int, says: str = "") -> None:
    """The exit code; one error line saying `says` when it failed; no traceback."""
    assert "Traceback" not in ran.output, ran.describe()
    assert ran.code == code, ran.describe()
    if code in (1, 2):
        assert len(ran.error_lines) == 1, ran.describe()
        assert says in ran.error_lines[0], ran.describe()
    else:
        assert ran.error_lines == [], ran.describe()


def check_no_temp(tmp: Path) -> None:
    left = sorted(p.name for p in tmp.iterdir())
    assert not left, f"temp files left behind in TMPDIR: {left}"
