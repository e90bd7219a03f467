"""First use provisions only where it may (root, Debian/Ubuntu, the default socket), and otherwise says
in one line which command readies the machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard.errors import EngineUnavailable
from dockyard.machine import provisioning

DEBIAN = {"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"}
UBUNTU = {"ID": "ubuntu", "ID_LIKE": "debian", "PRETTY_NAME": "Ubuntu 24.04 LTS"}
FEDORA = {"ID": "fedora", "PRETTY_NAME": "Fedora Linux 41"}


def decide(environ: dict[str, str] | None = None, **kwargs: Any) -> provisioning.Decision:
    arguments: dict[str, Any] = {"euid": 0, "release": DEBIAN, "system": "Linux", "apt": True, **kwargs}
    return provisioning.decide(environ or {}, **arguments)


def test_root_on_debian_or_ubuntu_provisions() -> None:
    assert decide().provision
    assert decide(release=UBUNTU).provision
    assert decide({"DOCKER_HOST": "unix:///var/run/docker.sock"}).provision
    assert decide({"DOCKYARD_NO_PROVISION": "0"}).provision


def test_not_root_names_sudo_doctor_fix() -> None:
    decision = decide(euid=1000)
    assert not decision.provision
    assert decision.fix.startswith("run `sudo ")
    assert decision.fix.endswith("doctor --fix`")


def test_the_opt_out_names_doctor_fix() -> None:
    decision = decide({"DOCKYARD_NO_PROVISION": "1"})
    assert not decision.provision
    assert "doctor --fix" in decision.fix


def test_an_engine_elsewhere_is_never_provisioned_here() -> None:
    decision = decide({"DOCKER_HOST": "unix:///tmp/dead.sock"})
    assert not decision.provision
    assert decision.fix == "start the engine at unix:///tmp/dead.sock, or unset DOCKER_HOST"
    assert not decide({"DOCKER_HOST": "tcp://build-host:2376"}).provision


@pytest.mark.parametrize(
    ("kwargs", "hint"),
    [
        ({"release": FEDORA}, "dnf install"),
        ({"release": {}, "system": "Darwin"}, "brew install"),
        ({"release": {}, "system": "Windows"}, "winget install"),
        ({"release": {"ID": "alpine"}}, "apk add docker"),
        ({"apt": False}, "docs.docker.com"),
    ],
)
def test_other_systems_get_their_install_command(kwargs: dict[str, Any], hint: str) -> None:
    decision = decide(**kwargs)
    assert not decision.provision
    assert hint in decision.fix


def test_os_release_is_read(tmp_path: Path) -> None:
    path = tmp_path / "os-release"
    path.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    assert provisioning.os_release(path) == {"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian"}
    assert provisioning.os_release(path.parent / "missing") == {}


def test_where_it_may_not_provision_the_error_is_one_line_with_the_fix() -> None:
    said: list[str] = []

    def no_engine() -> None:
        raise EngineUnavailable("no Docker engine answers (connection refused)")

    with pytest.raises(EngineUnavailable) as caught:
        provisioning.ensure_engine(no_engine, said.append, {"DOCKER_HOST": "unix:///tmp/dead.sock"})
    assert caught.value.message == (
        "no Docker engine answers (connection refused). To ready this machine: start the engine at "
        "unix:///tmp/dead.sock, or unset DOCKER_HOST"
    )
    assert "\n" not in caught.value.message
    assert said == []  # nothing was attempted


def test_an_engine_that_answers_needs_nothing() -> None:
    said: list[str] = []
    assert provisioning.ensure_engine(lambda: None, said.append, {}) is False
    assert said == []


def test_the_provisioning_script_ships_with_the_package() -> None:
    script = provisioning.script()
    assert script.name == "provision.sh"
    assert script.is_file()
    assert "set -euo pipefail" in script.read_text()
