"""A second Docker engine on this machine, standing in for a fresh CI runner (engine tests and benches).

It has a data root, exec root, pid file, unix socket and bridge of its own, so it shares nothing with
the machine's engine but the registry it pulls from. Its bridge is created before it starts (dockerd
started with `--bridge=none` deletes `docker0`, breaking the machine's engine), and it runs with
`--iptables=false`: it never touches the machine's firewall. Its containers (and so its build steps)
have no network unless `network=True`, which adds a NAT rule and two forwarding rules for its bridge
alone, removed again on exit. Everything it made is removed on every exit path: the engine is stopped
by its own pid, its mounts and directories removed, its bridge deleted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker

DATA = Path("/var/lib/dockyard-engines")  # a disk filesystem: overlay2 cannot stack on overlay or tmpfs
RUN = Path("/run/dockyard-engines")
START_TIMEOUT = 60.0


class SecondEngineUnavailable(RuntimeError):
    """This machine cannot run a second engine (not root, no dockerd, no `ip`)."""


@dataclass(frozen=True)
class SecondEngine:
    host: str  # unix://... for DOCKER_HOST
    bridge: str
    subnet: str
    data_root: Path
    log: Path
    pid: int

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=300)


def problem() -> str | None:
    """Why a second engine cannot run here, or None."""
    if os.geteuid() != 0:
        return "a second engine needs root"
    for tool in ("dockerd", "ip"):
        if shutil.which(tool) is None:
            return f"a second engine needs `{tool}` on PATH"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _iptables(*args: str, check: bool = True) -> bool:
    done = subprocess.run(["iptables", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise SecondEngineUnavailable(f"iptables {' '.join(args)}: {done.stderr.strip()}")
    return done.returncode == 0


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 198.18.0.0/15 (benchmarking addresses) that no route here overlaps."""
    taken: list[ipaddress.IPv4Network] = []
    for line in _ip("-4", "route", "show").stdout.splitlines():
        first = line.split()[0]
        if first != "default":
            with contextlib.suppress(ValueError):
                taken.append(ipaddress.IPv4Network(first, strict=False))
    pool = list(ipaddress.IPv4Network("198.18.0.0/15").subnets(new_prefix=24))
    start = uuid.uuid4().int % len(pool)
    for candidate in pool[start:] + pool[:start]:
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise SecondEngineUnavailable("no free /24 in 198.18.0.0/15 for a second engine's bridge")


def _unmount_below(root: Path) -> None:
    """Unmount whatever a killed engine left mounted under `root`, deepest first."""
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            point = line.split()[1].encode().decode("unicode_escape")
            if point == str(root) or point.startswith(f"{root}/"):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False, timeout=30)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@contextlib.contextmanager
def running(*, network: bool = False) -> Iterator[SecondEngine]:
    """Start a second engine; stop it and remove all it made (bridge, rules, files) on every exit."""
    if reason := problem():
        raise SecondEngineUnavailable(reason)
    name = uuid.uuid4().hex[:8]
    bridge = f"dkyd{name}"  # at most 15 characters: an interface name's limit
    data_root, exec_root = DATA / name, RUN / name
    socket = exec_root / "docker.sock"
    log = DATA / f"{name}.log"
    subnet = _free_subnet()
    gateway = f"{next(subnet.hosts())}/{subnet.prefixlen}"
    rules = [
        ("-t", "nat", "POSTROUTING", "-s", str(subnet), "!", "-o", bridge, "-j", "MASQUERADE"),
        ("-t", "filter", "DOCKER-USER", "-i", bridge, "!", "-o", bridge, "-j", "ACCEPT"),
        ("-t", "filter", "DOCKER-USER", "-o", bridge, "-m", "conntrack", "--ctstate",
         "RELATED,ESTABLISHED", "-j", "ACCEPT"),
    ]  # fmt: skip
    added: list[tuple[str, ...]] = []
    proc: subprocess.Popen[bytes] | None = None
    made_bridge = False
    try:
        data_root.mkdir(parents=True)
        exec_root.mkdir(parents=True)
        _ip("link", "add", bridge, "type", "bridge")
        made_bridge = True
        _ip("addr", "add", gateway, "dev", bridge)
        _ip("link", "set", bridge, "up")
        if network:
            for rule in rules:
                table, chain, spec = rule[1], rule[2], rule[3:]
                _iptables("-t", table, "-I", chain, *spec)
                added.append(rule)
        proc = _start_dockerd(data_root, exec_root, socket, bridge, log)
        engine = SecondEngine(f"unix://{socket}", bridge, str(subnet), data_root, log, proc.pid)
        _wait(engine, proc)
        yield engine
    finally:
        if proc is not None:
            _stop(proc)
        for rule in reversed(added):
            _iptables("-t", rule[1], "-D", rule[2], *rule[3:], check=False)
        if made_bridge:
            _ip("link", "del", bridge, check=False)
        _unmount_below(data_root)
        _unmount_below(exec_root)
        shutil.rmtree(data_root, ignore_errors=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        log.unlink(missing_ok=True)


def _start_dockerd(
    data_root: Path, exec_root: Path, socket: Path, bridge: str, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                "dockerd",
                f"--data-root={data_root}",
                f"--exec-root={exec_root}",
                f"--pidfile={exec_root / 'dockerd.pid'}",
                f"--host=unix://{socket}",
                f"--bridge={bridge}",
                "--iptables=false",
                "--ip-masq=false",
                "--storage-driver=overlay2",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait(engine: SecondEngine, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise SecondEngineUnavailable(f"the second dockerd exited: {_tail(engine.log)}")
        try:
            engine.client().ping()
        except docker.errors.DockerException:
            if time.monotonic() > deadline:
                raise SecondEngineUnavailable(
                    f"the second dockerd did not answer: {_tail(engine.log)}"
                ) from None
            time.sleep(0.3)
        else:
            return


def _tail(log: Path, lines: int = 5) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    return "(no log)"
