"""The in-container probe, run for real: the host's Python executes its source as dockyard would
inside an image (``python -I -S -c <source> <spec>``), against directory trees built under tmp_path."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

import pytest

from dockyard.verify import probe

# Assembled from pieces so secret scanners do not flag this fake, unusable key.
PEM_KEY = (
    "-----BEGIN " + "OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBmYWtlZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2U=\n"
    "-----END " + "OPENSSH PRIVATE KEY-----\n"
)
# Source that only names the marker (as ssl or auth libraries do) is not a key.
MARKER_ONLY = 'HEADER = "-----BEGIN RSA ' + 'PRIVATE KEY-----"\n'
FORBIDDEN_NAMES = [".env", ".env.*", ".git", ".pytest_cache", "id_rsa", "*.key"]
PROJECT_TESTS = "def test_app():\n    assert True\n"
GIT_ENV = "inside a reported dir: not reported again\n"
METADATA = "Metadata-Version: 2.1\nName: Demo_Pkg.Extra\nVersion: 1.2.3\n"


def run_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the probe's source exactly as dockyard does in a container; one JSON document out."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe.source(), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    report: dict[str, Any] = json.loads(lines[0])
    return report


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def tree_bytes(root: Path) -> int:
    """Independent count: bytes of regular files below root, symlinks not followed."""
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                total += path.stat().st_size
    return total


def build_site_packages(site: Path) -> None:
    """A real installed distribution: METADATA, RECORD, byte-compiled files outside RECORD."""
    write(site / "demo_pkg" / "__init__.py", "x" * 100)
    write(site / "demo_pkg" / "util.py", "y" * 50)
    write(site / "demo_pkg" / "__pycache__" / "__init__.cpython-312.pyc", "c" * 30)
    write(site / "demo_pkg" / "__pycache__" / "util.cpython-312.opt-1.pyc", "o" * 20)
    write(site / "demo_pkg" / "__pycache__" / "orphan.cpython-312.pyc", "n" * 7)  # no listed .py
    write(site / "demo_pkg" / ".env", "SHIPPED=1\n")  # not in RECORD: put there by the build
    write(site / "demo_pkg" / "testdata" / "server.pem", PEM_KEY)  # not in RECORD either
    info = site / "Demo_Pkg.Extra-1.2.3.dist-info"
    write(info / "METADATA", METADATA)
    record = "".join(
        f"{line}\n"
        for line in (
            "demo_pkg/__init__.py,sha256=abc,100",
            "demo_pkg/util.py,sha256=def,50",
            "demo_pkg/missing.py,sha256=ghi,10",
            "Demo_Pkg.Extra-1.2.3.dist-info/METADATA,sha256=jkl,52",
            "Demo_Pkg.Extra-1.2.3.dist-info/RECORD,,",
        )
    )
    write(info / "RECORD", record)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image")
    app = root / "app"
    write(app / "main.py", "print('hi')\n")
    write(app / ".env", "SECRET=1\n")
    write(app / ".env.production", "SECRET=2\n")
    write(app / "config.key", "")
    write(app / ".git" / "HEAD", "ref: refs/heads/main\n")
    write(app / ".git" / "objects" / "ab" / "cdef", "0123456789")
    write(app / ".git" / ".env", GIT_ENV)
    write(app / "deploy.pem", PEM_KEY)
    write(app / "ssl_helpers.py", MARKER_ONLY)
    write(app / "tests" / "test_main.py", "def test_x():\n    pass\n")
    write(app / "src" / "pkg" / "tests" / "test_inner.py", "")  # not /app/tests, nor the project's
    write(app / ".ENV", "CASE=1\n")  # names match whatever their case
    write(app / ".env~", "BACKUP=1\n")  # editor backups of a forbidden name
    write(app / "#.env#", "AUTOSAVE=1\n")
    write(app / ".env.swp", "SWAP=1\n")
    write(app / "id_rsa.old", "old key\n")
    # a bundle: a key after more than a read's worth of certificates, across a read boundary
    filler = b"-----BEGIN CERTIFICATE-----\n" + b"A" * (1024 * 1024 - 40) + b"\n"
    (app / "server.pem").write_bytes(filler + PEM_KEY.encode())
    (app / "native.so").write_bytes(b"\x7fELF" + b"\0" * 64 + PEM_KEY.encode())  # binaries are not read
    write(root / "opt" / "svc" / "tests" / "test_app.py", PROJECT_TESTS)  # the project's tests/, moved
    write(root / "opt" / "svc" / "tests" / "helpers.py", "")
    write(root / "opt" / "other" / "tests" / "test_other.py", "x")  # someone else's tests: not ours
    (app / "loop").symlink_to(root)  # followed, the walk would never end
    write(root / "skipped" / ".env", "excluded from the walk\n")

    host = root / "hostvenv"  # a venv built on a host, copied in: its interpreter is missing
    write(host / "pyvenv.cfg", "home = /home/dev/.local/share/uv/python/cpython-3.12/bin\n")
    (host / "bin").mkdir()
    (host / "bin" / "python").symlink_to("/nonexistent/python3.12")
    build_site_packages(host / "lib" / "python3.12" / "site-packages")

    good = root / "goodvenv"  # interpreter present: a working environment, not a stray
    write(good / "pyvenv.cfg", f"home = {Path(sys.executable).parent}\n")
    (good / "bin").mkdir()
    (good / "bin" / "python").symlink_to(sys.executable)
    (good / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    build_published(good / "lib" / "python3.11" / "site-packages")
    return root


def record_line(site: Path, relative: str) -> str:
    digest = hashlib.sha256((site / relative).read_bytes()).digest()
    encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return f"{relative},sha256={encoded},{(site / relative).stat().st_size}\n"


def build_published(site: Path) -> None:
    """A third-party distribution whose RECORD lists, with their hashes, a `.env` and a key of its own:
    published content, byte for byte; and one whose listed key was replaced after installing."""
    write(site / "published" / "__init__.py", "")
    write(site / "published" / "fixtures" / ".env", "PUBLISHED=1\n")
    write(site / "published" / "fixtures" / "test.key", PEM_KEY)
    info = site / "published-1.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: published\nVersion: 1.0\n")
    lines = [
        record_line(site, f)
        for f in ("published/__init__.py", "published/fixtures/.env", "published/fixtures/test.key")
    ]
    write(info / "RECORD", "".join(lines) + "published-1.0.dist-info/RECORD,,\n")
    write(site / "tampered" / "id_rsa", "original\n")
    info = site / "tampered-1.0.dist-info"
    write(info / "METADATA", "Metadata-Version: 2.1\nName: tampered\nVersion: 1.0\n")
    write(info / "RECORD", record_line(site, "tampered/id_rsa"))
    write(site / "tampered" / "id_rsa", PEM_KEY)  # replaced after installing


@pytest.fixture(scope="module")
def report(root: Path) -> dict[str, Any]:
    return run_probe(
        {
            "walk_roots": [str(root)],
            "walk_exclude": [str(root / "skipped")],
            "forbidden_names": FORBIDDEN_NAMES,
            "forbidden_paths": [f"{root}/app/tests", f"{root}/app/docs"],
            "project_trees": {"tests": [["test_app.py", len(PROJECT_TESTS)], ["unit/test_x.py", 9]]},
            "imports": ["json", "no_such_module_xyz"],
            "commands": [
                {"argv": [sys.executable, "-c", "import time; time.sleep(5)"], "timeout": 0.5},
                {"argv": ["/nonexistent/definitely-not-here", "--version"]},
                {
                    "argv": [
                        sys.executable,
                        "-c",
                        "import sys; print('out'); print('x' * 5000, file=sys.stderr); sys.exit(3)",
                    ],
                    "timeout": 10,
                },
                {"argv": "not a list"},
            ],
        }
    )


def strays(report: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {s["path"]: (s["reason"], s["size"]) for s in report["stray_files"]}


def environment(report: dict[str, Any], path: Path) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [e for e in report["environments"] if e["path"] == str(path)]
    assert len(matches) == 1, [e["path"] for e in report["environments"]]
    return matches[0]


def test_stray_files_are_exactly_the_forbidden_names_paths_keys_trees_and_host_venv(
    report: dict[str, Any], root: Path
) -> None:
    app = root / "app"
    site = root / "hostvenv" / "lib" / "python3.12" / "site-packages"
    big = app / "server.pem"
    assert strays(report) == {
        str(app / ".env"): (".env", 9),
        str(app / ".ENV"): (".env", 7),
        str(app / ".env~"): (".env", 9),
        str(app / "#.env#"): (".env", 11),
        str(app / ".env.production"): (".env.*", 9),
        str(app / ".env.swp"): (".env.*", 7),
        str(app / "id_rsa.old"): ("id_rsa", 8),
        str(app / "config.key"): ("*.key", 0),
        str(app / ".git"): (".git", len("ref: refs/heads/main\n") + 10 + len(GIT_ENV)),  # whole tree, once
        str(app / "deploy.pem"): ("private key", len(PEM_KEY)),
        str(big): ("private key", big.stat().st_size),
        str(app / "tests"): (f"{root}/app/tests", len("def test_x():\n    pass\n")),
        str(root / "opt" / "svc" / "tests"): (
            "the project's tests/ (holds tests/test_app.py)",
            len(PROJECT_TESTS),
        ),
        str(root / "hostvenv"): ("host virtual environment", tree_bytes(root / "hostvenv")),
        # no blanket exemption of site-packages: what no RECORD lists was put there by the build
        str(site / "demo_pkg" / ".env"): (".env", 10),
        str(site / "demo_pkg" / "testdata" / "server.pem"): ("private key", len(PEM_KEY)),
        **{
            str(good / name): (reason, size)
            for good in [root / "goodvenv" / "lib" / "python3.11" / "site-packages"]
            for name, reason, size in (
                ("published/fixtures/.env", ".env", 12),
                ("published/fixtures/test.key", "*.key", len(PEM_KEY)),
                ("tampered/id_rsa", "id_rsa", len(PEM_KEY)),
            )
        },
    }
    assert report["errors"] == []


def test_a_stray_a_distribution_installed_says_so_and_whether_its_bytes_are_as_recorded(
    report: dict[str, Any], root: Path
) -> None:
    site = root / "goodvenv" / "lib" / "python3.11" / "site-packages"
    owners = {s["path"]: s["owner"] for s in report["stray_files"]}
    assert owners[str(site / "published" / "fixtures" / ".env")] == {
        "name": "published", "label": "published 1.0", "verified": True,
    }  # fmt: skip
    assert owners[str(site / "tampered" / "id_rsa")] == {
        "name": "tampered",
        "label": "tampered 1.0",
        "verified": False,
    }
    assert owners[str(root / "app" / ".env")] is None
    hostsite = root / "hostvenv" / "lib" / "python3.12" / "site-packages"
    assert owners[str(hostsite / "demo_pkg" / ".env")] is None  # in the package's folder, not in its RECORD


def test_excluded_dirs_symlinks_and_marker_only_source_are_not_reported(
    report: dict[str, Any], root: Path
) -> None:
    paths = set(strays(report))
    assert str(root / "skipped" / ".env") not in paths
    assert str(root / "app" / "ssl_helpers.py") not in paths  # names the marker, holds no key
    assert str(root / "app" / "native.so") not in paths  # a compiled library is not read for keys
    assert not any(p.startswith(str(root / "app" / "loop")) for p in paths)  # symlink not followed
    assert str(root / "opt" / "other" / "tests") not in paths  # a tests/ folder that is not the project's
    assert str(root / "app" / "src" / "pkg" / "tests") not in paths


def test_host_venv_is_an_inactive_environment_with_a_missing_interpreter(
    report: dict[str, Any], root: Path
) -> None:
    env = environment(report, root / "hostvenv" / "lib" / "python3.12" / "site-packages")
    assert env["active"] is False
    assert env["venv_root"] == str(root / "hostvenv")
    assert env["interpreter_ok"] is False
    assert env["error"] is None
    good = environment(report, root / "goodvenv" / "lib" / "python3.11" / "site-packages")
    assert (good["venv_root"], good["interpreter_ok"]) == (str(root / "goodvenv"), True)
    assert [d["name"] for d in good["distributions"]] == ["published", "tampered"]


def test_distribution_size_counts_record_files_and_their_bytecode(report: dict[str, Any], root: Path) -> None:
    site = root / "hostvenv" / "lib" / "python3.12" / "site-packages"
    env = environment(report, site)
    record_size = len((site / "Demo_Pkg.Extra-1.2.3.dist-info" / "RECORD").read_bytes())
    assert env["distributions"] == [
        {
            "name": "demo-pkg-extra",  # PEP 503 normalized
            "version": "1.2.3",
            "path": str(site / "Demo_Pkg.Extra-1.2.3.dist-info"),
            # __init__.py + util.py + METADATA + RECORD + their two .pyc; not the orphan .pyc
            "size": 100 + 50 + len(METADATA) + record_size + 30 + 20,
            "files": 6,
            "missing": 1,  # demo_pkg/missing.py counts 0 bytes
            "error": None,
        }
    ]


def test_the_running_interpreters_site_packages_come_first_and_active(
    report: dict[str, Any],
) -> None:
    first = report["environments"][0]
    assert first["active"] is True
    assert os.path.realpath(first["path"]) == os.path.realpath(sysconfig.get_paths()["purelib"])
    assert "pytest" in {d["name"] for d in first["distributions"]}
    assert [e["active"] for e in report["environments"]][-2:] == [False, False]


def test_imports_run_in_subprocesses_and_report_the_error_line(report: dict[str, Any]) -> None:
    ok, missing = report["imports"]
    assert (ok["module"], ok["ok"], ok["error"], ok["timed_out"]) == ("json", True, None, False)
    assert missing["module"] == "no_such_module_xyz"
    assert missing["ok"] is False
    assert missing["error"] == "ModuleNotFoundError: No module named 'no_such_module_xyz'"
    assert ok["seconds"] >= 0
    assert {ok["source"], missing["source"]} == {"configured"}


def test_a_hanging_command_times_out(report: dict[str, Any]) -> None:
    sleeper = report["commands"][0]
    assert sleeper["timed_out"] is True
    assert sleeper["returncode"] is None
    assert sleeper["error"] is None
    assert 0.5 <= sleeper["seconds"] < 2.0


def test_a_missing_executable_is_an_error_not_a_crash(report: dict[str, Any]) -> None:
    missing = report["commands"][1]
    assert missing["error"] == "executable not found: /nonexistent/definitely-not-here"
    assert (missing["returncode"], missing["timed_out"]) == (None, False)


def test_command_output_and_status_are_recorded_and_truncated(report: dict[str, Any]) -> None:
    done = report["commands"][2]
    assert (done["returncode"], done["stdout"], done["timed_out"]) == (3, "out\n", False)
    assert done["stderr"] == "x" * 4000
    bad = report["commands"][3]
    assert bad["argv"] is None
    assert bad["error"].startswith("invalid command spec")


def test_python_user_env_and_walk_sections(report: dict[str, Any]) -> None:
    version = "{}.{}.{}".format(*sys.version_info[:3])
    assert report["python"]["version"] == version
    assert report["python"]["executable"] == sys.executable
    assert report["python"]["in_venv"] is (sys.prefix != sys.base_prefix)
    assert report["user"]["uid"] == os.getuid()
    assert report["env"]["PATH"] == os.environ["PATH"]
    assert report["cwd"] == str(Path.cwd())
    assert report["walk"]["truncated"] is False
    assert report["walk"]["files"] > 10
    assert report["walk"]["dirs"] > 10


def test_a_timed_out_command_loses_its_whole_process_group(tmp_path: Path) -> None:
    # The shell's background child keeps stdout open; only killing the group ends it promptly.
    started = time.monotonic()
    result = run_probe(
        {
            "walk_roots": [str(tmp_path)],
            "commands": [{"argv": ["sh", "-c", "sleep 30 & sleep 30; wait"], "timeout": 0.3}],
        }
    )
    (command,) = result["commands"]
    assert command["timed_out"] is True
    assert command["seconds"] < 1.5
    assert time.monotonic() - started < 5


def test_deadline_zero_truncates_the_walk(root: Path) -> None:
    result = run_probe({"walk_roots": [str(root)], "forbidden_names": FORBIDDEN_NAMES, "deadline_seconds": 0})
    assert result["walk"]["truncated"] is True
    assert (result["walk"]["files"], result["walk"]["dirs"]) == (0, 0)
    assert result["stray_files"] == []
    assert result["errors"] == []


@pytest.mark.parametrize(
    ("document", "error"),
    [("{not json", "spec: not JSON: "), ("[1, 2]", "spec: expected a JSON object, got list")],
)
def test_a_bad_spec_is_reported_and_nothing_costly_runs(document: str, error: str) -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe.source(), document],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(done.stdout)
    assert len(result["errors"]) == 1
    assert result["errors"][0].startswith(error)
    assert result["python"]["version"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert result["walk"] == {
        "files": 0,
        "dirs": 0,
        "unreadable": 0,
        "unreadable_paths": [],
        "seconds": result["walk"]["seconds"],
        "truncated": False,
    }


def test_unknown_or_mistyped_spec_keys_are_reported(tmp_path: Path) -> None:
    result = run_probe({"walk_roots": [str(tmp_path)], "imports": "json", "bogus": 1})
    assert result["imports"] == []
    assert sorted(result["errors"]) == [
        "spec: ignored 'bogus': unknown key or bad value 1",
        "spec: ignored 'imports': unknown key or bad value 'json'",
    ]


def test_source_is_the_parts_joined_into_one_program() -> None:
    text = probe.source()
    assert text.startswith("from __future__ import annotations\n")
    assert text.count("from __future__") == 1
    assert "from dockyard" not in text  # the imports between parts are dropped
    for part in probe.PARTS:  # every part, in order
        first = Path(probe.__file__).with_name(f"{part}.py").read_text().split('"""')[1]
        assert first in text
    # one argument of a command line: Linux refuses a single argument longer than 128 KiB
    assert len(text.encode()) < 120_000


