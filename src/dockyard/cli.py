"""`dockyard` on the command line: `main(argv)` and the one boundary that maps errors to exit codes.

Arguments are parsed, and `--help` and `--version` answered, with the standard library alone: what a
command needs (rich, docker-py, the build and compose machinery) is imported once it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from dockyard import __version__, fsutil, interrupt
from dockyard.errors import EXIT_USAGE, DockyardError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from dockyard import config

EXIT_INTERRUPTED = 130


def make_console() -> Console:
    """The console for reports: CI logs (no terminal) get 120 columns instead of rich's 80."""
    from rich.console import Console  # noqa: PLC0415

    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def error_console() -> Console:
    from rich.console import Console  # noqa: PLC0415

    return Console(stderr=True, highlight=False)


def report_error(exc: DockyardError, console: Console | None = None) -> int:
    """Print one clear line (and the detail, when there is one) and return the exit code."""
    from rich.markup import escape  # noqa: PLC0415

    console = console or error_console()
    message = fsutil.printable(exc.message)
    console.print(f"[bold red]dockyard: error:[/] {escape(message)}", soft_wrap=True)
    if exc.detail:
        console.print(fsutil.printable(exc.detail), markup=False, soft_wrap=True)
    return exc.exit_code


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, Ctrl-C and SIGTERM (CI cancelling a job) both raise KeyboardInterrupt in the
    main thread, after starting to cut short the work of every thread (`dockyard.interrupt`); a
    second signal while that cleanup runs is ignored, so the cleanup is never itself cut short."""
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if interrupt.deferred(signum, frame):  # inside importlib: it comes again in a moment
            return
        first = not interrupt.cancelled()
        interrupt.signalled()
        if first:
            raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # `nohup`, a background job: stays ignored
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def interrupted(console: Console | None = None) -> int:
    """After an interrupt: wait for the cleanup to complete, say so in one line, return 130."""
    still = interrupt.finish()
    console = console or error_console()
    if still:
        console.print(f"[bold red]dockyard: interrupted[/]; still cleaning up: {', '.join(still)}")
    else:
        console.print("[bold red]dockyard: interrupted[/] (what it made is removed)")
    return EXIT_INTERRUPTED


def run_boundary(action: Callable[[], object]) -> int:
    """Run `action`; map dockyard's errors to exit codes, with no traceback for any user error."""
    interrupt.reset()
    with interruptible():
        try:
            action()
        except DockyardError as exc:
            if interrupt.cancelled():  # a command the interrupt cut short failed meanwhile
                return interrupted()
            return report_error(exc)
        except KeyboardInterrupt:
            return interrupted()
    return 0


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


