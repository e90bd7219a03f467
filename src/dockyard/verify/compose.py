"""verify-compose: what each service really runs, and the image checklist on each distinct image of the
stack, in one report.

Per service, in the stack's order, one row per check, never silently missing:

* `built`: the service's image was built (a shared build once); a build that failed is FAIL with its
  failing step and does not stop the others; a service without `build:` (`image: redis:7`) is one SKIP.
* `command`: the executable named by `command:`/`entrypoint:` (or the image's) exists in the image and
  is runnable by the service's user.
* `non-root`: the uid the service really runs as (`user:` wins over the image's USER): 0 fails.
* `healthcheck`: the service's effective healthcheck (its own `healthcheck:`, else the image's) runs: its
  executable is in the image, it fails where the app is not started (not vacuous), and a container of
  the image with the service's command, user, environment and healthcheck gets healthy and stays so.

The command, user and vacuity facts come from ONE container per distinct image and user; each
healthcheck gets one more, run concurrently.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import humanize
from rich.console import Console

from dockyard.build.stack import (
    ComposeOptions,
    FailedBuild,
    ServiceBuild,
    StackBuild,
    build_args,
    build_secrets,
    compose_build,
)
from dockyard.config import Settings, for_build
from dockyard.engine import Engine, first_line
from dockyard.errors import BuildFailed, DockyardError
from dockyard.image import metadata as images
from dockyard.project.compose import BuildGroup, Service, interpolation_environment
from dockyard.results import CheckResult, Outcome, Report
from dockyard.verify import gather as verify
from dockyard.verify import health, runner
from dockyard.verify.checks.runtime import judge_health
from dockyard.verify.facts import HealthOutcome
from dockyard.verify.health import HealthTest, Role

CHECK_TIMEOUT = 60.0


# --- the command check ------------------------------------------------------------------------------

# Runs in the image with its own interpreter and user (Python 3.8+, standard library only). For each
# `find` query it finds the executable as execvp would (the first runnable match on PATH, or the path
# itself), and for a script also its `#!` interpreter, which breaks when a venv was built elsewhere.
# Each `run` (a healthcheck's test) runs once without a shell, here where the app is not started.
COMMAND_SNIPPET = r"""
import json, os, pwd, signal, stat, subprocess, sys
def find(q):
    name = q["name"]
    cwd = q.get("cwd") or os.getcwd()
    if "/" in name:
        files = [os.path.normpath(os.path.join(cwd, name))]
        searched = [os.path.dirname(files[0])]
    else:
        searched = (q.get("path") or os.environ.get("PATH") or os.defpath).split(os.pathsep)
        files = [os.path.join(d or ".", name) for d in searched]
    files = [f for f in files if os.path.isfile(f)]
    runnable = [f for f in files if os.access(f, os.X_OK)]
    chosen = (runnable or files or [None])[0]
    out = {"name": name, "path": chosen, "executable": bool(runnable), "searched": searched,
           "mode": None, "interpreter": None, "interpreter_ok": None}
    if chosen:
        out["mode"] = "%04o" % stat.S_IMODE(os.stat(chosen).st_mode)
    if runnable:
        try:
            with open(chosen, "rb") as handle:
                head = handle.read(256)
        except OSError:
            head = b""
        if head.startswith(b"#!") and head[2:].split(b"\n")[0].split():
            interpreter = head[2:].split(b"\n")[0].split()[0].decode("utf-8", "replace")
            out["interpreter"] = interpreter
            out["interpreter_ok"] = os.path.isfile(interpreter) and os.access(interpreter, os.X_OK)
    return out
