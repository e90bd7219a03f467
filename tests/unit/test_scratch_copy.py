"""The layer-cache check's scratch copy keeps symlinks as links and reads nothing outside the tree, and
the file it changes is a tracked regular file inside the build context, checked before any work."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dockyard.config import Settings, VerifySettings
from dockyard.errors import ConfigError, UsageError
from dockyard.verify.gather import VerifyOptions, copy_project, preflight, touch_target


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir()
    secret.write_text("host secret bytes")
    return secret


@pytest.fixture
def repo(tmp_path: Path, outside: Path) -> Path:
    root = tmp_path / "project"
    (root / "src" / "demo").mkdir(parents=True)
    (root / "src" / "demo" / "__init__.py").write_text("x = 1\n")
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    (root / "assets").mkdir()
    (root / "assets" / "shadow").symlink_to(outside)  # absolute link out of the tree
    (root / "assets" / "up").symlink_to("../../outside/shadow")  # relative link out of the tree
    (root / "assets" / "local").symlink_to("../pyproject.toml")  # a link inside the tree
    (root / "linked-dir").symlink_to(outside.parent, target_is_directory=True)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (root / "untracked.py").write_text("")
    return root


def settings(root: Path, touch: str | None = None) -> Settings:
    return Settings(
        project_dir=root,
        project_name="demo",
        project_version="1",
        image="demo",
        dockerfile=root / "Dockerfile",
        context=root,
        verify=VerifySettings(layer_cache_touch=touch),
    )


def test_the_copy_keeps_symlinks_as_symlinks_and_no_outside_bytes(repo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy_project(repo, copy)
    for name in ("assets/shadow", "assets/up", "assets/local", "linked-dir"):
        assert (copy / name).is_symlink(), name
        assert (copy / name).readlink() == (repo / name).readlink()
    for path in copy.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b"host secret bytes" not in path.read_bytes(), path
    assert (copy / "src" / "demo" / "__init__.py").read_text() == "x = 1\n"
    assert (copy / "untracked.py").is_file(), "untracked files git does not ignore are in the context too"


def test_the_copy_outside_git_keeps_symlinks_and_skips_fifos(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "app.py").write_text("")
    (root / "shadow").symlink_to(outside)
    os.mkfifo(root / "pipe")
    copy = tmp_path / "copy"
    copy_project(root, copy)
    assert (copy / "shadow").is_symlink()
    assert not (copy / "pipe").exists()
    assert (copy / "app.py").is_file()


@pytest.mark.parametrize(
    ("touch", "message"),
    [
        ("/etc/hostname", "is absolute"),
        ("../outside/shadow", "leads outside"),
        ("src/../../outside/shadow", "leads outside"),
        ("assets/shadow", "leads outside"),
        ("assets/local", "is not a regular file"),
        ("src", "is not a regular file"),
        ("nothing.py", "is not a regular file"),
        ("untracked.py", "is not tracked by git"),
    ],
)
def test_a_bad_touch_target_is_a_config_error_before_any_work(repo: Path, touch: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        preflight(settings(repo, touch), VerifyOptions(only=("layer-cache",)))


def test_touch_targets_resolve_inside_the_context(repo: Path) -> None:
    assert touch_target(settings(repo, "src/demo/__init__.py")) == Path("src/demo/__init__.py")
    assert touch_target(settings(repo, "./src/../src/demo/__init__.py")) == Path("src/demo/__init__.py")
    assert touch_target(settings(repo)) == Path("src/demo/__init__.py")


def test_preflight_ignores_the_touch_target_when_layer_cache_does_not_run(repo: Path) -> None:
    assert [c.id for c in preflight(settings(repo, "/etc/hostname"), VerifyOptions(only=("size",)))] == [
        "size"
    ]


def test_no_source_file_to_touch_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"set verify\.layer-cache-touch"):
        touch_target(settings(tmp_path))
