"""What each command does, with its human output; the CLI, the Invoke tasks and the Nox sessions are
thin doors over these functions.

Each command imports the machinery it needs when it runs (rich, the build, push, compose, sizes, verify,
init and doctor modules), so that no command pays for another's imports.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard import config, engine, fsutil, git, reference
from dockyard.errors import BuildFailed, ChecksFailed, DockyardError

if TYPE_CHECKING:
    from rich.console import Console

    from dockyard.build import push as pushes
    from dockyard.build import stack as stacks
    from dockyard.build.buildkit import BuildResult
    from dockyard.results import Report
    from dockyard.sizes import model as size_model


@dataclass(frozen=True)
class BuildOptions:
    tags: Sequence[str] = ()
    build_args: Mapping[str, str] | None = None
    no_cache: bool = False
    target: str | None = None
    platform: str | None = None
    quiet: bool = False
    clean_checkout: bool = False  # build the committed tree (HEAD), not the working tree
    builder: str | None = None  # buildx only, like cache_to
    cache_from: Sequence[str] = ()
    cache_to: Sequence[str] = ()


def ready_engine(settings: config.Settings, console: Console, *, build: bool = True) -> config.Settings:
    """The engine answers (and, to `build`, a BuildKit path exists); on first use on a machine dockyard
    may provision (root on Debian/Ubuntu), provision it, printing each step, and read the settings
    again (the machine file is new). Elsewhere, one line naming the command that readies the machine."""
    from dockyard.machine import provisioning  # noqa: PLC0415

    def check() -> None:
        docker = config.effective_environment().get("DOCKYARD_DOCKER") or settings.docker
        connected = engine.connect(docker)
        if build:
            _ = connected.cli

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False)

    if provisioning.ensure_engine(check, say):
        return _with_machine_file(settings)
    return settings


def _with_machine_file(settings: config.Settings) -> config.Settings:
    """The settings with what a machine file written since they were read says (the docker CLI, the
    base-image build args, the CA bundle), below the real environment as always."""
    env = config.effective_environment()
    prefix = "DOCKYARD_BUILD_ARG_"
    machine_args = {k.removeprefix(prefix): v for k, v in env.items() if k.startswith(prefix) and k != prefix}
    bundle = env.get("DOCKYARD_CA_BUNDLE")
    return replace(
        settings,
        build_args={**settings.build_args, **machine_args},
        docker=env.get("DOCKYARD_DOCKER") or settings.docker,
        ca_bundle=settings.project_dir / bundle if bundle else settings.ca_bundle,
    )


def print_project(settings: config.Settings, console: Console) -> None:
    """The `project:` header: what dockyard found and where each value came from, before any work."""
    for number, item in enumerate(settings.inferred):
        console.print(("" if number == 0 else "  ") + item.line(), markup=False, highlight=False)


def build_image(
    settings: config.Settings, options: BuildOptions, console: Console, *, header: bool = True
) -> BuildResult:
    """Build the project's image and print a summary."""
    from rich.markup import escape  # noqa: PLC0415

    from dockyard.sizes import history as size_history  # noqa: PLC0415

    for tag in options.tags:
        reference.check_image_ref(tag, "--tag")
    if header:
        print_project(settings, console)
    settings.require_layout("dockerfile", "context")
    settings = ready_engine(settings, console)
    if options.clean_checkout:
        with tempfile.TemporaryDirectory(prefix="dockyard-head-") as scratch:
            root = Path(scratch)
            source = settings.build_root
            git.export_head(source, root)
            console.print(f"building the committed tree (HEAD) of {source} from {root}", markup=False)
            state = git.state(source)
            clean = replace(options, clean_checkout=False)
            result = _build(settings.relocated(root, source), clean, console, replace(state, dirty=False))
    else:
        result = _build(settings, options, console, None)

    def warn(message: str) -> None:
        console.print(f"[yellow]warning:[/] {escape(fsutil.printable(message))}", soft_wrap=True)  # one line

    try:  # in the project's own history, also for a build from a scratch checkout
        size_history.record_built_image(engine.connect(settings.docker), settings, result.image_id, warn=warn)
    except DockyardError as exc:  # a good build must not fail on its size history
        warn(f"size history not updated: {exc.message}")
    _print_summary(result, console)
    for missed in result.cache_missed:
        warn(missed)
    return result