def run(r):
    out = {"argv": r["argv"], "returncode": None, "timed_out": False, "error": None, "output": ""}
    env = dict(os.environ)
    env.update(r.get("env") or {})
    try:
        proc = subprocess.Popen(r["argv"], env=env, cwd=r.get("cwd") or None, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except FileNotFoundError:
        out["error"] = "executable not found: " + r["argv"][0]
        return out
    except OSError as exc:
        out["error"] = "%s: %s" % (type(exc).__name__, exc)
        return out
    try:
        data = proc.communicate(timeout=r["timeout"])[0]
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        data = b""
        out["timed_out"] = True
        proc.wait()
    out["returncode"] = proc.returncode
    out["output"] = (data or b"").decode("utf-8", "replace")[-500:]
    return out
try:
    user = pwd.getpwuid(os.getuid()).pw_name
except KeyError:
    user = None
spec = json.loads(sys.argv[1])
print(json.dumps({"uid": os.getuid(), "user": user, "found": [find(q) for q in spec.get("find", [])],
                  "ran": [run(r) for r in spec.get("run", [])]}))
"""

COMMAND_TITLE = "the service's command exists in its image and is runnable by its user"


@dataclass(frozen=True)
class Finding:
    """What the snippet found for one executable name."""

    name: str
    path: str | None
    executable: bool
    uid: int
    user: str | None = None
    mode: str | None = None
    interpreter: str | None = None
    interpreter_ok: bool | None = None
    searched: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], uid: int, user: str | None) -> Finding:
        return cls(
            name=str(raw["name"]),
            path=raw.get("path"),
            executable=bool(raw.get("executable")),
            uid=uid,
            user=user,
            mode=raw.get("mode"),
            interpreter=raw.get("interpreter"),
            interpreter_ok=raw.get("interpreter_ok"),
            searched=tuple(raw.get("searched") or ()),
        )


def effective_command(service: Service, info: images.ImageInfo) -> tuple[str, ...]:
    """The argv a container of the service runs, merged as the engine merges it with the image."""
    entrypoint = service.entrypoint if service.entrypoint is not None else info.entrypoint or ()
    if service.entrypoint:  # a new entrypoint drops the image's CMD
        return (*entrypoint, *(service.command or ()))
    return (*entrypoint, *(service.command or info.cmd or ()))


def command_result(
    service: str, image: str, argv: Sequence[str], finding: Finding | None, seconds: float = 0.0
) -> CheckResult:
    """Judge one service's command from what the snippet found (None: the command is empty)."""

    def result(outcome: Outcome, evidence: str, *details: str) -> CheckResult:
        shown = f"command: {' '.join(argv)}" if argv else "command: (none)"
        return CheckResult(
            "command", COMMAND_TITLE, outcome, evidence, (shown, *details), seconds, subject=service
        )

    if finding is None:
        return result(Outcome.FAIL, f"no command: the service sets none and {image} has no CMD or ENTRYPOINT")
    who = f"uid {finding.uid}" + (f" ({finding.user})" if finding.user else "")
    searched = f"searched: {os.pathsep.join(finding.searched)}"
    if finding.path is None:
        where = "on PATH" if "/" not in finding.name else "at that path"
        return result(Outcome.FAIL, f"{finding.name} not found {where} in {image}", searched)
    if not finding.executable:
        return result(
            Outcome.FAIL,
            f"{finding.name} -> {finding.path} is not runnable by {who} (mode {finding.mode})",
            searched,
        )
    if finding.interpreter is not None and not finding.interpreter_ok:
        return result(
            Outcome.FAIL,
            f"{finding.name} -> {finding.path}, but its interpreter {finding.interpreter} is missing or "
            f"not runnable by {who}",
        )
    return result(Outcome.PASS, f"{finding.name} -> {finding.path} (runnable by {who})")


@dataclass(frozen=True)
class _Answer:
    uid: int
    user: str | None
    found: tuple[Mapping[str, Any], ...]
    ran: tuple[Mapping[str, Any], ...]
    interpreter: str


def _run_snippet(
    engine: Engine,
    image: str,
    user: str | None,
    finds: Sequence[Mapping[str, str | None]],
    runs: Sequence[Mapping[str, Any]] = (),
    interpreters: Sequence[str] = runner.INTERPRETERS,
) -> _Answer:
    """One container of `image` that answers every query, with the first interpreter it has."""
    answer, interpreter = runner.run_python(
        engine,
        image,
        COMMAND_SNIPPET,
        {"find": list(finds), "run": list(runs)},
        what="the command check",
        user=user,
        timeout=CHECK_TIMEOUT + sum(float(r["timeout"]) for r in runs),
        interpreters=interpreters,
    )
    found, ran = tuple(answer["found"]), tuple(answer.get("ran") or ())
    return _Answer(int(answer["uid"]), answer.get("user"), found, ran, interpreter)


# --- the service-level checks -----------------------------------------------------------------------

SERVICE_CHECKS = ("command", "non-root", "healthcheck")  # per service, after `built`
TITLES = {
    "built": "the service's image is built (a shared build once)",
    "command": COMMAND_TITLE,
    "non-root": "the service runs as a non-root uid (its `user:` or the image's USER)",
    "healthcheck": "the service's healthcheck can fail, and a container of it gets and stays healthy",
}


def _row(
    check_id: str,
    service: str,
    outcome: Outcome,
    evidence: str,
    details: Sequence[str] = (),
    seconds: float = 0.0,
) -> CheckResult:
    return CheckResult(
        check_id, TITLES[check_id], outcome, evidence, tuple(details), seconds, subject=service
    )


@dataclass
class _Subject:
    """One built service: what it runs, its healthcheck, and what its containers showed."""

    service: Service
    item: ServiceBuild
    info: images.ImageInfo
    argv: tuple[str, ...]
    test: HealthTest | None  # the effective healthcheck: the service's own, else the image's
    test_from: str  # where the test comes from
    answer: _Answer | None = None
    error: str | None = None  # why the snippet container could not answer
    seconds: float = 0.0
    command: Mapping[str, Any] | None = None  # what the snippet found for the command
    health_exe: Mapping[str, Any] | None = None  # ... for the healthcheck's executable
    health_ran: Mapping[str, Any] | None = None  # the test's run where the app is not started
    health: HealthOutcome | None = None
    health_error: str | None = None

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def cwd(self) -> str | None:
        return self.service.working_dir or self.info.working_dir or None

    def role(self) -> Role:
        """Service or job from what the compose file says of it: its ports, a healthcheck, a server
        command; the image's EXPOSE counts only when the service runs the image's own command."""
        own_command = self.service.command is None and self.service.entrypoint is None
        published = tuple(self.service.ports)
        image_only = tuple(p for p in (self.info.exposed_ports if own_command else ()) if p not in published)
        exposed_as = "ports/expose" if not own_command else "ports/expose/EXPOSE"  # where none is found
        if published or image_only:  # name where they were found
            exposed_as = "ports/expose" if not image_only else "EXPOSE" if not published else exposed_as
        return health.infer_role(
            None,
            exposed=tuple(dict.fromkeys((*published, *image_only))),
            healthcheck=self.test is not None,
            command=self.argv,
            exposed_as=exposed_as,
            healthcheck_as="healthcheck",
            command_as="its command",
            job_hint="publish its port (`ports:`/`expose:`) or give it a `healthcheck:` if it serves",
        )


def _effective_test(service: Service, info: images.ImageInfo) -> tuple[HealthTest | None, str]:
    """The healthcheck a container of the service runs, as Compose merges it with the image's."""
    raw = service.healthcheck or {}
    if raw.get("disable"):
        return None, "disabled in the compose file (`disable: true`)"
    own = HealthTest.from_compose(raw)
    if own is not None:
        return (
            (None, "disabled in the compose file (test: NONE)") if own.disabled else (own, "the compose file")
        )
    if info.healthcheck is None:
        return None, "neither the compose file nor the image sets one"
    inherited = HealthTest.from_image(info.healthcheck)
    if raw:  # timings of its own, the image's test
        timings = HealthTest.from_compose({**raw, "test": list(inherited.test)})
        inherited = timings or inherited
    return inherited, "the image's HEALTHCHECK"


def _subjects(engine: Engine, stack: StackBuild) -> list[_Subject]:
    infos: dict[str, images.ImageInfo] = {}
    subjects = []
    for item in stack.services:
        service = stack.model.service(item.service)
        if item.image_id not in infos:
            attrs = engine.inspect_image(item.image_id)
            infos[item.image_id] = images.ImageInfo.from_inspect(item.image, attrs, ())
        info = infos[item.image_id]
        test, test_from = _effective_test(service, info)
        subjects.append(_Subject(service, item, info, effective_command(service, info), test, test_from))
    return subjects


def _ask(engine: Engine, subjects: Sequence[_Subject], wanted: set[str]) -> None:
    """ONE container per distinct image and user finds each command and healthcheck executable and runs
    each healthcheck once (the app not started); the answers go to the subjects."""
    groups: dict[tuple[str, str | None], list[_Subject]] = {}
    for subject in subjects:
        groups.setdefault((subject.item.image_id, subject.service.user), []).append(subject)
    interpreters: dict[str, str] = {}  # image id -> the interpreter that answered: no failed start twice
    checks_health = "healthcheck" in wanted
    for (image_id, user), members in groups.items():
        finds: list[dict[str, str | None]] = []
        runs: list[dict[str, Any]] = []
        where: list[tuple[_Subject, str, int]] = []  # (subject, what, index in finds or runs)
        for subject in members:
            query = {"path": subject.service.path, "cwd": subject.cwd}
            if subject.argv and "command" in wanted:
                where.append((subject, "command", len(finds)))
                finds.append({"name": subject.argv[0], **query})
            if checks_health and subject.test is not None:
                if exe := subject.test.executable:
                    where.append((subject, "health_exe", len(finds)))
                    finds.append({"name": exe, **query})
                where.append((subject, "health_ran", len(runs)))
                runs.append(
                    {"argv": list(subject.test.argv), "env": dict(subject.service.environment),
                     "cwd": subject.cwd, "timeout": min(subject.test.probe_timeout, health.VACUITY_TIMEOUT)}
                )  # fmt: skip
        start = time.monotonic()
        known = interpreters.get(image_id)
        try:
            answer = _run_snippet(
                engine, image_id, user, finds, runs, (known,) if known else runner.INTERPRETERS
            )
        except DockyardError as exc:
            for subject in members:
                subject.error, subject.seconds = exc.message, time.monotonic() - start
            continue
        interpreters[image_id] = answer.interpreter
        for subject in members:
            subject.answer, subject.seconds = answer, time.monotonic() - start
        for subject, what, index in where:
            setattr(subject, what, (answer.ran if what == "health_ran" else answer.found)[index])


def _watch(engine: Engine, subjects: Sequence[_Subject], settings: Settings) -> None:
    """A container of each service with a runnable healthcheck, watched concurrently."""
    verify_settings = settings.verify

    def watch(subject: _Subject) -> HealthOutcome:
        run = health.Run(
            argv=subject.argv,
            user=subject.service.user,
            environment=subject.service.environment,
            working_dir=subject.service.working_dir,
        )
        return health.watch(
            engine,
            subject.item.image_id,
            health_test(subject),
            timeout=verify_settings.healthcheck_timeout,
            settle=verify_settings.healthcheck_settle,
            run=run,
            stop=stop,
        )

    chosen = [s for s in subjects if s.test is not None and s.argv and not _missing_health_exe(s)]
    if not chosen:
        return
    stop = threading.Event()  # interrupted: every watch stops and removes its container at once
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(4, len(chosen)))
    try:
        futures = {pool.submit(watch, subject): subject for subject in chosen}
        for future, subject in futures.items():
            try:
                subject.health = future.result()
            except DockyardError as exc:
                subject.health_error = exc.message
            except Exception as exc:  # an engine error: this row is an ERROR, the others go on
                subject.health_error = f"{type(exc).__name__}: {first_line(exc)}"
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def health_test(subject: _Subject) -> HealthTest:
    if subject.test is None:
        raise DockyardError(f"service {subject.name} has no healthcheck to watch")
    return subject.test


