"""The compose model, build grouping and the command check's judgement, without an engine."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dockyard import config, git
from dockyard.build import stack as stacks
from dockyard.engine import LABEL_MANAGED
from dockyard.errors import UsageError
from dockyard.image import metadata as images
from dockyard.project import compose
from dockyard.results import Outcome
from dockyard.verify import compose as compose_checks


def app_build(context: str = "/stack", **extra: Any) -> dict[str, Any]:
    return {
        "context": context,
        "dockerfile": "Dockerfile",
        "args": {"PYTHON_IMAGE": "python:3.13-slim", "UNSET": None},
        "secrets": [{"source": "ca_bundle"}],
        **extra,
    }


def model_doc(**services: dict[str, Any]) -> dict[str, Any]:
    """A document shaped like `docker compose config --format json` prints it."""
    return {
        "name": "acme",
        "secrets": {
            "ca_bundle": {"name": "acme_ca_bundle", "file": "/etc/ssl/certs/ca-certificates.crt"},
            "token": {"name": "acme_token", "environment": "ACME_TOKEN"},
        },
        "services": services,
    }


STACK = model_doc(
    web={"build": app_build(), "command": None, "entrypoint": None},
    worker={"build": app_build(), "command": ["celery", "-A", "acme", "worker"], "entrypoint": None},
    beat={"build": app_build(), "command": ["celery", "beat"], "entrypoint": None, "user": "10002"},
    cache={"image": "redis:7", "command": None, "entrypoint": None},
)


def settings(tmp_path: Path, **overrides: Any) -> config.Settings:
    fields: dict[str, Any] = {
        "project_dir": tmp_path,
        "project_name": "acme",
        "project_version": "1.0",
        "image": "acme",
        "dockerfile": tmp_path / "Dockerfile",
        "context": tmp_path,
    }
    fields.update(overrides)
    return config.Settings(**fields)


def image_info(cmd: list[str] | None = None, entrypoint: list[str] | None = None) -> images.ImageInfo:
    attrs = {"Id": "sha256:" + "a" * 64, "Config": {"Cmd": cmd, "Entrypoint": entrypoint}}
    return images.ImageInfo.from_inspect("acme-web:latest", attrs, [])


# --- the model --------------------------------------------------------------------------------------


def test_model_names_images_as_compose_does_and_drops_unset_args() -> None:
    model = compose.parse_model(STACK)
    assert [s.name for s in model.services] == ["web", "worker", "beat", "cache"]
    web = model.service("web")
    assert web.image == "acme-web"
    assert web.build is not None
    assert web.build.dockerfile == Path("/stack/Dockerfile")
    assert web.build.args == {"PYTHON_IMAGE": "python:3.13-slim"}
    assert web.build.secrets == {
        "ca_bundle": compose.SecretSource(Path("/etc/ssl/certs/ca-certificates.crt"))
    }
    assert model.service("worker").command == ("celery", "-A", "acme", "worker")
    assert model.service("beat").user == "10002"
    assert model.service("cache").build is None


def test_services_with_the_same_build_form_one_group_tagged_for_each() -> None:
    groups = compose.build_groups(compose.parse_model(STACK))
    assert len(groups) == 1
    assert [s.name for s in groups[0].services] == ["web", "worker", "beat"]
    assert groups[0].tags == ("acme-web:latest", "acme-worker:latest", "acme-beat:latest")


@pytest.mark.parametrize(
    "change",
    [
        {"args": {"PYTHON_IMAGE": "python:3.12-slim"}},
        {"target": "debug"},
        {"dockerfile": "Dockerfile.worker"},
        {"context": "/elsewhere"},
        {"labels": {"tier": "worker"}},
    ],
)
def test_a_different_build_is_its_own_group(change: dict[str, Any]) -> None:
    doc = model_doc(
        web={"build": app_build(), "command": None, "entrypoint": None},
        worker={"build": app_build(**change), "command": None, "entrypoint": None},
    )
    groups = compose.build_groups(compose.parse_model(doc))
    assert [[s.name for s in g.services] for g in groups] == [["web"], ["worker"]]


def test_cache_options_do_not_split_a_build_and_extra_tags_are_kept() -> None:
    doc = model_doc(
        web={
            "build": app_build(cache_from=["type=local,src=/c"], tags=["acme:1.0"]),
            "image": "acme/web:1.0",
        },
        worker={"build": app_build(no_cache=True)},
    )
    (group,) = compose.build_groups(compose.parse_model(doc))
    assert group.tags == ("acme/web:1.0", "acme-worker:latest", "acme:1.0")
    assert group.spec.no_cache is True
    assert group.spec.cache_from == ("type=local,src=/c",)


def test_two_different_builds_under_one_image_name_are_refused() -> None:
    doc = model_doc(
        web={"build": app_build(), "image": "acme:dev"},
        worker={"build": app_build(target="worker"), "image": "acme:dev"},
    )
    with pytest.raises(UsageError, match="'web' and 'worker' both name image acme:dev"):
        compose.build_groups(compose.parse_model(doc))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (app_build(network="host"), "cannot build with build.network"),
        (app_build(dockerfile_inline="FROM x"), "cannot build with build.dockerfile_inline"),
        (app_build(context="https://github.com/acme/app.git"), "is remote"),
        (app_build(platforms=["linux/amd64", "linux/arm64"]), "lists 2 platforms"),
        (app_build(secrets=["nope"]), "build secret 'nope' is not declared"),
    ],
)
def test_builds_dockyard_cannot_reproduce_are_refused(build: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        compose.parse_model(model_doc(web={"build": build}))


def test_secret_target_is_the_buildkit_id() -> None:
    doc = model_doc(web={"build": app_build(secrets=[{"source": "token", "target": "pypi_token"}])})
    spec = compose.parse_model(doc).service("web").build
    assert spec is not None
    assert spec.secrets == {"pypi_token": compose.SecretSource(environment="ACME_TOKEN")}


def test_selecting_an_unknown_service_suggests_the_close_one() -> None:
    model = compose.parse_model(STACK)
    assert [s.name for s in compose.select(model, ["worker"]).services] == ["worker"]
    with pytest.raises(UsageError, match=r"no service 'wroker'.*Perhaps you meant 'worker'"):
        compose.select(model, ["wroker"])


def test_with_tag() -> None:
    assert compose.with_tag("acme-web") == "acme-web:latest"
    assert compose.with_tag("registry:5000/acme/web") == "registry:5000/acme/web:latest"
    assert compose.with_tag("acme/web:1.0") == "acme/web:1.0"
    assert compose.with_tag("acme/web@sha256:abc") == "acme/web@sha256:abc"


# --- running compose, building ----------------------------------------------------------------------


def test_interpolation_sees_build_args_and_ca_bundle_but_the_real_environment_wins(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("cert")
    s = settings(
        tmp_path, build_args={"PYTHON_IMAGE": "standin/python", "UV_IMAGE": "standin/uv"}, ca_bundle=bundle
    )
    env = compose.interpolation_environment(s, {"UV_IMAGE": "mine/uv"})
    assert env == {"PYTHON_IMAGE": "standin/python", "CA_BUNDLE": str(bundle)}


def test_config_argv() -> None:
    argv = compose.config_argv("/usr/bin/docker", [Path("/p/a.yaml"), Path("/p/b.yaml")], ["debug"], "t1")
    assert argv == [
        "/usr/bin/docker", "compose", "--file", "/p/a.yaml", "--file", "/p/b.yaml",
        "--profile", "debug", "--project-name", "t1", "config", "--format", "json",
    ]  # fmt: skip


def test_missing_compose_file_is_a_usage_error(tmp_path: Path) -> None:
    s = settings(tmp_path, compose=config.ComposeSettings(files=("compose.yaml",)))
    with pytest.raises(UsageError, match=r"compose file .*compose.yaml does not exist"):
        compose.compose_files(s)


def test_build_request_carries_tags_secrets_and_the_managed_label(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    doc = model_doc(
        web={"build": app_build(str(tmp_path), labels={"tier": "app"})},
        worker={"build": app_build(str(tmp_path), labels={"tier": "app"})},
    )
    (group,) = compose.build_groups(compose.parse_model(doc))
    secrets = {"ca_bundle": Path("/etc/ssl/certs/ca-certificates.crt")}
    provenance = stacks.Provenance(git.GitState("abc1234", False, 0), datetime(2026, 1, 2, tzinfo=UTC))
    request = stacks.request_for(
        settings(tmp_path), group, secrets, stacks.ComposeOptions(labels={"test": "1"}), provenance
    )
    assert request.tags == ("acme-web:latest", "acme-worker:latest")
    assert request.labels == {
        "org.opencontainers.image.title": "acme",
        "org.opencontainers.image.created": "2026-01-02T00:00:00Z",
        "org.opencontainers.image.version": "1.0",
        "org.opencontainers.image.revision": "abc1234",
        "tier": "app",
        "test": "1",
        LABEL_MANAGED: "true",
    }
    assert request.secrets == secrets
    assert request.build_args == {"PYTHON_IMAGE": "python:3.13-slim"}


def test_builds_get_the_machine_args_the_dockerfile_declares_the_ca_secret_and_oci_labels(
    tmp_path: Path,
) -> None:
    (tmp_path / "Dockerfile").write_text(
        "ARG PYTHON_IMAGE=python:3.13-slim\nARG UV_IMAGE\nFROM ${UV_IMAGE} AS uv\n"
        "FROM ${PYTHON_IMAGE}\nARG APP_VERSION\n"
    )
    bundle = tmp_path / "ca.pem"
    bundle.write_text("cert")
    s = settings(
        tmp_path,
        build_args={"PYTHON_IMAGE": "standin/python", "UV_IMAGE": "standin/uv", "APP_VERSION": "1", "X": "y"},
        ca_bundle=bundle,
        ca_secret_id="ca-certificates",  # noqa: S106 - an id, not a secret
    )
    build = {"context": str(tmp_path), "dockerfile": "Dockerfile", "args": {"PYTHON_IMAGE": "mine/py"}}
    (group,) = compose.build_groups(compose.parse_model(model_doc(web={"build": build})))
    # The compose file's own args win; args the Dockerfile does not declare are not passed.
    assert stacks.build_args(s, group) == {
        "PYTHON_IMAGE": "mine/py",
        "UV_IMAGE": "standin/uv",
        "APP_VERSION": "1",
    }
    with stacks.build_secrets(s, group, {}) as secrets:
        assert secrets == {"ca-certificates": bundle}
    provenance = stacks.Provenance(
        git.GitState(None, False, None), datetime(2026, 1, 2, tzinfo=UTC), "https://x/y"
    )
    request = stacks.request_for(s, group, secrets, stacks.ComposeOptions(), provenance)
    assert request.labels["org.opencontainers.image.base.name"] == "mine/py"
    assert request.labels["org.opencontainers.image.source"] == "https://x/y"
    assert request.labels["org.opencontainers.image.title"] == "acme"
    # ...and interpolation still sees the bundle as CA_BUNDLE, not the secret id upper-cased.
    assert compose.interpolation_environment(s, {})["CA_BUNDLE"] == str(bundle)


def test_a_compose_file_secret_of_the_ca_id_is_honoured(tmp_path: Path) -> None:
    own = tmp_path / "corporate.pem"
    own.write_text("corporate")
    doc = model_doc(web={"build": app_build()})
    doc["secrets"]["ca_bundle"]["file"] = str(own)
    (group,) = compose.build_groups(compose.parse_model(doc))
    with stacks.build_secrets(settings(tmp_path, ca_bundle=tmp_path / "machine.pem"), group, {}) as secrets:
        assert secrets == {"ca_bundle": own}


@pytest.mark.parametrize(("path", "kind"), [("/dev/null", "a character device"), ("/", "a directory")])
def test_a_secret_file_that_is_not_a_regular_file_is_named_for_what_it_is(path: str, kind: str) -> None:
    doc = model_doc(web={"build": app_build()})
    doc["secrets"]["ca_bundle"]["file"] = path
    (group,) = compose.build_groups(compose.parse_model(doc))
    with (
        pytest.raises(UsageError, match=rf"{path} is {kind}, not a regular file"),
        stacks.secret_files(group, {}),
    ):
        pass


def test_environment_secrets_become_private_files_and_missing_files_are_named(tmp_path: Path) -> None:
    doc = model_doc(web={"build": app_build(secrets=[{"source": "token"}])})
    (group,) = compose.build_groups(compose.parse_model(doc))
    with stacks.secret_files(group, {"ACME_TOKEN": "s3cret"}) as files:
        assert files["token"].read_text() == "s3cret"
        assert stat.S_IMODE(files["token"].stat().st_mode) == 0o600
    assert not files["token"].exists()
    with (
        pytest.raises(UsageError, match="environment variable ACME_TOKEN is not set"),
        stacks.secret_files(group, {}),
    ):
        pass

    doc["secrets"]["ca_bundle"]["file"] = str(tmp_path / "missing.pem")
    doc["services"]["web"]["build"]["secrets"] = ["ca_bundle"]
    (group,) = compose.build_groups(compose.parse_model(doc))
    with (
        pytest.raises(UsageError, match=r"secret 'ca_bundle' of service 'web': .*missing.pem does not exist"),
        stacks.secret_files(group, {}),
    ):
        pass


# --- the command check ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "image", "expected"),
    [
        ({}, {"cmd": ["uvicorn", "app:app"]}, ("uvicorn", "app:app")),
        ({"command": ("celery", "worker")}, {"cmd": ["uvicorn"]}, ("celery", "worker")),
        ({"command": ("--help",)}, {"entrypoint": ["acme"], "cmd": ["serve"]}, ("acme", "--help")),
        ({}, {"entrypoint": ["acme"], "cmd": ["serve"]}, ("acme", "serve")),
        # A new entrypoint drops the image's CMD, as the engine does.
        ({"entrypoint": ("celery",)}, {"cmd": ["uvicorn", "app:app"]}, ("celery",)),
        ({"entrypoint": ("celery",), "command": ("beat",)}, {"cmd": ["x"]}, ("celery", "beat")),
        ({"entrypoint": ()}, {"entrypoint": ["tini", "--"], "cmd": ["python"]}, ("python",)),
        ({}, {}, ()),
    ],
)
def test_effective_command_merges_like_the_engine(
    service: dict[str, Any], image: dict[str, list[str]], expected: tuple[str, ...]
) -> None:
    fields: dict[str, Any] = {"name": "s", "image": "i", "build": None, "command": None, "entrypoint": None}
    fields.update(service)
    assert compose_checks.effective_command(compose.Service(**fields), image_info(**image)) == expected


def finding(**fields: Any) -> compose_checks.Finding:
    base: dict[str, Any] = {
        "name": "celery",
        "path": "/app/.venv/bin/celery",
        "executable": True,
        "uid": 10001,
        "user": "app",
        "searched": ("/app/.venv/bin", "/usr/bin"),
    }
    base.update(fields)
    return compose_checks.Finding(**base)


@pytest.mark.parametrize(
    ("found", "outcome", "evidence"),
    [
        (finding(), Outcome.PASS, "celery -> /app/.venv/bin/celery (runnable by uid 10001 (app))"),
        (finding(path=None, executable=False), Outcome.FAIL, "celery not found on PATH in acme-worker:1.0"),
        (
            finding(executable=False, mode="0644"),
            Outcome.FAIL,
            "celery -> /app/.venv/bin/celery is not runnable by uid 10001 (app) (mode 0644)",
        ),
        (
            finding(interpreter="/build/.venv/bin/python", interpreter_ok=False),
            Outcome.FAIL,
            "its interpreter /build/.venv/bin/python is missing",
        ),
        (
            finding(name="./run.sh", path=None, executable=False),
            Outcome.FAIL,
            "./run.sh not found at that path",
        ),
    ],
)
def test_command_result_names_the_service_and_what_was_seen(
    found: compose_checks.Finding, outcome: Outcome, evidence: str
) -> None:
    result = compose_checks.command_result("worker", "acme-worker:1.0", ["celery", "worker"], found)
    assert result.subject == "worker"
    assert result.check_id == "command"
    assert result.outcome is outcome
    assert evidence in result.evidence
    assert result.details[0] == "command: celery worker"


def test_an_empty_command_fails() -> None:
    result = compose_checks.command_result("worker", "acme:1", [], None)
    assert result.outcome is Outcome.FAIL
    assert "sets none and acme:1 has no CMD or ENTRYPOINT" in result.evidence


def run_snippet(
    queries: list[dict[str, Any]], path: str, runs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    spec = {"find": queries, "run": runs or []}
    done = subprocess.run(
        [sys.executable, "-c", compose_checks.COMMAND_SNIPPET, json.dumps(spec)],
        env={**os.environ, "PATH": path}, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def test_snippet_finds_runnable_executables_as_execvp_would(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (first / "tool").write_text("#!/bin/sh\n")  # not executable: skipped for the next match
    (second / "tool").write_text("#!/bin/sh\n")
    (second / "tool").chmod(0o755)
    (first / "plain").write_text("data\n")
    (first / "plain").chmod(0o644)
    (first / "broken").write_text("#!/nonexistent/python\n")
    (first / "broken").chmod(0o755)
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    answer = run_snippet(
        [
            {"name": "tool"},
            {"name": "plain"},
            {"name": "missing"},
            {"name": "broken"},
            {"name": "./run.sh", "cwd": str(tmp_path)},
            {"name": "tool", "path": str(first)},
        ],
        path=f"{first}{os.pathsep}{second}",
    )
    tool, plain, missing, broken, script, only_first = answer["found"]
    assert answer["uid"] == os.getuid()
    assert (tool["path"], tool["executable"], tool["interpreter_ok"]) == (str(second / "tool"), True, True)
    assert (plain["path"], plain["executable"], plain["mode"]) == (str(first / "plain"), False, "0644")
    assert missing["path"] is None
    assert (broken["interpreter"], broken["interpreter_ok"]) == ("/nonexistent/python", False)
    assert (script["path"], script["executable"]) == (str(tmp_path / "run.sh"), True)
    assert (only_first["path"], only_first["executable"]) == (str(first / "tool"), False)


def test_snippet_runs_each_healthcheck_once_with_the_service_environment(tmp_path: Path) -> None:
    answer = run_snippet(
        [],
        path=os.environ["PATH"],
        runs=[
            {"argv": ["/bin/sh", "-c", 'test "$READY" = yes'], "env": {"READY": "yes"}, "timeout": 10},
            {"argv": ["/bin/sh", "-c", "exit 7"], "timeout": 10},
            {"argv": ["no-such-tool-here", "-f"], "timeout": 10},
            {"argv": ["/bin/sh", "-c", "sleep 30"], "timeout": 0.5},
            {"argv": ["/bin/sh", "-c", "pwd"], "cwd": str(tmp_path), "timeout": 10},
        ],
    )
    ready, seven, missing, slow, where = answer["ran"]
    assert (ready["returncode"], ready["error"]) == (0, None)
    assert seven["returncode"] == 7
    assert missing["error"] == "executable not found: no-such-tool-here"
    assert slow["timed_out"] is True
    assert where["output"].strip() == str(tmp_path)