class _Done(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _add_push(commands: Any) -> None:
    push = commands.add_parser("push", help="push the latest build to its registry; report bytes and digest")
    push.add_argument("image", nargs="?", help="local image to push (default: the project's latest build)")
    push.add_argument("--to", action="append", default=[], metavar="REF", help="push under this name instead")
    push.add_argument("--json", type=Path, metavar="PATH")
    push.add_argument("--markdown", type=Path, metavar="PATH")


def _add_stack_commands(commands: Any) -> None:
    """compose-build and verify-compose: the compose file's builds, and the checks of each service."""
    for name, text in (
        ("compose-build", "build every `build:` service of the compose file, shared builds once"),
        ("verify-compose", "compose-build, each service's command, and the checklist on each image"),
    ):
        stack = commands.add_parser(name, help=text)
        stack.add_argument("--file", "-f", action="append", default=[], help="compose file (repeatable)")
        stack.add_argument("--profile", action="append", default=[])
        stack.add_argument("--service", action="append", default=[], help="only these services")
        stack.add_argument("--project-name", "-p")
        stack.add_argument("--no-cache", action="store_true")
        stack.add_argument(
            "--cache-from",
            action="append",
            default=[],
            metavar="REF",
            help="import each build's registry cache from REF/<service>:buildcache (REF: HOST/PATH)",
        )
        stack.add_argument(
            "--cache-to",
            action="append",
            default=[],
            metavar="REF",
            help="export each build's registry cache to REF/<service>:buildcache",
        )
        if name == "verify-compose":
            stack.add_argument("--skip", action="append", default=[], metavar="ID")
            stack.add_argument("--only", action="append", default=[], metavar="ID")
            stack.add_argument("--json", type=Path, metavar="PATH")
            stack.add_argument("--junit", type=Path, metavar="PATH")
            stack.add_argument("--markdown", type=Path, metavar="PATH")
            stack.add_argument("--show-build", action="store_true", help="show the live build progress")
        else:
            stack.add_argument("--quiet", action="store_true", help="no live build progress")
            stack.add_argument("--fail-fast", action="store_true", help="stop at the first build that fails")


def _layout_options(command: argparse.ArgumentParser) -> None:
    """--dockerfile, --context, --target: over `[tool.dockyard]` and what dockyard discovers."""
    command.add_argument(
        "--dockerfile", "-f", type=Path, metavar="PATH", help="Dockerfile (default: discovered; see README)"
    )
    command.add_argument("--context", type=Path, metavar="DIR", help="build context (default: discovered)")
    command.add_argument("--target", metavar="STAGE", help="Dockerfile stage to build")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="dockyard", description="The container image lifecycle for uv services.")
    top.add_argument("--version", action="version", version=f"dockyard {__version__}")
    top.add_argument("--project", type=Path, help="project directory (default: nearest pyproject)")
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)

    build = commands.add_parser("build", help="build the project's image with BuildKit")
    build.add_argument("--tag", action="append", default=[], help="tag instead of version/sha")
    build.add_argument("--build-arg", action="append", type=_key_value, default=[])
    build.add_argument("--no-cache", action="store_true")
    _layout_options(build)
    build.add_argument("--platform")
    build.add_argument("--quiet", action="store_true", help="no live build progress")
    build.add_argument("--builder", help="buildx builder (e.g. a remote BuildKit)")
    build.add_argument(
        "--cache-from", action="append", default=[], metavar="REF", help="import a registry cache (REF)"
    )
    build.add_argument(
        "--cache-to",
        action="append",
        default=[],
        metavar="REF",
        help="export a registry cache to REF (buildx: mode=max; built-in BuildKit: inline, pushed)",
    )
    _add_push(commands)

    verify = commands.add_parser("verify", help="run the image checklist (builds first unless --image)")
    verify.add_argument("image", nargs="?", help="image to verify (default: build the project's first)")
    verify.add_argument("--image", dest="image_option", metavar="IMAGE", help="the same, as an option")
    verify.add_argument("--skip", action="append", default=[], metavar="ID", help="check to skip")
    verify.add_argument("--only", action="append", default=[], metavar="ID", help="only this check")
    verify.add_argument("--json", type=Path, metavar="PATH")
    verify.add_argument("--junit", type=Path, metavar="PATH")
    verify.add_argument("--markdown", type=Path, metavar="PATH")
    verify.add_argument("--show-build", action="store_true", help="show the live build progress")
    _layout_options(verify)

    size = commands.add_parser("size-report", help="where the bytes are: layers, distributions, delta, waste")
    size.add_argument("image", nargs="?", help="image (default: the project's image, latest build)")
    size.add_argument("--image", dest="image_option", metavar="IMAGE", help="the same, as an option")
    size.add_argument("--deep", action="store_true", help="also find wasted space in the image export")
    size.add_argument("--json", type=Path, metavar="PATH")
    size.add_argument("--markdown", type=Path, metavar="PATH")
    size.add_argument("--base", help="base image to group apart (default: label, else the Dockerfile)")

    _add_stack_commands(commands)

    lock_cmd = commands.add_parser("lock", help="uv lock; --check fails when stale or uncommitted")
    lock_cmd.add_argument("--check", action="store_true")

    _add_init_and_doctor(commands)
    return top


def _settings(args: argparse.Namespace) -> config.Settings:
    """The project's settings with the command line's layout flags; `verify IMAGE` outside any project
    checks the image alone."""
    from dockyard import config  # noqa: PLC0415
    from dockyard.project import workspace  # noqa: PLC0415

    overrides = config.Overrides(
        dockerfile=getattr(args, "dockerfile", None),
        context=getattr(args, "context", None),
        target=getattr(args, "target", None),
    )
    verb = "verify" if args.command == "verify" else "report on"
    image = _one_image(getattr(args, "image", None), getattr(args, "image_option", None), verb)
    if args.command == "verify" and image is not None and args.project is None:
        start = Path.cwd().resolve()
        if workspace.nearest_project(start) is None:
            if overrides != config.Overrides():
                raise UsageError("--dockerfile, --context and --target need a project: pass --project DIR")
            return config.image_only(image, start=start)
    return config.load(args.project, overrides=overrides)


def _add_init_and_doctor(commands: argparse._SubParsersAction[_Parser]) -> None:
    init = commands.add_parser(
        "init", help="adopt a uv project: Dockerfile, .dockerignore, [tool.dockyard], tasks.py, noxfile.py"
    )
    init.add_argument("directory", nargs="?", type=Path, help="the uv project (default: the current one)")
    init.add_argument("--app", metavar="MODULE:ATTR", help="the web (ASGI/WSGI) app to serve")
    init.add_argument("--worker", metavar="MODULE:ATTR", help="the Celery/arq/Dramatiq/RQ app to run")
    init.add_argument("--port", type=_port, help="the port the server listens on (default 8000)")
    init.add_argument("--python", metavar="X.Y", help="the Python of the base image")
    init.add_argument("--compose", action="store_true", help="also write compose.yaml, one service per role")
    init.add_argument("--force", action="store_true", help="overwrite files that differ")
    init.add_argument(
        "--no-add",
        action="store_true",
        help="do not add dockyard to the dev dependencies (it runs from elsewhere)",
    )
    init.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")

    doctor = commands.add_parser("doctor", help="is this machine ready? one line per item, with the fix")
    doctor.add_argument("--fix", action="store_true", help="provision what can be (as root, asking nothing)")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def _one_image(positional: str | None, option: str | None, verb: str) -> str | None:
    """IMAGE or --image IMAGE (Invoke and Nox pass it as the option), not two different ones."""
    if positional is not None and option is not None and positional != option:
        raise UsageError(f"two images given ({positional}, {option}): {verb} one")
    return positional if positional is not None else option  # "" is a bad reference, not "none"