def _missing_health_exe(subject: _Subject) -> bool:
    found = subject.health_exe
    return found is not None and not found.get("executable")


def _is_root(user: str) -> bool:
    return user.split(":", 1)[0].strip() in ("root", "0")


def non_root_result(subject: _Subject) -> CheckResult:
    """The uid the service really runs as: `user:` wins over the image's USER, whatever the image says."""
    declared, image_user = subject.service.user, subject.info.user
    if declared is not None and _is_root(declared):
        return _row(
            "non-root", subject.name, Outcome.FAIL,
            f"user: {declared} in the compose file runs the service as root (uid 0), whatever the image's "
            f"USER ({image_user or 'none'}); remove it or name a non-root user",
        )  # fmt: skip
    if subject.answer is None:
        return _row(
            "non-root",
            subject.name,
            Outcome.ERROR,
            f"could not tell the uid: {subject.error}",
            (),
            subject.seconds,
        )
    uid, name = subject.answer.uid, subject.answer.user
    who = f"uid {uid}" + (f" ({name})" if name else "")
    how = (
        f"user: {declared} in the compose file" if declared
        else f"the image's USER {image_user}" if image_user
        else "no USER in the image and no user: in the compose file"
    )  # fmt: skip
    if uid == 0:
        return _row("non-root", subject.name, Outcome.FAIL, f"runs as {who}: {how}", (), subject.seconds)
    return _row("non-root", subject.name, Outcome.PASS, f"runs as {who} ({how})", (), subject.seconds)


