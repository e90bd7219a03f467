"""dockyard starts on the standard library: parsing arguments, `--version`, `--help` and a usage error
import neither docker-py nor rich nor requests (structural checks; the timings are in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

import dockyard

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "rich", "requests", "urllib3", "humanize", "packaging")

# Runs the CLI in a fresh interpreter and reports what it printed and every module it imported.
MAIN = """\
import contextlib, io, json, sys
from dockyard import cli
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main(sys.argv[1:])
answer = {"code": code, "out": out.getvalue(), "err": err.getvalue(), "modules": sorted(sys.modules)}
print(json.dumps(answer))
"""


def _main(cwd: Path, *argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", MAIN, *argv], cwd=cwd, capture_output=True, text=True, check=True
    )
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def _imported(answer: dict[str, object], names: tuple[str, ...]) -> list[str]:
    modules = answer["modules"]
    assert isinstance(modules, list)
    return [name for name in names if name in modules]


@pytest.mark.parametrize(
    ("flag", "says"), [("--version", f"dockyard {dockyard.__version__}\n"), ("--help", "usage: dockyard")]
)
def test_version_and_help_import_nothing_heavy(tmp_path: Path, flag: str, says: str) -> None:
    answer = _main(tmp_path, flag)
    assert answer["code"] == 0
    assert str(answer["out"]).startswith(says)
    assert _imported(answer, HEAVY) == []


def test_a_usage_error_before_the_engine_imports_no_engine_client(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "svc"\nversion = "1.0"\n[tool.dockyard]\n')
    answer = _main(tmp_path, "verify", "some/image:1.0", "--only", "no-such-check")
    assert answer["code"] == 2
    assert "unknown check id(s) no-such-check" in str(answer["err"])
    assert _imported(answer, ("docker", "requests", "urllib3")) == []


@pytest.mark.parametrize(
    "module", ["dockyard.engine", "dockyard.actions", "dockyard.tasks", "dockyard.verify.gather"]
)
def test_modules_import_the_engine_client_only_when_used(module: str) -> None:
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(json.loads(done.stdout))
    assert {"docker", "requests", "rich"} & modules == set()


def test_the_written_out_version_is_the_project_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert dockyard.__version__ == project["version"] == version("dockyard")
