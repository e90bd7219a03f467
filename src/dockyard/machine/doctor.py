"""`dockyard doctor`: is this machine (and this project) ready for dockyard? One line per item.

Each line is OK, WARN or FIX; a FIX line carries the exact command that fixes it. The items: the
engine answers (version, API); a BuildKit path; Compose v2; uv, against the project's pin and lock;
the base images (present, pullable, or stand-ins); TLS interception on the way to the package index
and a CA bundle that gets through it; free disk on the engine's data root; the project's
`[tool.dockyard]` and its lock. The checks run concurrently, each with a short time limit, and change
nothing. `--fix` runs provision.sh (as root, asking nothing), then checks again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import shutil
import socket
import ssl
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import certifi
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dockyard import config, process
from dockyard.errors import CommandError, CommandTimeout, DockyardError, EngineUnavailable, UsageError
from dockyard.init import DEFAULT_UV_VERSION
from dockyard.machine import provisioning
from dockyard.project import dockerfile
from dockyard.project.discover import shown as shown_path

OK, WARN, FIX = "OK", "WARN", "FIX"
TIMEOUT = 2.5  # seconds, for any one network or engine question
DISK_FIX = 2_000_000_000
DISK_WARN = 10_000_000_000
DEFAULT_INDEX = "https://pypi.org/simple/"
DEFAULT_PYTHON_IMAGE = "python:3.13-slim"
DEFAULT_UV_IMAGE = f"ghcr.io/astral-sh/uv:{DEFAULT_UV_VERSION}"
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STANDIN_LABEL = "dev.dockyard.standin-for"  # provisioning labels the stand-ins it builds
NEUTRAL_CWD = Path("/")  # where uv is run from: no project, no `.python-version` for a shim to read


class NotReady(DockyardError):
    """`dockyard doctor` found something to fix (the table says what)."""


@dataclass(frozen=True)
class Line:
    item: str
    status: str  # OK, WARN, FIX
    detail: str
    fix: str = ""  # the command that fixes it (FIX lines always have one)
    fixable: bool = False  # `dockyard doctor --fix` (provision.sh) fixes it


@dataclass
class Context:
    """What the checks share: the environment dockyard sees, the project (if any), the engine."""

    environ: Mapping[str, str]
    project_dir: Path | None
    settings: config.Settings | None = None
    settings_error: str | None = None
    decision: provisioning.Decision = field(
        default_factory=lambda: provisioning.Decision(False, "", "dockyard doctor --fix")
    )
    client: Any = None  # docker.DockerClient when the engine answers
    info: dict[str, Any] = field(default_factory=dict)
    engine_problem: str | None = None

    def machine_fix(self) -> tuple[str, bool]:
        """The command that provisions this machine, and whether `--fix` can run it here."""
        if self.decision.provision:
            return provisioning.doctor_command(), True
        return self.decision.fix.removeprefix("run ").strip("`"), False


# --- the checks -------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_engine(ctx: Context) -> Line:
    import docker  # noqa: PLC0415 - heavy; only the engine's checks need it
    import docker.errors  # noqa: PLC0415

    host = ctx.environ.get("DOCKER_HOST", "")
    try:
        client = docker.from_env(timeout=int(TIMEOUT) + 1, environment=dict(ctx.environ))
        version = client.version()
        ctx.info = client.info()
        ctx.client = client
    except docker.errors.DockerException as exc:
        ctx.engine_problem = _first_line(exc)
        if host not in provisioning.DEFAULT_SOCKETS:
            return Line(
                "engine",
                FIX,
                f"no engine answers at DOCKER_HOST={host}",
                f"start the engine at {host}, or unset DOCKER_HOST",
            )
        if "Permission denied" in str(exc) or "permission denied" in str(exc):
            return Line(
                "engine",
                FIX,
                "the engine's socket refuses this user",
                "sudo usermod -aG docker $USER  # then log in again",
            )
        fix, fixable = ctx.machine_fix()
        return Line("engine", FIX, f"no engine answers ({ctx.engine_problem})", fix, fixable)
    where = host or "the default socket"
    detail = f"Engine {version.get('Version', '?')}, API {version.get('ApiVersion', '?')}, at {where}"
    return Line("engine", OK, detail)


def check_buildkit(ctx: Context) -> Line:
    from dockyard import engine  # noqa: PLC0415 - it imports docker's client: only in this thread

    try:
        cli = engine.discover_cli(
            ctx.environ.get("DOCKYARD_DOCKER") or (ctx.settings.docker if ctx.settings else None)
        )
    except EngineUnavailable as exc:
        fix, fixable = ctx.machine_fix()
        return Line("buildkit", FIX, exc.message.split(":")[0], fix, fixable)
    return Line("buildkit", OK, cli.describe())


def _docker_cli(ctx: Context) -> str | None:
    explicit = ctx.environ.get("DOCKYARD_DOCKER")
    return shutil.which(explicit) if explicit else shutil.which("docker")


def check_compose(ctx: Context) -> Line:
    cli = _docker_cli(ctx)
    fix, fixable = ctx.machine_fix()
    if cli is None:
        return Line("compose", FIX, "no docker CLI, so no `docker compose`", fix, fixable)
    try:
        done = process.run([cli, "compose", "version", "--short"], timeout=TIMEOUT * 2, check=False)
    except (CommandError, CommandTimeout) as exc:
        return Line("compose", FIX, exc.message, fix, fixable)
    version = done.stdout.strip().lstrip("v")
    if done.returncode != 0 or not version:
        return Line("compose", FIX, f"`{cli} compose` is missing", fix, fixable)
    if not version.startswith(("2", "3", "4")):
        return Line("compose", FIX, f"Compose {version}: dockyard needs v2", fix, fixable)
    return Line("compose", OK, f"Compose {version} (`{cli} compose`)")


def check_uv(ctx: Context) -> Line:  # noqa: PLR0911 - one return per verdict
    uv = shutil.which("uv", path=ctx.environ.get("PATH"))
    if uv is None:
        return Line("uv", FIX, "uv is not on PATH", "python3 -m pip install uv")
    # From a directory of no project, as dockyard runs uv: a pyenv or asdf shim reads
    # `.python-version` from its working directory and may refuse to start uv there.
    try:
        done = process.run([uv, "--version"], cwd=NEUTRAL_CWD, timeout=TIMEOUT * 2)
    except DockyardError as exc:
        return Line("uv", FIX, exc.message, "python3 -m pip install --force-reinstall uv")
    match = re.search(r"(\d+\.\d+\.\d+)", done.stdout)
    version = match.group(1) if match else "?"
    settings = ctx.settings
    if settings is None:
        return Line("uv", OK, f"uv {version}")
    refused = _refuses_here(uv, settings.package_path)
    if refused:
        return Line(
            "uv", WARN,
            f"uv {version} runs, but {uv} refuses to start in {settings.package_path.name}/ ({refused}); "
            "dockyard runs it from /, `uv` typed there fails",
            "install uv outside the version manager (e.g. `pipx install uv`), or install the Python it names",
        )  # fmt: skip
    pin = _required_version(settings.package_path) or _required_version(settings.workspace_dir)
    if pin:
        with contextlib.suppress(InvalidSpecifier):
            if not SpecifierSet(pin).contains(version):
                wanted = pin.lstrip("=").strip() if pin.strip().startswith("==") else None
                fix = f"uv self update {wanted}" if wanted else f'python3 -m pip install "uv{pin}"'
                return Line("uv", FIX, f"uv {version}, but [tool.uv] required-version is {pin}", fix)
    lock_file = settings.lock_file if settings.lock_file.is_file() else None
    if lock_file is not None:
        done = process.run(
            [uv, "--directory", str(settings.workspace_dir), "export", "--frozen", "--offline", "--quiet",
             "--no-hashes", "--format", "requirements-txt"],
            cwd=NEUTRAL_CWD, env={"UV_PYTHON_DOWNLOADS": "never"}, timeout=TIMEOUT * 2, check=False,
        )  # fmt: skip
        if done.returncode != 0 and re.search(r"(?i)revision|unknown field|parse|version", done.stderr):
            return Line(
                "uv",
                FIX,
                f"uv {version} cannot read {lock_file.name}: {_last(done.stderr)}",
                "uv self update",
            )
    image_uv = _image_uv_version(settings)
    if image_uv and _minor(version) > _minor(image_uv):
        return Line(
            "uv", WARN,
            f"uv {version} here, uv {image_uv} in the image: a lock written by a newer uv may not load there",
            'pin one: [tool.uv] required-version = "==' + image_uv + '"',
        )  # fmt: skip
    pinned = f", pinned {pin}" if pin else ""
    return Line("uv", OK, f"uv {version}{pinned}; reads {lock_file.name if lock_file else 'no lock yet'}")


def _refuses_here(uv: str, directory: Path) -> str | None:
    """Why `uv` does not start in `directory` when it does from elsewhere (a shim's refusal), or None."""
    try:
        done = process.run([uv, "--version"], cwd=directory, timeout=TIMEOUT * 2, check=False)
    except DockyardError as exc:
        return exc.message
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return lines[0] if lines else f"exit {done.returncode}"


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".")[:2] if p.isdigit())


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _required_version(project_dir: Path) -> str | None:
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        data = tomllib.loads((project_dir / "pyproject.toml").read_text())
        value = data.get("tool", {}).get("uv", {}).get("required-version")
        return value if isinstance(value, str) else None
    return None