def health_result(subject: _Subject, settings: Settings) -> CheckResult:
    test = subject.test
    role = subject.role()
    if test is None:
        if role.service and not subject.test_from.startswith("disabled"):
            return _row(
                "healthcheck", subject.name, Outcome.FAIL,
                f"no healthcheck: {subject.test_from} ({role.describe()})",
            )  # fmt: skip
        why = (
            f"healthcheck {subject.test_from}"
            if subject.test_from.startswith("disabled")
            else role.describe()
        )
        return _row("healthcheck", subject.name, Outcome.SKIP, why)
    shown = f"healthcheck from {subject.test_from}: {test.shown}"
    found = subject.health_exe
    if found is not None and not found.get("executable"):
        finding = Finding.from_json(found, subject.answer.uid if subject.answer else -1, None)
        missing = command_result(subject.name, subject.item.image, test.argv, finding)
        return _row(
            "healthcheck", subject.name, Outcome.FAIL, f"the healthcheck cannot run: {missing.evidence}",
            (shown, *missing.details[1:]), subject.seconds,
        )  # fmt: skip
    if not subject.argv:
        return _row("healthcheck", subject.name, Outcome.SKIP, "the service has no command to start")
    if subject.health is None:
        return _row("healthcheck", subject.name, Outcome.ERROR, subject.health_error or "not run", (shown,))
    unavailable = None if subject.health_ran is not None else subject.error or "the test was not run"
    verdict = judge_health(
        test,
        subject.health,
        subject.health_ran,
        role=role,
        timeout=settings.verify.healthcheck_timeout,
        settle=settings.verify.healthcheck_settle,
        unavailable=unavailable,
    )
    seconds = subject.health.seconds + subject.health.settled
    return _row(
        "healthcheck", subject.name, verdict.outcome, verdict.evidence, (shown, *verdict.details), seconds
    )


