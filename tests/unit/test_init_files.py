"""The files `dockyard init` writes: the template's rules, the repository's own Dockerfiles kept in step,
and init's behaviour (dry run, conflicts, --force, a second run changing nothing)."""

from __future__ import annotations

import io
import json
import re
import tomllib
from pathlib import Path

import pytest
from rich.console import Console

from dockyard import config
from dockyard.errors import DockyardError, UsageError
from dockyard.init import apply, infer, render
from dockyard.init.model import Inference, Options
from dockyard.init.project import read_project, tree_files
from dockyard.project import dockerfile as dockerfiles
from tests.unit.trees import (
    CELERY,
    STARLETTE_APP,
    Locked,
    git_init,
    packaged_project,
    workspace_member,
    write,
)

ROOT = Path(__file__).resolve().parents[2]
NO_MACHINE = {"DOCKYARD_MACHINE_FILE": "/nonexistent/machine.env"}


def quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def inference(root: Path, options: Options | None = None) -> Inference:
    return infer.infer(read_project(root), options or Options(), tree_files(root))


# --- the renderer -----------------------------------------------------------------------------------


def test_renderer_keeps_or_drops_lines_and_fills_values() -> None:
    text = (
        "a {{ x }}\n{% if yes %}\nkept\n{% if not yes %}\ndropped\n{% endif %}\n"
        "{% else %}\nnot\n{% endif %}\nz\n"
    )
    assert render.render(text, {"x": 1, "yes": True}) == "a 1\nkept\nz\n"
    assert render.render(text, {"x": 2, "yes": False}) == "a 2\nnot\nz\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [("{{ missing }}\n", "missing"), ("{% if x %}\n", "without {% endif %}"), ("{% endif %}\n", "without")],
)
def test_renderer_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(DockyardError, match=re.escape(message)):
        render.render(text, {"x": True})


# --- the Dockerfile template ------------------------------------------------------------------------


def _projects(tmp_path: Path) -> dict[str, Path]:
    cli = packaged_project(
        tmp_path / "cli", "tool", scripts={"tool": "tool.cli:main"}, modules={"cli.py": "import argparse\n"}
    )
    web = packaged_project(
        tmp_path / "web", "web", ["starlette", "uvicorn"], modules={"main.py": STARLETTE_APP}
    )
    virtual = packaged_project(tmp_path / "virtual", "hello", packaged=False)
    worker = packaged_project(tmp_path / "worker", "jobs", ["celery"], modules={"tasks.py": CELERY})
    libs = packaged_project(
        tmp_path / "libs",
        "db",
        ["psycopg2"],
        scripts={"db": "db:main"},
        locked=[Locked("psycopg2", wheels=[])],
    )
    member = workspace_member(tmp_path / "ws")
    return {"cli": cli, "web": web, "virtual": virtual, "worker": worker, "libs": libs, "member": member}


def _final_stage(text: str) -> str:
    return text[text.rindex("\nFROM ") :]


def test_every_dockerfile_keeps_the_recipes_rules(tmp_path: Path) -> None:
    for name, root in _projects(tmp_path).items():
        text = render.dockerfile(inference(root))
        code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
        # Engine 20.10's built-in frontend: no syntax line, heredocs, --link, --start-interval, or
        # variables inside --mount
        assert not re.search(r"^#\s*syntax=", text, re.MULTILINE), name
        assert "<<" not in code, name
        assert not re.search(r"^(COPY|ADD) [^\n]*--link\b", code, re.MULTILINE), name
        assert "--start-interval" not in code, name
        assert not re.search(r"--mount=\S*\$", code), name
        final = _final_stage(text)
        assert "USER 10001:10001" in final, name
        assert "COPY --from=uv" not in code, name  # uv is mounted for a step, never shipped
        assert "--mount=from=uv,source=/uv,target=/tmp/bin/uv" in final, name
        # the dependencies are installed in the final stage, with uv's cache a cache mount
        assert "uv sync --locked" in final or "uv sync --frozen" in final, name
        assert "--mount=type=cache,target=/tmp/uv-cache" in final, name
        # every RUN with mounts starts with a tmpfs on /tmp, and every mount sits under it
        runs = re.findall(r"^RUN (--mount=.*?)(?=\n    [^- ])", text, re.MULTILINE | re.DOTALL)
        assert len(runs) == (3 if "AS project" in text else 1), name
        for run in runs:
            assert run.startswith("--mount=type=tmpfs,target=/tmp "), (name, run[:60])
            for target in re.findall(r"target=([^ ,]+)", run):
                assert target == "/tmp" or target.startswith("/tmp/"), (name, target)
        secret_lines = [line for line in text.splitlines() if "ca_bundle" in line and "--mount" in line]
        assert len(secret_lines) == (2 if "AS project" in text else 1), name  # only the downloading steps
        for instruction in ("CMD", "ENTRYPOINT"):
            for line in re.findall(rf"^{instruction} (.*)$", text, re.MULTILINE):
                assert isinstance(json.loads(line), list), (name, line)  # exec form
        last_run = max(final.rfind("\nCMD "), final.rfind("\nENTRYPOINT "))
        assert final.index("ARG VERSION") > last_run, name  # OCI label args last
        path = tmp_path / f"{name}.Dockerfile"
        path.write_text(text)
        parsed = dockerfiles.parse(path)
        assert parsed.final_base({}) == f"python:{inference(root).python}-slim", name
        assert set(parsed.global_args) == {"PYTHON_IMAGE", "UV_IMAGE"}, name