def _base_images(settings: config.Settings | None) -> dict[str, str]:
    """PYTHON_IMAGE and UV_IMAGE as builds use them: build args, else the Dockerfile's defaults."""
    found = {"PYTHON_IMAGE": DEFAULT_PYTHON_IMAGE, "UV_IMAGE": DEFAULT_UV_IMAGE}
    if settings is not None:
        with contextlib.suppress(DockyardError):
            parsed = dockerfile.parse(settings.dockerfile)
            found.update({k: v for k, v in parsed.global_args.items() if k in found and v})
        found.update({k: v for k, v in settings.build_args.items() if k in found})
    return found


def _image_uv_version(settings: config.Settings) -> str | None:
    image = _base_images(settings)["UV_IMAGE"]
    match = re.search(r":(\d+\.\d+\.\d+)", image)
    return match.group(1) if match else None


@dataclass(frozen=True)
class _Pulls:
    images: list[dockerfile.Pulled]
    where: str  # the Dockerfile(s) that pull them
    compose_args: Mapping[str, str] = field(default_factory=dict)  # image -> the compose arg naming it


def _images_to_check(ctx: Context) -> _Pulls:
    """What the project's build pulls (its Dockerfile's bases and `--from` images, with the build
    args dockyard passes), and which Dockerfile(s) pull it. When the Dockerfile is undecided (several
    compose builds fit: a web and a worker), the union of what every build of the compose file pulls,
    each with its own `args:` (or of every Dockerfile found); without a readable Dockerfile, the
    stand-ins' PYTHON_IMAGE and UV_IMAGE."""
    settings = ctx.settings
    if settings is not None and "dockerfile" in settings.problems and settings.candidates:
        found: dict[str, dockerfile.Pulled] = {}
        compose_args: dict[str, str] = {}
        files: dict[Path, None] = {}
        for build in settings.candidates:
            with contextlib.suppress(DockyardError, OSError, UnicodeDecodeError):
                parsed = dockerfile.parse(build.dockerfile)
                files[build.dockerfile] = None
                for image in parsed.external_images({**settings.build_args, **build.args}):
                    found.setdefault(image.reference, image)
                    if image.arg in build.args:  # the compose file's args win over dockyard's
                        compose_args.setdefault(image.reference, f"{build.service}'s build.args.{image.arg}")
        if files:
            shown = ", ".join(shown_path(f, settings.project_dir) for f in files)
            return _Pulls(list(found.values()), shown, compose_args)
    if settings is not None:
        with contextlib.suppress(DockyardError):
            parsed = dockerfile.parse(settings.dockerfile)
            return _Pulls(list(parsed.external_images(settings.build_args)), settings.dockerfile.name)
    images = _base_images(settings)
    if settings is None:
        for key in images:
            if value := ctx.environ.get(f"DOCKYARD_BUILD_ARG_{key}"):
                images[key] = value
    return _Pulls([dockerfile.Pulled(ref, key) for key, ref in images.items()], "the machine's stand-ins")