def _command_row(subject: _Subject) -> CheckResult:
    if not subject.argv:
        return command_result(subject.name, subject.item.image, subject.argv, None)
    if subject.answer is None or subject.command is None:
        shown = (f"command: {' '.join(subject.argv)}",)
        return _row(
            "command", subject.name, Outcome.ERROR, subject.error or "not run", shown, subject.seconds
        )
    finding = Finding.from_json(subject.command, subject.answer.uid, subject.answer.user)
    return command_result(subject.name, subject.item.image, subject.argv, finding, subject.seconds)


def check_services(
    engine: Engine,
    stack: StackBuild,
    settings: Settings,
    wanted: Sequence[str] = SERVICE_CHECKS,
) -> dict[str, dict[str, CheckResult]]:
    """Service name -> check id -> row, for the built services and the `wanted` service checks."""
    chosen = set(wanted)
    subjects = _subjects(engine, stack)
    _ask(engine, subjects, chosen)
    if "healthcheck" in chosen:
        _watch(engine, subjects, settings)
    rows: dict[str, dict[str, CheckResult]] = {}
    for subject in subjects:
        found: dict[str, CheckResult] = {}
        if "command" in chosen:
            found["command"] = _command_row(subject)
        if "non-root" in chosen:
            found["non-root"] = non_root_result(subject)
        if "healthcheck" in chosen:
            found["healthcheck"] = health_result(subject, settings)
        rows[subject.name] = found
    return rows