def _build(
    settings: config.Settings, options: BuildOptions, console: Console, state: git.GitState | None
) -> BuildResult:
    from rich.markup import escape  # noqa: PLC0415

    from dockyard.build import buildkit as builds  # noqa: PLC0415

    request = builds.request_for(
        settings,
        state=state,
        tags=options.tags,
        build_args=options.build_args,
        no_cache=options.no_cache,
        target=options.target,
        platform=options.platform,
        builder=options.builder,
        cache_from=options.cache_from,
        cache_to=options.cache_to,
    )
    docker = engine.connect(settings.docker)
    console.print(f"[bold]dockyard build[/] {escape(str(settings.dockerfile))} with {docker.cli.describe()}")
    repository = settings.repository
    outside = repository is not None and not settings.context.is_relative_to(repository)
    if outside or settings.context == Path("/"):
        console.print(
            f"  [yellow]context {escape(str(settings.context))} is outside the git repository[/] "
            "(configured explicitly)"
        )
    if request.build_args:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(request.build_args.items()))
        console.print(f"  build args: {shown}", markup=False)
    if request.secrets:
        secrets = ", ".join(f"{k} ({v})" for k, v in request.secrets.items())
        console.print(f"  secrets: {secrets}", markup=False)
    for note in builds.cache_plan(docker.cli, request).notes:
        console.print(f"  {note}", markup=False)

    def echo(line: str) -> None:
        if not options.quiet:
            console.out(f"  {line}", highlight=False)

    try:
        return builds.build(docker, request, on_line=echo)
    except BuildFailed as exc:
        if options.quiet:
            raise
        # The failing step streamed above already: the error line names it, without a second copy.
        again = BuildFailed(exc.message, argv=exc.argv, returncode=exc.returncode, output=exc.output)
        again.detail = ""
        raise again from None


def _print_summary(result: BuildResult, console: Console) -> None:
    import humanize  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_row("tags", ", ".join(result.tags))
    table.add_row("image", result.image_id.removeprefix("sha256:")[:12])
    table.add_row("size", humanize.naturalsize(result.size))
    table.add_row("steps", f"{len(result.steps)} ({result.cached_steps} from cache)")
    table.add_row("time", f"{result.seconds:.1f}s")
    for pinned in result.cache_pushed:
        table.add_row("cache", f"inline cache pushed: {pinned}")
    console.print("[bold green]built[/]")
    console.print(table)


@dataclass(frozen=True)
class PushOptions:
    image: str | None = None  # None: the project's latest build, under its own tags
    to: Sequence[str] = ()  # push under these references instead
    json_path: Path | None = None
    markdown_path: Path | None = None


def push(settings: config.Settings, options: PushOptions, console: Console) -> list[pushes.PushResult]:
    """Push the project's latest build (or `options.image`); report what moved and the digest to deploy."""
    from rich.markup import escape  # noqa: PLC0415

    from dockyard.build import push as pushes  # noqa: PLC0415

    if options.image is not None:
        reference.check_image_ref(options.image, "IMAGE")
    for ref in options.to:
        reference.check_image_ref(ref, "--to")
    check_outputs([(options.json_path, "--json"), (options.markdown_path, "--markdown")])
    print_project(settings, console)
    docker = engine.connect(settings.docker)
    image_id, targets = pushes.plan(docker, settings, options.image, options.to)
    console.print(
        f"[bold]dockyard push[/] {image_id.removeprefix('sha256:')[:12]} as "
        f"{escape(', '.join(str(target) for target in targets))}"
    )
    results = pushes.push_image(docker, image_id, targets)

    def warn(message: str) -> None:
        console.print(f"[yellow]warning:[/] {escape(fsutil.printable(message))}")

    for result in results:
        try:
            pushes.record(settings, docker, result, warn=warn)
        except DockyardError as exc:  # a good push must not fail on its size history
            warn(f"size history not updated: {exc.message}")
    pushes.render(results, console)
    written = fsutil.write_reports(
        [
            (options.json_path, "--json", lambda: pushes.to_json(results)),
            (options.markdown_path, "--markdown", lambda: pushes.to_markdown(results)),
        ]
    )
    for path in written:
        console.print(f"wrote {escape(fsutil.printable(str(path)))}")
    return results


