from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dockyard import config
from dockyard.errors import ConfigError


def project(tmp_path: Path, table: str, *, name: str = "demo-app") -> Path:
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "1.2.3"\n\n' + textwrap.dedent(table)
    )
    return tmp_path


NO_MACHINE = {"DOCKYARD_MACHINE_FILE": "/nonexistent/machine.env"}


def test_defaults_name_the_image_after_the_project(tmp_path: Path) -> None:
    settings = config.load(project(tmp_path, ""), environ=NO_MACHINE)
    assert settings.image == "demo-app"
    assert settings.package == "demo_app"
    assert settings.project_version == "1.2.3"
    assert settings.dockerfile == tmp_path / "Dockerfile"
    assert settings.size_budget == 500_000_000
    assert settings.verify.env == {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def test_reads_every_section(tmp_path: Path) -> None:
    table = """
    [tool.dockyard]
    image = "acme/api"
    size-budget = "1.5GiB"
    build-args = { PYTHON_IMAGE = "mirror/python:3.13-slim", WORKERS = 2 }
    service = false
    [tool.dockyard.verify]
    user = 10001
    skip = ["healthcheck"]
    smoke = [{ command = ["api", "--version"], expect = "1.2.3" }]
    ports = [8000]
    layer-cache-max-changed = "2MB"
    [tool.dockyard.size]
    growth-threshold = "5%"
    top = 3
    [tool.dockyard.compose]
    files = ["compose.yaml"]
    """
    settings = config.load(project(tmp_path, table), environ=NO_MACHINE)
    assert settings.image == "acme/api"
    assert settings.size_budget == int(1.5 * 1024**3)
    assert settings.build_args == {"PYTHON_IMAGE": "mirror/python:3.13-slim", "WORKERS": "2"}
    assert settings.service is False
    assert settings.verify.user == "10001"
    assert settings.verify.smoke == (config.SmokeCommand(("api", "--version"), "1.2.3"),)
    assert settings.verify.ports == (8000,)
    assert settings.verify.layer_cache_max_changed == 2_000_000
    assert settings.size.growth_threshold == pytest.approx(0.05)
    assert settings.compose.files == ("compose.yaml",)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[tool.dockyard]\nimgae = 'x'", "unknown key 'imgae'. Perhaps you meant 'image'?"),
        (
            "[tool.dockyard.verify]\nsmok = []",
            "verify: unknown key 'smok'. Perhaps you meant 'smoke'?",
        ),
        ("[tool.dockyard]\nservice = 'yes'", "service: expected true or false, got str 'yes'"),
        ("[tool.dockyard]\nsize-budget = 'huge'", "'huge' is not a size"),
        ("[tool.dockyard.verify]\nports = ['80']", "verify.ports: expected a list of port numbers"),
        ("[tool.dockyard.verify]\nsmoke = [{expect = 'x'}]", "smoke[0]: `command` is required"),
        ("[tool.dockyard]\nimage = 'Bad Name'", "not a valid image name"),
        ("[tool.dockyard]\nbuild-args = { A = [1] }", "build-args.A: expected a string"),
    ],
)
def test_rejects_bad_configuration_with_one_clear_line(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(project(tmp_path, table), environ=NO_MACHINE)
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_environment_overrides_file_and_machine_file_sits_below_it(tmp_path: Path) -> None:
    machine = tmp_path / "machine.env"
    machine.write_text(
        "# comment\nDOCKYARD_BUILD_ARG_PYTHON_IMAGE=standin/python\nDOCKYARD_IMAGE=from-machine\n"
    )
    table = "[tool.dockyard]\nimage = 'from-file'\nbuild-args = { UV_IMAGE = 'uv:file' }\n"
    root = project(tmp_path, table)
    env = {"DOCKYARD_MACHINE_FILE": str(machine), "DOCKYARD_IMAGE": "from-env"}
    settings = config.load(root, environ=env)
    assert settings.image == "from-env"
    assert settings.build_args == {"UV_IMAGE": "uv:file", "PYTHON_IMAGE": "standin/python"}
    assert config.load(root, environ={"DOCKYARD_MACHINE_FILE": str(machine)}).image == "from-machine"


def test_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    root = project(tmp_path, "")
    env = {**NO_MACHINE, "DOCKYARD_CA_BUNDLE": str(tmp_path / "nope.pem")}
    with pytest.raises(ConfigError, match=r"nope\.pem does not exist"):
        config.load(root, environ=env)


def test_malformed_machine_file_names_the_line(tmp_path: Path) -> None:
    machine = tmp_path / "machine.env"
    machine.write_text("JUSTAWORD\n")
    with pytest.raises(ConfigError, match=r"machine.env:1: expected KEY=VALUE"):
        config.load(project(tmp_path, ""), environ={"DOCKYARD_MACHINE_FILE": str(machine)})


def test_no_pyproject_says_where_it_looked(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"no pyproject\.toml"):
        config.load(empty, environ=NO_MACHINE)


@pytest.mark.parametrize(
    ("text", "size"),
    [("500MB", 500_000_000), ("1.5GiB", 1610612736), ("1200", 1200), (42, 42), ("10 kb", 10_000)],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert config.parse_size(text) == size


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[tool.dockyard]\nsize-budget = 0", "size-budget: 0 must be more than 0 bytes"),
        ("[tool.dockyard]\nsize-budget = '0MB'", "must be more than 0 bytes"),
        ("[tool.dockyard.verify]\nlayer-cache-max-changed = 0", "layer-cache-max-changed: 0 must be more"),
        ("[tool.dockyard.verify]\ntimeout = 0", "verify.timeout: expected a number of seconds above 0"),
        ("[tool.dockyard.verify]\ntimeout = -5", "above 0"),
        ("[tool.dockyard.verify]\ntimeout = inf", "a finite number of seconds"),
        ("[tool.dockyard.verify]\nhealthcheck-timeout = 0", "healthcheck-timeout: expected a number"),
        ("[tool.dockyard.verify]\nsmoke = [{command = ['x'], timeout = 0}]", "smoke[0].timeout"),
        ("[tool.dockyard.verify]\nports = [0]", "verify.ports: 0 is not a port number (1-65535)"),
        ("[tool.dockyard.verify]\nports = [65536]", "65536 is not a port number"),
        ("[tool.dockyard.size]\ngrowth-threshold = '1001%'", "is outside 0%-1000%"),
        ("[tool.dockyard.size]\ngrowth-threshold = 11", "is outside 0%-1000%"),
        ("[tool.dockyard]\nimage = 'relaudit-app-'", "'relaudit-app-' is not a valid image name"),
        ("[tool.dockyard]\nimage = '-x'", "'-x' is not a valid image name"),
        ("[tool.dockyard]\nimage = 'Acme/API'", "image names are lowercase"),
        ("[tool.dockyard]\nimage = 'acme/api:1.0'", "no tag or digest here"),
        ("[tool.dockyard]\nimage = 'a//b'", "not a valid image name"),
        ("[tool.dockyard]\nimage = 'a___b'", "not a valid image name"),
        ("[tool.dockyard]\nimage = ''", "not a valid image name"),
        ("[tool.dockyard.size]\nhistory = '/tmp/h.json'", "history: /tmp/h.json is absolute"),
        ("[tool.dockyard.size]\nhistory = '../h.json'", "history: ../h.json leads outside"),
    ],
)
def test_rejects_values_out_of_range_at_load(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(project(tmp_path, table), environ=NO_MACHINE)
    assert message in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize(
    "image",
    ["acme/api", "localhost:5000/acme/api", "registry.example.com/a__b/c-d.e", "a--b", "[::1]:5000/x"],
)
def test_accepts_valid_image_names(tmp_path: Path, image: str) -> None:
    settings = config.load(project(tmp_path, f"[tool.dockyard]\nimage = '{image}'"), environ=NO_MACHINE)
    assert settings.image == image


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DOCKYARD_IMAGE": "Bad Name"}, "DOCKYARD_IMAGE: 'Bad Name' is not a valid image name"),
        ({"DOCKYARD_SIZE_BUDGET": "0"}, "DOCKYARD_SIZE_BUDGET: '0' must be more than 0 bytes"),
        ({"DOCKYARD_SIZE_BUDGET": "lots"}, "DOCKYARD_SIZE_BUDGET: 'lots' is not a size"),
        ({"DOCKYARD_LAYER_SOURCE": "dirs"}, "DOCKYARD_LAYER_SOURCE: 'dirs' is not one of auto, export"),
    ],
)
def test_rejects_bad_environment_values(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(project(tmp_path, ""), environ={**NO_MACHINE, **environ})
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'project = "x"\n', "`project` must be a table ([project]), not str"),
        (b'tool = "x"\n[project]\nname = "a"\n', "`tool` must be a table ([tool]), not str"),
        (b'[project]\nname = "a"\n[tool]\ndockyard = 3\n', "[tool.dockyard] must be a table, not int"),
        (b'[project]\nname = "caf\xe9"\n', "not UTF-8 (byte 21): save it as UTF-8"),
        (b"[project\n", "not valid TOML"),
    ],
)
def test_rejects_bad_pyproject_shapes_and_encodings(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "pyproject.toml").write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path, environ=NO_MACHINE)
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_rejects_a_machine_file_that_is_a_directory_or_not_utf8(tmp_path: Path) -> None:
    root = project(tmp_path, "")
    folder = tmp_path / "machine-dir"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"machine file .*machine-dir is a directory, not a file"):
        config.load(root, environ={"DOCKYARD_MACHINE_FILE": str(folder)})
    latin = tmp_path / "latin.env"
    latin.write_bytes(b"# ok\nDOCKYARD_IMAGE=caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin\.env:2: byte 0xe9 is not UTF-8"):
        config.load(root, environ={"DOCKYARD_MACHINE_FILE": str(latin)})


def test_the_default_image_is_the_project_name_lowercased(tmp_path: Path) -> None:
    settings = config.load(project(tmp_path, "", name="Demo_App"), environ=NO_MACHINE)
    assert settings.image == "demo_app"


def test_layer_source_is_auto_or_export_and_the_environment_overrides_it(tmp_path: Path) -> None:
    assert config.load(project(tmp_path, ""), environ=NO_MACHINE).verify.layer_source == "auto"
    table = '[tool.dockyard.verify]\nlayer-source = "export"\n'
    assert config.load(project(tmp_path, table), environ=NO_MACHINE).verify.layer_source == "export"
    environ = {**NO_MACHINE, "DOCKYARD_LAYER_SOURCE": "auto"}
    assert config.load(project(tmp_path, table), environ=environ).verify.layer_source == "auto"
    with pytest.raises(
        ConfigError, match=r"layer-source: 'exprt' is not one of auto, export \(did you mean 'export'\?\)"
    ):
        config.load(project(tmp_path, '[tool.dockyard.verify]\nlayer-source = "exprt"\n'), environ=NO_MACHINE)
