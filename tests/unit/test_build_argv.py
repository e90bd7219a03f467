from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard import config, git
from dockyard.build import buildkit as build
from dockyard.engine import BuildkitPath, Cli
from dockyard.errors import UsageError

BUILDX = Cli("/usr/bin/docker", (28, 2), BuildkitPath.BUILDX)
BUILTIN = Cli("/usr/bin/docker", (20, 10), BuildkitPath.BUILTIN)


def request(**overrides: object) -> build.BuildRequest:
    fields: dict[str, object] = {
        "dockerfile": Path("/p/Dockerfile"),
        "context": Path("/p"),
        "tags": ("app:1.0", "app:abc1234"),
        "build_args": {"PYTHON_IMAGE": "standin/python"},
        "labels": {"org.opencontainers.image.version": "1.0"},
        "secrets": {"ca_bundle": Path("/etc/ssl/certs/ca.crt")},
    }
    fields.update(overrides)
    return build.BuildRequest(**fields)  # type: ignore[arg-type]


def test_buildx_argv_loads_the_image_and_passes_everything() -> None:
    argv, env = build.build_argv(
        BUILDX, request(builder="remote", cache_from=("type=registry,ref=x",)), Path("/t/iid")
    )
    assert env == {}
    assert argv[:4] == ["/usr/bin/docker", "buildx", "build", "--load"]
    assert argv[argv.index("--builder") + 1] == "remote"
    assert argv[argv.index("--tag") : argv.index("--tag") + 2] == ["--tag", "app:1.0"]
    assert argv[argv.index("--build-arg") + 1] == "PYTHON_IMAGE=standin/python"
    assert "id=ca_bundle,src=/etc/ssl/certs/ca.crt" in argv
    assert "type=registry,ref=x" in argv
    assert argv[-1] == "/p"


def test_builtin_buildkit_uses_docker_build_with_buildkit_env() -> None:
    argv, env = build.build_argv(BUILTIN, request(no_cache=True, target="runtime"), Path("/t/iid"))
    assert env == {"DOCKER_BUILDKIT": "1"}
    assert argv[:2] == ["/usr/bin/docker", "build"]
    assert "--load" not in argv
    assert "--no-cache" in argv
    assert argv[argv.index("--target") + 1] == "runtime"
    assert "--progress=plain" in argv


def test_builtin_buildkit_refuses_buildx_only_options() -> None:
    with pytest.raises(UsageError, match="need docker buildx"):
        build.build_argv(BUILTIN, request(cache_to=("type=local,dest=x",)), Path("/t/iid"))


def test_no_buildkit_path_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="cannot build with BuildKit"):
        build.build_argv(Cli("docker", (28, 2), None), request(), Path("/t/iid"))


@pytest.mark.parametrize(
    ("state", "version", "tags"),
    [
        (git.GitState("abc1234", False, 1), "1.0", ("app:1.0", "app:abc1234")),
        (git.GitState("abc1234", True, 1), "1.0", ("app:1.0", "app:abc1234-dirty")),
        (git.GitState(None, False, None), "1.0", ("app:1.0",)),
        (git.GitState(None, False, None), None, ("app:latest",)),
    ],
)
def test_image_tags(state: git.GitState, version: str | None, tags: tuple[str, ...]) -> None:
    assert build.image_tags("app", version, state) == tags


def test_created_is_reproducible_for_a_clean_commit() -> None:
    clean = git.GitState("abc", False, 1_700_000_000)
    assert build.created_time(clean, {}) == datetime.fromtimestamp(1_700_000_000, UTC)
    assert build.created_time(clean, {"SOURCE_DATE_EPOCH": "5"}) == datetime.fromtimestamp(5, UTC)
    dirty = git.GitState("abc", True, 1_700_000_000)
    assert build.created_time(dirty, {}).year >= 2026


