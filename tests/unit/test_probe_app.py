"""The app probe, run for real on the host: the probe resolves an image-like config (a console script on
PATH, PYTHONPATH, a working directory), starts itself again as the app, and reports the app's sys.path,
its distributions with RECORD verified, where their imports resolve, and the imports and smoke commands
run the way the app runs them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dockyard.verify import probe
from dockyard.verify.probe import distributions, walk


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def install(site: Path, name: str, files: dict[str, str], entry_points: str = "") -> None:
    """A distribution as an installer leaves it: its files, METADATA and a RECORD with hashes."""
    lines = []
    for relative, text in files.items():
        data = write(site / relative, text).read_bytes()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{relative},sha256={digest},{len(data)}")
    info = f"{name}-1.0.dist-info"
    write(site / info / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points:
        write(site / info / "entry_points.txt", entry_points)
        lines.append(f"{info}/entry_points.txt,,")
    write(site / info / "RECORD", "\n".join([*lines, f"{info}/RECORD,,"]) + "\n")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("app")
    site = root / "site"
    install(site, "svc", {"svc_app/__init__.py": "", "svc_app/main.py": "def run():\n    print('svc 1.0')\n"},
            "[console_scripts]\nsvc = svc_app.main:run\n")  # fmt: skip
    install(site, "shadowed", {"shadowed/__init__.py": "VERSION = 'locked'\n"})
    install(site, "gutted", {"gutted/__init__.py": "", "gutted/core.py": "x = 1\n"})
    (site / "gutted" / "core.py").unlink()  # files deleted, dist-info kept
    install(site, "edited", {"edited/__init__.py": "x = 1\n"})
    (site / "edited" / "__init__.py").write_text("x = 2\n")  # changed after installing
    install(
        site, "slimmed", {"slimmed/__init__.py": "", "slimmed/tests/test_it.py": "", "slimmed/py.typed": ""}
    )
    (site / "slimmed" / "tests" / "test_it.py").unlink()  # a slimming step removed tests: fine
    # fastapi and fastapi-cli both install the console script bin/fastapi: the last one wins
    install(site, "cli-a", {"cli_a/__init__.py": "", "../bin/both": "from cli_a import main\n"})
    install(site, "cli-b", {"cli_b/__init__.py": "", "../bin/both": "from cli_b import main\n"})
    write(root / "vendor" / "shadowed" / "__init__.py", "VERSION = 'vendored'\n")  # first on PYTHONPATH
    write(root / "work" / "only_here" / "__init__.py", "")  # importable only from the working directory
    script = write(
        root / "bin" / "svc",
        f"#!{sys.executable}\nimport sys\nfrom svc_app.main import run\nsys.exit(run())\n",
    )
    script.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def answer(tree: Path) -> dict[str, Any]:
    env = [
        f"PATH={tree / 'bin'}:{os.environ['PATH']}",
        f"PYTHONPATH={tree / 'vendor'}:{tree / 'site'}",
        "APP_MODE=probe-test",
    ]
    spec = {
        "app": {
            "entrypoint": None,
            "cmd": ["svc"],
            "env": env,
            "user": f"{os.getuid()}:{os.getgid()}",
            "workdir": str(tree / "work"),
        },
        "imports": ["svc_app", "only_here"],
        "commands": [
            {"argv": ["svc"], "timeout": 20},
            {"argv": ["sh", "-c", "echo $APP_MODE; pwd"], "timeout": 20},
        ],
        "verify_records": ["svc", "shadowed", "gutted", "edited", "slimmed", "cli-a", "cli-b"],
        "walk_roots": [str(tree)],
        "which": ["svc"],
    }
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe.source(), json.dumps(spec)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert isinstance(result, dict)
    assert result["errors"] == [], result["errors"]
    return result


def dist(answer: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        d for e in answer["environments"] if e["active"] for d in e["distributions"] if d["name"] == name
    ]
    assert found, name
    return found[0]


def test_the_apps_interpreter_and_how_it_was_found(answer: dict[str, Any], tree: Path) -> None:
    app = answer["app"]
    assert app["interpreter"] == sys.executable
    assert app["steps"][:2] == [f"svc -> {tree}/bin/svc", f"#!{sys.executable}"]
    assert app["entry_point"]["module"] == "svc_app.main"
    assert app["entry_point"]["from"] == "entry point svc = svc_app.main:run of svc 1.0"
    assert answer["python"]["executable"] == sys.executable


def test_sys_path_is_the_apps_own(answer: dict[str, Any], tree: Path) -> None:
    # the script's folder first (not the working directory), then PYTHONPATH, then the interpreter's
    assert answer["sys_path"][:3] == [str(tree / "bin"), str(tree / "vendor"), str(tree / "site")]
    assert str(tree / "work") not in answer["sys_path"]
    assert answer["cwd"] == str(tree / "work")


def test_imports_run_as_the_app_does(answer: dict[str, Any]) -> None:
    by_module = {i["module"]: i for i in answer["imports"]}
    assert by_module["svc_app.main:run"]["ok"] is True
    assert by_module["svc_app.main:run"]["source"] == "entry point"
    assert by_module["svc_app"]["ok"] is True
    # a copy in the working directory does not import for a console script: the app would not find it
    assert by_module["only_here"]["ok"] is False
    assert by_module["only_here"]["error"] == "ModuleNotFoundError: No module named 'only_here'"


def test_smoke_commands_run_in_the_apps_environment(answer: dict[str, Any], tree: Path) -> None:
    svc, shell = answer["commands"]
    assert (svc["returncode"], svc["stdout"]) == (0, "svc 1.0\n")
    assert shell["stdout"] == f"probe-test\n{tree / 'work'}\n"
    assert answer["which"]["svc"]["path"] == str(tree / "bin" / "svc")


def test_user_facts_are_the_apps(answer: dict[str, Any]) -> None:
    user = answer["user"]
    assert (user["uid"], user["euid"], user["gid"], user["egid"]) == (
        os.getuid(), os.geteuid(), os.getgid(), os.getegid(),
    )  # fmt: skip
    assert answer["app"]["user"]["spec"] == f"{os.getuid()}:{os.getgid()}"


def test_record_verification_finds_deleted_and_changed_files(answer: dict[str, Any], tree: Path) -> None:
    gutted = dist(answer, "gutted")["record"]
    assert (gutted["missing_count"], gutted["missing"]) == (1, [str(tree / "site" / "gutted" / "core.py")])
    edited = dist(answer, "edited")["record"]
    assert (edited["changed_count"], edited["changed"]) == (
        1,
        [str(tree / "site" / "edited" / "__init__.py")],
    )
    slimmed = dist(answer, "slimmed")["record"]
    assert (slimmed["missing_count"], slimmed["pruned"]) == (0, 1)
    svc = dist(answer, "svc")["record"]
    assert (svc["missing_count"], svc["changed_count"], svc["hashed"]) == (0, 0, 2)


def test_a_file_another_distribution_installed_over_is_overwritten_not_changed(
    answer: dict[str, Any], tree: Path
) -> None:
    first, last = dist(answer, "cli-a")["record"], dist(answer, "cli-b")["record"]
    both = str(tree / "bin" / "both")
    assert (first["changed_count"], first["overwritten"]) == (0, [{"path": both, "by": "cli-b"}])
    assert (last["changed_count"], last.get("overwritten")) == (0, None)
    # a file changed by hand is still changed, whatever else is installed
    assert dist(answer, "edited")["record"]["changed_count"] == 1


def test_top_level_imports_resolve_to_the_distributions_files_or_not(
    answer: dict[str, Any], tree: Path
) -> None:
    (shadowed,) = dist(answer, "shadowed")["imports"]
    assert shadowed["ok"] is False
    assert shadowed["origin"] == str(tree / "vendor" / "shadowed" / "__init__.py")
    (svc,) = dist(answer, "svc")["imports"]
    assert (svc["name"], svc["ok"]) == ("svc_app", True)


def test_distributions_not_asked_about_are_listed_without_verification(answer: dict[str, Any]) -> None:
    pytest_dist = dist(answer, "pytest")  # the interpreter's own site-packages, later on sys.path
    assert "record" not in pytest_dist
    assert pytest_dist["shadowed"] is False


def test_prunable_files() -> None:
    assert distributions._prunable("pkg/tests/test_x.py")
    assert distributions._prunable("pkg/__pycache__/x.cpython-313.pyc")
    assert distributions._prunable("pkg/x.pyi")
    assert distributions._prunable("pkg-1.0.dist-info/licenses/LICENSE")
    assert not distributions._prunable("pkg/core.py")
    assert not distributions._prunable("pkg/testing/helpers.py")  # public API in some packages


def test_top_level_names_of_a_record() -> None:
    base = "/site"
    rows = [
        (f"{base}/{p}", "", "")
        for p in (
            "pkg/__init__.py", "single.py", "_native.cpython-313-x86_64-linux-gnu.so",
            "pkg-1.0.dist-info/RECORD", "../../../bin/tool", "pkg.libs/libz.so", "data-only/readme.txt",
            "__pycache__/single.cpython-313.pyc",
        )
    ]  # fmt: skip
    assert distributions.top_level_names(base, rows) == {
        "pkg": f"{base}/pkg",
        "single": f"{base}/single.py",
        "_native": f"{base}/_native.cpython-313-x86_64-linux-gnu.so",
    }


def test_mount_points_other_than_the_root_and_volumes(tmp_path: Path) -> None:
    mountinfo = write(
        tmp_path / "mountinfo",
        "1 0 0:1 / / rw - overlay overlay rw\n"
        "2 1 0:2 / /proc rw - proc proc rw\n"
        "3 1 8:1 /var/lib/docker/containers/x/hosts /etc/hosts rw - ext4 /dev/sda1 rw\n"
        "4 1 8:1 /var/lib/docker/volumes/v/_data /data rw - ext4 /dev/sda1 rw\n"
        "5 1 8:1 / /with\\040space rw - ext4 /dev/sda1 rw\n",
    )
    assert walk.mount_points(["/data"], str(mountinfo)) == {"/proc", "/etc/hosts", "/with space"}


def test_dpkg_packages_and_owners(tmp_path: Path) -> None:
    status = write(
        tmp_path / "status",
        "Package: gcc-14\nStatus: install ok installed\nInstalled-Size: 40\n\n"
        "Package: libc6-dev\nStatus: install ok installed\nInstalled-Size: 10\n\n"
        "Package: removed-dev\nStatus: deinstall ok config-files\nInstalled-Size: 5\n",
    )
    assert walk._dpkg_status(str(status)) == {"gcc-14": 40 * 1024, "libc6-dev": 10 * 1024}
    write(tmp_path / "info" / "gcc-14.list", "/.\n/usr/bin/gcc-14\n/usr/bin/x86_64-linux-gnu-gcc-14\n")
    write(tmp_path / "info" / "libc6-dev:amd64.list", "/usr/include/stdio.h\n")
    owners = walk._dpkg_owners(
        ["/bin/gcc-14", "/usr/include/stdio.h", "/usr/bin/other"], str(tmp_path / "info")
    )
    assert owners == {"/bin/gcc-14": "gcc-14", "/usr/include/stdio.h": "libc6-dev"}


def test_the_walk_notes_build_tools_headers_and_source_trees(tmp_path: Path) -> None:
    gcc = write(tmp_path / "usr" / "bin" / "x86_64-linux-gnu-gcc-14", "binary")
    gcc.chmod(0o755)
    (tmp_path / "usr" / "bin" / "cc").symlink_to(gcc.name)
    write(tmp_path / "usr" / "bin" / "make", "not executable")  # no x bit: not a tool
    uv = write(tmp_path / "usr" / "local" / "bin" / "uv", "binary")
    uv.chmod(0o755)
    write(tmp_path / "usr" / "local" / "include" / "python3.13" / "Python.h", "/* */")
    write(tmp_path / "src" / "pyproject.toml", "[project]\n")
    write(tmp_path / "src" / "uv.lock", "")
    write(tmp_path / "app" / "pyproject.toml", "[project]\n")
    write(tmp_path / "app" / "uv.lock", "")
    app = {
        "cmd": ["true"],
        "workdir": str(tmp_path / "app"),
        "env": [f"PATH={tmp_path / 'usr' / 'bin'}:{os.environ['PATH']}"],
        "user": f"{os.getuid()}:{os.getgid()}",
    }
    spec = {"walk_roots": [str(tmp_path)], "app": app}
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe.source(), json.dumps(spec)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    tools = json.loads(done.stdout)["build_tools"]
    found = {(t["name"], t["kind"], t["real"]) for t in tools["tools"]}
    assert found == {
        ("x86_64-linux-gnu-gcc-14", "compiler", str(gcc)),
        ("cc", "compiler", str(gcc)),
        ("uv", "installer", str(uv)),
    }
    assert {t["name"]: t["on_path"] for t in tools["tools"]} == {
        "x86_64-linux-gnu-gcc-14": True,
        "cc": True,
        "uv": False,
    }
    assert [h["path"] for h in tools["headers"]] == [str(tmp_path / "usr/local/include/python3.13/Python.h")]
    trees = {t["path"]: t["app"] for t in tools["source_trees"]}
    assert trees == {
        str(tmp_path / "src"): False,
        str(tmp_path / "app"): True,
    }  # the working directory is the app's


def test_a_runner_that_puts_the_working_directory_on_sys_path_imports_the_app_from_there(
    tmp_path: Path,
) -> None:
    # astral-sh/uv-fastapi-example: a virtual project whose package `app` is only in WORKDIR /app, run by
    # `fastapi run app/main.py`. fastapi-cli puts the folder holding the app's top package (here the
    # working directory) on sys.path; the probe imports the app from there as well, as it does for uvicorn.
    site = tmp_path / "site"
    install(site, "fastapi", {"fastapi/__init__.py": "", "fastapi/cli.py": "def main():\n    pass\n"},
            "[console_scripts]\nfastapi = fastapi.cli:main\n")  # fmt: skip
    write(tmp_path / "work" / "app" / "__init__.py", "")
    script = write(
        tmp_path / "bin" / "fastapi",
        f"#!{sys.executable}\nimport sys\nfrom fastapi.cli import main\nsys.exit(main())\n",
    )
    script.chmod(0o755)
    spec = {
        "app": {
            "entrypoint": None,
            "cmd": ["fastapi", "run", "app/main.py"],
            "env": [f"PATH={tmp_path / 'bin'}:{os.environ['PATH']}", f"PYTHONPATH={site}"],
            "user": f"{os.getuid()}:{os.getgid()}",
            "workdir": str(tmp_path / "work"),
        },
        "imports": ["app"],
        "commands": [],
        "verify_records": [],
        "walk_roots": [str(tmp_path / "work")],
        "which": [],
    }
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe.source(), json.dumps(spec)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    by_module = {i["module"]: i for i in answer["imports"]}
    assert by_module["app"]["ok"] is True, by_module["app"]
    assert answer["app"]["imports_path"][0] == str(tmp_path / "work")
