"""verify-image: gather the facts about an image once, concurrently, then judge every check.

The probe runs in ONE container, the healthcheck in one more, the export is streamed once, and the
lock and layer-cache checks work on the host; all of them overlap. Every step has a time limit, and
every container and scratch image is labelled and removed, also on failure, timeout and Ctrl-C.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import importlib
import os
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import fsutil, git, interrupt
from dockyard.config import Settings
from dockyard.engine import Engine, first_line
from dockyard.errors import (
    BaseImageUnavailable,
    BuildFailed,
    ConfigError,
    DockyardError,
    ImageNotFound,
    UsageError,
)
from dockyard.image import metadata as images
from dockyard.project import discover as discovery
from dockyard.project.dockerfile import Dockerfile
from dockyard.project.dockerfile import parse as parse_dockerfile
from dockyard.results import CheckResult, Outcome, Report
from dockyard.verify import checks, health, probe, runner
from dockyard.verify import facts as verdicts
from dockyard.verify.checks import CHECKS
from dockyard.verify.checks import files as file_checks
from dockyard.verify.facts import CacheOutcome, Facts, HealthOutcome

if TYPE_CHECKING:
    from dockyard.build import buildkit as builds
    from dockyard.credentials.fingerprint import SecretHook, SecretMatch, SecretPrint
    from dockyard.credentials.layers import CredentialHook
    from dockyard.engine import Inspected
    from dockyard.image import export as export_scan
    from dockyard.image.export import ContentHook
    from dockyard.project.lock import Lock


@dataclass(frozen=True)
class VerifyOptions:
    skip: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    build: builds.BuildResult | None = None  # the build that produced the image, when verify built it
    skip_reasons: Mapping[str, str] = field(default_factory=dict)  # id in `skip` -> why, when not asked


def selected_checks(settings: Settings, options: VerifyOptions) -> list[verdicts.Check]:
    """The checks that run: all, less the ones turned off, or only the ones asked for."""
    turned_off = skipped_checks(settings, options)
    return [c for c in CHECKS if c.id not in turned_off and (not options.only or c.id in options.only)]


def skipped_checks(settings: Settings, options: VerifyOptions) -> dict[str, str]:
    """Check id -> why it was turned off; each is still reported, as SKIP with that reason."""
    unknown = sorted({*options.skip, *options.only, *settings.verify.skip} - set(checks.CHECK_IDS))
    if unknown:
        raise UsageError(f"unknown check id(s) {', '.join(unknown)}; known: {', '.join(checks.CHECK_IDS)}")
    reasons = dict.fromkeys(settings.verify.skip, "turned off by [tool.dockyard.verify] skip")
    reasons.update(
        {i: options.skip_reasons.get(i, "turned off on the command line (--skip)") for i in options.skip}
    )
    return {i: reason for i, reason in reasons.items() if not options.only or i in options.only}


def _row(check: verdicts.Check, verdict: verdicts.Verdict, subject: str, seconds: float = 0.0) -> CheckResult:
    return CheckResult(
        check.id, check.title, verdict.outcome, verdict.evidence, verdict.details, seconds, subject
    )


def _rows(
    settings: Settings, options: VerifyOptions, subject: str, judge: Callable[[verdicts.Check], CheckResult]
) -> tuple[CheckResult, ...]:
    """One row per check in report order: judged, or SKIP with the reason it was turned off. Under
    `--only`, the checks not asked for are left out (the report's meta says so)."""
    turned_off = skipped_checks(settings, options)
    rows = []
    for check in CHECKS:
        if check.id in turned_off:
            rows.append(_row(check, verdicts.skipped(turned_off[check.id]), subject))
        elif not options.only or check.id in options.only:
            rows.append(judge(check))
    return tuple(rows)


def verify_image(
    engine: Engine,
    settings: Settings,
    image_ref: str,
    options: VerifyOptions,
    *,
    prefetch: Sequence[str] = (),
    ahead: concurrent.futures.Future[Inspected] | None = None,
) -> Report:
    """Run the checklist on `image_ref` and return the report (printing is the caller's).

    `prefetch` names modules the caller will need afterwards (to print the report, say): they are
    imported while the engine works, rather than after the last fact is in. Inside the engine's
    `removing_in_background()` block, containers it made may still be on their way out when it
    returns (the doors open that block around printing too). `ahead`: `engine.warm`'s inspect of
    `image_ref`, when it was started.
    """
    start = time.monotonic()
    chosen = selected_checks(settings, options)
    info = images.inspect_image(engine, image_ref, ahead)
    dockerfile = _project_dockerfile(settings)
    facts = Facts(settings=settings, image=info, dockerfile=dockerfile, build=options.build)
    needs = {need for check in chosen for need in (*check.needs, *check.optional)}
    if "export" in needs:  # only the export's checks look for the build secrets
        facts.secrets = _secrets(settings)
    imports, facts.imports_inferred = default_imports(settings, info, dockerfile)
    _not_applicable(facts)
    stop = threading.Event()  # set when the gathering ends: a watch still running stops at once
    spec = probe_spec(settings, info, imports, probe_facts(chosen))
    test = _health_test(settings, info)
    base = _Once(lambda: images.find_base(engine, settings, info, images.subject_name(image_ref, info)))
    credentials = any(check.id == "no-credentials" for check in chosen)
    # The probe first: the longest wait, so it starts before everything else.
    gatherers: dict[str, Callable[[], Any]] = {
        "probe": lambda: runner.run_probe(engine, image_ref, spec, timeout=settings.verify.timeout),
        "cache": lambda: _layer_cache(engine, settings),
        "export": lambda: _export(engine, settings, info, base(), facts.secrets, credentials=credentials),
        "health": lambda: _health(engine, image_ref, verdicts.require(test), settings, stop),
        "base": base,
        "lock_status": lambda: _lock_status(settings),
    }
    wanted = {"base"} | (needs & set(gatherers)) - set(facts.unavailable)
    if "locked" in needs:
        wanted.add("probe")
    if "health" in wanted and test is None:
        wanted.discard("health")  # a job, or no HEALTHCHECK: the check decides without a container
    if "health" in wanted and test is not None:
        # The probe runs the health test once where the app is not started: one that still succeeds
        # cannot fail (vacuous).
        wanted.add("probe")
        timeout = min(test.probe_timeout, health.VACUITY_TIMEOUT)
        smoke = spec.get("commands")
        spec["commands"] = [
            *(smoke if isinstance(smoke, list) else ()),
            {"argv": list(test.argv), "timeout": timeout},
        ]
    sets_wanted = "locked" in needs and "locked" not in facts.unavailable
    parsed: list[Lock] = []  # uv.lock, read while the engine works

    def meanwhile() -> None:
        _import(later)
        if sets_wanted:
            from dockyard.project import lock  # noqa: PLC0415

            with contextlib.suppress(DockyardError):  # said when the sets are read, below
                parsed.append(lock.read_lock(settings.lock_file, lock_command=settings.lock_command))

    def arrived(fact: str) -> None:
        # uv.lock's sets, read with the image's Python's markers as soon as the probe names them,
        # while the other gatherers still work. Checks are judged once every fact is in: some read
        # a fact they do not declare when it is there (the healthcheck reads the probe's run of it).
        if fact == "probe" and sets_wanted and facts.probe is not None:
            _lock_sets(facts, parsed[0] if parsed else None)

    work = {name: gatherers[name] for name in gatherers if name in wanted}
    later = [*(["packaging.markers"] if "locked" in needs else []), *prefetch]  # uv.lock's markers
    _gather(facts, work, engine, settings.verify.timeout, stop, on_fact=arrived, meanwhile=meanwhile)
    reported: dict[str, str] = {}  # failed fact -> the check whose row reports the cause
    results = _rows(settings, options, image_ref, lambda check: _judge(check, facts, reported))
    meta = {
        "image": image_ref,
        "id": info.id,
        "size": str(info.size),
        "engine": engine.server_version(),  # from the connection's answer: no request
        "base": (facts.base.ref if facts.base else None) or "unknown",
    }
    if options.only:
        meta["only"] = ", ".join(options.only)
    return Report(f"verify-image {image_ref}", results, time.monotonic() - start, meta)


def build_failed_report(settings: Settings, error: DockyardError, options: VerifyOptions) -> Report:
    """The report when the image did not build: `builds` fails with the failing step (an ERROR when the
    build could not run at all), the rest skip."""

    def judge(check: verdicts.Check) -> CheckResult:
        if (
            check.id == "builds"
            and isinstance(error, BuildFailed)
            and not isinstance(error, BaseImageUnavailable)
        ):
            return _row(check, verdicts.failed(error.message, *error.detail.splitlines()), settings.image)
        if check.id == "builds":  # it could not run: an image it pulls could not be had, say
            detail = tuple(error.detail.splitlines()) if isinstance(error, BuildFailed) else ()
            return _row(check, verdicts.Verdict(Outcome.ERROR, error.message, detail), settings.image)
        return _row(check, verdicts.skipped("the image did not build"), settings.image)

    return Report(f"verify-image {settings.image}", _rows(settings, options, settings.image, judge))


def _gather(
    facts: Facts,
    work: dict[str, Callable[[], Any]],
    engine: Engine,
    timeout: float,
    stop: threading.Event | None = None,
    on_fact: Callable[[str], None] | None = None,
    meanwhile: Callable[[], object] | None = None,
) -> None:
    """Run the gatherers concurrently, each within `timeout`; record values, errors and times. In this
    thread, do `meanwhile` once they are under way, and call `on_fact(name)` as each one ends. On the
    way out (interrupted too) `stop` is set first, so no gatherer starts a container after the sweep
    of this run's containers, which runs only when a gatherer failed or was cut short: every other
    container was removed by its own block.

    Each runs in a background thread (`dockyard.interrupt`): Ctrl-C cuts all of them short at once,
    and a gatherer that overruns is cut short the same way (its build killed, its container
    removed, its scratch copy deleted) rather than left running. After an interrupt each is waited
    for (briefly) to finish its own cleanup, such as a container whose creation was under way as the
    signal came; the export read holds nothing to clean up, so nobody waits for it.
    """
    started = time.monotonic()
    futures = {
        interrupt.background(
            functools.partial(_timed, fn), name=f"gather-{name}", wait=name != "export"
        ): name
        for name, fn in work.items()
    }
    clean = False
    try:
        if meanwhile is not None:
            meanwhile()
        try:
            for future in concurrent.futures.as_completed(futures, timeout=timeout + 30):
                name = futures[future]
                try:
                    value, seconds = future.result()
                except DockyardError as exc:
                    facts.errors[name] = exc.message
                    facts.seconds[name] = time.monotonic() - started
                except Exception as exc:  # an engine or library error: that fact is missing
                    facts.errors[name] = f"{type(exc).__name__}: {first_line(exc)}"
                    facts.seconds[name] = time.monotonic() - started
                else:
                    setattr(facts, name, value)
                    facts.seconds[name] = seconds
                if on_fact is not None:
                    on_fact(name)
        except TimeoutError:
            pending = [future for future in futures if not future.done()]
            interrupt.cut_short(pending)
            for future in pending:
                facts.errors[futures[future]] = f"did not finish within {timeout:g} s"
        clean = not set(facts.errors) & set(work)
    finally:
        if stop is not None:
            stop.set()
        # On an interrupt each container is removed by its own thread; otherwise only a gatherer that
        # failed or was cut short can have left one.
        if not clean and not interrupt.cancelled():
            engine.remove_run_leftovers()


def _import(modules: Iterable[str]) -> None:
    """Import what judging and printing will need while this thread would only wait on the engine."""
    for name in modules:
        importlib.import_module(name)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    return fn(), time.monotonic() - start


def _judge(check: verdicts.Check, facts: Facts, reported: dict[str, str] | None = None) -> CheckResult:
    """The check's verdict; when a fact it needs could not be gathered, the first such check reports
    the cause as ERROR and later ones SKIP pointing to it (one cause, one row: not the same docker
    error in every check that needed the probe)."""
    start = time.monotonic()
    reported = {} if reported is None else reported
    missing = [need for need in check.needs if need in facts.errors]
    skipped = [facts.unavailable[need] for need in check.needs if need in facts.unavailable]
    if "locked" in check.needs and facts.locked is None and "locked" not in facts.errors and not skipped:
        missing.append("probe")
    missing = list(dict.fromkeys(missing))
    if skipped and not missing:
        verdict = verdicts.skipped(skipped[0])
    elif missing and all(need in reported for need in missing):
        seen = ", ".join(dict.fromkeys(reported[need] for need in missing))
        verdict = verdicts.Verdict(Outcome.SKIP, f"{' and '.join(missing)} failed: see {seen}")
    elif missing:
        reason = "; ".join(f"{need}: {facts.errors.get(need, 'not available')}" for need in missing)
        verdict = verdicts.Verdict(Outcome.ERROR, reason)
        for need in missing:
            reported.setdefault(need, check.id)
    else:
        try:
            verdict = check.judge(facts)
        except DockyardError as exc:
            verdict = verdicts.Verdict(Outcome.ERROR, exc.message)
        except Exception as exc:  # one check's defect must not take the report down
            verdict = verdicts.Verdict(
                Outcome.ERROR, f"the check could not judge: {type(exc).__name__}: {exc}"
            )
    gathered = max((facts.seconds.get(need, 0.0) for need in check.needs), default=0.0)
    return _row(check, verdict, facts.image.ref, gathered + time.monotonic() - start)


# --- gatherers --------------------------------------------------------------------------------------


def _secrets(settings: Settings) -> tuple[SecretPrint, ...]:
    """The build secrets, each read once a chunk at a time into a print (never held whole)."""
    paths = {settings.ca_secret_id: settings.ca_bundle} if settings.ca_bundle else {}
    paths.update({p.name: settings.project_dir / p for p in settings.verify.secrets})
    if not paths:
        return ()
    from dockyard.credentials.fingerprint import SecretPrint  # noqa: PLC0415

    return tuple(SecretPrint.from_file(name, path) for name, path in paths.items())


class _Once:
    """A gatherer two others share (the base image: its own fact, and the export's layer split),
    computed once whichever asks first."""

    def __init__(self, fn: Callable[[], images.Base]) -> None:
        self._fn = fn
        self._lock = threading.Lock()
        self._value: images.Base | None = None

    def __call__(self) -> images.Base:
        with self._lock:
            if self._value is None:
                self._value = self._fn()
            return self._value


def _export(
    engine: Engine,
    settings: Settings,
    info: images.ImageInfo,
    base: images.Base,
    prints: Sequence[SecretPrint],
    *,
    credentials: bool,
) -> verdicts.ExportFacts:
    """One pass over the image's layers with the credential and build-secret hooks: read from
    overlay2's layer directories when the engine is local and they are readable (verify.layer-source
    "auto"), else streamed from the export. The base image's layers are told apart first, so their
    contents are passed over."""
    # Imported here, in the export's own thread: the credential machinery is not on the way to the probe.
    from dockyard.credentials.fingerprint import SecretHook, host_public_blocks  # noqa: PLC0415
    from dockyard.credentials.layers import CredentialHook  # noqa: PLC0415

    base_layers = images.common_prefix(info.diff_ids, base.diff_ids) if base.diff_ids else 0
    own = (settings.project_name, settings.package)

    def new_hooks() -> tuple[CredentialHook, SecretHook | None, list[ContentHook]]:
        owners = CredentialHook(base_layers, own, content=credentials)
        found = SecretHook(prints, base_layers) if prints else None
        return owners, found, [owners] if found is None else [owners, found]

    owners, found, hooks = new_hooks()
    scan, source = None, "the image's export (`docker save`)"
    if settings.verify.layer_source == "auto":
        scan, why = _layer_dirs_scan(engine, info, hooks)
        if scan is None:
            source += f": {why}"
            owners, found, hooks = new_hooks()  # they may have seen part of the image
        else:
            source = why
    else:
        source += ": verify.layer-source is export"
    if scan is None:
        scan = images.scan_export(engine, info.id, hooks=hooks, diff_ids=info.diff_ids)
    matches: list[SecretMatch] = []
    if found is not None:
        public = host_public_blocks() if any(p.blocks for p in prints) else set()
        matches = found.result(scan, owners.owned, public)
    env, labels, history = _base_metadata(engine, base)
    return verdicts.ExportFacts(
        scan=scan,
        base_layers=base_layers,
        secrets=tuple(matches),
        credentials=owners.result(scan, info.env) if credentials else None,
        base_env=env,
        base_labels=labels,
        base_history=history,
        source=source,
    )


def _layer_dirs_scan(
    engine: Engine, info: images.ImageInfo, hooks: Sequence[ContentHook]
) -> tuple[export_scan.ExportScan | None, str]:
    """The layers read from overlay2's layer directories and where they were read, or None and why
    they could not be (then the export is the way)."""
    from dockyard.image import layerdirs  # noqa: PLC0415

    if not engine.is_local:
        return None, "the engine is not reached over a local unix socket"
    try:
        found = layerdirs.locate(info.graph_driver, info.diff_ids)
        scan = layerdirs.scan_layer_dirs(found, hooks=hooks, repo_tags=info.tags)
    except layerdirs.LayerDirsUnusable as exc:
        return None, exc.message
    root = found.dirs[0].parent.parent
    return scan, f"overlay2's layer directories under {root} ({len(found.dirs)} layers, no export)"


def _base_metadata(engine: Engine, base: images.Base) -> tuple[dict[str, str], dict[str, str], int]:
    """The base image's ENV, labels and number of history entries: what the Dockerfile did not set."""
    if base.ref is None or not base.diff_ids:
        return {}, {}, 0
    try:
        attrs = engine.inspect_image(base.ref)
        history = engine.image_history(str(attrs["Id"]))
    except (DockyardError, KeyError):
        return {}, {}, 0
    config = attrs.get("Config") or {}
    env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
    return env, dict(config.get("Labels") or {}), len(history)


def _project_dockerfile(settings: Settings) -> Dockerfile | None:
    if not settings.has_project or "dockerfile" in settings.problems or not settings.dockerfile.is_file():
        return None
    try:
        return parse_dockerfile(settings.dockerfile)
    except DockyardError:
        return None


def _not_applicable(facts: Facts) -> None:
    """Facts that do not apply here, so the checks needing them SKIP with the reason."""
    settings = facts.settings
    if not settings.has_project:
        reason = "no project: run dockyard in a uv project (or pass --project DIR) to check this"
        facts.unavailable.update({"lock_status": reason, "cache": reason})
        facts.unavailable["locked"] = "no project, so no uv.lock to compare with"
    elif not settings.lock_file.is_file():
        facts.unavailable["locked"] = f"the project has no uv.lock ({settings.lock_file})"
    elif "package" in settings.problems:
        facts.errors["locked"] = settings.problems["package"]
    if settings.has_project and "dockerfile" in settings.problems:
        facts.errors["cache"] = settings.problems["dockerfile"]
    elif settings.has_project and discovery.outside(
        settings.build_root, settings.repository or settings.workspace_dir
    ):
        facts.unavailable["cache"] = (
            f"the build reads {settings.build_root}, beyond the repository: no scratch copy is made of it"
        )


def default_imports(
    settings: Settings, info: images.ImageInfo, dockerfile: Dockerfile | None
) -> tuple[tuple[str, ...], str | None]:
    """The modules the imports check imports, and where that list came from (None: configured)."""
    if settings.verify.imports is not None:
        return tuple(settings.verify.imports), None
    if not settings.has_project:
        return (), "no project: no modules of its own to import (set verify.imports to check some)"
    if settings.modules is None:
        return (settings.package,), "the package's name"
    if not settings.modules:
        return (), f"no module found in {settings.package_path} ({settings.modules_how}): set verify.imports"
    if not settings.virtual:
        return tuple(m.name for m in settings.modules), f"inferred from {settings.modules_how}"
    return _virtual_imports(settings, info, dockerfile)


def _virtual_imports(
    settings: Settings, info: images.ImageInfo, dockerfile: Dockerfile | None
) -> tuple[tuple[str, ...], str]:
    """A virtual project's modules that the image exposes (it is never installed: its source must be
    on the working directory or PYTHONPATH)."""
    if dockerfile is None:
        return (), "virtual project, and no Dockerfile to tell where its modules land: set verify.imports"
    mapping = discovery.context_paths(dockerfile, settings.build_args)
    exposed, hidden = discovery.exposed_modules(
        settings.modules or (), settings.context, mapping, info.working_dir, info.env.get("PYTHONPATH", "")
    )
    how = f"virtual project: {settings.modules_how} on the image's working directory or PYTHONPATH"
    if hidden:
        how += f"; not importable: {', '.join(hidden)}"
    if not exposed:
        return (), how + "; set verify.imports"
    return tuple(exposed), how


def probe_facts(chosen: Iterable[verdicts.Check]) -> tuple[str, ...]:
    """What the probe must gather for these checks (see `dockyard.verify.probe.FACTS`)."""
    return tuple(sorted({fact for check in chosen for fact in check.probe}))


def probe_spec(
    settings: Settings,
    info: images.ImageInfo,
    imports: tuple[str, ...] | None = None,
    facts: Sequence[str] | None = None,
) -> dict[str, object]:
    """The probe's spec: everything it can gather (`facts` None), or only those facts."""
    verify = settings.verify
    if imports is None:
        imports = default_imports(settings, info, _project_dockerfile(settings))[0]
    wanted = probe.closed_facts(facts)
    spec: dict[str, object] = {
        "app": runner.app_config(info),
        "imports": list(imports),
        "commands": [{"argv": list(s.command), "timeout": s.timeout} for s in verify.smoke],
        "forbidden_names": [*file_checks.DEFAULT_FORBIDDEN_NAMES, *verify.forbidden],
        "forbidden_paths": file_checks.forbidden_paths(info.working_dir),
        "project_trees": _project_trees(settings),
        "verify_records": (
            _lock_names(settings.lock_file) if settings.has_project and probe.FACT_RECORDS in wanted else []
        ),
        "sniff_private_keys": True,
        "which": ["python", "python3"],
        "deadline_seconds": max(10.0, verify.timeout - 10),
    }
    if facts is not None:
        spec["facts"] = list(facts)
    return spec


def _project_trees(settings: Settings) -> dict[str, list[list[object]]]:
    """The project's development folders (the member's and the workspace root's), as the probe
    recognises them anywhere in the image."""
    if not settings.has_project:
        return {}
    trees = file_checks.project_trees(settings.project_dir)
    if settings.workspace_dir != settings.project_dir:
        for name, markers in file_checks.project_trees(settings.workspace_dir).items():
            trees[name] = [*trees.get(name, []), *markers][: file_checks.PROJECT_TREE_MARKERS * 2]
    return trees


def _lock_names(lock_file: Path) -> list[str]:
    """Every package uv.lock names: the distributions whose RECORD the probe verifies."""
    from dockyard.project import lock  # noqa: PLC0415

    try:
        return sorted(lock.read_lock(lock_file).packages)
    except DockyardError:  # no lock, or unreadable: the lock checks say so; nothing to verify
        return []


def _lock_status(settings: Settings) -> verdicts.LockStatus:
    from dockyard.project import lock  # noqa: PLC0415

    try:
        return verdicts.LockStatus(
            True, lock.check(settings.workspace_dir, lock_command=settings.lock_command)
        )
    except lock.LockStale as exc:
        return verdicts.LockStatus(False, exc.message)


def _lock_sets(facts: Facts, locked: Lock | None = None) -> None:
    from dockyard.project import lock  # noqa: PLC0415

    python = verdicts.require(facts.probe).get("python", {})
    version = str(python.get("version", "3"))
    machine = str(python.get("machine", "x86_64"))
    try:
        facts.locked = lock.locked_sets(
            facts.settings.lock_file,
            facts.settings.project_name,
            environment=lock.marker_environment(version, machine),
            lock_command=facts.settings.lock_command,
            locked=locked,
        )
    except DockyardError as exc:
        facts.errors["locked"] = exc.message


def _health_test(settings: Settings, info: images.ImageInfo) -> health.HealthTest | None:
    """The image's health test when it is a service with a HEALTHCHECK, else None (no container)."""
    if info.healthcheck is None or not health.image_role(settings.service, info).service:
        return None
    return health.HealthTest.from_image(info.healthcheck)


def _health(
    engine: Engine, image_ref: str, test: health.HealthTest, settings: Settings, stop: threading.Event
) -> HealthOutcome:
    verify = settings.verify
    return health.watch(
        engine,
        image_ref,
        test,
        timeout=verify.healthcheck_timeout,
        settle=verify.healthcheck_settle,
        stop=stop,
    )


def preflight(settings: Settings, options: VerifyOptions) -> list[verdicts.Check]:
    """What must hold before verify builds or starts anything: known check ids, and for layer-cache, a
    configured file it may change (`touch_target`; with none configured, finding none is the check's
    own ERROR). Returns the checks that will run."""
    chosen = selected_checks(settings, options)
    if settings.verify.layer_cache_touch and any(check.id == "layer-cache" for check in chosen):
        touch_target(settings)
    return chosen


def touch_target(settings: Settings) -> Path:
    """The source file the layer-cache check changes in its scratch copy, relative to the build context.

    `verify.layer-cache-touch` must name a regular file that git tracks (any regular file outside git)
    inside the context, symlinks resolved: an absolute path, `..` out of the tree, a symlink, a
    directory or an untracked file is a ConfigError, raised before any work. Unset: a file of the
    package's own modules, else its `__init__.py`, else the first `.py` file under its `src/`; never
    one reached through a symlink.
    """
    context = Path(os.path.realpath(settings.context))
    configured = settings.verify.layer_cache_touch
    if configured:
        what = "[tool.dockyard.verify] layer-cache-touch"
        resolved = fsutil.confined(context, configured, what)
        relative = resolved.relative_to(context)
        if not resolved.is_file() or (context / configured).is_symlink():
            raise ConfigError(
                f"{what}: {configured!r} is not a regular file in the build context {settings.context}"
            )
        if _in_git(context) and not git.is_tracked(context, str(resolved)):
            raise ConfigError(
                f"{what}: {configured!r} is not tracked by git: the layer-cache check changes a "
                "committed source file; name one (`git ls-files` lists them)"
            )
        return relative
    candidates: list[Path] = []
    for module in settings.modules or ():
        if module.path.is_file():
            candidates.append(module.path)
        elif (module.path / "__init__.py").is_file():
            candidates.append(module.path / "__init__.py")
        elif _regular_dir(module.path):
            candidates += sorted(module.path.rglob("*.py"))
    package = settings.package_path
    candidates += [
        package / "src" / settings.package / "__init__.py",
        package / settings.package / "__init__.py",
    ]
    if _regular_dir(package / "src"):
        candidates += sorted((package / "src").rglob("*.py"))
    for candidate in candidates:
        real = Path(os.path.realpath(candidate))
        if real.is_relative_to(context) and _regular_inside(context, real.relative_to(context)):
            return real.relative_to(context)
    raise UsageError("no source file to change for the layer-cache check: set verify.layer-cache-touch")


def _in_git(directory: Path) -> bool:
    try:
        git.list_files(directory)
    except DockyardError:
        return False
    return True


def _regular_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _regular_inside(root: Path, relative: Path) -> bool:
    """`root / relative` is a regular file reached without following any symlink."""
    path = root / relative
    return path.is_file() and os.path.realpath(path) == str(path)


def _touch(root: Path, relative: Path) -> Path:
    """Append a fresh line to `relative` in the scratch copy at `root`, refusing anything but a regular
    file of the copy (a symlink copied as one must never be written through)."""
    target = root / relative
    if not _regular_inside(Path(os.path.realpath(root)), relative):
        raise ConfigError(f"verify.layer-cache-touch: {relative} is not a regular file in the scratch copy")
    # A fresh change every run: a change seen before would come from the cache and prove nothing.
    with target.open("a", encoding="utf-8") as handle:
        handle.write(f"\n# dockyard layer-cache check {uuid.uuid4().hex}\n")
    return target


def _layer_cache(engine: Engine, settings: Settings) -> CacheOutcome:
    """Build a scratch copy of the build's tree twice, the second time after a source-only change.

    The copy holds the whole tree the build reads (the context, the Dockerfile and the package: in a
    workspace built from its root, the workspace), as git lists it."""
    from dockyard.build import buildkit as builds  # noqa: PLC0415

    relative = touch_target(settings)
    with tempfile.TemporaryDirectory(prefix="dockyard-cache-") as scratch:
        root = Path(scratch) / "project"
        source = settings.build_root
        copy_project(source, root)
        moved = settings.relocated(root, source)
        request = replace(builds.request_for(moved, tags=()), tags=(), labels=engine.labels)
        made: list[str] = []
        try:
            first = builds.build(engine, request)
            made.append(first.image_id)
            touched = _touch(moved.context, relative)
            second = builds.build(engine, request)
            made.append(second.image_id)
        finally:
            _remove_scratch_images(engine, made)
        return CacheOutcome(
            touched=str(touched.relative_to(root)),
            layers_before=first.layers,
            layers_after=second.layers,
            reinstalled=tuple(
                (step.name, sum(1 for _, local in step.installed if not local) or step.installed_packages)
                for step in second.steps
                if not step.cached and step.installs_dependencies
            ),
        )


def copy_project(source: Path, destination: Path) -> None:
    """The files git knows (tracked and untracked-not-ignored), or everything but caches outside git.

    Symlinks are copied as symlinks (as `docker build` sends them), never followed: a tracked
    `assets/shadow -> /etc/shadow` stays a link, so no byte from outside the tree reaches the copy.
    Only regular files and symlinks are copied, and nothing below a symlinked directory.
    """
    try:
        names = git.list_files(source)
    except DockyardError:
        shutil.copytree(source, destination, symlinks=True, ignore=_not_copied)
        return
    real_source = Path(os.path.realpath(source))
    destination.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = source / name
        if Path(os.path.realpath(src.parent)) != real_source / Path(name).parent:
            continue  # below a symlinked directory: the link itself is copied, not what it leads to
        try:
            mode = src.lstat().st_mode
        except FileNotFoundError:  # deleted in the work tree but still in the index
            continue
        dst = destination / name
        if stat.S_ISLNK(mode):
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(src.readlink())
        elif stat.S_ISREG(mode):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)


_CACHES = shutil.ignore_patterns(".git", ".venv", ".nox", "__pycache__", "*_cache")


def _not_copied(directory: str, names: list[str]) -> set[str]:
    """Caches, and anything that is not a regular file, a directory or a symlink (a FIFO would block)."""
    skipped = set(_CACHES(directory, names))
    for name in names:
        mode = Path(directory, name).lstat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            skipped.add(name)
    return skipped


def _remove_scratch_images(engine: Engine, image_ids: Sequence[str]) -> None:
    import docker.errors  # noqa: PLC0415

    for image_id in dict.fromkeys(image_ids):
        try:
            image = engine.image(image_id)
        except ImageNotFound:  # a run building the same copy at the same time removed it already
            continue
        if image.tags:  # identical to an image someone tagged: not ours to remove
            continue
        with contextlib.suppress(docker.errors.APIError):  # in use by a container not ours: leave it
            engine.client.images.remove(image_id, noprune=False)