def test_oci_labels_carry_version_revision_and_user_labels(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname="svc"\nversion="2.0"\n[tool.dockyard]\nlabels={team="core"}\n'
    )
    settings = config.load(tmp_path, environ={"DOCKYARD_MACHINE_FILE": "/nonexistent"})
    labels = build.oci_labels(
        settings, git.GitState("abc", True, 0), datetime.fromtimestamp(0, UTC), "https://x/y"
    )
    assert labels["org.opencontainers.image.version"] == "2.0"
    assert labels["org.opencontainers.image.revision"] == "abc-dirty"
    assert labels["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"
    assert labels["org.opencontainers.image.source"] == "https://x/y"
    assert labels["team"] == "core"


BUILDKIT_FAILURE = """\
#5 [deps 3/5] COPY pyproject.toml uv.lock ./
#5 CACHED

#6 [deps 4/5] RUN uv sync --locked
#6 sha256:0f3a
#6 0.412 error: The lockfile at `uv.lock` needs to be updated
#6 ERROR: process "/bin/sh -c uv sync --locked" did not complete successfully: exit code: 2

#7 [runtime 2/3] RUN groupadd app
#7 CANCELED
------
 > [deps 4/5] RUN uv sync --locked:
------
failed to solve: process "/bin/sh -c uv sync --locked" did not complete successfully: exit code: 2
"""


def test_failing_step_is_extracted_from_plain_progress() -> None:
    reason, detail = build.failing_step(BUILDKIT_FAILURE)
    assert reason == 'process "/bin/sh -c uv sync --locked" did not complete successfully: exit code: 2'
    assert "needs to be updated" in detail
    assert "groupadd" not in detail


# dataset-processor's web service (node:22-alpine) on a machine no registry answers, as the engine's
# built-in BuildKit prints it.
PULL_FAILURE = """\
#1 [internal] load build definition from Dockerfile
#1 DONE 0.1s

#3 [internal] load metadata for docker.io/library/node:22-alpine
#3 sha256:2f8a
#3 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/library/node/manifests/22-alpine": \
dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host
------
 > [internal] load metadata for docker.io/library/node:22-alpine:
------
failed to solve with frontend dockerfile.v0: failed to create LLB definition: failed to do request: Head \
"https://registry-1.docker.io/v2/library/node/manifests/22-alpine": dial tcp: lookup registry-1.docker.io \
on 10.255.255.53:53: no such host
"""


def test_an_image_the_build_could_not_pull_is_named() -> None:
    assert build.unpullable(PULL_FAILURE) == "docker.io/library/node:22-alpine"
    assert build.unpullable(BUILDKIT_FAILURE) is None  # a step that ran and failed: the Dockerfile's


def test_steps_record_cache_hits_and_errors() -> None:
    steps = build.parse_steps(BUILDKIT_FAILURE)
    assert [(s.number, s.cached, s.error) for s in steps] == [
        (5, True, False), (6, False, True), (7, False, False)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "log", "installs"),
    [
        ("[deps 5/5] RUN uv sync --locked --no-install-project", ("Installed 23 packages in 40ms",), True),
        ("[project 3/3] RUN uv pip install --no-deps .", ("Installed 1 package in 3ms",), False),
        ("[app 4/4] RUN pip install -r requirements.txt", ("Successfully installed a-1 b-2",), True),
        ("[deps 5/5] RUN uv sync --locked", (), True),  # its log went to a build that shared the step
        ("[project 3/3] RUN uv pip install --no-deps .", (), False),
        ("[app 2/2] RUN echo uv", (), False),
        # uv's list of what it installed: a workspace's own members come from local paths
        (
            "[stage-1 5/6] RUN uv sync --frozen --package acme-api",
            (
                "0.52 Installed 2 packages in 3ms",
                "0.52  + acme-api==0.3.0 (from file:///workspace/packages/api)",
                "0.52  + acme-core==0.1.0 (from file:///workspace/packages/core)",
            ),
            False,
        ),
        # a virtual project's one dependency, installed again after `COPY .`
        ("[stage-1 5/6] RUN uv sync --locked", ("0.4 Installed 1 package in 2ms", "0.4  + idna==3.20"), True),
    ],
)
def test_steps_that_install_dependencies(name: str, log: tuple[str, ...], installs: bool) -> None:
    assert build.Step(1, name, cached=False, error=False, log=log).installs_dependencies is installs
