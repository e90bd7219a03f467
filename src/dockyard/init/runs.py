"""What the image runs, read from the sources: a web app, a worker, a command line, or a job.

The application's modules are scanned as text (nothing is imported): module-level ASGI/WSGI app
objects (FastAPI, Starlette, Litestar, Quart, Flask, Django's `application`), worker apps (Celery,
arq's WorkerSettings, Dramatiq actors, RQ), `[project.scripts]` and `__main__`. A web app gets a
server command (uvicorn, hypercorn, granian, gunicorn, waitress: whichever is a runtime dependency)
and a healthcheck in Python's standard library; a worker gets its worker command. A framework counts
only when it is a runtime dependency, so a name in a comment or a test does not make a web service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.errors import UsageError
from dockyard.init import project as projects
from dockyard.init.model import Fact, Options, Role, Run
from dockyard.init.project import Project, canonical

DEFAULT_PORT = 8000
ASGI_FRAMEWORKS = {"FastAPI": "fastapi", "Starlette": "starlette", "Litestar": "litestar", "Quart": "quart"}
WSGI_FRAMEWORKS = {"Flask": "flask"}
FRAMEWORKS = {**ASGI_FRAMEWORKS, **WSGI_FRAMEWORKS, "Django": "django"}
ASGI_SERVERS = ("uvicorn", "hypercorn", "granian")
WSGI_SERVERS = ("gunicorn", "waitress", "granian")
SERVER_MODULES = ("uvicorn", "hypercorn", "granian", "gunicorn", "waitress")
CLI_MODULES = frozenset({"argparse", "click", "typer", "fire", "cyclopts", "docopt"})
WORKER_KINDS = ("celery", "arq", "dramatiq", "rq")
HEALTH_PATHS = ("/health", "/healthz", "/healthcheck", "/livez", "/readyz", "/ping", "/status")
# Module names that usually hold the app, best first (`myapp.main:app` before `myapp.other:app`).
_APP_MODULES = ("main", "app", "asgi", "api", "web", "server", "wsgi", "application")
_ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - in a container, the published port reaches every interface

_APP_OBJECT = re.compile(
    r"^(?P<attr>[A-Za-z_]\w*)\s*(?::\s*[\w.\[\], ]+)?=\s*(?:[\w.]+\.)?(?P<cls>"
    + "|".join([*ASGI_FRAMEWORKS, *WSGI_FRAMEWORKS, "Celery"])
    + r")\(",
    re.MULTILINE,
)
_DJANGO_APP = re.compile(r"^(?P<attr>application)\s*=\s*get_(?P<kind>asgi|wsgi)_application\(", re.MULTILINE)
_ARQ_SETTINGS = re.compile(r"^class\s+(?P<cls>\w*WorkerSettings\w*)\b", re.MULTILINE)
_IMPORTS = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", re.MULTILINE)
_MAIN_GUARD = re.compile(r"^if\s+__name__\s*==\s*['\"]__main__['\"]\s*:", re.MULTILINE)
_SCHEDULE = re.compile(r"\bbeat_schedule\b|\bcrontab\(")
_ROLE_SCRIPTS = (("worker", re.compile(r"worker")), ("scheduler", re.compile(r"scheduler|beat|cron")))


@dataclass(frozen=True)
class WebApp:
    target: str  # module:attr
    framework: str  # FastAPI, Flask, Django...
    interface: str  # asgi or wsgi


@dataclass(frozen=True)
class WorkerApp:
    target: str  # what the worker command takes: module:attr (Celery), module.Class (arq), module
    kind: str  # celery, arq, dramatiq, rq
    module: str


@dataclass
class Sources:
    """What the application's modules say."""

    web: list[WebApp] = field(default_factory=list)
    workers: list[WorkerApp] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # module -> source text
    paths: dict[str, str] = field(default_factory=dict)  # module -> project-relative path
    schedule: bool = False  # a Celery beat schedule is defined

    def imports(self, module: str) -> set[str]:
        return set(_IMPORTS.findall(self.texts.get(module, "")))


