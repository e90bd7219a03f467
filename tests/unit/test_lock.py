from __future__ import annotations

import os
import shutil
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


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_a_members_sets_come_from_the_workspace_root_lock() -> None:
    root = FIXTURES / "workspace-service"
    sets = lock.locked_sets(root / "uv.lock", "acme-api", environment=lock.marker_environment("3.13.1"))
    assert set(sets.runtime) == {"acme-api", "acme-core", "idna", "six"}
    # The member's dev group, and the workspace root's own groups (a root with no [project]).
    assert {"pytest", "coverage", "pluggy", "iniconfig", "pyflakes"} <= set(sets.dev_only)
    assert "colorama" not in sets.dev_only  # pytest's Windows-only dependency


def test_a_virtual_project_is_not_part_of_its_runtime_set() -> None:
    root = FIXTURES / "virtual-service"
    sets = lock.locked_sets(
        root / "uv.lock", "virtual-service", environment=lock.marker_environment("3.13.1")
    )
    assert sets.runtime == {"idna": sets.runtime["idna"]}
    assert "pytest" in sets.dev_only


def test_advice_names_the_door(lock_file: Path) -> None:
    with pytest.raises(ConfigError, match="run `invoke lock`"):
        lock.locked_sets(lock_file, "other", environment={}, lock_command="invoke lock")


def _commit(project: Path) -> None:
    _git(project, "add", ".")
    _git(project, "commit", "-qm", "lock")


def test_stale_advice_names_the_door(uv_project: Path) -> None:
    _commit(uv_project)
    pyproject = uv_project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('requires-python = ">=3.11"', 'requires-python = ">=3.12"')
    )
    with pytest.raises(lock.LockStale, match=r"run `invoke lock` and commit uv\.lock"):
        lock.check(uv_project, lock_command="invoke lock")


def test_a_python_version_file_naming_a_missing_interpreter_does_not_stop_the_check(uv_project: Path) -> None:
    (uv_project / ".python-version").write_text("3.99\n")
    _commit(uv_project)
    assert lock.check(uv_project) == "uv.lock is current and committed"


def test_a_shim_that_refuses_in_the_project_does_not_stop_the_check(
    uv_project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A version manager's shim (pyenv, asdf) reads .python-version from its working directory and
    # refuses to run anything when that version is not installed.
    real_uv = shutil.which("uv")
    assert real_uv is not None
    shims = tmp_path_factory.mktemp("manager") / "shims"
    shims.mkdir()
    (shims / "uv").write_text(
        "#!/bin/sh\n"
        'dir="$PWD"\n'
        'while [ "$dir" != "/" ]; do\n'
        '  if [ -f "$dir/.python-version" ]; then\n'
        '    echo "pyenv: version \\`$(cat "$dir/.python-version")\' is not installed" >&2; exit 1\n'
        "  fi\n"
        '  dir=$(dirname "$dir")\n'
        "done\n"
        f'exec "{real_uv}" "$@"\n'
    )
    (shims / "uv").chmod(0o755)
    (uv_project / ".python-version").write_text("3.99\n")
    _commit(uv_project)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("DOCKYARD_UV", raising=False)
    assert lock.uv_binary() == str(shims / "uv")
    refused = subprocess.run(
        ["uv", "lock", "--check"], cwd=uv_project, capture_output=True, text=True, check=False
    )
    assert "is not installed" in refused.stderr  # what a naive `uv lock --check` in the project meets
    assert lock.check(uv_project) == "uv.lock is current and committed"


def test_a_uv_that_cannot_reach_its_index_is_an_error_not_a_stale_lock(
    uv_project: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit(uv_project)
    pyproject = uv_project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("dependencies = []", 'dependencies = ["dockyard-no-such-dist"]')
    )
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.mktemp("empty-cache")))
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(
        lock.LockCheckFailed, match=r"uv could not check uv\.lock: .*(Connection refused|connect)"
    ):
        lock.check(uv_project)


def test_no_uv_is_an_error_not_a_stale_lock(uv_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _commit(uv_project)
    monkeypatch.setenv("DOCKYARD_UV", "/nonexistent/uv")
    with pytest.raises(lock.LockCheckFailed, match=r"uv could not check uv\.lock: /nonexistent/uv not found"):
        lock.check(uv_project)