def _pull_problem(exc: Exception) -> str:
    """Why a registry did not answer for an image, short: the engine's explanation, not the request."""
    text = str(getattr(exc, "explanation", None) or _first_line(exc))
    if match := re.search(r"lookup (\S+?)(?: on \S+)?: no such host", text):
        return f"{match.group(1)}: no such host"
    return text[:80]


def _base_image_fixes(pulls: _Pulls, missing: list[dockerfile.Pulled]) -> str:
    """How to point each image that cannot be pulled elsewhere: the build arg dockyard passes, the
    compose file's arg (which wins over dockyard's), or a build arg to make of an image written out."""
    in_compose = [pulls.compose_args[i.reference] for i in missing if i.reference in pulls.compose_args]
    named = [i.arg for i in missing if i.arg and i.reference not in pulls.compose_args]
    written = [i.reference for i in missing if not i.arg]
    fixes = [f"DOCKYARD_BUILD_ARG_{arg}=<a local image>" for arg in dict.fromkeys(named)]
    if in_compose:
        fixes.append(f"point {', '.join(in_compose)} in the compose file at a local image")
    if written:
        fixes.append(
            f"make {', '.join(written)} a build arg (ARG X={written[0]}, FROM ${{X}}) to point it at a "
            "local image, or reach its registry"
        )
    return "; ".join(fixes)