def scan(project: Project, files: list[str]) -> Sources:
    found = Sources()
    home = project.directory.resolve()
    for path in projects.python_sources(project, files):
        source = project.directory / path
        try:
            if not source.resolve().is_relative_to(home):  # a link out of the project: not its source
                continue
            text = source.read_text(errors="replace")
        except OSError:
            continue
        module = projects.module_of(path, project)
        found.texts[module] = text
        found.paths[module] = path
        for match in _APP_OBJECT.finditer(text):
            cls, target = match.group("cls"), f"{module}:{match.group('attr')}"
            if cls == "Celery":
                found.workers.append(WorkerApp(target, "celery", module))
            else:
                found.web.append(WebApp(target, cls, "asgi" if cls in ASGI_FRAMEWORKS else "wsgi"))
        for match in _DJANGO_APP.finditer(text):
            found.web.append(WebApp(f"{module}:application", "Django", match.group("kind")))
        for match in _ARQ_SETTINGS.finditer(text):
            found.workers.append(WorkerApp(f"{module}.{match.group('cls')}", "arq", module))
        imported = set(_IMPORTS.findall(text))
        if "dramatiq" in imported and "actor" in text:
            found.workers.append(WorkerApp(module, "dramatiq", module))
        if "rq" in imported:
            found.workers.append(WorkerApp(module, "rq", module))
        found.schedule = found.schedule or bool(_SCHEDULE.search(text))
    return found


def _rank(target: str) -> tuple[int, str]:
    leaf = target.partition(":")[0].rsplit(".", 1)[-1]
    return (_APP_MODULES.index(leaf) if leaf in _APP_MODULES else len(_APP_MODULES), target)


def web_apps(found: Sources, runtime: Mapping[str, str]) -> list[WebApp]:
    """Web apps whose framework is a runtime dependency, the likeliest first."""
    return sorted((w for w in found.web if FRAMEWORKS[w.framework] in runtime), key=lambda w: _rank(w.target))


def worker_apps(found: Sources, runtime: Mapping[str, str]) -> list[WorkerApp]:
    return sorted((w for w in found.workers if w.kind in runtime), key=lambda w: _rank(w.target))


def server_command(server: str, target: str, interface: str, port: int) -> tuple[str, ...]:
    if server == "uvicorn":
        return ("uvicorn", target, "--host", _ANY_ADDRESS, "--port", str(port))
    if server == "hypercorn":
        return ("hypercorn", target, "--bind", f"{_ANY_ADDRESS}:{port}")
    if server == "granian":
        return ("granian", "--interface", interface, "--host", _ANY_ADDRESS, "--port", str(port), target)
    if server == "gunicorn":
        return ("gunicorn", "--bind", f"{_ANY_ADDRESS}:{port}", target)
    return ("waitress-serve", f"--listen={_ANY_ADDRESS}:{port}", target)


def worker_command(target: str, kind: str, *, beat: bool = False) -> tuple[str, ...]:
    if kind == "celery" and beat:  # the schedule file goes where the non-root user may write
        return ("celery", "-A", target, "beat", "--loglevel=INFO", "--schedule=/tmp/celerybeat-schedule")
    if kind == "celery":
        return ("celery", "-A", target, "worker", "--loglevel=INFO")
    if kind in ("arq", "dramatiq"):
        return (kind, target)
    return ("rq", "worker")


def healthcheck_command(port: int, path: str | None) -> tuple[str, ...]:
    """Python's standard library, not curl (the slim base has none). With a known health route any
    error or non-2xx answer fails; without one, any HTTP answer below 500 means the server is up."""
    if path:
        code = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=2)"
    else:
        code = (
            f"import http.client as h; c = h.HTTPConnection('127.0.0.1', {port}, timeout=2); "
            "c.request('GET', '/'); raise SystemExit(c.getresponse().status >= 500)"
        )
    return ("python", "-c", code)


def health_path(found: Sources, module: str) -> str | None:
    """A conventional health route named anywhere in the app's top-level package."""
    package = module.partition(".")[0]
    texts = [text for name, text in sorted(found.texts.items()) if name.partition(".")[0] == package]
    for path in HEALTH_PATHS:
        pattern = re.compile(r"[\"']" + re.escape(path) + r"/?[\"']")
        if any(pattern.search(text) for text in texts):
            return path
    return None


def _pick_server(interface: str, runtime: Mapping[str, str]) -> str | None:
    return next((s for s in (ASGI_SERVERS if interface == "asgi" else WSGI_SERVERS) if s in runtime), None)


def _no_server(target: str, framework: str, interface: str) -> UsageError:
    servers = ASGI_SERVERS if interface == "asgi" else WSGI_SERVERS
    kind = interface.upper()
    return UsageError(
        f"{target} is a {framework} ({kind}) app, but no {kind} server ({', '.join(servers)}) is a runtime "
        f"dependency, so the image could not start it: `uv add {servers[0]}`, then run `dockyard init` again"
    )