def test_the_project_layer_comes_from_its_own_stage(tmp_path: Path) -> None:
    text = render.dockerfile(inference(_projects(tmp_path)["web"]))
    assert "FROM ${PYTHON_IMAGE} AS project" in text
    assert "/tmp/bin/uv build --wheel --out-dir /wheel" in text
    final = _final_stage(text)
    install = final.index("--mount=from=project,source=/wheel,target=/tmp/wheel")
    sync = final.index("uv sync --locked --no-default-groups --no-install-project")
    assert sync < install < final.index("USER 10001:10001")
    assert "--no-deps --no-cache --offline" in final


def test_a_web_dockerfile_exposes_and_checks_health_without_curl(tmp_path: Path) -> None:
    text = render.dockerfile(inference(_projects(tmp_path)["web"]))
    assert "EXPOSE 8000" in text
    assert 'CMD ["python", "-c", "import http.client' in text
    code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert "curl" not in code
    assert 'CMD ["uvicorn", "web.main:app", "--host", "0.0.0.0", "--port", "8000"]' in text


def test_a_virtual_project_copies_its_modules(tmp_path: Path) -> None:
    text = render.dockerfile(inference(_projects(tmp_path)["virtual"]))
    assert "AS project" not in text
    assert "COPY main.py ./" in text
    assert 'CMD ["python", "main.py"]' in text


def test_system_libraries_are_installed_with_a_reason(tmp_path: Path) -> None:
    text = render.dockerfile(inference(_projects(tmp_path)["libs"]))
    assert "apt-get install -y --no-install-recommends libpq5" in text
    assert "psycopg2 links it (built from source)" in text
    # build headers only inside the dependency step, purged in the same layer
    assert "apt-get install -y --no-install-recommends gcc libc6-dev libpq-dev" in text
    assert "apt-get purge -y --auto-remove gcc libc6-dev libpq-dev" in text


def test_a_workspace_member_mounts_every_member_and_builds_the_wheels_it_needs(tmp_path: Path) -> None:
    result = inference(_projects(tmp_path)["member"])
    text = render.dockerfile(result)
    other = "packages/other/pyproject.toml"
    mount = f"--mount=type=bind,source={other},target=/tmp/project/{other}"
    assert mount in text
    assert "uv sync --locked --package api --no-default-groups --no-install-workspace" in text
    assert "/tmp/bin/uv build --wheel --out-dir /wheel packages/api" in text
    assert "--out-dir /wheel packages/lib" in text
    assert "packages/other --" not in text
    assert "COPY packages/api/src ./packages/api/src" in text
    ignore = render.dockerignore(result)
    assert "!packages/api/src/" in ignore
    assert "!packages/other/pyproject.toml" in ignore
    assert "!packages/other/src/" not in ignore


def test_dockerignore_lets_in_only_what_the_build_reads(tmp_path: Path) -> None:
    text = render.dockerignore(inference(_projects(tmp_path)["web"]))
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    # README.md is there but pyproject.toml declares no readme: the build does not read it
    assert rules[:4] == ["*", "!pyproject.toml", "!uv.lock", "!src/"]
    assert "!README.md" not in rules
    for excluded in ("**/.env", "**/.env.*", "**/*.pem", "**/__pycache__", "**/id_rsa*"):
        assert excluded in rules


