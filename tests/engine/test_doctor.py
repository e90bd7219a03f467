"""`dockyard doctor` on this (ready) machine, and the provisioning that first use and `--fix` run.

Provisioning runs for real: on a machine whose engine answers it finds every step done and says so,
and it writes its machine file to a temporary path, never the machine's own. It never starts a second
engine: step 1 asks the engine on the default socket first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.errors import EngineUnavailable
from dockyard.machine import doctor, provisioning
from tests.engine.conftest import ROOT


def test_doctor_lists_every_item_and_this_machine_is_ready() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "doctor"],
        cwd=ROOT, env={**os.environ, "COLUMNS": "250"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for item in doctor.ORDER:
        assert f" {item} " in done.stdout, item
    assert "FIX" not in done.stdout
    assert "ready (" in done.stdout


def test_fix_on_a_ready_machine_does_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "doctor", "--fix"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing for --fix to do" in done.stdout


def _provision_env(tmp_path: Path) -> dict[str, str]:
    return {"DOCKYARD_MACHINE_FILE": str(tmp_path / "machine.env")}


@pytest.mark.skipif(os.geteuid() != 0, reason="provisioning runs as root")
def test_provisioning_finds_a_ready_machine_ready_and_writes_its_machine_file(tmp_path: Path) -> None:
    lines: list[str] = []
    provisioning.provision(lines.append, _provision_env(tmp_path))
    assert any(line.startswith("provision: engine: answers") for line in lines), lines
    assert any(line.startswith("provision: compose:") for line in lines), lines
    assert any(line.startswith("provision: buildkit:") for line in lines), lines
    machine = (tmp_path / "machine.env").read_text()
    assert "DOCKYARD_" in machine


def test_first_use_provisions_where_it_may_and_says_why_elsewhere(tmp_path: Path) -> None:
    """The engine check fails once (as on a bare machine); what happens next is what `decide` says for
    this machine: provision, printing each step, then check again; or one line with the fix."""
    env = {**os.environ, **_provision_env(tmp_path)}
    decision = provisioning.decide_here(env)
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise EngineUnavailable("no Docker engine answers (as on a bare machine)")

    said: list[str] = []
    if decision.provision:
        assert provisioning.ensure_engine(check, said.append, env) is True
        assert said[0] == "dockyard: no Docker engine answers (as on a bare machine)"
        assert said[1].startswith("dockyard: provisioning this machine (root on ")
        assert "DOCKYARD_NO_PROVISION=1 turns this off" in said[1]
        assert any(line.startswith("  provision: ") for line in said)
        assert said[-1] == "dockyard: machine ready"
        assert len(calls) == 2
    else:
        with pytest.raises(EngineUnavailable, match="To ready this machine: "):
            provisioning.ensure_engine(check, said.append, env)
        assert said == []


def test_the_opt_out_is_honoured(tmp_path: Path) -> None:
    env = {**os.environ, **_provision_env(tmp_path), "DOCKYARD_NO_PROVISION": "1"}

    def check() -> None:
        raise EngineUnavailable("no Docker engine answers (as on a bare machine)")

    with pytest.raises(EngineUnavailable, match=r"doctor --fix|install"):
        provisioning.ensure_engine(check, lambda line: None, env)
    assert not (tmp_path / "machine.env").exists()