def check_commands(engine: Engine, stack: StackBuild) -> list[CheckResult]:
    """Each service's command, checked in ONE container per distinct image (and `user:` override)."""
    subjects = _subjects(engine, stack)
    _ask(engine, subjects, {"command"})
    return [_command_row(subject) for subject in subjects]


# --- verify-compose ---------------------------------------------------------------------------------


def _built_result(item: ServiceBuild) -> CheckResult:
    size = humanize.naturalsize(item.size)
    how = f"same build as {item.built_for}" if item.reused else f"built in {item.seconds:.1f}s"
    seconds = 0.0 if item.reused else item.seconds
    return _row("built", item.service, Outcome.PASS, f"{item.image}, {size}, {how}", seconds=seconds)


def _failed_build_result(service: Service, failure: FailedBuild) -> CheckResult:
    error = failure.error
    detail = error.detail.splitlines() if isinstance(error, BuildFailed) else []
    return _row(
        "built", service.name, Outcome(failure.outcome.lower()), failure.evidence(service.name), detail
    )


def _image_only_result(engine: Engine, service: Service) -> CheckResult:
    present = "on this engine" if engine.image_exists(service.image) else "not on this engine"
    return _row(
        "built", service.name, Outcome.SKIP,
        f"no `build:`: {service.image} ({present}) comes from a registry, not from this project; "
        "dockyard checks the images it builds",
    )  # fmt: skip


def image_settings(settings: Settings, group: BuildGroup, secrets: Mapping[str, Path]) -> Settings:
    """The project's settings describing one build of the stack, for verify-image's checks: its
    Dockerfile, context and args, and every build secret (none may show up in the image)."""
    spec = group.spec
    others = tuple(path for secret_id, path in secrets.items() if secret_id != settings.ca_secret_id)
    return replace(
        for_build(settings, spec.dockerfile, spec.context),
        target=spec.target,
        platform=spec.platform,
        build_args=build_args(settings, group),
        ca_bundle=secrets.get(settings.ca_secret_id),
        verify=replace(settings.verify, secrets=(*settings.verify.secrets, *others)),
    )


def _verify_images(
    engine: Engine,
    settings: Settings,
    stack: StackBuild,
    options: verify.VerifyOptions,
    environ: Mapping[str, str],
) -> list[CheckResult]:
    """verify-image on each distinct image of the stack, its results' subject being the image."""
    results: list[CheckResult] = []
    for group, built in zip(stack.groups, stack.builds, strict=True):
        ref = built.tags[0]
        with build_secrets(settings, group, environ) as secrets:
            scoped = image_settings(settings, group, secrets)
            report = verify.verify_image(engine, scoped, ref, replace(options, build=built))
        results += [replace(r, subject=ref) for r in report.results]
    for failure in stack.failed:
        ref = failure.group.tags[0]
        scoped = for_build(settings, failure.group.spec.dockerfile, failure.group.spec.context)
        report = verify.build_failed_report(scoped, failure.error, options)
        results += [replace(r, subject=ref) for r in report.results]
    return results


