"""push, size-report and the build cache against a registry that asks for credentials: a live
Distribution with htpasswd auth (tests/engine/auth_registry.py), a docker config of the test's own
(DOCKER_CONFIG), and dockyard run as users run it, as a command in a process of its own.

The password is random per run, so finding it anywhere is a leak: in dockyard's output, in the argv
or the environment of any process started while dockyard ran (every child dockyard starts is logged
from inside it; every process on the machine is scanned from outside), in its state directory (the
size history) or in the reports it writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from dockyard import config, engine
from dockyard.build import buildkit as build
from dockyard.errors import BuildFailed
from dockyard.verify.gather import copy_project
from tests.conftest import in_ci
from tests.engine import auth_registry, second_engine
from tests.engine.conftest import LABEL_TEST_RUN, ROOT, TEST_RUN

# Imported into every dockyard process the tests start (PYTHONPATH): logs the argv and the explicit
# environment of each child process it starts, before starting it.
SPY = """\
import json, os, subprocess
_log = os.environ.get("DOCKYARD_TEST_SPAWN_LOG")
if _log:
    _real_init = subprocess.Popen.__init__

    def _init(self, args, *rest, **options):
        argv = [os.fspath(a) for a in args] if isinstance(args, (list, tuple)) else [os.fspath(args)]
        env = options.get("env")
        with open(_log, "a", encoding="utf-8") as out:
            out.write(json.dumps({"argv": argv, "env": dict(env) if env is not None else None}) + "\\n")
        _real_init(self, args, *rest, **options)

    subprocess.Popen.__init__ = _init
"""


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[auth_registry.AuthRegistry]:
    if reason := auth_registry.problem():
        if in_ci():
            pytest.fail(f"CI=true but no registry with credentials can run here: {reason}")
        pytest.skip(reason)
    with auth_registry.running(tmp_path_factory.mktemp("auth-registry")) as made:
        yield made


class _ProcessScan:
    """Every process's argv and environment on the machine, read from /proc every few milliseconds
    while dockyard runs: what a child of a child put on its command line shows up here too."""

    def __init__(self, needles: tuple[str, ...]) -> None:
        self.needles = tuple(n.encode() for n in needles)
        self.found: list[str] = []
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                for part in ("cmdline", "environ"):
                    with contextlib.suppress(OSError):
                        data = (entry / part).read_bytes()
                        if any(needle in data for needle in self.needles):
                            self.found.append(f"{entry.name}/{part}: {data[:200]!r}")
            self.scans += 1
            self._stop.wait(0.005)

    def __enter__(self) -> _ProcessScan:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Run:
    code: int
    out: str
    err: str
    spawned: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@dataclass
class Dockyard:
    """`python -m dockyard --project PROJECT ...` with a docker config and a state directory of the
    test's own."""

    project: Path
    state: Path
    spy: Path
    env: dict[str, str]
    secrets: tuple[str, ...]
    scans: list[_ProcessScan] = field(default_factory=list)

    def __call__(self, *args: str, docker_config: Path, timeout: float = 900, **env: str) -> Run:
        spawn_log = self.spy.parent / f"spawned-{len(self.scans)}.jsonl"
        full = {
            **self.env,
            "DOCKER_CONFIG": str(docker_config),
            "DOCKYARD_TEST_SPAWN_LOG": str(spawn_log),
            "PYTHONPATH": os.pathsep.join([str(self.spy), str(ROOT)]),
            **env,
        }
        with _ProcessScan(self.secrets) as scan:
            done = subprocess.run(
                [sys.executable, "-m", "dockyard", "--project", str(self.project), *args],
                env=full, capture_output=True, text=True, timeout=timeout, check=False,
            )  # fmt: skip
        self.scans.append(scan)
        lines = spawn_log.read_text().splitlines() if spawn_log.exists() else []
        spawned = [json.loads(line) for line in lines]
        return Run(done.returncode, done.stdout, done.stderr, spawned)

    def assert_never_leaked(self, run: Run, *files: Path) -> None:
        """No secret in the run's output, its children's argv or environment, any process seen while
        it ran, the state directory, or `files`."""
        scan = self.scans[-1]
        assert scan.scans > 0, "the process scan ran"
        for secret in self.secrets:
            assert secret not in run.out
            assert secret not in run.err
            assert secret not in json.dumps(run.spawned), "a child process was given the secret"
            for path in [*self.state.rglob("*"), *files]:
                if path.is_file():
                    assert secret not in path.read_text(errors="replace"), f"{path} holds the secret"
        assert scan.found == [], f"a process held the secret in its argv or environment: {scan.found}"