def _terminate(signum: int, frame: FrameType | None) -> None:
    if not interrupt.deferred(signum, frame):
        raise KeyboardInterrupt


def run() -> None:
    """The `dockyard` command (the console script, and `python -m dockyard`): `main`, with SIGTERM
    ending it as Ctrl-C does from the start. An interrupted run ends right here with exit 130, its
    cleanup done: the interpreter's own shutdown is skipped, because an interrupt that reached Python
    in the middle of an import can leave it to end the process by SIGINT instead (exit -2, seen under
    load)."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main()
    except KeyboardInterrupt:  # before or between the boundaries
        print("dockyard: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(EXIT_INTERRUPTED)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    namespace: argparse.Namespace | None = None

    def parse() -> None:
        nonlocal namespace
        try:
            namespace = parser().parse_args(args_list)
        except SystemExit as exc:  # --help and --version end here
            raise _Done(int(exc.code or 0)) from None

    try:
        code = run_boundary(parse)
    except _Done as done:
        return done.code
    if namespace is None:
        return code or EXIT_USAGE
    args = namespace

    if args.command in ("init", "doctor"):
        return run_boundary(lambda: _machine_commands(args, make_console()))

    def dispatch() -> None:
        settings = _settings(args)
        # Imported here, not at the top: `--version`, `--help` and `doctor` start without the engine's
        # client, BuildKit and the checklist (doctor's time budget is 3 s, imports included), and a
        # configuration error answers at once, before they load.
        from dockyard import actions  # noqa: PLC0415

        console = make_console()
        if args.command == "build":
            options = actions.BuildOptions(
                tags=args.tag,
                build_args=dict(args.build_arg),
                no_cache=args.no_cache,
                platform=args.platform,
                quiet=args.quiet,
                builder=args.builder,
                cache_from=args.cache_from,
                cache_to=args.cache_to,
            )
            actions.build_image(settings, options, console)
        elif args.command == "push":
            pushing = actions.PushOptions(args.image, args.to, args.json, args.markdown)
            actions.push(settings, pushing, console)
        elif args.command == "verify":
            image = _one_image(args.image, args.image_option, "verify")
            request = actions.VerifyRequest(
                image=image,
                skip=tuple(args.skip),
                only=tuple(args.only),
                json_path=args.json,
                junit_path=args.junit,
                markdown_path=args.markdown,
                quiet_build=not args.show_build,
            )
            actions.verify(settings, request, console)
        elif args.command == "size-report":
            image = _one_image(args.image, args.image_option, "report on")
            sizing = actions.SizeReportOptions(image, args.deep, args.json, args.markdown, args.base)
            actions.size_report(settings, sizing, console)
        elif args.command in ("compose-build", "verify-compose"):
            from dockyard.build import stack as stacks  # noqa: PLC0415

            quiet = args.quiet if args.command == "compose-build" else not args.show_build
            stack = stacks.ComposeOptions(
                profiles=tuple(args.profile),
                services=tuple(args.service),
                project_name=args.project_name,
                no_cache=args.no_cache,
                quiet=quiet,
                fail_fast=getattr(args, "fail_fast", False),
                cache_from=tuple(args.cache_from),
                cache_to=tuple(args.cache_to),
            )
            if args.command == "compose-build":
                actions.compose_build(settings, args.file, stack, console)
            else:
                request = actions.VerifyRequest(
                    skip=tuple(args.skip),
                    only=tuple(args.only),
                    json_path=args.json,
                    junit_path=args.junit,
                    markdown_path=args.markdown,
                )
                actions.verify_compose(settings, args.file, stack, request, console)
        elif args.command == "lock":
            actions.update_lock(settings, check=args.check, console=console)

    return run_boundary(dispatch)


def _machine_commands(args: argparse.Namespace, console: Console) -> None:
    """`init` and `doctor` work before a project is configured: they read no [tool.dockyard] first."""
    if args.command == "doctor":
        from dockyard.machine import doctor  # noqa: PLC0415 - see dispatch

        if not doctor.doctor(args.project, console, fix=args.fix):
            raise doctor.NotReady("this machine is not ready for dockyard: run the FIX commands above")
        return
    from dockyard import actions  # noqa: PLC0415 - see dispatch

    if args.command == "init":
        options = actions.InitOptions(
            app=args.app,
            worker=args.worker,
            port=args.port,
            python=args.python,
            compose=args.compose,
            force=args.force,
            dry_run=args.dry_run,
            add=not args.no_add,
        )
        actions.init_project(args.directory or args.project, options, console)