COMPOSE_CHECK_IDS = ("built", "command")  # checks of services only; every other id is verify-image's


def _service_rows(
    engine: Engine,
    settings: Settings,
    stack: StackBuild,
    checks: verify.VerifyOptions,
) -> list[CheckResult]:
    """Every service's rows in the model's order: `built`, then each service check asked for, judged,
    or SKIP with the reason it was turned off or could not run."""
    off: dict[str, str] = {}
    for check_id in settings.verify.skip:
        off[check_id] = "turned off by [tool.dockyard.verify] skip"
    for check_id in checks.skip:
        off[check_id] = "turned off on the command line (--skip)"
    shown = [c for c in SERVICE_CHECKS if not checks.only or c in checks.only]
    wanted = [c for c in shown if c not in off]
    judged = check_services(engine, stack, settings, wanted) if stack.services and wanted else {}
    failures = {s.name: failure for failure in stack.failed for s in failure.group.services}
    built = {item.service: item for item in stack.services}
    rows: list[CheckResult] = []
    for service in stack.model.services:
        if service.build is None:
            rows.append(_image_only_result(engine, service))
            continue
        if service.name in failures:
            rows.append(_failed_build_result(service, failures[service.name]))
        else:
            rows.append(_built_result(built[service.name]))
        for check_id in shown:
            if check_id in off:
                rows.append(_row(check_id, service.name, Outcome.SKIP, off[check_id]))
            elif service.name in failures:
                rows.append(_row(check_id, service.name, Outcome.SKIP, "the image did not build"))
            else:
                rows.append(judged[service.name][check_id])
    return rows


def verify_compose(
    engine: Engine,
    settings: Settings,
    files: Sequence[Path | str] = (),
    *,
    console: Console,
    options: ComposeOptions | None = None,
    checks: verify.VerifyOptions | None = None,
    environ: Mapping[str, str] | None = None,
) -> Report:
    """compose-build, the service checks of every service, and verify-image on each distinct image.

    `checks.skip` / `checks.only` take verify-image's check ids and `command` (`built` always shows);
    `non-root` and `healthcheck` select both the service rows and the image rows.
    """
    start = time.monotonic()
    environ = os.environ if environ is None else environ
    checks = checks or verify.VerifyOptions()
    image_checks = replace(
        checks,
        skip=tuple(i for i in checks.skip if i not in COMPOSE_CHECK_IDS),
        only=tuple(i for i in checks.only if i not in COMPOSE_CHECK_IDS),
    )
    verify.preflight(settings, image_checks)  # unknown check ids, a bad layer-cache-touch: before building
    run_images = not checks.only or bool(image_checks.only)
    options = replace(options or ComposeOptions(), fail_fast=False)  # every build is reported
    stack = compose_build(engine, settings, files, console=console, options=options, environ=environ)
    results = _service_rows(engine, settings, stack, checks)
    if run_images:
        compose_env = {**environ, **interpolation_environment(settings, environ)}
        results += _verify_images(engine, settings, stack, image_checks, compose_env)
    meta = {
        "project": stack.model.project,
        "files": ", ".join(str(f) for f in stack.model.files),
        "services": str(len(stack.model.services)),
        "builds": str(len(stack.builds) + len(stack.failed)),
        "images": ", ".join(b.tags[0] for b in stack.builds),
        "engine": engine.server_version(),
    }
    if stack.failed:
        meta["failed builds"] = ", ".join(f.group.tags[0] for f in stack.failed)
    if checks.only:
        meta["only"] = ", ".join(checks.only)
    return Report(f"verify-compose {stack.model.project}", tuple(results), time.monotonic() - start, meta)
