"""`dockyard init` on fresh `uv init` projects, then `dockyard build` and `dockyard verify` on each.

The projects are made by uv itself: a packaged CLI, a packaged Starlette app (`app` in
src/<pkg>/main.py), a virtual (`--no-package`) app, a workspace member, and a Celery worker with a beat
schedule. init runs with no flags; a second init must leave `git status` clean; then the image builds
and passes the checklist (the web app's healthcheck gets healthy). dockyard is added to each project
from this checkout, the way a team adds it before it is on PyPI; `test_consumer_takes_dockyard_from`
does the same from a git URL and a wheel, through the project's own Invoke and Nox doors.

Every project is named after the test run, so its images (`<project>:<tag>`, compose's
`<project>-<service>`) are this run's alone; the `images` fixture removes them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import docker.errors as docker_errors
import pytest

from dockyard import engine
from dockyard.init import apply
from dockyard.init.model import Options
from tests.engine.conftest import ROOT, TEST_RUN

STARLETTE_APP = """\
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def home(request):
    return PlainTextResponse("hello")


app = Starlette(routes=[Route("/", home)])
"""

CELERY_APP = """\
from celery import Celery
from celery.schedules import crontab

app = Celery("jobs", broker="redis://redis:6379/0")
app.conf.beat_schedule = {"tick": {"task": "{package}.tasks.tick", "schedule": crontab(minute="*")}}


@app.task
def tick():
    return "tock"
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env.update({"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"})
    env.update({"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})
    return {**env, **extra}


def run(argv: list[str], cwd: Path, *, timeout: float = 900) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def dockyard(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "dockyard", *args], cwd)


def commit(project: Path) -> None:
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "dockyard init"], project)


def git_status(project: Path) -> str:
    return run(["git", "status", "--porcelain", "--untracked-files=all"], project)


@pytest.fixture
def images(docker: engine.Engine) -> Iterator[Callable[[str], str]]:
    """Names projects after the run; removes every image of those repositories afterwards."""
    names: list[str] = []

    def name(kind: str) -> str:
        names.append(f"init-{kind}-{TEST_RUN}")
        return names[-1]

    yield name
    # summaries, not inspected images: another run's image may go between listing and inspecting it
    for summary in docker.client.api.images():
        for tag in summary.get("RepoTags") or ():
            repository = tag.rpartition(":")[0]
            if any(repository == n or repository.startswith(f"{n}-") for n in names):
                with contextlib.suppress(docker_errors.NotFound):
                    docker.client.api.remove_image(tag, force=True, noprune=False)


def adopt(project: Path, *flags: str) -> str:
    """init with no flags, commit, init again: nothing may change."""
    out = dockyard("init", str(project), *flags, cwd=project)
    commit(project)
    again = dockyard("init", str(project), *flags, cwd=project)
    assert "nothing to change" in again
    assert git_status(project) == ""
    return out


def build_and_verify(project: Path, *verify_flags: str) -> str:
    dockyard("--project", str(project), "build", "--quiet", cwd=project)
    return dockyard("--project", str(project), "verify", *verify_flags, cwd=project)


def test_packaged_cli(tmp_path: Path, images: Callable[[str], str]) -> None:
    name = images("cli")
    run(["uv", "init", "--package", "--name", name, str(tmp_path / name)], tmp_path)
    project = tmp_path / name
    out = adopt(project)
    assert f"runs         job: `{name}`" in (project / "Dockerfile").read_text()
    assert "uv add --dev" in out  # dockyard added from this checkout
    data = tomllib.loads((project / "pyproject.toml").read_text())
    assert "dockyard" in data["tool"]["uv"]["sources"]
    assert data["tool"]["dockyard"]["image"] == name
    # dockyard from a local path is in the lock, and the build cannot see the path: --frozen
    assert "uv sync --frozen" in (project / "Dockerfile").read_text()
    report = build_and_verify(project)
    assert "0 failed" in report


def test_packaged_starlette_app(tmp_path: Path, images: Callable[[str], str]) -> None:
    name = images("web")
    run(["uv", "init", "--package", "--name", name, str(tmp_path / name)], tmp_path)
    project = tmp_path / name
    run(["uv", "add", "--no-sync", "starlette", "uvicorn"], project)
    package = name.replace("-", "_")
    (project / "src" / package / "main.py").write_text(STARLETTE_APP)
    adopt(project)
    text = (project / "Dockerfile").read_text()
    assert f'CMD ["uvicorn", "{package}.main:app", "--host", "0.0.0.0", "--port", "8000"]' in text
    assert "EXPOSE 8000" in text
    report = build_and_verify(project)
    assert "0 failed" in report
    assert "healthy after" in report


def test_virtual_app(tmp_path: Path, images: Callable[[str], str]) -> None:
    name = images("app")
    run(["uv", "init", "--no-package", "--name", name, str(tmp_path / name)], tmp_path)
    project = tmp_path / name
    adopt(project)
    text = (project / "Dockerfile").read_text()
    assert "COPY main.py ./" in text
    assert 'CMD ["python", "main.py"]' in text
    data = tomllib.loads((project / "pyproject.toml").read_text())
    assert data["tool"]["dockyard"]["verify"]["imports"] == ["main"]
    report = build_and_verify(project)
    assert "0 failed" in report
    assert "after changing main.py" in report  # the layer-cache check edits the file init named


