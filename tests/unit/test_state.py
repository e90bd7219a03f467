"""dockyard's state directory: XDG_STATE_HOME, a readable and stable key per project."""

from __future__ import annotations

import re
from pathlib import Path

from dockyard import state


def test_the_state_directory_follows_xdg_and_ignores_a_relative_value(tmp_path: Path) -> None:
    assert state.state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "dockyard"
    home = {"HOME": str(tmp_path / "home")}
    assert state.state_dir(home) == tmp_path / "home" / ".local" / "state" / "dockyard"
    assert state.state_dir({**home, "XDG_STATE_HOME": "relative/dir"}) == state.state_dir(home)


def test_project_keys_are_readable_stable_and_distinct(tmp_path: Path) -> None:
    api = tmp_path / "src" / "Acme API"
    api.mkdir(parents=True)
    key = state.project_key(api)
    assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{8}", key)
    assert "-src-acme-api-" in key
    assert state.project_key(api) == key
    assert state.project_key(tmp_path / "src" / "acme-api") != key  # same slug, another path
    link = tmp_path / "link"
    link.symlink_to(api)
    assert state.project_key(link) == key, "the real path is the key"
    assert len(state.project_key(tmp_path / ("x" * 300))) <= 48 + 9


def test_lock_files_live_in_the_state_directory(tmp_path: Path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}
    lock = state.lock_file(tmp_path / "project" / "sizes.json", env)
    assert lock.parent == tmp_path / "state" / "dockyard" / "locks"
    assert (
        state.project_state_dir(tmp_path / "project", env).parent
        == tmp_path / "state" / "dockyard" / "projects"
    )