def _split_target(text: str, flag: str) -> str:
    module, sep, attr = text.partition(":")
    if not sep or not re.fullmatch(r"[A-Za-z_][\w.]*", module) or not re.fullmatch(r"[A-Za-z_]\w*", attr):
        raise UsageError(f"{flag} {text!r}: give MODULE:ATTR, e.g. {flag} myapp.main:app")
    return module


def _script_module(entry: str) -> str:
    return entry.partition(":")[0].strip()


def _launcher(project: Project, found: Sources) -> tuple[str, str] | None:
    """A [project.scripts] entry whose module imports a server: it starts the web service itself."""
    for script in sorted(project.scripts, key=lambda s: (canonical(s) != canonical(project.name), s)):
        module = _script_module(project.scripts[script])
        if found.imports(module) & set(SERVER_MODULES):
            return script, module
    return None


def _main_script(project: Project) -> str:
    scripts = sorted(project.scripts)
    for script in scripts:
        if canonical(script) == canonical(project.name):
            return script
    plain = [s for s in scripts if not any(p.search(s) for _, p in _ROLE_SCRIPTS)]
    return (plain or scripts)[0]


# A module with a `__main__` guard that is probably the program (`run.py`), best first.
_MAIN_NAMES = ("__main__", "main", "run", "app", "server", "service", "cli", "worker")


def _main_module(project: Project, found: Sources) -> tuple[str, str, tuple[str, ...]] | None:
    """(module, path, command) of what runs as `__main__`: a package's `__main__.py` (`python -m
    pkg`), else a module of the project's own with an `if __name__ == "__main__":` block (as
    postmodern-mono's server is run: `python .../run.py`): `python -m` its module in a packaged
    project (the installed package), a top-level script by its path in a virtual one (`python
    main.py`), a module inside one of its packages with `python -m`. Preferred: `__main__`, then
    the usual names (`main`, `run`, ...), then the shallowest module."""
    candidates = []
    for module, text in found.texts.items():
        path = found.paths[module]
        leaf = module.rsplit(".", 1)[-1] if not path.endswith("__main__.py") else "__main__"
        if path.endswith("__init__.py") or (leaf != "__main__" and not _MAIN_GUARD.search(text)):
            continue  # `python -m pkg` runs pkg/__main__.py, never the guard in its __init__.py
        if not project.packaged and leaf == "__main__" and "/" not in path:
            continue  # a top-level __main__.py of a virtual project is no module `python -m` finds
        rank = _MAIN_NAMES.index(leaf) if leaf in _MAIN_NAMES else len(_MAIN_NAMES)
        if project.packaged or "/" in path:
            name = module.removesuffix(".__main__") if leaf == "__main__" else module
            command: tuple[str, ...] = ("python", "-m", name)
        else:
            command = ("python", path)
            rank = -1 if path == "main.py" else rank  # `uv init`'s own script
        candidates.append((rank, path.count("/"), module, path, command))
    if not candidates:
        return None
    _, _, module, path, command = min(candidates)
    return module, path, command


def _flagged(options: Options, found: Sources, runtime: Mapping[str, str], port: int) -> Run | None:
    if options.app:
        module = _split_target(options.app, "--app")
        known = {w.target: w for w in found.web}
        app = known.get(options.app)
        interface = app.interface if app else ("asgi" if any(s in runtime for s in ASGI_SERVERS) else "wsgi")
        server = _pick_server(interface, runtime)
        if server is None:
            raise _no_server(options.app, app.framework if app else "web", interface)
        cmd = server_command(server, options.app, interface, port)
        return Run(
            "web", None, cmd, Fact("runs", f"web service: {options.app} on {server}", "--app"), module, server
        )
    if options.worker:
        _split_target(options.worker, "--worker")
        kinds = {w.target: w.kind for w in found.workers}
        kind = kinds.get(options.worker) or next((k for k in WORKER_KINDS if k in runtime), None)
        if kind is None:
            raise UsageError(
                f"--worker {options.worker}: no Celery, arq, Dramatiq or RQ among the dependencies"
            )
        fact = Fact("runs", f"{kind} worker: {options.worker}", "--worker")
        return Run("worker", None, worker_command(options.worker, kind), fact)
    return None


def _from_scripts(project: Project, found: Sources) -> Run:
    script = _main_script(project)
    entry = project.scripts[script]
    others = sorted(set(project.scripts) - {script})
    also = f"; also: {', '.join(others)}" if others else ""
    if found.imports(_script_module(entry)) & CLI_MODULES:
        why = f"[project.scripts] {script} = {entry} parses arguments{also}"
        return Run("cli", (script,), ("--help",), Fact("runs", f"command line: `{script}`", why))
    return Run(
        "job",
        (script,),
        None,
        Fact("runs", f"job: `{script}`", f"[project.scripts] {script} = {entry}{also}"),
    )