def test_workspace_member(tmp_path: Path, images: Callable[[str], str]) -> None:
    name = images("ws")
    root = tmp_path / name
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    run(["git", "init", "-q"], root)
    run(["uv", "init", "--lib", "--name", f"{name}-lib", "packages/lib"], root)
    run(["uv", "init", "--package", "--name", f"{name}-api", "packages/api"], root)
    api = root / "packages" / "api"
    run(["uv", "add", "--no-sync", f"{name}-lib", "starlette", "uvicorn"], api)
    package = f"{name}-api".replace("-", "_")
    lib = f"{name}-lib".replace("-", "_")
    (api / "src" / package / "main.py").write_text(f"import {lib}\n" + STARLETTE_APP)
    adopt(api)
    text = (api / "Dockerfile").read_text()
    assert f"uv sync --frozen --package {name}-api --no-default-groups --no-install-workspace" in text
    assert "--mount=type=bind,source=packages/lib/pyproject.toml" in text
    assert "--out-dir /wheel packages/lib" in text  # the member it depends on is installed as a wheel
    assert (api / "Dockerfile.dockerignore").is_file()
    assert not (root / ".dockerignore").exists()
    report = build_and_verify(api)
    assert "0 failed" in report
    assert "healthy after" in report


def test_celery_worker_with_a_schedule(tmp_path: Path, images: Callable[[str], str]) -> None:
    name = images("jobs")
    run(["uv", "init", "--package", "--name", name, str(tmp_path / name)], tmp_path)
    project = tmp_path / name
    run(["uv", "add", "--no-sync", "celery"], project)
    package = name.replace("-", "_")
    (project / "src" / package / "tasks.py").write_text(CELERY_APP.replace("{package}", package))
    adopt(project, "--compose")
    text = (project / "Dockerfile").read_text()
    assert f'CMD ["celery", "-A", "{package}.tasks:app", "worker", "--loglevel=INFO"]' in text
    assert "HEALTHCHECK" not in text
    compose = (project / "compose.yaml").read_text()
    assert "  worker:\n    <<: *app\n" in compose
    assert f'command: ["celery", "-A", "{package}.tasks:app", "beat"' in compose
    report = build_and_verify(project)
    assert "0 failed" in report
    assert "`celery --version`" in report
    # one build for both roles, each role's command found in the image
    stack = dockyard("--project", str(project), "verify-compose", cwd=project)
    assert "0 failed" in stack
    assert f"{name}-worker" in stack
    assert f"{name}-scheduler" in stack


@pytest.fixture(scope="module")
def dockyard_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """This checkout as a team would take it before it is on PyPI: a path, a git URL, a wheel."""
    where = tmp_path_factory.mktemp("dockyard-sources")
    run(["git", "clone", "-q", "--bare", str(ROOT), str(where / "dockyard.git")], where)
    run(["uv", "build", "--wheel", "--out-dir", str(where / "dist"), str(ROOT)], where)
    wheel = next((where / "dist").glob("dockyard-*.whl"))
    return {"path": str(ROOT), "git": f"git+file://{where / 'dockyard.git'}", "wheel": str(wheel)}


@pytest.mark.parametrize("kind", ["path", "git", "wheel"])
def test_consumer_takes_dockyard_from(
    kind: str, tmp_path: Path, images: Callable[[str], str], dockyard_sources: dict[str, str]
) -> None:
    """`uvx --from SOURCE dockyard init` adds dockyard from SOURCE; the project's own environment then
    runs `invoke build` and `nox -s verify-image` (its tasks.py and noxfile.py import dockyard)."""
    name = images(f"from-{kind}")
    run(["uv", "init", "--package", "--name", name, str(tmp_path / name)], tmp_path)
    project = tmp_path / name
    out = run(
        ["uvx", "--refresh-package", "dockyard", "--from", dockyard_sources[kind], "dockyard", "init"],
        project,
    )
    assert "running: uv add --dev" in out
    lock = (project / "uv.lock").read_text()
    flag = "--locked" if kind == "git" else "--frozen"  # a commit-pinned git source needs no checkout
    assert f"uv sync {flag}" in (project / "Dockerfile").read_text()
    assert {"path": 'directory = "', "git": 'git = "file://', "wheel": 'path = "'}[kind] in lock
    commit(project)
    run(["uv", "run", "invoke", "build", "--quiet"], project)
    report = run(["uv", "run", "nox", "-s", "verify-image"], project)
    assert "0 failed" in report


def test_worker_stack_dockerfile_is_what_init_renders() -> None:
    """examples/worker-stack comes from the template too; its ports and /data come from its compose
    file, which needs `docker compose config` to read (the other two are checked in tests/unit)."""
    example = ROOT / "examples" / "worker-stack"
    result = apply.plan(example, Options(), add=False)
    assert result.inference.compose is not None
    assert result.inference.data_dirs == ("/data",)
    for change in result.files:
        if change.path.name in ("Dockerfile", ".dockerignore"):
            assert change.how == "unchanged", (
                f"examples/worker-stack/{change.path.name} differs from the template: run "
                "`uv run dockyard init examples/worker-stack --no-add --force`\n"
                + apply.diff(change, example)
            )
