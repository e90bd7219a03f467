"""What verify-image judges: the facts gathered once about an image, and a check's verdict on them.

Facts come from image metadata (the SDK), one probe container, one healthcheck container, one
streamed export, the lock and a scratch rebuild (see `dockyard.verify.gather`). Each check is a pure
function of them (`dockyard.verify.checks`), so each is unit-testable on recorded facts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from dockyard.errors import DockyardError
from dockyard.results import Outcome

if TYPE_CHECKING:
    from dockyard.build.buildkit import BuildResult
    from dockyard.config import Settings
    from dockyard.credentials.fingerprint import SecretMatch, SecretPrint
    from dockyard.credentials.layers import CredentialScan
    from dockyard.image.export import ExportScan
    from dockyard.image.metadata import Base, ImageInfo
    from dockyard.project.dockerfile import Dockerfile
    from dockyard.project.lock import LockedSets


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    evidence: str
    details: tuple[str, ...] = ()


def passed(evidence: str, *details: str) -> Verdict:
    return Verdict(Outcome.PASS, evidence, details)


def failed(evidence: str, *details: str) -> Verdict:
    return Verdict(Outcome.FAIL, evidence, details)


def skipped(evidence: str) -> Verdict:
    return Verdict(Outcome.SKIP, evidence)


@dataclass(frozen=True)
class HealthOutcome:
    status: str  # healthy (at least once), unhealthy, starting (timed out), exited, none
    seconds: float  # until the first `healthy`, else until the watch ended
    log: tuple[str, ...] = ()  # the healthcheck's own output, newest last
    container_log: tuple[str, ...] = ()  # tail of the container's output
    exit_code: int | None = None  # when the container had stopped
    settled: float = 0.0  # seconds watched after the first `healthy`
    settle_probes: int = 0  # probes finished in that time
    lost: str | None = None  # "exited" or "unhealthy": what happened within the settle window


@dataclass(frozen=True)
class CacheOutcome:
    """A scratch rebuild after a source-only change, compared layer by layer with the one before."""

    touched: str  # the file that was changed
    layers_before: tuple[tuple[str, int], ...]  # (diff_id, size) of the unchanged build
    layers_after: tuple[tuple[str, int], ...]
    reinstalled: tuple[tuple[str, int], ...]  # re-run steps of the second build that installed
    # more than one package (the project alone is one): (step, packages installed)


@dataclass(frozen=True)
class LockStatus:
    current: bool  # matches pyproject.toml, tracked and committed
    message: str  # what `dockyard.lock.check` said


@dataclass(frozen=True)
class ExportFacts:
    """The one streamed pass over the image export, and what its content hooks found there."""

    scan: ExportScan
    base_layers: int  # how many of its layers are the base image's
    secrets: tuple[SecretMatch, ...]  # build secrets in added layers
    credentials: CredentialScan | None  # None when no-credentials did not run
    base_env: Mapping[str, str] = field(default_factory=dict)  # ENV the base image already sets
    base_labels: Mapping[str, str] = field(default_factory=dict)
    base_history: int = 0  # history entries of the base image (the image's first ones)
    source: str = "the image's export (`docker save`)"  # where the layers were read, and why there


@dataclass
class Facts:
    settings: Settings
    image: ImageInfo
    dockerfile: Dockerfile | None = None
    base: Base | None = None  # the image it starts from, when known: its layers are not the build's
    build: BuildResult | None = None
    probe: Mapping[str, Any] | None = None
    locked: LockedSets | None = None
    health: HealthOutcome | None = None
    export: ExportFacts | None = None
    secrets: tuple[SecretPrint, ...] = ()  # the build secrets looked for
    lock_status: LockStatus | None = None
    cache: CacheOutcome | None = None
    errors: dict[str, str] = field(default_factory=dict)  # fact name -> why it could not be had
    unavailable: dict[str, str] = field(default_factory=dict)  # fact name -> why it does not apply (SKIP)
    imports_inferred: str | None = None  # where the default `imports` came from
    seconds: dict[str, float] = field(default_factory=dict)  # fact name -> time to gather it


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    needs: tuple[str, ...]  # facts it reads besides the image metadata
    judge: Callable[[Facts], Verdict]
    optional: tuple[str, ...] = ()  # facts it uses when they apply, and judges without otherwise
    # what it reads of the probe's answer beyond the app, its user and interpreter (one of
    # `dockyard.verify.probe.FACTS`): the probe gathers only what the selected checks read
    probe: tuple[str, ...] = ()


T = TypeVar("T")


def require(value: T | None) -> T:
    """A fact the check declared in `needs`; verify judges no check whose facts are missing."""
    if value is None:
        raise DockyardError("a check ran without the facts it needs")
    return value


def mb(size: int) -> str:
    import humanize  # noqa: PLC0415

    return humanize.naturalsize(size)


def active_env(probe: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first environment on the app's sys.path (its site-packages, for a venv)."""
    return next((env for env in probe.get("environments", []) if env.get("active")), None)


def app_distributions(probe: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every distribution the app's interpreter sees, by name: the first on its sys.path wins, as for
    `importlib.metadata` (a later one of the same name is shadowed)."""
    found: dict[str, Mapping[str, Any]] = {}
    for env in probe.get("environments", []):
        if env.get("active"):
            for dist in env.get("distributions", []):
                if dist.get("name") and dist["name"] not in found:
                    found[dist["name"]] = {**dist, "environment": env.get("path")}
    return found


def app_python(probe: Mapping[str, Any]) -> str:
    """The app's interpreter, and how it was found, for evidence: `/app/.venv/bin/python (CMD
    `dockyard`: /app/.venv/bin/dockyard, #!/app/.venv/bin/python)`."""
    app = probe.get("app") or {}
    executable = (probe.get("python") or {}).get("executable") or app.get("interpreter") or "python"
    if app.get("error") or not app.get("argv"):
        how = app.get("resolved_by")
        return f"{executable} ({how})" if how else str(executable)
    command = " ".join(app["argv"])
    command = command if len(command) <= 40 else command[:37] + "..."
    own = {str(app.get("interpreter")), str(executable)}
    steps = [s for s in app.get("steps") or [] if not any(s.endswith(path) for path in own)]
    shown = ", ".join(s.split(" -> ")[-1] for s in steps)
    return f"{executable} (`{command}`" + (f": {shown})" if shown else ")")


def app_user(probe: Mapping[str, Any]) -> str:
    user = probe.get("user") or {}
    name = user.get("name")
    return f"uid {user.get('uid')}" + (f" ({name})" if name else "")