@pytest.fixture(scope="module")
def dockyard(auth: auth_registry.AuthRegistry, tmp_path_factory: pytest.TempPathFactory) -> Dockyard:
    root = tmp_path_factory.mktemp("auth-project")
    project = root / "tinyapp"
    copy_project(ROOT / "tests" / "fixtures" / "tinyapp", project)
    spy = root / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(SPY)
    image = f"{auth.host}/dockyard-test/tinyapp-{TEST_RUN}"
    env = {**os.environ, "DOCKYARD_IMAGE": image, "XDG_STATE_HOME": str(root / "state")}
    return Dockyard(project, root / "state", spy, env, (auth.password, WRONG_PASSWORD))


WRONG_PASSWORD = f"not-the-password-{TEST_RUN}"


@pytest.fixture(scope="module")
def built(
    dockyard: Dockyard, auth: auth_registry.AuthRegistry, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The project built on the machine's engine under the authenticated registry's name."""
    config_dir = auth.docker_config(tmp_path_factory.mktemp("docker-config-build"))
    run = dockyard("build", "--quiet", docker_config=config_dir)
    assert run.code == 0, run.err
    return dockyard.env["DOCKYARD_IMAGE"]


@pytest.fixture(scope="module", autouse=True)
def _untag(auth: auth_registry.AuthRegistry) -> Iterator[None]:
    yield
    auth_registry.untag(auth.host)


HELPER = """\
#!/bin/sh
# A docker credential helper (the protocol credsStore speaks): `get` reads the server on stdin.
[ "$1" = get ] || exit 1
read -r server
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\\n' "$server" "{user}" "$(cat "{secret}")"
"""


def _helper(auth: auth_registry.AuthRegistry, directory: Path) -> Path:
    """A bin directory holding `docker-credential-dockyardtest`, which serves the right credentials
    (kept in a file beside it: the helper's argv and environment never hold them)."""
    directory.mkdir(parents=True)
    (directory / "secret").write_text(auth.password)
    helper = directory / "docker-credential-dockyardtest"
    helper.write_text(HELPER.replace("{user}", auth.user).replace("{secret}", str(directory / "secret")))
    helper.chmod(0o755)
    return directory


@pytest.mark.parametrize("login", ["none", "wrong", "broken-helper"])
def test_push_without_the_right_credentials_is_one_line_naming_the_registry_and_docker_login(
    login: str, dockyard: Dockyard, auth: auth_registry.AuthRegistry, built: str, tmp_path: Path
) -> None:
    config_dir = (
        auth.docker_config(tmp_path / "docker", login=False)
        if login != "wrong"
        else auth.docker_config(tmp_path / "docker", password=WRONG_PASSWORD)
    )
    if login == "broken-helper":  # a credsStore whose helper is not installed
        (config_dir / "config.json").write_text(json.dumps({"credsStore": f"missing-{TEST_RUN}"}))
    report = tmp_path / "push.json"
    before = len(auth.requests_seen())
    run = dockyard("push", "--json", str(report), docker_config=config_dir)
    assert run.code == 1, run.err
    assert "Traceback" not in run.err + run.out
    assert len(run.error_lines) == 1, run.err
    line = run.error_lines[0]
    assert line.startswith("dockyard: error: ")
    assert auth.host in line
    assert f"`docker login {auth.host}`" in line
    assert {
        "none": "(no docker config credentials)",
        "wrong": "(the docker config's credentials)",
        "broken-helper": f"could not be read: docker-credential-missing-{TEST_RUN} not installed",
    }[login] in line
    assert not report.exists(), "no report of a push that did not happen"
    dockyard.assert_never_leaked(run, config_dir / "config.json" if login == "none" else report)
    # The registry was asked, and refused every request: nothing was pushed.
    asked = auth.requests_seen()[before:]
    assert asked, "dockyard asked the registry"
    assert all(seen.split('"')[0].split()[2] == "401" for seen in asked), asked


def test_push_with_docker_login_credentials_reports_the_digest_and_size_report_reads_the_registry(
    dockyard: Dockyard, auth: auth_registry.AuthRegistry, built: str, tmp_path: Path
) -> None:
    config_dir = auth.docker_config(tmp_path / "docker")
    report, markdown = tmp_path / "push.json", tmp_path / "push.md"
    run = dockyard("push", "--json", str(report), "--markdown", str(markdown), docker_config=config_dir)
    assert run.code == 0, run.err
    pushed = json.loads(report.read_text())["pushes"][0]
    pinned = pushed["pinned"]
    assert pinned.startswith(f"{built}@sha256:")
    assert f"deploy  {pinned}" in run.out
    assert {layer["status"] for layer in pushed["layers"]} >= {"pushed"}

    # The registry serves that manifest, to the account only.
    repository, digest = pinned.removeprefix(f"{auth.host}/").split("@")
    url = f"http://{auth.host}/v2/{repository}/manifests/{digest}"
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    assert requests.get(url, headers=accept, timeout=10).status_code == 401
    served = requests.get(url, headers=accept, auth=(auth.user, auth.password), timeout=10)
    assert served.status_code == 200
    assert [layer["size"] for layer in served.json()["layers"]] == [
        layer["compressed"] for layer in pushed["layers"]
    ]
    dockyard.assert_never_leaked(run, report, markdown)

    sized = tmp_path / "size.json"
    before = len(auth.requests_seen())
    run = dockyard("size-report", "--json", str(sized), docker_config=config_dir)
    assert run.code == 0, run.err
    data = json.loads(sized.read_text())
    assert data["pushed_as"] == pinned
    compressed = [layer["compressed"] for layer in pushed["layers"]]
    assert [row["compressed"] for row in data["layers"]] == compressed
    # Read from the registry, through its Basic challenge, by dockyard itself.
    read = [seen for seen in auth.requests_seen()[before:] if '"dockyard"' in seen]
    assert any(seen.startswith(f"GET /v2/{repository}/manifests/") and " 200 " in seen for seen in read), read
    dockyard.assert_never_leaked(run, sized)

    # Credentials from a credential helper (credsStore), as Docker Desktop and cloud CLIs keep them.
    helper_config = tmp_path / "helper-config"
    helper_config.mkdir()
    (helper_config / "config.json").write_text(json.dumps({"credsStore": "dockyardtest"}))
    bin_dir = _helper(auth, tmp_path / "helper-bin")
    run = dockyard(
        "push", "--to", f"{built}:from-helper",
        docker_config=helper_config, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    )  # fmt: skip
    assert run.code == 0, run.err
    assert f"deploy  {built}@{digest}" in run.out, "the same image, the same manifest digest"
    name = "docker-credential-dockyardtest"
    helpers = [child["argv"] for child in run.spawned if Path(child["argv"][0]).name == name]
    assert helpers, f"the credential helper served the credentials: {run.spawned}"
    assert all(argv[1:] == ["get"] for argv in helpers)
    dockyard.assert_never_leaked(run)

    # The same report without credentials: the table still comes, the compressed column says why not.
    run = dockyard(
        "size-report", "--json", str(sized), docker_config=auth.docker_config(tmp_path / "anon", login=False)
    )
    assert run.code == 0, run.err
    data = json.loads(sized.read_text())
    assert data["pushed_as"] is None
    assert all(row["compressed"] is None for row in data["layers"])
    assert any(f"`docker login {auth.host}`" in note for note in data["notes"]), data["notes"]


@pytest.fixture(scope="module")
def fresh_runner() -> Iterator[second_engine.SecondEngine]:
    if reason := second_engine.problem():
        if in_ci():
            pytest.fail(f"CI=true but no second engine can run here: {reason}")
        pytest.skip(reason)
    with second_engine.running() as made:
        yield made


def test_cache_from_an_authenticated_registry_on_the_builtin_buildkit(
    dockyard: Dockyard,
    auth: auth_registry.AuthRegistry,
    docker: engine.Engine,
    fresh_runner: second_engine.SecondEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine's built-in BuildKit imports an inline cache with the docker config's credentials (the
    CLI hands them to it over the build session). Without them BuildKit builds on without the cache, and
    dockyard says so in one line naming the registry and `docker login`."""
    config_dir = auth.docker_config(tmp_path / "docker")
    cache = f"{auth.host}/dockyard-test/tinyapp-cache-{TEST_RUN}:cache"

    # The machine's engine exports the inline cache, pushed to the authenticated registry.
    run = dockyard("build", "--quiet", "--cache-to", cache, docker_config=config_dir)
    assert run.code == 0, run.err
    squeezed = "".join(run.out.split())  # the summary table wraps and cuts long references
    assert f"inlinecachepushed:{cache.rsplit(':', 1)[0]}@sha256:" in squeezed, run.out
    dockyard.assert_never_leaked(run)
    first = docker.image(cache)

    # A fresh runner (empty, no network for build steps) with the credentials: every step from the cache.
    settings = config.load(dockyard.project)
    request = build.request_for(settings, tags=(f"dockyard-test/auth-fresh:{TEST_RUN}",), cache_from=(cache,))
    request = dataclasses.replace(request, labels={**request.labels, LABEL_TEST_RUN: TEST_RUN})
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    monkeypatch.setenv("DOCKER_HOST", fresh_runner.host)
    fresh = engine.Engine(docker.docker_cli)
    assert fresh.client.images.list() == [], "the second engine starts empty"
    before = len(auth.requests_seen())
    try:
        same = build.build(fresh, request)
    except BuildFailed as exc:  # no network there: a step that was not in the imported cache fails
        pytest.fail(f"a step not in the cache ran on the fresh runner and failed: {exc.message}")
    assert same.cache_missed == ()
    assert same.ran(r"uv sync") == []
    assert [diff_id for diff_id, _ in same.layers] == first.attrs["RootFS"]["Layers"]
    fetched = [seen for seen in auth.requests_seen()[before:] if "/manifests/cache 200 " in seen]
    assert fetched, "the fresh runner read the cache manifest from the registry, with the credentials"

    # The same import with no credentials: BuildKit builds on without the cache, dockyard says why.
    # (The machine's engine would read a cache image it has locally without asking the registry.)
    monkeypatch.delenv("DOCKER_HOST")
    docker.client.images.remove(cache)
    run = dockyard(
        "build", "--quiet", "--cache-from", cache,
        docker_config=auth.docker_config(tmp_path / "anon", login=False),
    )  # fmt: skip
    assert run.code == 0, run.err
    warnings = [line for line in (run.out + run.err).splitlines() if f"cache-from {cache}" in line]
    assert len(warnings) == 1, run.out + run.err
    assert "was not imported" in warnings[0]
    assert f"{auth.host} refused access" in warnings[0]
    assert f"`docker login {auth.host}`" in warnings[0]