def check_base_images(ctx: Context) -> Line:
    pulls = _images_to_check(ctx)
    images = pulls.images
    if not images:
        return Line("base images", OK, "the Dockerfile pulls no image (FROM scratch)")
    if ctx.client is None:
        shown = ", ".join(image.reference for image in images)
        return Line("base images", WARN, f"{shown}: not checked, no engine", "")
    import docker.errors  # noqa: PLC0415 - heavy; only the engine's checks need it

    present, pullable, standins = [], [], []
    missing: list[tuple[dockerfile.Pulled, str]] = []
    for image in images:
        ref = image.reference
        try:
            found = ctx.client.images.get(ref)
            present.append(ref)
            if (found.labels or {}).get(STANDIN_LABEL) or "dockyard-standin/" in ref:
                standins.append(ref)
            continue
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            missing.append((image, _first_line(exc)))
            continue
        try:
            ctx.client.api.inspect_distribution(ref)
            pullable.append(ref)
        except Exception as exc:  # registry unreachable, unknown, or slow: not pullable from here
            missing.append((image, _pull_problem(exc)))
    if missing:
        shown = "; ".join(f"{image.reference} ({why})" for image, why in missing)
        if ctx.settings is None:
            fix, fixable = ctx.machine_fix()
            return Line("base images", FIX, f"cannot be pulled: {shown}", fix, fixable)
        verb = "pull" if ", " in pulls.where else "pulls"
        detail = f"{pulls.where} {verb} what cannot be pulled: {shown}"
        return Line("base images", FIX, detail, _base_image_fixes(pulls, [image for image, _ in missing]))
    parts = []
    if present:
        parts.append("present: " + ", ".join(present))
    if pullable:
        parts.append("pullable: " + ", ".join(pullable))
    return Line("base images", OK, "; ".join(parts) + (" (local stand-ins)" if standins else ""))


def index_url(environ: Mapping[str, str]) -> str:
    for key in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if value := environ.get(key):
            return value
    return DEFAULT_INDEX


