"""`dockyard init`'s inference, one decision at a time, on fixture trees (no engine, no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import UsageError
from dockyard.init import infer, runs
from dockyard.init.model import DockyardSource, Inference, Options
from dockyard.init.project import read_project, tree_files
from tests.unit.trees import (
    CELERY,
    CP313_LINUX,
    STARLETTE_APP,
    Locked,
    git_init,
    lock_text,
    packaged_project,
    pyproject,
    workspace_member,
    write,
)

ANY = "0.0.0.0"  # noqa: S104 - the address the server commands bind in the container


def inferred(root: Path, options: Options | None = None, **kwargs: object) -> Inference:
    project = read_project(root)
    return infer.infer(project, options or Options(), tree_files(root), **kwargs)  # type: ignore[arg-type]


def fact(result: Inference, what: str) -> str:
    return next(f"{f.value} | {f.why}" for f in result.facts if f.what == what)


# --- Python, uv -------------------------------------------------------------------------------------


def test_python_from_requires_python_is_the_default_when_allowed(tmp_path: Path) -> None:
    result = inferred(packaged_project(tmp_path, "cli-app", scripts={"cli-app": "cli_app:main"}))
    assert result.python == "3.13"
    assert 'requires-python ">=3.11"' in fact(result, "python")


def test_python_version_file_wins_over_requires_python(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "cli-app", scripts={"cli-app": "cli_app:main"})
    (root / ".python-version").write_text("3.12.4\n")
    assert inferred(root).python == "3.12"


@pytest.mark.parametrize(("spec", "chosen"), [(">=3.14", "3.14"), ("<3.12", "3.11"), ("==3.10.*", "3.10")])
def test_python_is_the_closest_allowed_to_the_default(tmp_path: Path, spec: str, chosen: str) -> None:
    write(
        tmp_path,
        {"pyproject.toml": pyproject("job", packaged=False, requires_python=spec), "main.py": "x = 1\n"},
    )
    assert infer.infer_python(read_project(tmp_path), None).value == chosen


def test_python_is_one_the_lock_has_compiled_wheels_for(tmp_path: Path) -> None:
    # astral-sh/uv-fastapi-example: requires-python ">=3.12", locked in 2024 with httptools and uvloop
    # wheels up to CPython 3.12 only. 3.13 would build them from source (no gcc in the slim base: the
    # image does not build); 3.12, which the project allows, installs wheels.
    cp312 = "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"
    root = packaged_project(
        tmp_path / "app",
        "api",
        ["fastapi", "uvloop"],
        locked=[Locked("uvloop", wheels=(cp312,))],
        packaged=False,
    )
    text = (root / "pyproject.toml").read_text().replace('">=3.11"', '">=3.12"')
    (root / "pyproject.toml").write_text(text)
    result = inferred(root)
    assert result.python == "3.12"
    assert "3.13 would build uvloop from source" in fact(result, "python")
    assert not any("uvloop" in note for note in result.notes)
    # With wheels for 3.13 too, the default stands.
    both = packaged_project(
        tmp_path / "both",
        "api",
        ["fastapi", "uvloop"],
        locked=[Locked("uvloop", wheels=(cp312, CP313_LINUX))],
        packaged=False,
    )
    assert inferred(both).python == "3.13"


def test_python_flag_wins_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "cli-app", scripts={"cli-app": "cli_app:main"})
    assert inferred(root, Options(python="3.12")).python == "3.12"
    with pytest.raises(UsageError, match="--python"):
        inferred(root, Options(python="latest"))


def test_python_that_no_slim_image_has_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path, {"pyproject.toml": pyproject("job", packaged=False, requires_python=">=4"), "main.py": ""}
    )
    with pytest.raises(UsageError, match=r"--python X\.Y"):
        infer.infer_python(read_project(tmp_path), None)


def test_uv_image_follows_a_pinned_required_version(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path,
        "cli-app",
        scripts={"cli-app": "cli_app:main"},
        extra='\n[tool.uv]\nrequired-version = "==0.12.3"\n',
    )
    assert inferred(root).uv_version == "0.12.3"


def test_uv_range_that_excludes_dockyards_pin_is_refused(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path,
        "cli-app",
        scripts={"cli-app": "cli_app:main"},
        extra='\n[tool.uv]\nrequired-version = "<0.10"\n',
    )
    with pytest.raises(UsageError, match="required-version"):
        inferred(root)


# --- packaged, virtual, workspace -------------------------------------------------------------------


def test_build_system_makes_a_packaged_project(tmp_path: Path) -> None:
    result = inferred(packaged_project(tmp_path, "cli-app", scripts={"cli-app": "cli_app:main"}))
    assert result.project.packaged
    assert [s.trees for s in result.wheel_sources] == [("src",)]
    assert result.wheel_sources[0].files == ("pyproject.toml",)
    assert result.mounts == ("pyproject.toml", "uv.lock")


def test_no_build_system_makes_a_virtual_project_whose_modules_are_copied(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "hello", packaged=False)
    write(root, {"helpers/__init__.py": "", "helpers/text.py": "", "tests/test_x.py": "", "noxfile.py": ""})
    result = inferred(root)
    assert not result.project.packaged
    assert result.app_paths == ("helpers", "main.py")
    assert result.run.cmd == ("python", "main.py")
    assert result.imports == ("helpers", "main")
    assert result.layer_cache_touch == "main.py"
    assert result.context_paths == ("pyproject.toml", "uv.lock", "helpers/", "main.py")


def test_tool_uv_package_false_overrides_a_build_system(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "hello", packaged=False, extra="\n[tool.uv]\npackage = false\n")
    assert not read_project(root).packaged


def test_workspace_member_builds_from_the_workspace_root(tmp_path: Path) -> None:
    result = inferred(workspace_member(tmp_path))
    project = result.project
    assert project.context == tmp_path
    assert project.relative == "packages/api"
    assert result.lock_flag == "--locked"
    assert result.mounts == (
        "pyproject.toml", "uv.lock", "packages/api/pyproject.toml", "packages/lib/pyproject.toml",
        "packages/other/pyproject.toml",
    )  # fmt: skip
    # its own wheel and the member it depends on, not the one it does not
    assert [s.directory for s in result.wheel_sources] == ["packages/api", "packages/lib"]
    assert result.wheel_sources[0].trees == ("packages/api/src",)
    assert result.layer_cache_touch == "packages/api/src/api/__init__.py"
    assert result.run.cmd == ("uvicorn", "api.main:app", "--host", ANY, "--port", "8000")


def test_a_directory_that_is_not_a_uv_project_is_refused_with_uv_init(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"run `uv init` there first"):
        read_project(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.poetry]\nname = "legacy"\n')
    with pytest.raises(UsageError, match="`uv init` first"):
        read_project(tmp_path)


def test_a_virtual_workspace_root_points_at_its_members(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    with pytest.raises(UsageError, match="dockyard init MEMBER"):
        read_project(tmp_path)


# --- what runs --------------------------------------------------------------------------------------


def test_a_script_that_parses_arguments_is_a_command_line(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path,
        "tool",
        scripts={"tool": "tool.cli:main"},
        modules={"cli.py": "import argparse\ndef main(): ...\n"},
    )
    result = inferred(root)
    assert (result.kind, result.run.entrypoint, result.run.cmd) == ("cli", ("tool",), ("--help",))
    assert result.smoke == (("tool", "--help"),)
    assert not result.service
    assert result.ports == ()
    assert result.healthcheck is None


def test_a_script_that_does_not_is_a_job(tmp_path: Path) -> None:
    result = inferred(packaged_project(tmp_path, "cli-app", scripts={"cli-app": "cli_app:main"}))
    assert (result.kind, result.run.entrypoint, result.run.cmd) == ("job", ("cli-app",), None)
    assert result.smoke == ()


def test_a_packages_main_module_is_run_with_python_m(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "batch", modules={"__main__.py": "print('x')\n"})
    assert inferred(root).run.cmd == ("python", "-m", "batch")


def test_nothing_to_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to run"):
        inferred(packaged_project(tmp_path, "library"))


def test_starlette_app_with_uvicorn_is_a_web_service(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "web", ["starlette", "uvicorn"], modules={"main.py": STARLETTE_APP})
    result = inferred(root)
    assert result.service
    assert result.run.cmd == ("uvicorn", "web.main:app", "--host", ANY, "--port", "8000")
    assert result.ports == (8000,)
    assert result.imports == ("web", "web.main")
    assert result.smoke == (("uvicorn", "--version"),)
    # no health route: any HTTP answer below 500 counts, with the standard library (no curl)
    assert result.healthcheck is not None
    assert result.healthcheck[:2] == ("python", "-c")
    assert "http.client" in result.healthcheck[2]
    assert "status >= 500" in result.healthcheck[2]


def test_a_health_route_is_what_the_healthcheck_asks_for(tmp_path: Path) -> None:
    app = STARLETTE_APP + 'routes = [Route("/healthz", lambda r: None)]\n'
    root = packaged_project(
        tmp_path, "web", ["fastapi", "uvicorn"], modules={"main.py": app.replace("Starlette(", "FastAPI(")}
    )
    result = inferred(root)
    assert result.healthcheck is not None
    assert "urlopen('http://127.0.0.1:8000/healthz'" in result.healthcheck[2]


@pytest.mark.parametrize(
    ("module", "deps", "expected"),
    [
        ("from flask import Flask\napp = Flask(__name__)\n", ["flask", "gunicorn"],
         ("gunicorn", "--bind", f"{ANY}:8000", "web.main:app")),
        ("from flask import Flask\napp = Flask(__name__)\n", ["flask", "waitress"],
         ("waitress-serve", f"--listen={ANY}:8000", "web.main:app")),
        ("from litestar import Litestar\napp = Litestar([])\n", ["litestar", "hypercorn"],
         ("hypercorn", "web.main:app", "--bind", f"{ANY}:8000")),
        ("import fastapi\napi: fastapi.FastAPI = fastapi.FastAPI()\n", ["fastapi", "granian"],
         ("granian", "--interface", "asgi", "--host", ANY, "--port", "8000", "web.main:api")),
    ],
)  # fmt: skip
def test_each_framework_gets_a_server_it_depends_on(
    tmp_path: Path, module: str, deps: list[str], expected: tuple[str, ...]
) -> None:
    result = inferred(packaged_project(tmp_path, "web", deps, modules={"main.py": module}))
    assert result.run.cmd == expected


def test_django_asgi_application(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "site", ["django", "uvicorn"], packaged=False, modules={
        "manage.py": "import django\n",
        "site_cfg/__init__.py": "",
        "site_cfg/asgi.py": (
            "from django.core.asgi import get_asgi_application\napplication = get_asgi_application()\n"
        ),
    })  # fmt: skip
    result = inferred(root)
    assert result.run.cmd == ("uvicorn", "site_cfg.asgi:application", "--host", ANY, "--port", "8000")
    assert result.app_paths == ("manage.py", "site_cfg")


def test_an_app_without_a_server_is_refused_naming_what_to_add(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "web", ["starlette"], modules={"main.py": STARLETTE_APP})
    with pytest.raises(UsageError, match=r"no ASGI server .* `uv add uvicorn`"):
        inferred(root)


def test_a_framework_that_is_not_a_dependency_is_no_web_app(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path, "web", ["uvicorn"], modules={"main.py": STARLETTE_APP}, scripts={"web": "web:main"}
    )
    assert inferred(root).kind == "job"


def test_a_script_that_starts_the_server_itself_is_the_command(tmp_path: Path) -> None:
    cli = "import argparse\nimport uvicorn\nfrom web.app import app\ndef main(): uvicorn.run(app)\n"
    routes = STARLETTE_APP + 'x = "/health"\n'
    root = packaged_project(
        tmp_path, "web", ["starlette", "uvicorn"], scripts={"web": "web.cli:main"},
        modules={"cli.py": cli, "app.py": routes},
    )  # fmt: skip
    result = inferred(root)
    assert result.run.cmd == ("web",)
    assert result.run.entrypoint is None
    assert result.healthcheck is not None
    assert "/health'" in result.healthcheck[2]
    assert result.smoke == (("web", "--help"),)


def test_app_flag_and_port_flag_override_inference(tmp_path: Path) -> None:
    module = STARLETTE_APP + "other = Starlette()\n"
    root = packaged_project(tmp_path, "web", ["starlette", "uvicorn"], modules={"main.py": module})
    result = inferred(root, Options(app="web.main:other", port=9000))
    assert result.run.cmd == ("uvicorn", "web.main:other", "--host", ANY, "--port", "9000")
    assert result.ports == (9000,)
    assert result.healthcheck is not None
    assert "9000" in result.healthcheck[2]
    with pytest.raises(UsageError, match="MODULE:ATTR"):
        inferred(root, Options(app="web.main"))


def test_a_celery_app_is_a_worker_with_a_scheduler_role(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "jobs", ["celery"], modules={"tasks.py": CELERY})
    result = inferred(root)
    assert result.kind == "worker"
    assert result.run.cmd == ("celery", "-A", "jobs.tasks:app", "worker", "--loglevel=INFO")
    assert not result.service
    assert result.healthcheck is None
    assert result.imports == ("jobs", "jobs.tasks")
    assert [(r.name, r.command) for r in result.roles] == [
        ("worker", None),
        (
            "scheduler",
            (
                "celery",
                "-A",
                "jobs.tasks:app",
                "beat",
                "--loglevel=INFO",
                "--schedule=/tmp/celerybeat-schedule",
            ),
        ),
    ]


def test_web_and_worker_roles_share_the_image(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path,
        "stack",
        ["starlette", "uvicorn", "celery"],
        modules={"main.py": STARLETTE_APP, "tasks.py": CELERY},
    )
    result = inferred(root)
    assert result.kind == "web"
    assert [r.name for r in result.roles] == ["web", "worker", "scheduler"]
    assert result.roles[1].command == ("celery", "-A", "stack.tasks:app", "worker", "--loglevel=INFO")


def test_arq_and_rq_workers(tmp_path: Path) -> None:
    arq = packaged_project(
        tmp_path / "a", "jobs", ["arq"], modules={"worker.py": "class WorkerSettings:\n    functions = []\n"}
    )
    assert inferred(arq).run.cmd == ("arq", "jobs.worker.WorkerSettings")
    rq = packaged_project(tmp_path / "r", "jobs", ["rq"], modules={"queue.py": "from rq import Queue\n"})
    assert inferred(rq).run.cmd == ("rq", "worker")


def test_worker_flag(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "jobs", ["celery"], modules={"tasks.py": CELERY, "other.py": ""})
    result = inferred(root, Options(worker="jobs.other:app"))
    assert result.run.cmd == ("celery", "-A", "jobs.other:app", "worker", "--loglevel=INFO")


def test_scripts_named_for_roles_become_compose_roles(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path, "stack", ["starlette", "uvicorn"], modules={"web.py": STARLETTE_APP},
        scripts={"stack-worker": "stack.web:main", "stack-scheduler": "stack.web:main"},
    )  # fmt: skip
    roles = inferred(root).roles
    assert [(r.name, r.command) for r in roles] == [
        ("web", None), ("worker", ("stack-worker",)), ("scheduler", ("stack-scheduler",))
    ]  # fmt: skip


# --- the lock, system libraries ---------------------------------------------------------------------


def test_a_dev_dependency_from_a_path_makes_the_build_use_frozen(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path, "cli-app", scripts={"cli-app": "cli_app:main"}, dev=["dockyard"],
        locked=[Locked("dockyard", "0.1.0", source='source = { directory = "../dockyard" }')],
    )  # fmt: skip
    result = inferred(root)
    assert result.lock_flag == "--frozen"
    assert "dockyard (../dockyard)" in fact(result, "lock")


def test_a_git_dev_dependency_keeps_locked(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path, "cli-app", scripts={"cli-app": "cli_app:main"}, dev=["dockyard"],
        locked=[Locked("dockyard", "0.1.0", source='source = { git = "https://example/dockyard.git#abc" }')],
    )  # fmt: skip
    assert inferred(root).lock_flag == "--locked"


def test_adding_dockyard_from_a_path_or_wheel_is_foreseen(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "cli-app", scripts={"cli-app": "cli_app:main"})
    wheel = DockyardSource(("uv", "add"), "wheel", "/dist/dockyard-0.1.0-py3-none-any.whl")
    git = DockyardSource(("uv", "add"), "git", "git+file:///repo")
    assert inferred(root, adding=wheel).lock_flag == "--frozen"
    assert inferred(root, adding=git).lock_flag == "--locked"


def test_a_runtime_dependency_from_a_path_is_refused(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path, "cli-app", ["helper"], scripts={"cli-app": "cli_app:main"},
        locked=[Locked("helper", source='source = { directory = "../helper" }')],
    )  # fmt: skip
    with pytest.raises(UsageError, match="runtime dependency helper comes from the path"):
        inferred(root)


def test_a_runtime_git_dependency_needs_git_while_building(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path, "cli-app", ["helper"], scripts={"cli-app": "cli_app:main"},
        locked=[Locked("helper", source='source = { git = "https://example/helper.git#abc" }')],
    )  # fmt: skip
    assert [p.name for p in inferred(root).build_packages] == ["git"]


def test_psycopg_without_binary_needs_libpq(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "db", ["psycopg"], scripts={"db": "db:main"})
    result = inferred(root)
    assert [p.name for p in result.runtime_packages] == ["libpq5"]
    assert "psycopg without its binary extra" in result.runtime_packages[0].why
    binary = packaged_project(
        tmp_path / "b", "db", ["psycopg"], scripts={"db": "db:main"},
        locked=[
            Locked("psycopg", dependencies=["psycopg-binary"]), Locked("psycopg-binary", wheels=[CP313_LINUX])
        ],
    )  # fmt: skip
    assert inferred(binary).runtime_packages == ()


def test_pillow_built_from_source_gets_headers_to_build_and_libraries_to_run(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path, "imgs", ["pillow"], scripts={"imgs": "imgs:main"}, locked=[Locked("pillow", wheels=[])]
    )
    result = inferred(root)
    assert [p.name for p in result.runtime_packages] == ["libjpeg62-turbo", "zlib1g"]
    assert "libjpeg62-turbo-dev" in [p.name for p in result.build_packages]
    assert "built from source" in result.build_packages[0].why


def test_pillow_with_a_wheel_for_the_target_needs_nothing(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path, "imgs", ["pillow", "lxml"], scripts={"imgs": "imgs:main"},
        locked=[Locked("pillow", wheels=[CP313_LINUX]), Locked("lxml", wheels=[CP313_LINUX])],
    )  # fmt: skip
    result = inferred(root)
    assert result.runtime_packages == ()
    assert result.build_packages == ()


def test_size_budget_has_headroom_over_base_and_wheels(tmp_path: Path) -> None:
    small = inferred(packaged_project(tmp_path / "s", "cli-app", scripts={"cli-app": "cli_app:main"}))
    big = inferred(
        packaged_project(
            tmp_path / "b", "cli-app", ["numpy"], scripts={"cli-app": "cli_app:main"},
            locked=[Locked("numpy", wheels=[CP313_LINUX], size=20_000_000)],
        )
    )  # fmt: skip
    assert small.size_budget == "200MB"
    assert big.size_budget == "250MB"  # (130 + 3 x 20) x 1.25 = 237.5, rounded up to 50 MB


# --- compose, ports ---------------------------------------------------------------------------------


def test_compose_ports_and_volumes_of_services_built_from_the_dockerfile(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "web", ["starlette", "uvicorn"], modules={"main.py": STARLETTE_APP})
    doc = {
        "services": {
            "web": {"build": {"context": str(root), "dockerfile": "Dockerfile"},
                    "ports": [{"target": 8000, "published": "8000"}],
                    "volumes": [{"type": "volume", "target": "/data"}]},
            "worker": {"build": {"context": str(root), "dockerfile": "Dockerfile"}, "expose": ["8001"]},
            "redis": {"image": "redis", "ports": [{"target": 6379}],
                      "volumes": [{"type": "volume", "target": "/x"}]},
        }
    }  # fmt: skip
    compose = infer.compose_facts(read_project(root), doc, "compose.yaml")
    assert (compose.ports, compose.volumes) == ((8000, 8001), ("/data",))
    result = inferred(root, compose=compose)
    assert result.ports == (8000, 8001)
    assert result.data_dirs == ("/data",)
    assert result.writes_compose


def test_configured_ports_win_and_agreeing_ones_keep_the_reason(tmp_path: Path) -> None:
    table = "\n[tool.dockyard.verify]\nports = [{}]\n"
    agree = packaged_project(
        tmp_path / "a",
        "web",
        ["starlette", "uvicorn"],
        modules={"main.py": STARLETTE_APP},
        extra=table.format(8000),
    )
    assert fact(inferred(agree), "ports") == "8000 | what the server command listens on"
    differ = packaged_project(
        tmp_path / "d",
        "web",
        ["starlette", "uvicorn"],
        modules={"main.py": STARLETTE_APP},
        extra=table.format(9000),
    )
    assert fact(inferred(differ), "ports") == "9000 | [tool.dockyard.verify] ports"


def test_sources_in_tests_and_untracked_junk_are_not_scanned(tmp_path: Path) -> None:
    root = packaged_project(tmp_path, "hello", ["starlette", "uvicorn"], packaged=False)
    write(
        root,
        {"tests/test_app.py": STARLETTE_APP, ".gitignore": "scratch/\n", "scratch/app.py": STARLETTE_APP},
    )
    git_init(root)
    assert inferred(root).kind == "job"
    assert runs.scan(read_project(root), tree_files(root)).web == []


def postmodern_server(root: Path) -> Path:
    """A workspace shaped like carderne/postmodern-mono: a root project of its own and members in
    apps/ and libs/ sharing the `postmodern` namespace (hatch `packages = ["postmodern"]`, no
    `postmodern/__init__.py`); the server has no scripts and is run as `python .../run.py`, a module
    with an `if __name__ == "__main__":` block."""
    hatch = '\n[tool.hatch.build.targets.wheel]\npackages = ["postmodern"]\n'
    hatchling = '\n[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    write(
        root,
        {
            "pyproject.toml": pyproject("postmodern", packaged=False)
            + '\n[tool.uv.workspace]\nmembers = ["apps/*", "libs/*"]\n',
            "apps/server/pyproject.toml": pyproject(
                "postmodern-server",
                ["postmodern-greeter"],
                packaged=False,
                extra="\n[tool.uv.sources]\npostmodern-greeter = { workspace = true }\n" + hatchling + hatch,
            ),
            "apps/server/README.md": "# server\n",
            "apps/server/postmodern/server/__init__.py": "",
            "apps/server/postmodern/server/run.py": (
                "from postmodern.greeter import greet\n\n\ndef main():\n    print(greet())\n\n\n"
                'if __name__ == "__main__":\n    main()\n'
            ),
            "apps/server/postmodern/server/helpers.py": 'if __name__ == "__main__":\n    print("debug")\n',
            "apps/server/tests/test_server.py": 'if __name__ == "__main__":\n    print("a test")\n',
            "libs/greeter/pyproject.toml": pyproject(
                "postmodern-greeter", packaged=False, extra=hatchling + hatch
            ),
            "libs/greeter/postmodern/greeter/__init__.py": "def greet():\n    return 'hi'\n",
        },
    )
    members = [
        Locked("postmodern", "0.1.0", source='source = { virtual = "." }'),
        Locked(
            "postmodern-server",
            "0.1.0",
            source='source = { editable = "apps/server" }',
            dependencies=["postmodern-greeter"],
        ),
        Locked("postmodern-greeter", "0.1.0", source='source = { editable = "libs/greeter" }'),
    ]
    (root / "uv.lock").write_text(
        lock_text(members, members=["postmodern", "postmodern-greeter", "postmodern-server"])
    )
    return root / "apps" / "server"


def test_a_module_with_a_main_block_is_what_runs_when_nothing_else_does(tmp_path: Path) -> None:
    server = postmodern_server(tmp_path)
    git_init(tmp_path)
    result = inferred(server)
    assert result.project.module_name == "postmodern"
    assert (result.kind, result.run.cmd) == ("job", ("python", "-m", "postmodern.server.run"))
    assert fact(result, "runs") == (
        "job: `python -m postmodern.server.run` | "
        'postmodern/server/run.py has an `if __name__ == "__main__":` block'
    )


def test_a_main_block_outside_the_project_or_in_its_tests_is_not_what_runs(tmp_path: Path) -> None:
    server = postmodern_server(tmp_path / "repo")
    (server / "postmodern" / "server" / "run.py").unlink()
    outside = tmp_path / "elsewhere.py"
    outside.write_text('if __name__ == "__main__":\n    print("not the project")\n')
    (server / "postmodern" / "server" / "run.py").symlink_to(outside)
    git_init(tmp_path / "repo")  # git lists the link as a file of the project
    assert "postmodern/server/run.py" in tree_files(server)
    result = inferred(server)
    # Only the project's own module (helpers.py) remains: the link out of the tree is not read, the
    # tests are not the program.
    assert result.run.cmd == ("python", "-m", "postmodern.server.helpers")
    (server / "postmodern" / "server" / "helpers.py").write_text("X = 1\n")
    with pytest.raises(UsageError, match="nothing to run in postmodern-server"):
        inferred(server)


def test_a_virtual_projects_module_in_a_package_runs_with_python_m(tmp_path: Path) -> None:
    root = packaged_project(
        tmp_path,
        "batch",
        packaged=False,
        modules={"jobs/__init__.py": "", "jobs/run.py": 'if __name__ == "__main__":\n    print(1)\n'},
    )
    assert inferred(root).run.cmd == ("python", "-m", "jobs.run")
    write(root, {"main.py": 'if __name__ == "__main__":\n    print(1)\n'})
    assert inferred(root).run.cmd == ("python", "main.py"), "a top-level script still comes first"