def decide(project: Project, options: Options, found: Sources, runtime: Mapping[str, str], port: int) -> Run:
    """Flags first; then a script that starts a server; a web app; a worker; scripts; `__main__`."""
    flagged = _flagged(options, found, runtime, port)
    if flagged:
        return flagged
    launcher = _launcher(project, found)
    apps = web_apps(found, runtime)
    if launcher:
        script, module = launcher
        routes = apps[0].target.split(":")[0] if apps else module
        why = f"[project.scripts] {script} = {project.scripts[script]} starts a server"
        return Run("web", None, (script,), Fact("runs", f"web service: `{script}`", why), routes)
    if apps:
        app = apps[0]
        server = _pick_server(app.interface, runtime)
        if server is None:
            raise _no_server(app.target, app.framework, app.interface)
        module, attr = app.target.split(":")
        why = f"{app.framework} app `{attr}` in {found.paths.get(module, module)}; {server} is a dependency"
        cmd = server_command(server, app.target, app.interface, port)
        return Run(
            "web", None, cmd, Fact("runs", f"web service: {app.target} on {server}", why), module, server
        )
    workers = worker_apps(found, runtime)
    if workers:
        worker = workers[0]
        why = f"{worker.kind} app in {found.paths.get(worker.module, worker.module)}"
        return Run(
            "worker",
            None,
            worker_command(worker.target, worker.kind),
            Fact("runs", f"{worker.kind} worker: {worker.target}", why),
        )
    if project.scripts:
        return _from_scripts(project, found)
    main = _main_module(project, found)
    if main:
        _, path, cmd = main
        why = (
            f"{path} runs as __main__"
            if path.endswith("__main__.py")
            else (f'{path} has an `if __name__ == "__main__":` block')
        )
        return Run("job", None, cmd, Fact("runs", f"job: `{' '.join(cmd)}`", why))
    raise UsageError(
        f"nothing to run in {project.name}: no [project.scripts], no `__main__`, no web or worker app found; "
        "pass --app MODULE:ATTR or --worker MODULE:ATTR, or add a script"
    )


def roles(project: Project, run: Run, found: Sources, runtime: Mapping[str, str]) -> tuple[Role, ...]:
    """One compose service per role: web, worker, scheduler (an `app` when there is none of them)."""
    made: list[Role] = []
    if run.kind == "web":
        made.append(Role("web", None))
    workers = worker_apps(found, runtime)
    if run.kind == "worker":
        made.append(Role("worker", None))
    elif workers:
        made.append(Role("worker", worker_command(workers[0].target, workers[0].kind)))
    if workers and workers[0].kind == "celery" and found.schedule:
        made.append(Role("scheduler", worker_command(workers[0].target, "celery", beat=True)))
    for script in sorted(project.scripts):
        for name, pattern in _ROLE_SCRIPTS:
            if pattern.search(script) and name not in {r.name for r in made}:
                made.append(Role(name, (script,)))
                break
    order = ("web", "worker", "scheduler")
    return tuple(sorted(made, key=lambda r: order.index(r.name))) or (Role("app", None),)


def smoke(project: Project, run: Run, found: Sources) -> tuple[tuple[str, ...], ...]:
    """A command the checklist runs in the image: one that proves the entry point is there and starts."""
    if run.kind == "cli" and run.entrypoint:
        return ((*run.entrypoint, "--help"),)
    if run.kind == "web" and run.server in ("uvicorn", "gunicorn", "granian"):
        return ((run.server, "--version"),)
    if run.kind == "web" and run.cmd and len(run.cmd) == 1:  # a launcher script that parses arguments
        module = _script_module(project.scripts.get(run.cmd[0], ""))
        if found.imports(module) & CLI_MODULES:
            return ((run.cmd[0], "--help"),)
    if run.kind == "worker" and run.cmd and run.cmd[0] in WORKER_KINDS:
        return ((run.cmd[0], "--version"),)
    return ()


def app_module(run: Run) -> str | None:
    """The module the image's command imports (for `verify.imports`)."""
    if run.kind == "web" and run.routes_module and run.server:
        return run.routes_module
    if run.kind == "worker" and run.cmd:
        if run.cmd[0] == "celery":
            return run.cmd[2].split(":")[0]
        if run.cmd[0] == "arq":
            return run.cmd[1].rsplit(".", 1)[0]
        if run.cmd[0] == "dramatiq":
            return run.cmd[1]
    return None
