"""The Docker engine: which CLI builds, how BuildKit is reached, and the SDK client that inspects and runs.

BuildKit is discovered, not assumed: `docker buildx build --load` where buildx exists, otherwise the
engine's built-in BuildKit through a docker CLI older than 23 (newer CLIs need buildx for BuildKit).
Everything dockyard creates on the engine carries `LABEL_MANAGED`, and containers also carry the run's
`LABEL_RUN`, so cleanup removes exactly what this run made and nothing else.

Inspecting images and running containers goes through `dockyard.engine_api`: its own HTTP client on
a local engine's unix socket, docker-py's session for any other engine. docker-py is imported only
for what needs it (builds through the SDK, pushes, exports, Compose, container models; importing it
costs a CLI a tenth of a second or more). A container is one create (no image inspect, no pull), one
start, one wait, one request for both output streams. Inside `Engine.removing_in_background()` (what verify's
doors use) they are removed in the background, so that no verdict waits for a removal; leaving the
block waits for every removal, as does the interpreter before it exits. Elsewhere a container is gone
when the call that made it returns.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import engine_api, interrupt, process
from dockyard.errors import CommandError, CommandTimeout, ConfigError, EngineUnavailable, ImageNotFound

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container
    from docker.models.images import Image

LABEL_MANAGED = "dev.dockyard.managed"
LABEL_RUN = "dev.dockyard.run"

_VERSION = re.compile(r"version (\d+)\.(\d+)")


class BuildkitPath(StrEnum):
    BUILDX = "buildx"  # docker buildx build --load
    BUILTIN = "builtin"  # DOCKER_BUILDKIT=1 docker build, through the engine's own BuildKit


@dataclass(frozen=True)
class Cli:
    path: str
    version: tuple[int, int]
    buildkit: BuildkitPath | None

    def describe(self) -> str:
        how = {
            BuildkitPath.BUILDX: "buildx",
            BuildkitPath.BUILTIN: "built-in BuildKit",
            None: "no BuildKit",
        }[self.buildkit]
        return f"{self.path} ({self.version[0]}.{self.version[1]}, {how})"


def cli_version(path: str) -> tuple[int, int] | None:
    """The version `path --version` reports; None when it is not a docker CLI."""
    try:
        done = process.run([path, "--version"], timeout=15, check=False)
    except CommandError:
        return None
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or not match:
        return None
    return int(match.group(1)), int(match.group(2))


def inspect_cli(path: str) -> Cli | None:
    """What a docker CLI can do, without asking the engine; None when it is not a docker CLI."""
    version = cli_version(path)
    if version is None:
        return None
    buildx = process.run([path, "buildx", "version"], timeout=15, check=False).returncode == 0
    if buildx:
        return Cli(path, version, BuildkitPath.BUILDX)
    # CLIs from 23 on send BuildKit builds to buildx only; older ones speak to the engine's BuildKit.
    return Cli(path, version, BuildkitPath.BUILTIN if version[0] < 23 else None)


def _candidates() -> list[str]:
    found: list[str] = []
    seen: set[Path] = set()
    on_path = shutil.which("docker")
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    for candidate in [on_path, *(str(Path(d) / "docker") for d in dirs), "/usr/bin/docker"]:
        if not candidate or not Path(candidate).is_file():
            continue
        real = Path(candidate).resolve()
        if real not in seen:
            seen.add(real)
            found.append(candidate)
    return found


def _not_a_docker_cli(explicit: str) -> ConfigError:
    return ConfigError(
        f"DOCKYARD_DOCKER/docker setting names {explicit!r}, which is not a docker CLI: "
        "point it at one (a path or a name on PATH), or unset it"
    )


def discover_cli(explicit: str | None = None) -> Cli:
    """The docker CLI to build with: `explicit` when given, else the first with a BuildKit path."""
    if explicit:
        path = shutil.which(explicit) or explicit
        cli = inspect_cli(path)
        if cli is None:
            raise _not_a_docker_cli(explicit)
        if cli.buildkit is None:
            raise ConfigError(
                f"{path} ({cli.version[0]}.{cli.version[1]}) has no BuildKit path: install the buildx "
                "plugin (docker-buildx-plugin), or point DOCKYARD_DOCKER at a CLI older than 23"
            )
        return cli
    clis = [cli for path in _candidates() if (cli := inspect_cli(path))]
    for cli in clis:
        if cli.buildkit is not None:
            return cli
    if not clis:
        raise EngineUnavailable("no docker CLI found: install Docker (`dockyard doctor` says how)")
    raise EngineUnavailable(
        f"no BuildKit build path: {', '.join(c.describe() for c in clis)}; install the buildx "
        "plugin (docker-buildx-plugin), or run `dockyard doctor --fix`"
    )


@dataclass(frozen=True)
class RunResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


# The API version docker-py is made with before `/version` (unversioned) names the one to speak: the
# oldest it speaks.
_FIRST_API_VERSION = "1.24"


def _new_reaper() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="dockyard-remove")


@dataclass
class Engine:
    """A reachable Docker engine, the CLI that builds for it, and an SDK client."""

    docker_cli: str | None = None  # the CLI asked for (DOCKYARD_DOCKER / `docker`), else discovered
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _server: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _reaper: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=_new_reaper, init=False, repr=False, compare=False
    )
    _removals: set[concurrent.futures.Future[None]] = field(
        default_factory=set, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _background: int = field(
        default=0, init=False, repr=False, compare=False
    )  # open removing_in_background blocks

    @cached_property
    def cli(self) -> Cli:
        """The CLI that builds, discovered on first use: checking an image needs none."""
        return discover_cli(self.docker_cli)

    @cached_property
    def api(self) -> engine_api.Api:
        """The engine's API, after one request: `/version` proves the engine answers and names both the
        API version to speak and the engine's own version (`server_version`). A local engine's socket
        is spoken to directly; any other engine through docker-py's session."""
        socket_path = engine_api.local_socket()
        try:
            if socket_path is not None:
                api = engine_api.Api(engine_api.UnixTransport(socket_path))
            else:
                client = self._sdk(_FIRST_API_VERSION)
                self.__dict__["client"] = client  # the one client (cached_property's slot)
                base = client.api.base_url
                api = engine_api.Api(engine_api.SessionTransport(client.api, base))
            self._server = api.version_info()
        except Exception as exc:  # the socket, the session, the answer: the engine does not answer
            if "client" in self.__dict__:
                self.__dict__.pop("client").close()
            reason = f"{socket_path}: {exc.strerror}" if socket_path and isinstance(exc, OSError) else None
            raise EngineUnavailable(
                f"no Docker engine answers ({reason or first_line(exc)}): start dockerd, or run "
                "`dockyard doctor --fix`"
            ) from None
        if socket_path is None:
            # What `version="auto"` sets from the same answer: one client, one request (a second
            # client would leave a connection pool for the garbage collector to finalize mid-run).
            self.client.api._version = api.version  # type: ignore[attr-defined]
        return api

    @cached_property
    def client(self) -> docker.DockerClient:
        """The SDK client, speaking the API version the engine named (no request of its own)."""
        try:
            return self._sdk(str(self.api.version))
        except Exception as exc:
            raise EngineUnavailable(f"no Docker engine client ({first_line(exc)})") from None

    @staticmethod
    def _sdk(version: str) -> docker.DockerClient:
        import docker  # noqa: PLC0415

        return docker.DockerClient.from_env(version=version, timeout=int(engine_api.TIMEOUT))

    @property
    def labels(self) -> dict[str, str]:
        """Labels for everything this run creates on the engine."""
        return {LABEL_MANAGED: "true", LABEL_RUN: self.run_id}

    @property
    def is_local(self) -> bool:
        """Whether the engine is reached over a unix socket on this machine (not TCP, SSH or a pipe):
        by dockyard's own client, or by docker-py's when the environment sent it there."""
        if isinstance(self.api.transport, engine_api.UnixTransport):
            return True
        client = self.__dict__.get("client")  # made by `api` when it went through docker-py
        if client is None:
            return False
        from docker.transport import UnixHTTPAdapter  # noqa: PLC0415

        sdk = client.api
        return sdk.base_url == "http+docker://localhost" and isinstance(
            sdk.adapters.get("http+docker://"), UnixHTTPAdapter
        )

    def server_version(self) -> str:
        """The engine's version, from the answer that connected (no request of its own)."""
        _ = self.api
        return str(self._server.get("Version", "?"))

    def docker(
        self, args: list[str], *, timeout: float = 300, check: bool = True, what: str | None = None
    ) -> process.Completed:
        """Run the docker CLI (the one that builds) with args."""
        return process.run([self.cli.path, *args], timeout=timeout, check=check, what=what)

    def inspect_image(self, ref: str) -> dict[str, Any]:
        """The engine's description of an image (`docker image inspect`), in one request."""
        try:
            return self.api.inspect_image(ref)
        except engine_api.ApiError as exc:
            if exc.status == 404:
                raise ImageNotFound(
                    f"no image {ref!r} on this engine: build it first (invoke build) or check the name"
                ) from None
            raise EngineUnavailable(f"inspecting {ref}: {first_line(exc)}") from None
        except OSError as exc:
            raise EngineUnavailable(f"inspecting {ref}: {first_line(exc)}") from None

    def image_history(self, image_id: str) -> list[dict[str, Any]]:
        """An image's history entries, newest first (`docker history`), in one request."""
        try:
            return self.api.history(image_id)
        except (engine_api.ApiError, OSError) as exc:
            raise EngineUnavailable(f"reading the history of {image_id}: {first_line(exc)}") from None

    def image(self, ref: str) -> Image:
        """An image as docker-py's model (for the SDK's own calls: tag, push...)."""
        return self.client.images.prepare_model(self.inspect_image(ref))

    def image_exists(self, ref: str) -> bool:
        try:
            self.inspect_image(ref)
        except ImageNotFound:
            return False
        return True

    @contextlib.contextmanager
    def container(self, image: str, **kwargs: Any) -> Iterator[Container]:
        """A labelled container (not started; `containers.run`'s options), removed on leaving the block
        whatever happened (Ctrl-C included)."""
        container_id = self._create(image, **kwargs)
        try:
            # An interrupt removes it at once, which also ends a wait on it in any thread.
            with interrupt.on_interrupt(lambda: self._remove(container_id)):
                yield self.client.containers.prepare_model({"Id": container_id})
        finally:
            self._release(container_id)

    def _create(self, image: str, **kwargs: Any) -> str:
        """One request. `containers.create` inspects the container it made (one more round trip) and
        `containers.run` may pull; the options are theirs, translated the way they translate them."""
        interrupt.check()  # nothing new once the run is interrupted
        # An interrupted run ends by sweeping this run's containers: one a thread made while the
        # interrupt struck, a removal still queued in the background.
        interrupt.at_finish(self, self._sweep)
        options = {**kwargs, "labels": {**kwargs.get("labels", {}), **self.labels}}
        body = engine_api.container_body(image, options)
        query: dict[str, str] = {}
        if body is None:
            body, query = self._sdk_container_body(image, options)
        try:
            return self.api.create(body, query)
        except engine_api.ApiError as exc:
            if exc.status == 404 and "no such image" in exc.explanation.lower():
                raise ImageNotFound(f"no image {image!r} on this engine") from None
            raise EngineUnavailable(f"creating a container of {image}: {first_line(exc)}") from None
        except OSError as exc:
            raise EngineUnavailable(f"creating a container of {image}: {first_line(exc)}") from None

    def _sdk_container_body(
        self, image: str, options: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """docker-py's own translation of `containers.run` options (volumes, ports, groups...): private,
        and what `containers.create` itself has called since docker-py 2."""
        from docker.models import containers  # noqa: PLC0415

        api = self.client.api
        create = containers._create_container_args(  # type: ignore[attr-defined]
            {**options, "image": image, "version": api.api_version}
        )
        query = {key: str(create.pop(key)) for key in ("name", "platform") if create.get(key)}
        create.pop("name", None)
        create.pop("platform", None)
        # What `create_container` does before it builds the body: the environment as a list, with
        # the CLI config's proxy settings added.
        environment = create.get("environment")
        if isinstance(environment, dict):
            environment = [
                f"{key}={value}" if value is not None else key for key, value in environment.items()
            ]
        create["environment"] = api._proxy_configs.inject_proxy_environment(environment) or None  # type: ignore[attr-defined]
        create.setdefault("command", None)
        return dict(api.create_container_config(**create)), query

    def run_once(
        self, image: str, command: list[str] | None = None, *, timeout: float = 60, **kwargs: Any
    ) -> RunResult:
        """Run a labelled container to completion: create, start, wait, and one request for its output.
        It is removed afterwards whatever happens (an interrupt removes it at once, which also ends
        the wait)."""
        container_id = self._create(image, command=command, **kwargs)
        try:
            with interrupt.on_interrupt(lambda: self._remove(container_id)):
                try:
                    self.api.start(container_id)
                except (engine_api.ApiError, OSError) as exc:
                    raise EngineUnavailable(f"starting a container of {image}: {first_line(exc)}") from None
                try:
                    status = self.api.wait(container_id, timeout=math.ceil(timeout))
                except Exception as exc:  # the socket's timeout and friends
                    raise CommandTimeout(
                        f"a container of {image} did not finish within {timeout:g} s ({first_line(exc)})"
                    ) from None
                stdout, stderr = self.output(container_id, tty=bool(kwargs.get("tty")))
                return RunResult(code=int(status.get("StatusCode", -1)), stdout=stdout, stderr=stderr)
        finally:
            self._release(container_id)

    def output(self, container_id: str, *, tty: bool = False) -> tuple[str, str]:
        """A container's stdout and stderr so far, in one request. (docker-py's `logs` inspects the
        container first, and mixes both streams into one unless asked once for each.)"""
        try:
            content = self.api.logs(container_id)
        except Exception as exc:  # an error answer, the socket, the session
            raise EngineUnavailable(
                f"reading the output of container {container_id[:12]}: {first_line(exc)}"
            ) from None
        if tty:  # one stream, not framed
            return content.decode(errors="replace"), ""
        stdout, stderr = demultiplex(content)
        return stdout.decode(errors="replace"), stderr.decode(errors="replace")

    @contextlib.contextmanager
    def removing_in_background(self) -> Iterator[None]:
        """Containers made inside the block are removed in a background thread, so that no verdict waits
        for a removal; leaving the block (Ctrl-C and SIGTERM included) waits for every removal."""
        self._background += 1
        try:
            yield
        finally:
            self._background -= 1
            self.settle()

    def _release(self, container_id: str) -> None:
        if self._background:
            self.remove_later(container_id)
        else:
            self._remove(container_id)

    def remove_later(self, container_id: str) -> None:
        """Remove a container in the background: `settle` waits for it, and so does the interpreter
        before it exits."""
        try:
            future = self._reaper.submit(self._remove, container_id)
        except RuntimeError:  # the interpreter is shutting down and starts no thread: remove it here
            self._remove(container_id)
            return
        with self._lock:
            self._removals.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._removals.discard(future)

    def settle(self, timeout: float = 60) -> None:
        """Wait until every container removal this engine started has finished."""
        with self._lock:
            pending = list(self._removals)
        concurrent.futures.wait(pending, timeout=timeout)

    def _remove(self, container_id: str) -> None:
        for _ in range(3):
            try:
                self.api.remove(container_id)
            except engine_api.ApiError as exc:
                if exc.status == 404:
                    return
                time.sleep(0.2)  # "removal already in progress": retry shortly
            else:
                return

    def _sweep(self, seconds: float) -> None:
        self.remove_run_leftovers(settle=seconds)

    def remove_run_leftovers(self, settle: float = 60) -> int:
        """Remove containers of this run that escaped their block (a killed thread, an interrupted
        create), once the removals under way have settled (waiting `settle` seconds at most)."""
        self.settle(settle)
        leftovers = self.api.containers(f"{LABEL_RUN}={self.run_id}")
        for leftover in leftovers:
            self._remove(str(leftover["Id"]))
        return len(leftovers)


def demultiplex(data: bytes) -> tuple[bytes, bytes]:
    """stdout and stderr of a container without a TTY, from the engine's framed stream. Each frame is
    an 8-byte header (the stream: 1 stdout, 2 stderr; three zero bytes; the payload's size, 4 bytes
    big-endian), then the payload. A truncated last frame keeps what arrived."""
    streams = {1: bytearray(), 2: bytearray()}
    offset = 0
    while offset + 8 <= len(data):
        kind, size = data[offset], int.from_bytes(data[offset + 4 : offset + 8], "big")
        streams[2 if kind == 2 else 1] += data[offset + 8 : offset + 8 + size]
        offset += 8 + size
    return bytes(streams[1]), bytes(streams[2])


_ENGINES: dict[str | None, Engine] = {}
_CONNECTING = threading.Lock()


def connect(docker_cli: str | None = None) -> Engine:
    """The engine for this process (discovered once), after checking that it answers. A configured
    docker CLI that is not one is a configuration error (exit 2) for every command: its `--version`
    runs while the client connects, so the check costs no time; what it can build (buildx or the
    engine's BuildKit) is asked only when something is built."""
    with _CONNECTING:  # one connection, whichever thread asks first (`warm`)
        return _connect(docker_cli)


def _connect(docker_cli: str | None) -> Engine:
    if docker_cli not in _ENGINES:
        engine = Engine(docker_cli)
        checked: concurrent.futures.Future[tuple[int, int] | None] | None = None
        if docker_cli:
            path = shutil.which(docker_cli) or docker_cli
            checked = concurrent.futures.Future()
            threading.Thread(target=_resolve, args=(checked, cli_version, path), daemon=True).start()
        _ = engine.api  # fail early, with one clear line, when no engine answers
        if checked is not None and docker_cli and checked.result() is None:
            raise _not_a_docker_cli(docker_cli)
        _ENGINES[docker_cli] = engine
    return _ENGINES[docker_cli]


Inspected = tuple[dict[str, Any], list[dict[str, Any]]]  # an image's inspect and history


def warm(docker_cli: str | None, image: str) -> concurrent.futures.Future[Inspected] | None:
    """Connect to a local engine in the background and inspect `image` there, while this thread does
    its own work (imports, configuration, the console): `connect` then finds the engine connected, and
    the answer (`dockyard.image.metadata.inspect_image(..., ahead=)`) is the image's inspect and
    history. A failure is the caller's to meet again and say. None for an engine that is not local
    (one slow to refuse would be waited for twice)."""
    if engine_api.local_socket() is None:
        return None
    future: concurrent.futures.Future[Inspected] = concurrent.futures.Future()

    def work() -> None:
        try:
            api = connect(docker_cli).api
            attrs = api.inspect_image(image)
            future.set_result((attrs, api.history(str(attrs["Id"]))))
        except BaseException as exc:  # handed to whoever reads the answer
            future.set_exception(exc)

    threading.Thread(target=work, name="dockyard-warm", daemon=True).start()
    return future


def _resolve(future: concurrent.futures.Future[Any], fn: Callable[..., Any], *args: Any) -> None:
    try:
        future.set_result(fn(*args))
    except BaseException as exc:  # handed to the thread that waits for the answer
        future.set_exception(exc)


_OCI_PREFIX = re.compile(r"^.*?unable to start container process: ")


def first_line(exc: BaseException) -> str:
    """One line for a person: the engine's own explanation of an API error (not the HTTP request and
    runc's layers of wrapping: `exec: "python": executable file not found in $PATH`), else the first
    line of the exception."""
    errors = sys.modules.get("docker.errors")  # an API error means docker-py is imported already
    explanation = (
        getattr(exc, "explanation", None)
        if isinstance(exc, engine_api.ApiError) or (errors and isinstance(exc, errors.APIError))
        else None
    )
    if explanation:
        text = _OCI_PREFIX.sub("", str(explanation)).removesuffix(": unknown").strip().splitlines()
    else:
        text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