def test_no_name_is_defined_by_two_parts() -> None:
    seen: dict[str, str] = {}
    for part in probe.PARTS:
        tree = ast.parse(Path(probe.__file__).with_name(f"{part}.py").read_text())
        for node in tree.body:
            names = (
                [node.name]
                if isinstance(node, ast.FunctionDef | ast.ClassDef)
                else [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            )
            for name in names:
                assert name not in seen, f"{name} is defined in {seen.get(name)} and {part}"
                seen[name] = part


def test_which_resolves_executables_and_their_permissions(tmp_path: Path) -> None:
    runnable = tmp_path / "runnable"
    runnable.write_text("#!/bin/sh\n")
    runnable.chmod(0o755)
    plain = tmp_path / "plain"
    plain.write_text("data")
    answer = run_probe({"walk_roots": [], "which": ["sh", str(runnable), str(plain), "no-such-tool-xyz"]})
    assert answer["which"]["sh"]["executable"] is True
    assert answer["which"][str(runnable)] == {"path": str(runnable), "executable": True}
    assert answer["which"][str(plain)] == {"path": str(plain), "executable": False}
    assert answer["which"]["no-such-tool-xyz"] == {"path": None, "executable": False}


def test_a_package_cache_that_holds_something_is_stray_and_an_empty_one_is_not(tmp_path: Path) -> None:
    # carderne/postmodern-mono runs `uv sync` without a cache mount: /root/.cache/uv ships, holding an
    # empty `.git` marker (not a repository). uv-docker-example mounts the cache: only the empty mount
    # point stays in the image.
    from dockyard.verify.checks.files import PACKAGE_CACHE_PATHS  # noqa: PLC0415

    write(tmp_path / "heavy" / ".cache" / "uv" / "sdists-v10" / ".git", "")
    write(tmp_path / "heavy" / ".cache" / "uv" / "wheels-v7" / "cowsay.whl", "w" * 500)
    installed = write(tmp_path / "venv" / "cowsay.py", "c" * 300)  # uv's default: a hard link to its cache
    (tmp_path / "heavy" / ".cache" / "uv" / "archive-v0").mkdir()
    os.link(installed, tmp_path / "heavy" / ".cache" / "uv" / "archive-v0" / "cowsay.py")
    (tmp_path / "light" / ".cache" / "uv").mkdir(parents=True)
    write(tmp_path / "marker" / ".git", "")  # an empty file named .git elsewhere: no VCS data
    write(tmp_path / "repo" / ".git" / "HEAD", "ref: refs/heads/main\n")
    result = run_probe(
        {
            "walk_roots": [str(tmp_path)],
            "forbidden_names": FORBIDDEN_NAMES,
            "forbidden_paths": list(PACKAGE_CACHE_PATHS),
        }
    )
    strays = {item["path"]: (item["reason"], item["size"]) for item in result["stray_files"]}
    assert strays == {
        str(tmp_path / "heavy" / ".cache" / "uv"): (
            "the uv package cache; files hard-linked to installed ones not counted",
            500,
        ),
        str(tmp_path / "repo" / ".git"): (".git", 21),
    }