@dataclass(frozen=True)
class VerifyRequest:
    image: str | None = None  # None: build the project's image first
    skip: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    json_path: Path | None = None
    junit_path: Path | None = None
    markdown_path: Path | None = None
    quiet_build: bool = True


def check_outputs(paths: Sequence[tuple[Path | None, str]], *, step_summary: bool = False) -> None:
    """Before any build or container: every report path can be written (else exit 2, one line), and
    so can `$GITHUB_STEP_SUMMARY` when it is set and asked for."""
    for path, what in paths:
        if path is not None:
            fsutil.check_writable(path, what)
    if step_summary and (summary := os.environ.get("GITHUB_STEP_SUMMARY")):
        fsutil.check_writable(Path(summary), "GITHUB_STEP_SUMMARY")


def _verify_outputs(request: VerifyRequest) -> None:
    check_outputs(
        [
            (request.json_path, "--json"),
            (request.junit_path, "--junit"),
            (request.markdown_path, "--markdown"),
        ],
        step_summary=True,
    )


def verify(settings: config.Settings, request: VerifyRequest, console: Console) -> Report:
    """Run the image checklist (building first unless an image is given); raise when any check fails."""
    if request.image is not None:
        reference.check_image_ref(request.image, "IMAGE")
    _verify_outputs(request)
    # Connect and inspect the image while the checklist loads.
    ahead = engine.warm(settings.docker, request.image) if request.image is not None else None
    from dockyard.verify.gather import VerifyOptions, build_failed_report, preflight, verify_image  # noqa: PLC0415

    options = VerifyOptions(skip=request.skip, only=request.only)
    preflight(settings, options)  # unknown ids, a bad layer-cache-touch: before a long build
    print_project(settings, console)
    built = None
    ref = request.image
    result: Report | None = None
    if ref is None:
        build_options = BuildOptions(quiet=request.quiet_build, clean_checkout=settings.verify.clean_checkout)
        try:
            built = build_image(settings, build_options, console, header=False)
            ref = built.tags[0]
        except BuildFailed as exc:
            result = build_failed_report(settings, exc, options)
            ref = settings.image
    if result is None:
        settings = ready_engine(settings, console, build=False) if built is None else settings
        docker = engine.connect(settings.docker)
        with docker.removing_in_background():  # removals overlap judging and printing, then end
            subject, checks = ref or settings.image, replace(options, build=built)
            result = verify_image(
                docker, settings, subject, checks, prefetch=_REPORT_MODULES, ahead=ahead if ref else None
            )
            return _finish(result, request, console, subject=ref or settings.image)
    return _finish(result, request, console, subject=ref or settings.image)


# What `_finish` imports to print a report: verify imports them while the engine works.
_REPORT_MODULES = ("dockyard.verify.report", "rich.table", "rich.text")


def _finish(result: Report, request: VerifyRequest, console: Console, *, subject: str) -> Report:
    """Print the table, write the requested files (and the CI step summary), fail on any failure."""
    from dockyard.verify import report  # noqa: PLC0415

    report.render_table(result, console)
    written = report.write_outputs(
        result,
        json_path=request.json_path,
        junit_path=request.junit_path,
        markdown_path=request.markdown_path,
    )
    for path in written:
        console.print(f"wrote {fsutil.printable(str(path))}", markup=False)
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        report.append_summary(result, Path(summary))
    if not result.ok:
        failed = sorted({r.check_id for r in result.results if r.failed})
        raise ChecksFailed(f"check(s) failed on {subject}: {', '.join(failed)}")
    return result


@dataclass(frozen=True)
class SizeReportOptions:
    image: str | None = None  # None: the project's image, latest build
    deep: bool = False
    json_path: Path | None = None
    markdown_path: Path | None = None
    base: str | None = None


