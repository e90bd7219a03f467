from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dockyard.errors import ConfigError
from dockyard.project import lock

UV_LOCK = """\
version = 1
revision = 3
requires-python = ">=3.11"

[[package]]
name = "svc"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "starlette" },
    { name = "colorama", marker = "sys_platform == 'win32'" },
    { name = "tomli", marker = "python_full_version < '3.11'" },
    { name = "httpx", extra = ["http2"] },
]

[package.optional-dependencies]
docs = [{ name = "mkdocs" }]

[package.dev-dependencies]
dev = [{ name = "pytest" }, { name = "Ruff" }]

[[package]]
name = "starlette"
version = "1.0.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "anyio" }]

[[package]]
name = "anyio"
version = "4.0.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "httpx"
version = "0.28.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "anyio" }]

[package.optional-dependencies]
http2 = [{ name = "h2" }]

[[package]]
name = "h2"
version = "4.1.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "colorama"
version = "0.4.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "tomli"
version = "2.0.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "mkdocs"
version = "1.6.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pytest"
version = "9.0.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "pluggy" }, { name = "colorama", marker = "sys_platform == 'win32'" }]

[[package]]
name = "pluggy"
version = "1.5.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "ruff"
version = "0.8.0"
source = { registry = "https://pypi.org/simple" }
"""


@pytest.fixture
def lock_file(tmp_path: Path) -> Path:
    path = tmp_path / "uv.lock"
    path.write_text(UV_LOCK)
    return path


def test_runtime_set_follows_markers_and_extras(lock_file: Path) -> None:
    sets = lock.locked_sets(lock_file, "svc", environment=lock.marker_environment("3.13.5"))
    assert sets.runtime == {
        "svc": "0.1.0", "starlette": "1.0.0", "anyio": "4.0.0", "httpx": "0.28.0", "h2": "4.1.0",
    }  # fmt: skip
    assert sets.dev_only == {
        "pytest": "9.0.0",
        "pluggy": "1.5.0",
        "ruff": "0.8.0",
        "mkdocs": "1.6.0",
    }


def test_installed_groups_and_extras_move_into_the_runtime_set(lock_file: Path) -> None:
    env = lock.marker_environment("3.10.1")
    sets = lock.locked_sets(lock_file, "svc", environment=env, extras=["docs"], groups=["dev"])
    assert {"tomli", "mkdocs", "pytest", "ruff"} <= set(sets.runtime)
    assert sets.dev_only == {}


def test_unknown_project_is_a_config_error(lock_file: Path) -> None:
    with pytest.raises(ConfigError, match="has no package 'other'"):
        lock.locked_sets(lock_file, "other", environment=lock.marker_environment("3.13.0"))


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


@pytest.fixture
def uv_project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = []\n'
    )
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.invalid")
    _git(tmp_path, "config", "user.name", "t")
    lock.lock(tmp_path)
    return tmp_path


def test_check_fails_when_lock_is_untracked_then_passes_when_committed(uv_project: Path) -> None:
    with pytest.raises(lock.LockStale, match="not tracked by git"):
        lock.check(uv_project)
    _git(uv_project, "add", "pyproject.toml", "uv.lock")
    _git(uv_project, "commit", "-qm", "lock")
    assert lock.check(uv_project) == "uv.lock is current and committed"


def test_check_fails_when_pyproject_changed_after_locking(uv_project: Path) -> None:
    _git(uv_project, "add", ".")
    _git(uv_project, "commit", "-qm", "lock")
    pyproject = uv_project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = []", 'dependencies = ["six"]'))
    with pytest.raises(lock.LockStale, match=r"out of date with pyproject\.toml"):
        lock.check(uv_project)


def test_check_fails_when_lock_has_uncommitted_changes(uv_project: Path) -> None:
    _git(uv_project, "add", ".")
    _git(uv_project, "commit", "-qm", "lock")
    (uv_project / "uv.lock").write_text((uv_project / "uv.lock").read_text() + "\n")
    with pytest.raises(lock.LockStale, match="uncommitted changes"):
        lock.check(uv_project)
