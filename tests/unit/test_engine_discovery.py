"""BuildKit path discovery, against small stand-in docker CLIs (shell scripts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard import engine
from dockyard.engine import BuildkitPath
from dockyard.errors import ConfigError


def fake_docker(directory: Path, version: str, *, buildx: bool) -> Path:
    path = directory / f"docker-{version}"
    path.write_text(
        "#!/bin/sh\n"
        f'case "$1" in\n'
        f'  --version) echo "Docker version {version}, build 0000000" ;;\n'
        f"  buildx) {'echo github.com/docker/buildx v0.20.0' if buildx else 'exit 1'} ;;\n"
        "  *) exit 2 ;;\n"
        "esac\n"
    )
    path.chmod(0o755)
    return path


def test_buildx_is_preferred_where_it_exists(tmp_path: Path) -> None:
    cli = engine.discover_cli(str(fake_docker(tmp_path, "28.2.2", buildx=True)))
    assert (cli.version, cli.buildkit) == ((28, 2), BuildkitPath.BUILDX)


def test_an_old_cli_without_buildx_uses_the_engines_builtin_buildkit(tmp_path: Path) -> None:
    cli = engine.discover_cli(str(fake_docker(tmp_path, "20.10.24+dfsg1", buildx=False)))
    assert (cli.version, cli.buildkit) == ((20, 10), BuildkitPath.BUILTIN)
    assert cli.describe().endswith("(20.10, built-in BuildKit)")


def test_a_new_cli_without_buildx_has_no_buildkit_path_and_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        engine.discover_cli(str(fake_docker(tmp_path, "28.2.2", buildx=False)))
    assert "has no BuildKit path: install the buildx plugin (docker-buildx-plugin)" in caught.value.message


@pytest.mark.parametrize("explicit", ["/bin/true", "/tmp", "/etc/hostname", "no-such-docker-anywhere"])
def test_a_configured_cli_that_is_not_docker_is_a_config_error(explicit: str) -> None:
    with pytest.raises(ConfigError, match="which is not a docker CLI"):
        engine.discover_cli(explicit)


def test_discovery_skips_clis_without_buildkit_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    new.mkdir()
    old.mkdir()
    fake_docker(new, "28.2.2", buildx=False).rename(new / "docker")
    fake_docker(old, "20.10.24", buildx=False).rename(old / "docker")
    monkeypatch.setenv("PATH", f"{new}:{old}")
    cli = engine.discover_cli(None)
    assert cli.path == str(old / "docker")
    assert cli.buildkit is BuildkitPath.BUILTIN