def size_report(
    settings: config.Settings, options: SizeReportOptions, console: Console
) -> size_model.SizeReport:
    """Where the image's bytes are; fails when over budget or a layer grew past the threshold."""
    from dockyard.sizes import report as sizes  # noqa: PLC0415

    for ref, what in ((options.image, "IMAGE"), (options.base, "--base")):
        if ref is not None:
            reference.check_image_ref(ref, what)
    check_outputs([(options.json_path, "--json"), (options.markdown_path, "--markdown")])
    print_project(settings, console)
    result = sizes.size_report(
        engine.connect(settings.docker),
        settings,
        options.image,
        deep=options.deep,
        console=console,
        json_path=options.json_path,
        markdown_path=options.markdown_path,
        base=options.base,
    )
    if not result.ok:
        raise ChecksFailed(result.summary())
    return result


def compose_build(
    settings: config.Settings, files: Sequence[str], options: stacks.ComposeOptions, console: Console
) -> stacks.StackBuild:
    """Build every `build:` service of the compose file, each shared build once."""
    from dockyard.build import stack as stacks  # noqa: PLC0415

    print_project(settings, console)
    settings = ready_engine(settings, console)
    stack = stacks.compose_build(
        engine.connect(settings.docker), settings, files, console=console, options=options
    )
    if (failed := stacks.failure_error(stack)) is not None:
        raise failed
    return stack


def verify_compose(
    settings: config.Settings,
    files: Sequence[str],
    options: stacks.ComposeOptions,
    request: VerifyRequest,
    console: Console,
) -> Report:
    """compose-build, each service's command, and the image checklist on each distinct image."""
    from dockyard.verify import compose as compose_checks  # noqa: PLC0415
    from dockyard.verify.gather import VerifyOptions  # noqa: PLC0415

    _verify_outputs(request)
    checks = VerifyOptions(skip=request.skip, only=request.only)
    print_project(settings, console)
    settings = ready_engine(settings, console)
    docker = engine.connect(settings.docker)
    with docker.removing_in_background():
        result = compose_checks.verify_compose(
            docker, settings, files, console=console, options=options, checks=checks
        )
        return _finish(result, request, console, subject="the compose stack")


def update_lock(settings: config.Settings, *, check: bool, console: Console) -> None:
    """`uv lock`, or with `check`, fail unless uv.lock is current and committed."""
    from dockyard.project import lock  # noqa: PLC0415

    print_project(settings, console)
    if check:
        message = lock.check(settings.workspace_dir, lock_command=settings.lock_command)
        console.print(f"[green]ok[/] {message}")
    else:
        console.print(lock.lock(settings.workspace_dir))


@dataclass(frozen=True)
class InitOptions:
    app: str | None = None
    worker: str | None = None
    port: int | None = None
    python: str | None = None
    compose: bool = False
    force: bool = False
    dry_run: bool = False
    add: bool = True  # add dockyard to the project's development dependencies


def init_project(directory: Path | None, options: InitOptions, console: Console) -> None:
    """`dockyard init`: adopt the uv project in `directory` (default: the nearest one here)."""
    from dockyard.init import apply as init_apply  # noqa: PLC0415
    from dockyard.init.model import Options as InitInference  # noqa: PLC0415

    if directory is None:
        try:
            directory = config.find_project(Path.cwd())
        except DockyardError:
            directory = Path.cwd()
    inferred = InitInference(
        app=options.app,
        worker=options.worker,
        port=options.port,
        python=options.python,
        compose=options.compose,
    )
    init_apply.run(
        directory, inferred, console, force=options.force, dry_run=options.dry_run, add=options.add
    )


def doctor(project: Path | None, console: Console, *, fix: bool = False) -> None:
    """`dockyard doctor`: one line per item; raise (exit 1) when the machine is not ready."""
    from dockyard.machine import doctor as doctors  # noqa: PLC0415

    if not doctors.doctor(project, console, fix=fix):
        raise doctors.NotReady("this machine is not ready for dockyard: run the FIX commands above")