def _handshake(host: str, port: int, context: ssl.SSLContext) -> dict[str, Any]:
    with (
        socket.create_connection((host, port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return tls.getpeercert() or {}


def _public_roots() -> ssl.SSLContext:
    """The public web PKI only (certifi's bundle), not this machine's additions."""
    return ssl.create_default_context(cafile=certifi.where())


def _issuer(cert: Mapping[str, Any]) -> str:
    fields = {k: v for rdn in cert.get("issuer", ()) for k, v in rdn}
    return str(fields.get("commonName") or fields.get("organizationName") or "an unknown issuer")


def check_tls(  # noqa: PLR0911 - one return per verdict
    ctx: Context, public_roots: Callable[[], ssl.SSLContext] = _public_roots
) -> Line:
    url = index_url(ctx.environ)
    parsed = urlparse(url)
    if parsed.scheme != "https" or not parsed.hostname:
        return Line("tls", OK, f"{url}: not HTTPS, nothing to intercept")
    host, port = parsed.hostname, parsed.port or 443
    try:
        _handshake(host, port, public_roots())
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or "certificate not trusted"
    except (OSError, ssl.SSLError) as exc:
        return Line(
            "tls",
            WARN,
            f"{host}:{port} unreachable ({exc}): downloads in builds will fail",
            "check the network, or set UV_DEFAULT_INDEX to a reachable index",
        )
    else:
        return Line("tls", OK, f"{host}: no TLS interception (verified with the public roots)")
    bundle = ctx.settings.ca_bundle if ctx.settings and ctx.settings.ca_bundle else None
    configured = ctx.environ.get("DOCKYARD_CA_BUNDLE")
    bundle = bundle or (Path(configured) if configured else None)
    if bundle is not None:
        try:
            cert = _handshake(host, port, ssl.create_default_context(cafile=str(bundle)))
        except (OSError, ssl.SSLError, ValueError) as exc:
            return Line(
                "tls",
                FIX,
                f"{host}: intercepted ({reason}), and CA bundle {bundle} does not verify it ({exc})",
                "export DOCKYARD_CA_BUNDLE=/path/to/a/bundle/with/the/proxy/CA.pem",
            )
        return Line("tls", OK, f"{host}: intercepted by {_issuer(cert)}; CA bundle {bundle} verifies it")
    system = ssl.create_default_context()
    try:
        cert = _handshake(host, port, system)
    except (OSError, ssl.SSLError):
        return Line(
            "tls",
            FIX,
            f"{host}: intercepted ({reason}); no CA bundle configured",
            "export DOCKYARD_CA_BUNDLE=/path/to/the/proxy-ca-bundle.pem",
        )
    if SYSTEM_BUNDLE.is_file():
        fix, fixable = ctx.machine_fix()
        return Line(
            "tls",
            FIX,
            f"{host}: intercepted by {_issuer(cert)}; no CA bundle configured for builds",
            f"export DOCKYARD_CA_BUNDLE={SYSTEM_BUNDLE}  # or: {fix}",
            fixable,
        )
    return Line(
        "tls",
        FIX,
        f"{host}: intercepted by {_issuer(cert)}; no CA bundle configured for builds",
        "export DOCKYARD_CA_BUNDLE=/path/to/the/system/ca-bundle.pem",
    )


def check_disk(ctx: Context) -> Line:
    if ctx.client is None:
        return Line("disk", WARN, "not checked: no engine", "")
    root = str(ctx.info.get("DockerRootDir", ""))
    host = ctx.environ.get("DOCKER_HOST", "")
    if not root or host not in provisioning.DEFAULT_SOCKETS or not Path(root).exists():
        return Line(
            "disk", WARN, f"the engine's data root {root or '?'} is not on this machine: not checked", ""
        )
    usage = shutil.disk_usage(root)
    free = f"{usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.0f} GB on {root}"
    if usage.free < DISK_FIX:
        return Line("disk", FIX, free, "docker builder prune --force && docker image prune --force")
    if usage.free < DISK_WARN:
        return Line("disk", WARN, free, "docker builder prune --force")
    return Line("disk", OK, free)


def check_config(ctx: Context) -> Line:  # noqa: PLR0911 - one return per verdict
    if ctx.project_dir is None:
        return Line(
            "config",
            WARN,
            "no pyproject.toml here or above: project checks skipped",
            "cd into the project, or pass --project DIR",
        )
    if ctx.settings_error:
        return Line(
            "config", FIX, ctx.settings_error, f"edit {ctx.project_dir / 'pyproject.toml'} [tool.dockyard]"
        )
    if ctx.settings is None:
        return Line("config", FIX, "the project could not be read", "dockyard init")
    try:
        data = tomllib.loads((ctx.project_dir / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        data = {}
    if "dockyard" not in data.get("tool", {}):
        return Line(
            "config", WARN, f"{ctx.project_dir.name}: no [tool.dockyard] (defaults apply)", "dockyard init"
        )
    problems = dict(ctx.settings.problems)
    if problems:
        return Line("config", FIX, next(iter(problems.values())), "dockyard init")
    if not ctx.settings.dockerfile.is_file():
        return Line("config", FIX, f"no Dockerfile at {ctx.settings.dockerfile}", "dockyard init")
    return Line(
        "config", OK, f"[tool.dockyard] valid: image {ctx.settings.image}, {ctx.settings.dockerfile.name}"
    )


def check_lock(ctx: Context) -> Line:
    """Whether uv.lock matches pyproject.toml, as uv says offline, run the way `lock-current` runs it:
    from outside the project (a pyenv shim reading `.python-version` cannot refuse to start uv), with
    another installed interpreter when the one uv finds cannot be used. Only uv's verdict that the lock
    is stale is a FIX; a uv that could not tell is a WARN with its reason."""
    if ctx.settings is None:
        return Line("lock", WARN, "no project: not checked", "")
    if shutil.which("uv", path=ctx.environ.get("PATH")) is None:
        return Line("lock", WARN, "not checked: no uv", "")
    from dockyard.project import lock  # noqa: PLC0415 - only this check reads the lock

    directory = ctx.settings.workspace_dir
    if not ctx.settings.lock_file.is_file():
        return Line("lock", FIX, f"no uv.lock in {directory}", "uv lock")
    try:
        lock.current(directory, lock_command="uv lock", network=False, timeout=TIMEOUT * 4)
    except lock.LockStale as exc:
        return Line("lock", FIX, exc.message, "uv lock")
    except lock.LockCheckFailed as exc:
        return Line("lock", WARN, f"not checked offline: {exc.message}", "uv lock --check")
    return Line("lock", OK, "uv.lock matches pyproject.toml")


# --- running them -----------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[Context], Line]] = {
    "engine": check_engine,
    "buildkit": check_buildkit,
    "compose": check_compose,
    "uv": check_uv,
    "base images": check_base_images,
    "tls": check_tls,
    "disk": check_disk,
    "config": check_config,
    "lock": check_lock,
}
ORDER = tuple(CHECKS)
ENGINE_CHAIN = ("engine", "base images", "disk")


def context(project: Path | None, environ: Mapping[str, str]) -> Context:
    """What the checks share, for the project at or above `project` (or the current directory)."""
    project_dir: Path | None
    try:
        project_dir = config.find_project((project or Path.cwd()).resolve())
    except DockyardError:
        if project is not None:
            raise UsageError(f"no pyproject.toml in {project} or above: pass a project directory") from None
        project_dir = None
    ctx = Context(environ=environ, project_dir=project_dir, decision=provisioning.decide_here(environ))
    if project_dir is not None:
        try:
            ctx.settings = config.load(project_dir, environ)
        except DockyardError as exc:
            ctx.settings_error = exc.message
    return ctx


def _guarded(item: str, check: Callable[[Context], Line], ctx: Context) -> Line:
    try:
        return check(ctx)
    except Exception as exc:  # a check that cannot run is reported, never a traceback
        return Line(item, WARN, f"could not check: {type(exc).__name__}: {exc}", "")


def diagnose(project: Path | None = None, environ: Mapping[str, str] | None = None) -> list[Line]:
    """Every item, concurrently; the engine's answer is shared with the checks that need it."""
    env = config.effective_environment(environ)
    ctx = context(project, env)
    independent = {item: CHECKS[item] for item in ORDER if item not in ENGINE_CHAIN}
    lines: dict[str, Line] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(independent) + 1) as pool:
        futures = {pool.submit(_guarded, item, fn, ctx): item for item, fn in independent.items()}

        def engine_chain() -> list[Line]:  # these share the engine's answer, in this order
            return [_guarded(item, CHECKS[item], ctx) for item in ENGINE_CHAIN]

        chain = pool.submit(engine_chain)
        for future, item in futures.items():
            lines[item] = future.result()
        for line in chain.result():
            lines[line.item] = line
    return [lines[item] for item in ORDER]


def ready(lines: list[Line]) -> bool:
    return all(line.status != FIX for line in lines)


def render(lines: list[Line], console: Console, seconds: float | None = None) -> None:
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    table.add_column("", no_wrap=True)
    table.add_column("item", no_wrap=True)
    table.add_column("what was found", overflow="fold")
    table.add_column("fix", overflow="fold")
    colour = {OK: "green", WARN: "yellow", FIX: "bold red"}
    for line in lines:
        table.add_row(
            f"[{colour[line.status]}]{line.status}[/]",
            line.item,
            escape(line.detail),
            escape(line.fix),
        )
    console.print(table)
    verdict = "[bold green]ready[/]" if ready(lines) else "[bold red]not ready[/]: run the FIX commands"
    took = f" ({seconds:.1f} s)" if seconds is not None else ""
    console.print(f"{verdict}{took}")


def doctor(project: Path | None, console: Console, *, fix: bool = False) -> bool:
    """Check (and with `fix`, provision and check again); True when ready."""
    start = time.monotonic()
    lines = diagnose(project)
    render(lines, console, time.monotonic() - start)
    if not fix or ready(lines):
        if fix:
            console.print("nothing for --fix to do")
        return ready(lines)
    fixable = [line for line in lines if line.status == FIX and line.fixable]
    if not fixable:
        console.print("--fix: none of the FIX lines is something provisioning can fix; run their commands")
        return False
    decision = provisioning.decide_here()
    if not decision.provision:
        raise NotReady(f"--fix cannot provision here ({decision.reason}): {decision.fix}")
    console.print(
        f"[bold]--fix[/]: provisioning ({decision.reason}) for: {', '.join(line.item for line in fixable)}"
    )
    provisioning.provision(lambda text: console.print(f"  {escape(text)}", highlight=False))
    start = time.monotonic()
    lines = diagnose(project)
    render(lines, console, time.monotonic() - start)
    return ready(lines)
