"""verify-compose: every service's command exists in its image and is runnable by its user, and the
image checklist on each distinct image of the stack, in one report."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import humanize
from rich.console import Console

from dockyard.build.stack import ComposeOptions, ServiceBuild, StackBuild, compose_build
from dockyard.build.stack import secret_files as _secret_files
from dockyard.config import Settings, for_build
from dockyard.engine import Engine
from dockyard.errors import DockyardError
from dockyard.image import metadata as images
from dockyard.project.compose import BuildGroup, Service, interpolation_environment
from dockyard.results import CheckResult, Outcome, Report
from dockyard.verify import gather as verify
from dockyard.verify import runner

CHECK_TIMEOUT = 60.0


# --- the command check ------------------------------------------------------------------------------

# Runs in the image with its own interpreter and user (Python 3.8+, standard library only). For each
# query it finds the executable as execvp would (the first runnable match on PATH, or the path
# itself), and for a script also its `#!` interpreter, which breaks when a venv was built elsewhere.
COMMAND_SNIPPET = r"""
import json, os, pwd, stat, sys
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
try:
    user = pwd.getpwuid(os.getuid()).pw_name
except KeyError:
    user = None
print(json.dumps({"uid": os.getuid(), "user": user, "found": [find(q) for q in json.loads(sys.argv[1])]}))
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
    interpreter: str


def _run_snippet(
    engine: Engine,
    image: str,
    user: str | None,
    queries: Sequence[Mapping[str, str | None]],
    interpreters: Sequence[str] = runner.INTERPRETERS,
) -> _Answer:
    """One container of `image` that answers every query, with the first interpreter it has."""
    answer, interpreter = runner.run_python(
        engine,
        image,
        COMMAND_SNIPPET,
        list(queries),
        what="the command check",
        user=user,
        timeout=CHECK_TIMEOUT,
        interpreters=interpreters,
    )
    return _Answer(int(answer["uid"]), answer.get("user"), tuple(answer["found"]), interpreter)


def check_commands(engine: Engine, stack: StackBuild) -> list[CheckResult]:
    """Each service's command, checked in ONE container per distinct image (and `user:` override)."""
    results: dict[str, CheckResult] = {}
    runs: dict[tuple[str, str | None], list[tuple[Service, ServiceBuild, tuple[str, ...]]]] = {}
    infos: dict[str, images.ImageInfo] = {}
    for item in stack.services:
        service = stack.model.service(item.service)
        if item.image_id not in infos:
            attrs = engine.image(item.image_id).attrs
            infos[item.image_id] = images.ImageInfo.from_inspect(item.image, attrs, ())
        argv = effective_command(service, infos[item.image_id])
        if not argv:
            results[service.name] = command_result(service.name, item.image, argv, None)
            continue
        runs.setdefault((item.image_id, service.user), []).append((service, item, argv))
    interpreters: dict[str, str] = {}  # image id -> the interpreter that answered: no failed start twice
    for (image_id, user), members in runs.items():
        start = time.monotonic()
        info = infos[image_id]
        queries = [
            {"name": argv[0], "path": service.path, "cwd": service.working_dir or info.working_dir or None}
            for service, _, argv in members
        ]
        known = interpreters.get(image_id)
        try:
            answer = _run_snippet(engine, image_id, user, queries, (known,) if known else runner.INTERPRETERS)
        except DockyardError as exc:
            for service, _, argv in members:
                results[service.name] = CheckResult(
                    "command", COMMAND_TITLE, Outcome.ERROR, exc.message,
                    (f"command: {' '.join(argv)}",), time.monotonic() - start, subject=service.name,
                )  # fmt: skip
            continue
        interpreters[image_id] = answer.interpreter
        seconds = time.monotonic() - start
        for (service, item, argv), raw in zip(members, answer.found, strict=True):
            finding = Finding.from_json(raw, answer.uid, answer.user)
            results[service.name] = command_result(service.name, item.image, argv, finding, seconds)
    return [results[item.service] for item in stack.services]


# --- verify-compose ---------------------------------------------------------------------------------


def _built_result(item: ServiceBuild) -> CheckResult:
    size = humanize.naturalsize(item.size)
    how = f"same build as {item.built_for}" if item.reused else f"built in {item.seconds:.1f}s"
    return CheckResult(
        "built",
        "the service's image is built (a shared build once)",
        Outcome.PASS,
        f"{item.image}, {size}, {how}",
        seconds=0.0 if item.reused else item.seconds,
        subject=item.service,
    )


def image_settings(settings: Settings, group: BuildGroup, secrets: Mapping[str, Path]) -> Settings:
    """The project's settings describing one build of the stack, for verify-image's checks: its
    Dockerfile, context and args, and every build secret (none may show up in the image)."""
    spec = group.spec
    others = tuple(path for secret_id, path in secrets.items() if secret_id != settings.ca_secret_id)
    return replace(
        for_build(settings, spec.dockerfile, spec.context),
        target=spec.target,
        platform=spec.platform,
        build_args=dict(spec.args),
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
        with _secret_files(group, environ) as secrets:
            scoped = image_settings(settings, group, secrets)
            report = verify.verify_image(engine, scoped, ref, replace(options, build=built))
        results += [replace(r, subject=ref) for r in report.results]
    return results


COMPOSE_CHECK_IDS = ("built", "command")  # the checks of services; every other id is verify-image's


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
    """compose-build, the command check of every service, and verify-image on each distinct image.

    `checks.skip` / `checks.only` take verify-image's check ids and `command` (`built` always shows).
    """
    start = time.monotonic()
    environ = os.environ if environ is None else environ
    checks = checks or verify.VerifyOptions()
    image_checks = replace(
        checks,
        skip=tuple(i for i in checks.skip if i not in COMPOSE_CHECK_IDS),
        only=tuple(i for i in checks.only if i not in COMPOSE_CHECK_IDS),
    )
    verify.selected_checks(settings, image_checks)  # reject unknown check ids before building
    run_commands = "command" not in checks.skip and (not checks.only or "command" in checks.only)
    run_images = not checks.only or bool(image_checks.only)
    stack = compose_build(engine, settings, files, console=console, options=options, environ=environ)
    results = [_built_result(item) for item in stack.services]
    if run_commands:
        results += check_commands(engine, stack)
    if run_images:
        compose_env = {**environ, **interpolation_environment(settings, environ)}
        results += _verify_images(engine, settings, stack, image_checks, compose_env)
    meta = {
        "project": stack.model.project,
        "files": ", ".join(str(f) for f in stack.model.files),
        "services": str(len(stack.services)),
        "builds": str(len(stack.builds)),
        "images": ", ".join(b.tags[0] for b in stack.builds),
        "engine": engine.server_version(),
    }
    return Report(f"verify-compose {stack.model.project}", tuple(results), time.monotonic() - start, meta)