def test_large_untracked_files_inside_the_context_are_left_out(tmp_path: Path) -> None:
    root = _projects(tmp_path)["web"]
    write(root, {".gitignore": "src/web/model.bin\n"})
    git_init(root)
    (root / "src" / "web" / "model.bin").write_bytes(b"\0" * (apply.LARGE_UNTRACKED + 1))
    result = apply.plan(root, Options(), add=False)
    ignore = next(c for c in result.files if c.path.name == ".dockerignore")
    assert "# Large and untracked: the build does not need them.\nsrc/web/model.bin\n" in ignore.new


# --- [tool.dockyard] --------------------------------------------------------------------------------


def test_the_table_is_appended_keeping_the_users_text_and_config_reads_it(tmp_path: Path) -> None:
    root = _projects(tmp_path)["web"]
    original = "# the team's comment\n" + (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(original)
    result = apply.plan(root, Options(), add=False)
    change = next(c for c in result.files if c.path.name == "pyproject.toml")
    assert change.how == "append"
    assert change.new.startswith(original)
    (root / "pyproject.toml").write_text(change.new)
    settings = config.load(root, NO_MACHINE)  # strict: every key init writes is a known one
    assert settings.image == "web"
    assert settings.service
    assert settings.verify.ports == (8000,)
    assert settings.verify.imports == ("web", "web.main")
    assert settings.verify.user == "app"
    assert [s.command for s in settings.verify.smoke] == [("uvicorn", "--version")]


def test_workspace_members_table_points_at_the_root_context(tmp_path: Path) -> None:
    member = _projects(tmp_path)["member"]
    table = render.dockyard_table(inference(member))
    data = tomllib.loads(table)["tool"]["dockyard"]
    assert data["context"] == "../.."
    assert (member / data["context"]).resolve() == tmp_path / "ws"
    assert data["verify"]["layer-cache-touch"] == "packages/api/src/api/__init__.py"


def test_compose_file_has_one_service_per_role_from_one_build(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path,
        "stack",
        ["starlette", "uvicorn", "celery"],
        modules={"main.py": STARLETTE_APP, "tasks.py": CELERY},
    )
    text = render.compose_yaml(inference(root, Options(compose=True)))
    assert "x-app: &app" in text
    assert text.count("<<: *app") == 3
    for role in ("  web:", "  worker:", "  scheduler:"):
        assert role in text
    assert '"${WEB_PORT:-8000}:8000"' in text
    assert 'PYTHON_IMAGE: "${PYTHON_IMAGE:-python:3.13-slim}"' in text
    assert "secrets: [ca_bundle]" in text


# --- the repository's own Dockerfiles come from the template ----------------------------------------


@pytest.mark.parametrize("project", [".", "examples/api-service"])
def test_repository_dockerfiles_are_what_init_renders(project: str) -> None:
    result = apply.plan(ROOT / project, Options(), add=False)
    by_name = {c.path.name: c for c in result.files}
    for name in ("Dockerfile", ".dockerignore"):
        assert by_name[name].how == "unchanged", (
            f"{project}/{name} differs from the template: "
            f"run `uv run dockyard init {project} --no-add --force`\n"
            + apply.diff(by_name[name], ROOT / project)
        )


# --- behaviour --------------------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    root = _projects(tmp_path)["web"]
    before = _snapshot(root)
    result = apply.run(root, Options(), quiet(), dry_run=True, add=False)
    assert {c.path.name for c in result.files if c.changes} == {
        "Dockerfile", ".dockerignore", "pyproject.toml", "tasks.py", "noxfile.py"
    }  # fmt: skip
    assert _snapshot(root) == before


def test_second_run_changes_nothing(tmp_path: Path) -> None:
    root = _projects(tmp_path)["web"]
    apply.run(root, Options(), quiet(), add=False)
    after_first = _snapshot(root)
    second = apply.run(root, Options(), quiet(), add=False)
    assert all(c.how == "unchanged" for c in second.files)
    assert _snapshot(root) == after_first


def test_a_differing_file_stops_the_run_before_anything_is_written(tmp_path: Path) -> None:
    root = _projects(tmp_path)["web"]
    (root / "Dockerfile").write_text("FROM python:3.13-slim\n")
    before = _snapshot(root)
    with pytest.raises(apply.InitConflict, match="Dockerfile exists and differs"):
        apply.run(root, Options(), quiet(), add=False)
    assert _snapshot(root) == before
    apply.run(root, Options(), quiet(), force=True, add=False)
    assert (root / "Dockerfile").read_text().startswith("# web's production image")


def test_existing_tasks_and_noxfile_get_lines_appended_never_rewritten(tmp_path: Path) -> None:
    root = _projects(tmp_path)["web"]
    write(
        root,
        {"tasks.py": "from invoke import task\n\n@task\ndef hello(c): ...\n", "noxfile.py": "import nox\n"},
    )
    apply.run(root, Options(), quiet(), add=False)
    tasks = (root / "tasks.py").read_text()
    assert tasks.startswith("from invoke import task\n\n@task\ndef hello(c): ...\n")
    assert (
        "from dockyard.tasks import build, compose_build, lock, size_report, verify, verify_compose" in tasks
    )
    assert (root / "noxfile.py").read_text().startswith("import nox\n")
    assert 'name="verify-image"' in (root / "noxfile.py").read_text()
    compile((root / "tasks.py").read_text(), "tasks.py", "exec")
    compile((root / "noxfile.py").read_text(), "noxfile.py", "exec")


def test_a_tasks_file_with_its_own_namespace_gets_dockyards_tasks_added_to_it(tmp_path: Path) -> None:
    root = _projects(tmp_path)["web"]
    write(root, {"tasks.py": "from invoke import Collection\n\nns = Collection()\n"})
    apply.run(root, Options(), quiet(), add=False)
    text = (root / "tasks.py").read_text()
    assert "ns.add_task(_task)" in text
    namespace: dict[str, object] = {}
    exec(compile(text, "tasks.py", "exec"), namespace)  # noqa: S102 - the file init wrote
    assert {"build", "verify", "lock", "init", "doctor"} <= set(namespace["ns"].task_names)  # type: ignore[attr-defined]


def test_refusals_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a uv project"):
        apply.run(tmp_path, Options(), quiet(), add=False)


def test_atomic_write_keeps_the_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "pyproject.toml"
    target.write_text("old\n")
    target.chmod(0o600)
    apply.write_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["pyproject.toml"]


# --- where dockyard comes from ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "kind", "argv_tail"),
    [
        ({}, "registry", ("dockyard[nox]>=0.1.0",)),
        ({"url": "file:///src/dockyard", "dir_info": {"editable": True}}, "path",
         ("--editable", "/src/dockyard", "--extra", "nox")),
        ({"url": "file:///src/dockyard", "dir_info": {}}, "path", ("/src/dockyard", "--extra", "nox")),
        ({"url": "file:///repo.git", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}, "git",
         ("dockyard[nox] @ git+file:///repo.git@abc123",)),
        ({"url": "file:///dist/dockyard-0.1.0-py3-none-any.whl", "archive_info": {}}, "wheel",
         ("/dist/dockyard-0.1.0-py3-none-any.whl", "--extra", "nox")),
    ],
)  # fmt: skip
def test_dockyard_is_added_from_where_it_runs(
    info: dict[str, object], kind: str, argv_tail: tuple[str, ...]
) -> None:
    source = apply.source_from_direct_url(info, "0.1.0")
    assert source.kind == kind
    assert source.argv[:4] == ("uv", "add", "--dev", "--no-sync")
    assert source.argv[4:] == argv_tail


