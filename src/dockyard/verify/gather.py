"""verify-image: gather the facts about an image once, concurrently, then judge every check.

The probe runs in ONE container, the healthcheck in one more, the export is streamed once, and the
lock and layer-cache checks work on the host; all of them overlap. Every step has a time limit, and
every container and scratch image is labelled and removed, also on failure, timeout and Ctrl-C.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker.errors

from dockyard import git
from dockyard.build import buildkit as builds
from dockyard.config import Settings
from dockyard.engine import Engine
from dockyard.errors import BuildFailed, DockyardError, UsageError
from dockyard.image import metadata as images
from dockyard.project import lock
from dockyard.project.dockerfile import parse as parse_dockerfile
from dockyard.results import CheckResult, Outcome, Report
from dockyard.verify import checks, runner
from dockyard.verify import facts as verdicts
from dockyard.verify.checks import CHECKS
from dockyard.verify.checks import files as file_checks
from dockyard.verify.facts import CacheOutcome, Facts, HealthOutcome

HEALTH_INTERVAL_NS = 500_000_000  # probe every 0.5 s instead of waiting out the image's interval


@dataclass(frozen=True)
class VerifyOptions:
    skip: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    build: builds.BuildResult | None = None  # the build that produced the image, when verify built it


def selected_checks(settings: Settings, options: VerifyOptions) -> list[verdicts.Check]:
    unknown = sorted({*options.skip, *options.only, *settings.verify.skip} - set(checks.CHECK_IDS))
    if unknown:
        raise UsageError(f"unknown check id(s) {', '.join(unknown)}; known: {', '.join(checks.CHECK_IDS)}")
    skip = {*options.skip, *settings.verify.skip}
    return [c for c in CHECKS if c.id not in skip and (not options.only or c.id in options.only)]


def verify_image(engine: Engine, settings: Settings, image_ref: str, options: VerifyOptions) -> Report:
    """Run the checklist on `image_ref` and return the report (printing is the caller's)."""
    start = time.monotonic()
    chosen = selected_checks(settings, options)
    info = images.inspect_image(engine, image_ref)
    dockerfile = parse_dockerfile(settings.dockerfile) if settings.dockerfile.is_file() else None
    facts = Facts(settings=settings, image=info, dockerfile=dockerfile, build=options.build)
    facts.secrets = _secrets(settings)
    needs = {need for check in chosen for need in check.needs}
    gatherers: dict[str, Callable[[], Any]] = {
        "base": lambda: images.find_base(engine, settings, info, images.subject_name(image_ref, info)),
        "probe": lambda: runner.run_probe(
            engine, image_ref, probe_spec(settings, info), timeout=settings.verify.timeout
        ),
        "lock_status": lambda: _lock_status(settings),
        "health": lambda: _health(engine, image_ref, info, settings.verify.healthcheck_timeout),
        "export": lambda: images.scan_export(engine, info.id, needles=facts.secrets),
        "cache": lambda: _layer_cache(engine, settings),
    }
    wanted = {"base"} | (needs & set(gatherers))
    if "locked" in needs:
        wanted.add("probe")
    if "health" in wanted and (not settings.service or info.healthcheck is None):
        wanted.discard("health")  # the check decides without a container
    if "export" in wanted and not facts.secrets:
        wanted.discard("export")
    _gather(facts, {name: gatherers[name] for name in wanted}, engine, settings.verify.timeout)
    if "locked" in needs and facts.probe is not None:
        _lock_sets(facts)
    results = tuple(_judge(check, facts) for check in chosen)
    meta = {
        "image": image_ref,
        "id": info.id,
        "size": str(info.size),
        "engine": engine.server_version(),
        "base": (facts.base.ref if facts.base else None) or "unknown",
    }
    return Report(f"verify-image {image_ref}", results, time.monotonic() - start, meta)


def build_failed_report(settings: Settings, error: BuildFailed, options: VerifyOptions) -> Report:
    """The report when the image did not build: `builds` fails with the failing step, the rest skip."""
    results = []
    for check in selected_checks(settings, options):
        if check.id == "builds":
            verdict = verdicts.failed(error.message, *error.detail.splitlines())
        else:
            verdict = verdicts.skipped("the image did not build")
        results.append(CheckResult(check.id, check.title, verdict.outcome, verdict.evidence, verdict.details))
    return Report(f"verify-image {settings.image}", tuple(results))


def _gather(facts: Facts, work: dict[str, Callable[[], Any]], engine: Engine, timeout: float) -> None:
    """Run the gatherers concurrently, each within `timeout`; record values, errors and times."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(work)))
    started = time.monotonic()
    futures = {pool.submit(_timed, fn): name for name, fn in work.items()}
    try:
        done, pending = concurrent.futures.wait(futures, timeout=timeout + 30)
        for future in pending:
            facts.errors[futures[future]] = f"did not finish within {timeout:g} s"
        for future in done:
            name = futures[future]
            try:
                value, seconds = future.result()
            except DockyardError as exc:
                facts.errors[name] = exc.message
                facts.seconds[name] = time.monotonic() - started
                continue
            setattr(facts, name, value)
            facts.seconds[name] = seconds
    finally:
        engine.remove_run_leftovers()  # containers of gatherers that were cut short
        pool.shutdown(wait=False, cancel_futures=True)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    return fn(), time.monotonic() - start


def _judge(check: verdicts.Check, facts: Facts) -> CheckResult:
    start = time.monotonic()
    missing = [need for need in check.needs if need in facts.errors]
    if "locked" in check.needs and facts.locked is None and "locked" not in facts.errors:
        missing.append("probe")
    if missing:
        reason = "; ".join(f"{need}: {facts.errors.get(need, 'not available')}" for need in missing)
        verdict = verdicts.Verdict(Outcome.ERROR, reason)
    else:
        verdict = check.judge(facts)
    gathered = max((facts.seconds.get(need, 0.0) for need in check.needs), default=0.0)
    return CheckResult(
        check_id=check.id,
        title=check.title,
        outcome=verdict.outcome,
        evidence=verdict.evidence,
        details=verdict.details,
        seconds=gathered + time.monotonic() - start,
        subject=facts.image.ref,
    )


# --- gatherers --------------------------------------------------------------------------------------


def _secrets(settings: Settings) -> dict[str, bytes]:
    paths = {settings.ca_secret_id: settings.ca_bundle} if settings.ca_bundle else {}
    paths.update({p.name: settings.project_dir / p for p in settings.verify.secrets})
    out = {}
    for name, path in paths.items():
        try:
            out[name] = path.read_bytes()
        except OSError as exc:
            raise UsageError(
                f"secret {name}: cannot read {path} ({exc.strerror}); fix verify.secrets"
            ) from None
    return out


def probe_spec(settings: Settings, info: images.ImageInfo) -> dict[str, object]:
    verify = settings.verify
    return {
        "imports": list(verify.imports if verify.imports is not None else (settings.package,)),
        "commands": [{"argv": list(s.command), "timeout": s.timeout} for s in verify.smoke],
        "forbidden_names": [*file_checks.DEFAULT_FORBIDDEN_NAMES, *verify.forbidden],
        "forbidden_paths": file_checks.forbidden_paths(info.working_dir),
        "sniff_private_keys": True,
        "deadline_seconds": max(10.0, verify.timeout - 10),
    }


def _lock_status(settings: Settings) -> verdicts.LockStatus:
    try:
        return verdicts.LockStatus(True, lock.check(settings.project_dir))
    except lock.LockStale as exc:
        return verdicts.LockStatus(False, exc.message)


def _lock_sets(facts: Facts) -> None:
    python = verdicts.require(facts.probe).get("python", {})
    version = str(python.get("version", "3"))
    machine = str(python.get("machine", "x86_64"))
    try:
        facts.locked = lock.locked_sets(
            facts.settings.project_dir / "uv.lock",
            facts.settings.project_name,
            environment=lock.marker_environment(version, machine),
        )
    except DockyardError as exc:
        facts.errors["locked"] = exc.message


def _health(engine: Engine, image_ref: str, info: images.ImageInfo, timeout: float) -> HealthOutcome:
    original = verdicts.require(info.healthcheck)
    override = {
        "test": original["Test"],
        "interval": HEALTH_INTERVAL_NS,
        "timeout": original.get("Timeout") or 5_000_000_000,
        "retries": original.get("Retries") or 3,
        "start_period": original.get("StartPeriod") or 0,
    }
    start = time.monotonic()
    with engine.container(image_ref, healthcheck=override, network_mode="none") as made:
        made.start()
        status = "starting"
        while time.monotonic() - start < timeout:
            made.reload()
            state = made.attrs["State"]
            status = (state.get("Health") or {}).get("Status", "none")
            if state.get("Status") in ("exited", "dead"):
                status = "exited"
            if status in ("healthy", "unhealthy", "exited"):
                break
            time.sleep(0.2)
        health = made.attrs["State"].get("Health") or {}
        log = tuple(
            f"exit {entry.get('ExitCode')}: {(entry.get('Output') or '').strip()[:300]}"
            for entry in (health.get("Log") or [])[-3:]
        )
        tail = made.logs(tail=15).decode(errors="replace").splitlines()
        return HealthOutcome(
            status=status,
            seconds=time.monotonic() - start,
            log=log,
            container_log=tuple(tail),
            exit_code=made.attrs["State"].get("ExitCode"),
        )


def _touch_target(settings: Settings, context: Path) -> Path:
    if settings.verify.layer_cache_touch:
        target = context / settings.verify.layer_cache_touch
        if not target.is_file():
            raise UsageError(f"verify.layer-cache-touch: {target} is not a file in the build context")
        return target
    for candidate in (
        context / "src" / settings.package / "__init__.py",
        context / settings.package / "__init__.py",
    ):
        if candidate.is_file():
            return candidate
    found = sorted(p for p in (context / "src").rglob("*.py")) if (context / "src").is_dir() else []
    if not found:
        raise UsageError("no source file to change for the layer-cache check: set verify.layer-cache-touch")
    return found[0]


def _layer_cache(engine: Engine, settings: Settings) -> CacheOutcome:
    """Build a scratch copy of the context twice, the second time after a source-only change."""
    with tempfile.TemporaryDirectory(prefix="dockyard-cache-") as scratch:
        root = Path(scratch) / "project"
        copy_project(settings.project_dir, root)
        moved = settings.relocated(root)
        request = replace(builds.request_for(moved, tags=()), tags=(), labels=engine.labels)
        made: list[str] = []
        try:
            first = builds.build(engine, request)
            made.append(first.image_id)
            touched = _touch_target(moved, moved.context)
            # A fresh change every run: a change seen before would come from the cache and prove nothing.
            touched.write_text(touched.read_text() + f"\n# dockyard layer-cache check {uuid.uuid4().hex}\n")
            second = builds.build(engine, request)
            made.append(second.image_id)
        finally:
            _remove_scratch_images(engine, made)
        return CacheOutcome(
            touched=str(touched.relative_to(root)),
            layers_before=first.layers,
            layers_after=second.layers,
            reinstalled=tuple(
                (step.name, step.installed_packages)
                for step in second.steps
                if not step.cached and step.installs_dependencies
            ),
        )


def copy_project(source: Path, destination: Path) -> None:
    """The files git knows (tracked and untracked-not-ignored), or everything but caches outside git."""
    try:
        names = git.list_files(source)
    except DockyardError:
        ignore = shutil.ignore_patterns(".git", ".venv", ".nox", "__pycache__", "*_cache")
        shutil.copytree(source, destination, ignore=ignore)
        return
    for name in names:
        src = source / name
        if not src.is_file():
            continue
        dst = destination / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def _remove_scratch_images(engine: Engine, image_ids: Sequence[str]) -> None:
    for image_id in dict.fromkeys(image_ids):
        image = engine.image(image_id)
        if image.tags:  # identical to an image someone tagged: not ours to remove
            continue
        with contextlib.suppress(docker.errors.APIError):  # in use by a container not ours: leave it
            engine.client.images.remove(image_id, noprune=False)
