"""compose-build without an engine: every build's row in the table (PASS, FAIL with the failing step,
ERROR naming the image that could not be pulled), the exit it ends with, and each build's registry
cache reference."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from dockyard import cli, config, git
from dockyard.build import stack as stacks
from dockyard.errors import BaseImageUnavailable, BuildFailed, UsageError
from dockyard.project import compose
from tests.unit.test_compose import app_build, model_doc, settings


def _stack(tmp_path: Path) -> tuple[compose.ComposeModel, list[compose.BuildGroup]]:
    (tmp_path / "web").mkdir()
    doc = model_doc(
        api={"build": app_build(str(tmp_path))},
        worker={"build": app_build(str(tmp_path)), "command": ["celery", "worker"]},
        web={"build": {"context": str(tmp_path / "web"), "dockerfile": "Dockerfile"}},
        broken={"build": {"context": str(tmp_path), "dockerfile": "broken.Dockerfile"}},
        cache={"image": "redis:7"},
    )
    model = compose.parse_model(doc)
    return model, compose.build_groups(model)


def _failed_stack(tmp_path: Path) -> stacks.StackBuild:
    model, groups = _stack(tmp_path)
    by_name = {g.services[0].name: g for g in groups}
    step = '#7 [2/2] RUN exit 3\n#7 ERROR: process "/bin/sh -c exit 3" did not complete: exit code: 3'
    failed = (
        stacks.FailedBuild(
            by_name["web"],
            BaseImageUnavailable(
                "build of web/Dockerfile could not start: node:22-alpine could not be pulled (no such host)",
                argv=["docker"], returncode=1, output="#2 [internal] load metadata for node:22-alpine",
            ),
        ),
        stacks.FailedBuild(
            by_name["broken"],
            BuildFailed(
                "build of broken.Dockerfile failed: exit code: 3", argv=["docker"], returncode=1, output=step
            ),
        ),
    )  # fmt: skip
    api = by_name["api"]
    built = tuple(
        stacks.ServiceBuild(s.name, compose.with_tag(s.image), "sha256:" + "b" * 64, 120_000_000, 9.5, "api")
        for s in api.services
    )
    return stacks.StackBuild(model, built, (), (api,), 12.0, failed)


def _printed(stack: stacks.StackBuild) -> str:
    out = io.StringIO()
    stacks.print_stack(stack, Console(file=out, width=240, color_system=None))
    return out.getvalue()


def test_every_build_is_a_row_failed_ones_with_why_and_the_failing_step(tmp_path: Path) -> None:
    text = _printed(_failed_stack(tmp_path))
    rows = [[c.strip() for c in line.strip("│").split("│")] for line in text.splitlines() if "│" in line]
    lines = {row[0]: row for row in rows}
    assert lines["api"][1:3] == ["PASS", "acme-api:latest"]
    assert lines["worker"][1:3] == ["PASS", "acme-worker:latest"]
    assert lines["worker"][-1] == "same build as api"
    assert lines["web"][1] == "ERROR"
    assert "node:22-alpine could not be pulled" in lines["web"][-1]
    assert lines["broken"][1] == "FAIL"
    assert lines["broken"][-1] == "build of broken.Dockerfile failed: exit code: 3"
    assert "cache" not in lines, "a service without build: is no build row"
    # The failing step's own output follows the table, under the build it belongs to.
    assert "FAIL build of broken" in text
    assert '    #7 ERROR: process "/bin/sh -c exit 3" did not complete: exit code: 3' in text
    assert text.rstrip().endswith(
        "from 1 build(s) in 12.0s; 2 of 3 build(s) failed: web (ERROR), broken (FAIL)"
    )


def test_compose_build_ends_with_exit_1_naming_every_failed_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _failed_stack(tmp_path)
    error = stacks.failure_error(stack)
    assert error is not None
    assert error.message == (
        "2 of 3 build(s) of acme failed: web (ERROR), broken (FAIL); the table above says why"
    )
    assert cli.report_error(error) == 1
    assert "Traceback" not in capsys.readouterr().err

    ok = stacks.StackBuild(stack.model, stack.services, stack.builds, stack.groups, 1.0)
    assert stacks.failure_error(ok) is None


def test_a_shared_build_that_failed_names_the_service_it_is_built_for(tmp_path: Path) -> None:
    _, groups = _stack(tmp_path)
    api = next(g for g in groups if g.services[0].name == "api")
    failure = stacks.FailedBuild(
        api, BuildFailed("build of Dockerfile failed: x", argv=["docker"], returncode=1, output="")
    )
    assert failure.outcome == "FAIL"
    assert failure.evidence("api") == "build of Dockerfile failed: x"
    assert failure.evidence("worker") == "build of Dockerfile failed: x (the build of api, shared)"
    missing = stacks.FailedBuild(api, UsageError("build secret 'token': ACME_TOKEN is not set"))
    assert missing.outcome == "ERROR", "a build that could not run is no finding about the Dockerfile"


# --- the registry cache of each build ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "service", "expected"),
    [
        ("127.0.0.1:5000/acme/cache", "api", "127.0.0.1:5000/acme/cache/api:buildcache"),
        ("127.0.0.1:5000/acme/cache:main", "worker", "127.0.0.1:5000/acme/cache/worker:main"),
        ("registry.example.com/acme", "Web_UI", "registry.example.com/acme/web_ui:buildcache"),
        ("registry.example.com/acme", "__x", "registry.example.com/acme/x:buildcache"),
        ("127.0.0.1:5000/acme/{service}:cache", "api", "127.0.0.1:5000/acme/api:cache"),
        (
            "type=registry,ref=127.0.0.1:5000/acme/cache,mode=max",
            "api",
            "type=registry,ref=127.0.0.1:5000/acme/cache/api:buildcache,mode=max",
        ),
    ],
)
def test_each_build_gets_a_cache_repository_of_its_own(given: str, service: str, expected: str) -> None:
    assert stacks.cache_ref(given, service, "cache-to") == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("type=local,dest=/tmp/cache", "compose-build takes a registry reference prefix"),
        ("type=gha", "set other cache types per service in the compose file"),
        ("127.0.0.1:5000/acme@sha256:" + "a" * 64, "names a repository, not a digest"),
        ("127.0.0.1:5000/Acme", "is not an image reference"),
    ],
)
def test_a_cache_reference_compose_build_cannot_use_is_one_line(given: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as raised:
        stacks.cache_ref(given, "api", "cache-from")
    assert "\n" not in raised.value.message


def test_a_cache_is_pushed_only_to_a_registry_its_name_spells_out() -> None:
    assert stacks.cache_ref("acme/cache", "api", "cache-from") == "acme/cache/api:buildcache"
    with pytest.raises(UsageError, match=r"cache-to 'acme/cache/api:buildcache' names no registry"):
        stacks.cache_ref("acme/cache", "api", "cache-to")


def _request(tmp_path: Path, options: stacks.ComposeOptions, **configured: Any) -> Any:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    doc = model_doc(
        web={"build": app_build(str(tmp_path), cache_from=["127.0.0.1:5000/own/web:cache"])},
        worker={"build": app_build(str(tmp_path)), "command": ["celery", "worker"]},
    )
    (group,) = compose.build_groups(compose.parse_model(doc))
    provenance = stacks.Provenance(git.GitState("abc1234", False, 0), datetime(2026, 1, 2, tzinfo=UTC))
    chosen = settings(tmp_path, compose=config.ComposeSettings(**configured))
    return stacks.request_for(chosen, group, {}, options, provenance)


def test_a_shared_build_has_one_cache_named_after_its_service_beside_the_compose_files_own(
    tmp_path: Path,
) -> None:
    options = stacks.ComposeOptions(cache_from=("127.0.0.1:5000/ci",), cache_to=("127.0.0.1:5000/ci",))
    request = _request(tmp_path, options)
    assert request.cache_from == ("127.0.0.1:5000/own/web:cache", "127.0.0.1:5000/ci/web:buildcache")
    assert request.cache_to == ("127.0.0.1:5000/ci/web:buildcache",)


def test_the_command_line_wins_over_tool_dockyard_compose_cache_settings(tmp_path: Path) -> None:
    configured = {"cache_from": ("127.0.0.1:5000/configured",), "cache_to": ("127.0.0.1:5000/configured",)}
    from_config = _request(tmp_path, stacks.ComposeOptions(), **configured)
    assert from_config.cache_to == ("127.0.0.1:5000/configured/web:buildcache",)
    flagged = _request(tmp_path, stacks.ComposeOptions(cache_to=("127.0.0.1:5000/flag",)), **configured)
    assert flagged.cache_to == ("127.0.0.1:5000/flag/web:buildcache",)
    assert flagged.cache_from[-1] == "127.0.0.1:5000/configured/web:buildcache"


def test_compose_cache_keys_are_read_strictly(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "acme"\nversion = "1"\n[tool.dockyard.compose]\ncache-to = "x"\n'
    )
    with pytest.raises(UsageError, match=r"compose.cache-to"):
        config.load(tmp_path)


def test_the_doors_pass_the_cache_and_fail_fast_options() -> None:
    args = cli.parser().parse_args(
        ["compose-build", "--cache-from", "r:5000/a", "--cache-to", "r:5000/b", "--fail-fast"]
    )
    assert (args.cache_from, args.cache_to, args.fail_fast) == (["r:5000/a"], ["r:5000/b"], True)
    verify = cli.parser().parse_args(["verify-compose", "--cache-from", "r:5000/a"])
    assert verify.cache_from == ["r:5000/a"]
    assert not hasattr(verify, "fail_fast"), "verify-compose always reports every build"
