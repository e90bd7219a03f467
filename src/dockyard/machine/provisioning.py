"""First use provisions, as uv does for Python: when no engine answers, ready the machine or say how.

`decide` is pure: given the environment, the effective uid and /etc/os-release, it says whether
dockyard may run `provision.sh` itself (root, Debian or Ubuntu, apt present, the default engine
socket, `DOCKYARD_NO_PROVISION` unset) or which one command the user should run instead. `provision`
runs the script, streaming each step. `ensure_engine` joins them for the commands that need an
engine (`build`, `verify`, the compose commands, the test suite's engine fixture).
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dockyard import process
from dockyard.errors import DockyardError, EngineUnavailable

DEFAULT_SOCKETS = ("", "unix:///var/run/docker.sock", "unix:///run/docker.sock")
PROVISION_TIMEOUT = 1800.0
APT_FAMILY = ("debian", "ubuntu")


@dataclass(frozen=True)
class Decision:
    provision: bool  # dockyard may provision this machine itself
    reason: str  # why (not)
    fix: str  # the one command that readies the machine otherwise


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def doctor_command() -> str:
    """How to call `dockyard doctor` from here: the running script's path when it is not on PATH."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script and script.name == "dockyard" and shutil.which("dockyard") != str(script):
        return f"{script} doctor --fix"
    return "dockyard doctor --fix"


def install_hint(release: Mapping[str, str], system: str) -> str:  # noqa: PLR0911 - one per OS family
    """The command that installs an engine on this OS, when dockyard cannot do it itself."""
    family = {release.get("ID", ""), *release.get("ID_LIKE", "").split()}
    if system == "Darwin":
        return (
            "install Docker Desktop (`brew install --cask docker`) or Colima (`brew install colima docker`)"
        )
    if system == "Windows":
        return "install Docker Desktop (`winget install Docker.DockerDesktop`)"
    if family & {"fedora", "rhel", "centos"}:
        return "`sudo dnf install -y moby-engine docker-compose && sudo systemctl start docker`"
    if "arch" in family:
        return "`sudo pacman -S docker docker-buildx docker-compose && sudo systemctl start docker`"
    if "alpine" in family:
        return "`apk add docker docker-cli-buildx docker-cli-compose && rc-service docker start`"
    if family & {"suse", "opensuse"}:
        return "`sudo zypper install docker docker-compose && sudo systemctl start docker`"
    return "install Docker Engine (https://docs.docker.com/engine/install/)"


def decide(
    environ: Mapping[str, str],
    *,
    euid: int,
    release: Mapping[str, str],
    system: str,
    apt: bool,
) -> Decision:
    """Whether dockyard provisions this machine itself, and the command to give otherwise."""
    family = {release.get("ID", ""), *release.get("ID_LIKE", "").split()}
    debian_like = system == "Linux" and bool(family & set(APT_FAMILY))
    host = environ.get("DOCKER_HOST", "")
    if host not in DEFAULT_SOCKETS:
        return Decision(
            False,
            f"DOCKER_HOST={host} names an engine elsewhere",
            f"start the engine at {host}, or unset DOCKER_HOST",
        )
    if environ.get("DOCKYARD_NO_PROVISION", "") not in ("", "0"):
        fix = f"run `{doctor_command()}`" if debian_like else install_hint(release, system)
        return Decision(False, "DOCKYARD_NO_PROVISION is set", fix)
    if not debian_like:
        name = release.get("PRETTY_NAME") or system
        return Decision(False, f"{name} is not Debian or Ubuntu", install_hint(release, system))
    if not apt:
        return Decision(False, "apt-get is not on PATH", install_hint(release, system))
    if euid != 0:
        return Decision(False, "not root", f"run `sudo {doctor_command()}`")
    name = release.get("PRETTY_NAME") or "Debian"
    return Decision(True, f"root on {name}", f"run `{doctor_command()}`")


def decide_here(environ: Mapping[str, str] | None = None) -> Decision:
    env = os.environ if environ is None else environ
    geteuid = getattr(os, "geteuid", None)
    return decide(
        env,
        euid=geteuid() if geteuid else -1,
        release=os_release(),
        system=platform.system(),
        apt=shutil.which("apt-get") is not None,
    )


def script() -> Path:
    return Path(str(resources.files("dockyard.machine").joinpath("provision.sh")))


def provision(on_line: Callable[[str], None], environ: Mapping[str, str] | None = None) -> None:
    """Run provision.sh (as root), passing each line it prints to `on_line`; raise when it fails."""
    done = process.stream(
        ["bash", str(script())], on_line=on_line, env=dict(environ or {}), timeout=PROVISION_TIMEOUT
    )
    if done.returncode != 0:
        last = [line for line in done.stdout.splitlines() if line.strip()]
        raise EngineUnavailable(
            f"provisioning failed (exit {done.returncode}): {last[-1] if last else 'no output'}",
            detail="\n".join(last[-20:]),
        )


_HINT = re.compile(
    r"(: start dockerd, or run|[:;,] (install|run)[^:;]*)[^:;]*(dockyard doctor|provision-engine)[^:;]*$"
)


def problem(message: str) -> str:
    """An engine error without the generic hint at its end (the caller names the precise fix)."""
    return _HINT.sub("", message)


def ensure_engine(
    check: Callable[[], object],
    say: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Run `check` (it raises EngineUnavailable when no engine or no BuildKit path is there). On a
    machine dockyard may provision, provision it (printing each step through `say`) and check again;
    elsewhere raise one line naming the command that readies the machine. True when it provisioned."""
    try:
        check()
    except EngineUnavailable as exc:
        decision = decide_here(environ)
        if not decision.provision:
            raise EngineUnavailable(
                f"{problem(exc.message)}. To ready this machine: {decision.fix}"
            ) from None
        say(f"dockyard: {problem(exc.message)}")
        say(
            f"dockyard: provisioning this machine ({decision.reason}); DOCKYARD_NO_PROVISION=1 turns this off"
        )
        provision(lambda line: say(f"  {line}"), environ)
        try:
            check()
        except DockyardError as again:
            raise EngineUnavailable(f"provisioned, but still: {again.message}") from None
        say("dockyard: machine ready")
        return True
    return False
