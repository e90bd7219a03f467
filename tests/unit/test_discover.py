"""Discovery of the project's layout: workspace, package, Dockerfile, context and modules, as uv, Compose
and Docker find them, with configuration always winning (no engine: compose files are left out here;
tests/engine/test_layouts.py covers them)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from dockyard import cli, config
from dockyard.errors import ConfigError, UsageError
from dockyard.project import discover, workspace
from dockyard.project.dockerfile import parse as parse_dockerfile

NO_MACHINE = {"DOCKYARD_MACHINE_FILE": "/nonexistent/machine.env"}


def tree(root: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def project(name: str, *, extra: str = "", build: bool = True) -> str:
    backend = '[build-system]\nrequires = ["uv_build"]\nbuild-backend = "uv_build"\n' if build else ""
    return f'[project]\nname = "{name}"\nversion = "1.0"\ndependencies = []\n{backend}{extra}'


WORKSPACE = {
    "pyproject.toml": '[tool.uv.workspace]\nmembers = ["packages/*"]\nexclude = ["packages/legacy"]\n',
    "packages/api/pyproject.toml": project("acme-api"),
    "packages/api/src/acme_api/__init__.py": "",
    "packages/core/pyproject.toml": project("acme-core"),
    "packages/core/src/acme_core/__init__.py": "",
    "packages/legacy/pyproject.toml": project("legacy"),
    "uv.lock": "version = 1\n",
}


def load(root: Path, **kwargs: object) -> config.Settings:
    return config.load(root, environ=NO_MACHINE, **kwargs)  # type: ignore[arg-type]


# --- the workspace, as uv finds it ---------------------------------------------------------------


def test_a_workspace_root_without_a_project_is_a_place_to_run_from(tmp_path: Path) -> None:
    root = tree(tmp_path, WORKSPACE)
    found = workspace.find(root)
    assert found.declared
    assert found.root_package is None
    assert [m.name for m in found.members] == ["acme-api", "acme-core"]  # legacy is excluded


def test_a_member_finds_the_workspace_root_and_its_lock(tmp_path: Path) -> None:
    root = tree(tmp_path, {**WORKSPACE, "packages/api/Dockerfile": "FROM python\n"})
    settings = load(root / "packages" / "api")
    assert settings.project_name == "acme-api"
    assert settings.workspace_dir == root
    assert settings.lock_file == root / "uv.lock"
    assert settings.package_path == root / "packages" / "api"
    lines = [i.line() for i in settings.inferred]
    assert "package: acme-api 1.0 (discovered: the workspace member dockyard runs in)" in lines
    assert f"lock: {root / 'uv.lock'} (discovered: the workspace root)" in lines


def test_an_excluded_member_is_a_project_of_its_own(tmp_path: Path) -> None:
    root = tree(tmp_path, WORKSPACE)
    found = workspace.find(root / "packages" / "legacy")
    assert found.root == root / "packages" / "legacy"
    assert not found.declared


def test_uv_stops_at_the_first_pyproject_above(tmp_path: Path) -> None:
    # examples/demo inside a project that is not a workspace: the example is a project of its own.
    root = tree(
        tmp_path, {"pyproject.toml": project("outer"), "examples/demo/pyproject.toml": project("demo")}
    )
    found = workspace.find(root / "examples" / "demo")
    assert found.root == root / "examples" / "demo"


def test_a_pyproject_with_neither_project_nor_workspace_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {"pyproject.toml": "[tool.ruff]\nline-length = 100\n"})
    with pytest.raises(ConfigError, match=r"neither \[project\] nor \[tool.uv.workspace\]"):
        load(root)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('project = "x"\n', r"`project` must be a table"),
        ('tool = "x"\n', r"`tool` must be a table"),
        ('[project]\nname = "a"\n[tool]\nuv = 3\n', r"\[tool.uv\] must be a table"),
        ("[project\n", "not valid TOML"),
    ],
)
def test_bad_pyproject_shapes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(tmp_path)


def test_non_utf8_pyproject_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b'[project]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(tmp_path)


def test_virtual_packages(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "a/pyproject.toml": project("a", build=False),
            "b/pyproject.toml": project("b", extra="[tool.uv]\npackage = false\n"),
            "c/pyproject.toml": project("c", build=False, extra="[tool.uv]\npackage = true\n"),
            "d/pyproject.toml": project("d"),
        },
    )
    virtual = {name: workspace.find(root / name).members[0].virtual for name in "abcd"}
    assert virtual == {"a": True, "b": True, "c": False, "d": False}


# --- the package ----------------------------------------------------------------------------------


def test_the_dockerfiles_uv_sync_package_names_the_member(tmp_path: Path) -> None:
    dockerfile = "FROM python\nRUN uv sync --frozen --no-install-workspace --package=acme-core\n"
    root = tree(tmp_path, {**WORKSPACE, "Dockerfile": dockerfile})
    settings = load(root)
    assert settings.project_name == "acme-core"
    package = next(i for i in settings.inferred if i.what == "package")
    assert package.source == "discovered: `uv sync --package acme-core` in Dockerfile"


def test_configuration_wins_over_the_dockerfile(tmp_path: Path) -> None:
    files = {
        **WORKSPACE,
        "pyproject.toml": WORKSPACE["pyproject.toml"] + '[tool.dockyard]\npackage = "acme-api"\n',
        "Dockerfile": "FROM python\nRUN uv sync --package acme-core\n",
    }
    settings = load(tree(tmp_path, files))
    assert settings.project_name == "acme-api"
    assert next(i for i in settings.inferred if i.what == "package").source == "from config"


def test_an_unknown_configured_package_is_refused_with_the_members(tmp_path: Path) -> None:
    files = {
        **WORKSPACE,
        "pyproject.toml": WORKSPACE["pyproject.toml"] + '[tool.dockyard]\npackage = "acme-apl"\n',
    }
    with pytest.raises(
        ConfigError, match=r"Perhaps you meant 'acme-api'\?.*Members: acme-api \(packages/api\)"
    ):
        load(tree(tmp_path, files))


def test_the_member_holding_the_only_dockerfile_is_the_service(tmp_path: Path) -> None:
    root = tree(tmp_path, {**WORKSPACE, "packages/api/Dockerfile": "FROM python\nCOPY uv.lock /app/\n"})
    settings = load(root)
    assert settings.project_name == "acme-api"
    assert settings.dockerfile == root / "packages" / "api" / "Dockerfile"
    # The Dockerfile reads uv.lock, which only the workspace root holds: the root is the context.
    assert settings.context == root


def test_an_undecidable_package_is_a_problem_only_for_what_needs_it(tmp_path: Path) -> None:
    settings = load(tree(tmp_path, WORKSPACE))
    assert "package" in settings.problems
    assert "dockerfile" in settings.problems
    with pytest.raises(UsageError, match="which workspace member is the service"):
        settings.require_layout("package")


# --- the Dockerfile -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["Dockerfile", "Containerfile", "docker/api.Dockerfile"], "Dockerfile"),
        (["Containerfile", "prod.Dockerfile"], "Containerfile"),
        (["prod.Dockerfile"], "prod.Dockerfile"),
        (["docker/Dockerfile.prod"], "docker/Dockerfile.prod"),
    ],
)
def test_dockerfile_discovery_order(tmp_path: Path, files: list[str], expected: str) -> None:
    root = tree(tmp_path, {"pyproject.toml": project("app"), **dict.fromkeys(files, "FROM python\n")})
    settings = load(root)
    assert settings.dockerfile == root / expected
    assert not settings.problems


def test_several_dockerfiles_that_fit_equally_ask_for_a_choice(tmp_path: Path) -> None:
    files = {
        "pyproject.toml": project("app"),
        "docker/api.Dockerfile": "FROM a\n",
        "docker/worker.Dockerfile": "FROM b\n",
    }
    settings = load(tree(tmp_path, files))
    with pytest.raises(UsageError) as raised:
        settings.require_layout("dockerfile")
    assert (
        "2 Dockerfiles fit this project: docker/api.Dockerfile, docker/worker.Dockerfile"
        in raised.value.message
    )
    assert "--dockerfile PATH" in raised.value.message
    # doctor lists what every one of them pulls: they are kept as the candidates
    assert [c.dockerfile for c in settings.candidates] == [
        tmp_path / "docker" / "api.Dockerfile",
        tmp_path / "docker" / "worker.Dockerfile",
    ]
    decided = load(tree(tmp_path / "one", {"pyproject.toml": project("app"), "Dockerfile": "FROM a\n"}))
    assert decided.candidates == ()


def test_no_dockerfile_says_where_it_looked(tmp_path: Path) -> None:
    settings = load(tree(tmp_path, {"pyproject.toml": project("app")}))
    with pytest.raises(UsageError, match=r"looked for Dockerfile, Containerfile, a compose build"):
        settings.require_layout("dockerfile")


def test_flags_win_over_configuration_and_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "pyproject.toml": project("app", extra='[tool.dockyard]\ndockerfile = "Dockerfile"\ntarget = "a"\n'),
        "Dockerfile": "FROM a\n",
        "docker/other.Dockerfile": "FROM b AS b\n",
    }
    root = tree(tmp_path, files)
    monkeypatch.chdir(root / "docker")
    overrides = config.Overrides(dockerfile=Path("other.Dockerfile"), context=Path(".."), target="b")
    settings = load(root, overrides=overrides)
    assert settings.dockerfile == root / "docker" / "other.Dockerfile"
    assert settings.context == root
    assert settings.target == "b"
    lines = [i.line() for i in settings.inferred]
    assert "dockerfile: docker/other.Dockerfile (from --dockerfile)" in lines
    assert "target: b (from --target)" in lines


# --- the context ----------------------------------------------------------------------------------


def test_a_configured_context_outside_the_workspace_is_allowed_and_said(tmp_path: Path) -> None:
    files = {
        "app/pyproject.toml": project("app", extra='[tool.dockyard]\ncontext = ".."\n'),
        "app/Dockerfile": "FROM a\n",
    }
    root = tree(tmp_path, files)
    settings = load(root / "app")
    assert settings.context == root
    assert "context" not in settings.problems
    assert settings.context_explicit


def test_a_discovered_context_outside_the_repository_is_refused(tmp_path: Path) -> None:
    layout = discover.discover(
        tmp_path,
        workspace.Workspace(tmp_path, (), False, {}),
        discover.Requested(dockerfile=discover.Choice(tmp_path / "Dockerfile", "from config")),
    )
    state = discover._State(tmp_path, layout.workspace, tmp_path, None, discover.Requested())
    discover._confine(state, Path("/"), False, "discovered: compose service api")
    assert (
        "build context / (discovered: compose service api) is outside the workspace"
        in state.problems["context"]
    )
    state.problems.clear()
    discover._confine(state, Path("/"), True, "from config")
    assert not state.problems


# --- what the Dockerfile says ---------------------------------------------------------------------

MULTI_STAGE = """\
ARG PYTHON_IMAGE=python:3.13-slim
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN --mount=type=bind,source=requirements.txt,target=/tmp/r.txt uv sync --project /src/packages/api
COPY packages /src/packages
FROM ${PYTHON_IMAGE}
WORKDIR /app
COPY --from=build /src/packages/api/src /app/src
COPY --chown=app ["tools", "./tools"]
"""


def test_what_a_dockerfile_reads_and_where_it_puts_it(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(MULTI_STAGE)
    parsed = parse_dockerfile(tmp_path / "Dockerfile")
    assert discover.uv_sync_targets(parsed) == [("--project", "/src/packages/api")]
    assert discover.context_sources(parsed) == [
        "pyproject.toml",
        "uv.lock",
        "requirements.txt",
        "packages",
        "tools",
    ]
    mapping = discover.context_paths(parsed, {})
    assert ("packages/api/src", "/app/src") in mapping
    assert ("tools", "/app/tools") in mapping
    assert discover.image_path("packages/api/src/svc", mapping) == "/app/src/svc"
    assert discover.image_path("README.md", mapping) is None


def test_a_virtual_projects_modules_are_those_on_the_images_path(tmp_path: Path) -> None:
    root = tree(tmp_path, {"src/__init__.py": "", "scripts/tool/__init__.py": "", "app/__init__.py": ""})
    modules = [workspace.SourceModule(n, root / n) for n in ("src", "app")]
    mapping = [(".", "/app"), ("app", "/opt/app")]
    exposed, hidden = discover.exposed_modules(modules, root, mapping, "/app", "/srv")
    assert exposed == ["src"]
    assert hidden == ["app (at /opt/app, not on the working directory or PYTHONPATH)"]
    exposed, _ = discover.exposed_modules(modules, root, mapping, "/", "/opt:/app")
    assert exposed == ["src", "app"]


# --- the modules a package's source holds ---------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "names", "how"),
    [
        ({"pyproject.toml": project("my-app"), "src/my_app/__init__.py": ""}, ["my_app"], "uv_build"),
        (
            {
                "pyproject.toml": project(
                    "x", extra='[tool.uv.build-backend]\nmodule-name = ["foo.bar", "baz"]\nmodule-root = ""\n'
                ),
                "foo/bar/__init__.py": "",
                "baz.py": "",
            },
            ["foo", "baz"],
            "uv_build",
        ),
        (
            {
                "pyproject.toml": '[project]\nname = "p"\n[build-system]\nbuild-backend = "hatchling.build"\n'
                '[tool.hatch.build.targets.wheel]\npackages = ["postmodern"]\n',
                "postmodern/server/run.py": "",
            },
            ["postmodern"],
            "hatch",
        ),
        (
            {
                "pyproject.toml": '[project]\nname = "p"\n[build-system]\n'
                'build-backend = "setuptools.build_meta"\n'
                '[tool.setuptools.packages.find]\nwhere = ["lib"]\ninclude = ["good*"]\n',
                "lib/good_one/__init__.py": "",
                "lib/other/__init__.py": "",
            },
            ["good_one"],
            "setuptools",
        ),
        (
            {
                "pyproject.toml": '[project]\nname = "p"\n[build-system]\n'
                'build-backend = "poetry.core.masonry.api"\n'
                '[[tool.poetry.packages]]\ninclude = "svc"\nfrom = "src"\n',
                "src/svc/__init__.py": "",
            },
            ["svc"],
            "poetry",
        ),
        (
            {
                "pyproject.toml": project("v", build=False),
                "src/__init__.py": "",
                "src/main.py": "",
                "tests/__init__.py": "",
                "noxfile.py": "",
            },
            ["src"],
            "beside pyproject",
        ),
        (
            {"pyproject.toml": project("v", build=False), "src/app/__init__.py": "", "src/ns/mod.py": ""},
            ["app", "ns"],
            "src layout",
        ),
        ({"pyproject.toml": project("v", build=False), "main.py": "", "conftest.py": ""}, ["main"], "beside"),
    ],
)
def test_source_modules(tmp_path: Path, files: Mapping[str, str], names: list[str], how: str) -> None:
    root = tree(tmp_path, files)
    package = workspace.package_of(root, workspace.read_pyproject(root / "pyproject.toml"))
    assert package is not None
    found = workspace.source_modules(package)
    assert [m.name for m in found.modules] == names
    assert how in found.how


# --- compose's model, as discovery reads it -------------------------------------------------------


def test_compose_builds_are_read_tolerantly(tmp_path: Path) -> None:
    doc = {
        "services": {
            "api": {
                "build": {"context": str(tmp_path), "dockerfile": "docker/api.Dockerfile", "args": {"A": "1"}}
            },
            "inline": {"build": {"context": ".", "dockerfile_inline": "FROM x"}},
            "remote": {"build": {"context": "https://github.com/x/y.git"}},
            "db": {"image": "postgres"},
            "ssh": {"build": {"context": "sub", "ssh": ["default"], "target": "prod"}},
        }
    }
    builds = discover._builds(doc, tmp_path)
    assert [(b.service, b.dockerfile, b.target, dict(b.args)) for b in builds] == [
        ("api", tmp_path / "docker" / "api.Dockerfile", None, {"A": "1"}),
        ("ssh", tmp_path / "sub" / "Dockerfile", "prod", {}),
    ]


def test_compose_search_stops_at_the_repository(tmp_path: Path) -> None:
    root = tree(tmp_path, {"compose.yaml": "", "repo/app/pyproject.toml": ""})
    assert discover.compose_directory(root / "repo" / "app", root / "repo") is None
    assert discover.compose_directory(root / "repo" / "app", root) == root


# --- no project -----------------------------------------------------------------------------------


def test_an_image_alone_needs_no_project(tmp_path: Path) -> None:
    settings = config.image_only("registry.example/team/api:1.2", NO_MACHINE, start=tmp_path)
    assert not settings.has_project
    assert settings.image == "registry.example/team/api"
    assert settings.size_budget == 500_000_000
    assert settings.inferred[0].line().startswith(f"project: none (no pyproject.toml in {tmp_path} or above)")


def test_layout_flags_outside_any_project_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", "some/image:1", "--dockerfile", "Dockerfile"]) == 2
    assert "--dockerfile, --context and --target need a project" in capsys.readouterr().err
    assert cli.main(["build"]) == 2
    assert f"no pyproject.toml in {tmp_path} or above" in capsys.readouterr().err


def test_each_build_is_judged_against_the_package_it_makes(tmp_path: Path) -> None:
    files = {
        **WORKSPACE,
        "packages/api/Dockerfile": "FROM python\nRUN uv sync --package acme-api\n",
        "packages/core/Dockerfile": "FROM python\nCOPY . /app\n",
    }
    root = tree(tmp_path, files)
    settings = load(root)
    assert "dockerfile" in settings.problems  # two members' Dockerfiles fit equally
    api = config.for_build(settings, root / "packages" / "api" / "Dockerfile", root)
    core = config.for_build(settings, root / "packages" / "core" / "Dockerfile", root / "packages" / "core")
    assert (api.project_name, api.package_path) == ("acme-api", root / "packages" / "api")
    assert (core.project_name, core.package_path) == ("acme-core", root / "packages" / "core")
    assert not api.problems
    assert [m.name for m in api.modules or ()] == ["acme_api"]