def test_a_project_that_already_depends_on_dockyard_gets_no_uv_add(tmp_path: Path) -> None:
    root = _projects(tmp_path)["web"]
    assert apply.plan(root, Options(), source=apply.source_from_direct_url({}, "0.1.0")).commands
    text = (root / "pyproject.toml").read_text() + '\n[dependency-groups]\ndev = ["dockyard[nox]>=0.1"]\n'
    (root / "pyproject.toml").write_text(text)
    assert apply.declares_dockyard(read_project(root))
    assert apply.plan(root, Options()).commands == ()


def test_a_dry_run_shows_every_file_before_it_names_the_conflict(tmp_path: Path) -> None:
    # A public project has its own .dockerignore (and Dockerfiles under docker/): the dry run still shows
    # everything init would write, marks the file that differs, and then stops as a real run would.
    root = _projects(tmp_path)["web"]
    (root / ".dockerignore").write_text(".venv/\n__pycache__/\n")
    before = _snapshot(root)
    out = io.StringIO()
    with pytest.raises(apply.InitConflict, match=r"\.dockerignore exists and differs .*nothing was written"):
        apply.run(root, Options(), Console(file=out, width=200), dry_run=True, add=False)
    shown = out.getvalue()
    assert "differs (--force would replace it): .dockerignore" in shown
    for name in ("Dockerfile", "tasks.py", "noxfile.py"):
        assert f"would create: {name}" in shown, name
    assert "would append: pyproject.toml" in shown
    assert _snapshot(root) == before
