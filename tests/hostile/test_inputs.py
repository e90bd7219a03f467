"""Hostile input that needs no engine: configuration shapes, encodings and values, CLI misuse, output
paths that cannot be written, through every door. Each row: one clear line, the documented exit
code, nothing left behind (see `harness`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hostile.harness import (
    Untouched,
    check_no_temp,
    check_outcome,
    environment,
    make_repo,
    run,
    unprivileged,
)

PYPROJECT = '[project]\nname = "victim"\nversion = "1.0"\nrequires-python = ">=3.11"\ndependencies = []\n'
NOXFILE = """\
import nox

from dockyard import sessions

verify_image = nox.session(name="verify-image", venv_backend="none")(sessions.verify_image)
"""


@dataclass(frozen=True)
class Row:
    id: str
    argv: tuple[str, ...]
    code: int
    says: str
    toml: str = ""  # appended to pyproject.toml
    pyproject: bytes | None = None  # replaces pyproject.toml
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    door: str = "cli"
    unprivileged: bool = False
    prepare: Callable[[Path, Path], None] | None = None  # (project, scratch): extra setup outside git


def _read_only_dir(project: Path, scratch: Path) -> None:
    (scratch / "ro").mkdir()
    (scratch / "ro").chmod(0o555)


def _machine_dir(project: Path, scratch: Path) -> None:
    (scratch / "machine.env").mkdir()


def _machine_latin1(project: Path, scratch: Path) -> None:
    (scratch / "machine.env").write_bytes(b"DOCKYARD_IMAGE=caf\xe9\n")


def _machine_junk(project: Path, scratch: Path) -> None:
    (scratch / "machine.env").write_text("# machine\nJUSTAWORD\n")


def _a_file(project: Path, scratch: Path) -> None:
    (scratch / "file").write_text("a file where a directory should be")


def _untracked(project: Path, scratch: Path) -> None:
    (project / "src" / "victim" / "new.py").write_text("")


IMG = "victim:1"  # a well-formed reference: rows that fail on outputs fail before looking it up
ROWS = [
    # --- pyproject.toml: shapes and encodings ---------------------------------------------------------
    Row("project-is-a-string", ("build",), 2, "`project` must be a table ([project]), not str", pyproject=b'project = "x"\n'),
    Row("tool-is-a-string", ("build",), 2, "`tool` must be a table ([tool]), not str",
        pyproject=b'tool = "x"\n' + PYPROJECT.encode()),
    Row("tool-dockyard-is-a-number", ("verify",), 2, "[tool.dockyard] must be a table, not int",
        toml="[tool]\ndockyard = 3\n"),
    Row("verify-is-a-string", ("verify",), 2, "verify: expected a table", toml='[tool.dockyard]\nverify = "x"\n'),
    Row("pyproject-not-utf8", ("build",), 2, "not UTF-8 (byte 105): save it as UTF-8",
        pyproject=PYPROJECT.encode() + b'description = "caf\xe9"\n'),
    Row("pyproject-not-toml", ("build",), 2, "not valid TOML", pyproject=b"[project\nname = 1\n"),
    Row("pyproject-no-name", ("build",), 2, "[project] name is missing", pyproject=b'[project]\nversion = "1"\n'),
    Row("pyproject-binary-garbage", ("size-report", IMG), 2, "not UTF-8 (byte 1)", pyproject=b"\x00\xff\xfe\x80" * 64),
    Row("unknown-key", ("build",), 2, "unknown key 'imgae'. Perhaps you meant 'image'?",
        toml='[tool.dockyard]\nimgae = "x"\n'),
    Row("wrong-type", ("build",), 2, "service: expected true or false", toml="[tool.dockyard]\nservice = 'yes'\n"),
    Row("smoke-without-command", ("verify",), 2, "`command` is required",
        toml="[tool.dockyard.verify]\nsmoke = [{expect = 'x'}]\n"),
    # --- the machine file ----------------------------------------------------------------------------------
    Row("machine-file-is-a-directory", ("build",), 2, "is a directory, not a file",
        env={"DOCKYARD_MACHINE_FILE": "{scratch}/machine.env"}, prepare=_machine_dir),
    Row("machine-file-not-utf8", ("build",), 2, "machine.env:1: byte 0xe9 is not UTF-8",
        env={"DOCKYARD_MACHINE_FILE": "{scratch}/machine.env"}, prepare=_machine_latin1),
    Row("machine-file-bad-line", ("build",), 2, "machine.env:2: expected KEY=VALUE",
        env={"DOCKYARD_MACHINE_FILE": "{scratch}/machine.env"}, prepare=_machine_junk),
    # --- values ---------------------------------------------------------------------------------------------
    Row("size-budget-zero", ("build",), 2, "size-budget: 0 must be more than 0 bytes",
        toml="[tool.dockyard]\nsize-budget = 0\n"),
    Row("size-budget-negative", ("build",), 2, "'-5MB' is not a size", toml="[tool.dockyard]\nsize-budget = '-5MB'\n"),
    Row("size-budget-words", ("build",), 2, "'huge' is not a size", toml="[tool.dockyard]\nsize-budget = 'huge'\n"),
    Row("size-budget-env-zero", ("build",), 2, "DOCKYARD_SIZE_BUDGET: '0' must be more than 0 bytes",
        env={"DOCKYARD_SIZE_BUDGET": "0"}),
    Row("layer-cache-max-changed-zero", ("verify",), 2, "layer-cache-max-changed: 0 must be more than 0",
        toml="[tool.dockyard.verify]\nlayer-cache-max-changed = 0\n"),
    Row("timeout-zero", ("verify",), 2, "verify.timeout: expected a number of seconds above 0",
        toml="[tool.dockyard.verify]\ntimeout = 0\n"),
    Row("timeout-negative", ("verify",), 2, "above 0", toml="[tool.dockyard.verify]\ntimeout = -1\n"),
    Row("timeout-infinite", ("verify",), 2, "a finite number of seconds", toml="[tool.dockyard.verify]\ntimeout = inf\n"),
    Row("healthcheck-timeout-zero", ("verify",), 2, "healthcheck-timeout: expected a number of seconds above 0",
        toml="[tool.dockyard.verify]\nhealthcheck-timeout = 0\n"),
    Row("smoke-timeout-zero", ("verify",), 2, "smoke[0].timeout: expected a number of seconds above 0",
        toml="[tool.dockyard.verify]\nsmoke = [{command = ['x'], timeout = 0}]\n"),
    Row("port-zero", ("verify",), 2, "verify.ports: 0 is not a port number (1-65535)",
        toml="[tool.dockyard.verify]\nports = [0]\n"),
    Row("port-too-high", ("verify",), 2, "70000 is not a port number", toml="[tool.dockyard.verify]\nports = [70000]\n"),
    Row("port-a-string", ("verify",), 2, "expected a list of port numbers", toml="[tool.dockyard.verify]\nports = ['80']\n"),
    Row("growth-threshold-too-high", ("build",), 2, "is outside 0%-1000%",
        toml="[tool.dockyard.size]\ngrowth-threshold = '1001%'\n"),
    Row("growth-threshold-negative", ("build",), 2, "is not a percentage",
        toml="[tool.dockyard.size]\ngrowth-threshold = '-5%'\n"),
    Row("image-trailing-dash", ("build",), 2, "'relaudit-app-' is not a valid image name",
        toml="[tool.dockyard]\nimage = 'relaudit-app-'\n"),
    Row("image-leading-dash", ("build",), 2, "'-x' is not a valid image name", toml="[tool.dockyard]\nimage = '-x'\n"),
    Row("image-uppercase", ("build",), 2, "image names are lowercase", toml="[tool.dockyard]\nimage = 'acme/API'\n"),
    Row("image-with-tag", ("build",), 2, "no tag or digest here", toml="[tool.dockyard]\nimage = 'acme/api:1.0'\n"),
    Row("image-env-bad", ("build",), 2, "DOCKYARD_IMAGE: 'bad name' is not a valid image name",
        env={"DOCKYARD_IMAGE": "bad name"}),
    Row("history-absolute", ("build",), 2, "history: /tmp/sizes.json is absolute",
        toml="[tool.dockyard.size]\nhistory = '/tmp/sizes.json'\n"),
    Row("history-climbs-out", ("build",), 2, "history: ../sizes.json leads outside",
        toml="[tool.dockyard.size]\nhistory = '../sizes.json'\n"),
    Row("history-through-symlink-out", ("build",), 2, "leads outside",
        toml="[tool.dockyard.size]\nhistory = 'assets/outside'\n"),
    Row("ca-bundle-missing", ("build",), 2, "does not exist: fix ca-bundle",
        toml="[tool.dockyard]\nca-bundle = 'nope.pem'\n"),
    Row("skip-unknown-in-config", ("verify",), 2, "unknown check id(s) nope",
        toml="[tool.dockyard.verify]\nskip = ['nope']\n"),
    # --- layer-cache-touch: never a file outside the scratch copy --------------------------------------------
    Row("touch-absolute", ("verify",), 2, "layer-cache-touch: /etc/hostname is absolute",
        toml="[tool.dockyard.verify]\nlayer-cache-touch = '/etc/hostname'\n"),
    Row("touch-climbs-out", ("verify",), 2, "leads outside",
        toml="[tool.dockyard.verify]\nlayer-cache-touch = '../../outside/host-file'\n"),
    Row("touch-symlink-out", ("verify",), 2, "leads outside",
        toml="[tool.dockyard.verify]\nlayer-cache-touch = 'assets/outside'\n"),
    Row("touch-a-directory", ("verify", IMG), 2, "is not a regular file",
        toml="[tool.dockyard.verify]\nlayer-cache-touch = 'src'\n"),
    Row("touch-untracked", ("verify",), 2, "is not tracked by git",
        toml="[tool.dockyard.verify]\nlayer-cache-touch = 'src/victim/new.py'\n", prepare=_untracked),
    # --- the docker CLI setting --------------------------------------------------------------------------------
    Row("docker-not-docker", ("build",), 2, "which is not a docker CLI", env={"DOCKYARD_DOCKER": "/bin/true"}),
    Row("docker-a-directory", ("build",), 2, "which is not a docker CLI", env={"DOCKYARD_DOCKER": "/tmp"}),
    Row("docker-missing", ("build",), 2, "which is not a docker CLI", env={"DOCKYARD_DOCKER": "no-such-docker-cli"}),
    Row("docker-in-config", ("size-report", IMG), 2, "which is not a docker CLI",
        toml="[tool.dockyard]\ndocker = '/etc/hostname'\n"),
    # --- the command line ----------------------------------------------------------------------------------------
    Row("no-command", (), 2, "the following arguments are required: command"),
    Row("unknown-command", ("deploy",), 2, "invalid choice: 'deploy'"),
    Row("skip-unknown", ("verify", "--skip", "nope"), 2, "unknown check id(s) nope"),
    Row("only-unknown", ("verify", IMG, "--only", "nope"), 2, "unknown check id(s) nope"),
    Row("two-images", ("verify", "a:1", "--image", "b:1"), 2, "two images given (a:1, b:1)"),
    Row("two-images-size", ("size-report", "a:1", "--image", "b:1"), 2, "two images given"),
    Row("bad-reference", ("verify", "Bad Ref!"), 2, "IMAGE: 'Bad Ref!' is not a valid image reference"),
    Row("empty-reference", ("verify", ""), 2, "IMAGE: '' is not a valid image reference"),
    Row("bad-reference-size", ("size-report", "acme/api:-x"), 2, "is not a valid tag"),
    Row("bad-base-reference", ("size-report", IMG, "--base", "a b"), 2, "--base: 'a b' is not a valid"),
    Row("bad-digest", ("verify", "acme/api@sha256:zz"), 2, "has an invalid digest"),
    Row("bad-tag", ("build", "--tag", "acme/api:.bad"), 2, "--tag: '.bad' is not a valid tag"),
    Row("build-arg-without-value", ("build", "--build-arg", "NOVALUE"), 2, "expected KEY=VALUE"),
    Row("missing-option-value", ("size-report", "--json"), 2, "expected one argument"),
    Row("no-project", ("--project", "/nonexistent-dir", "verify"), 2, "no pyproject.toml"),
    Row("pyproject-is-a-directory", ("--project", "{scratch}", "build"), 2, "no pyproject.toml",
        prepare=lambda project, scratch: (scratch / "pyproject.toml").mkdir()),
    Row("compose-skip-unknown", ("verify-compose", "--skip", "nope"), 2, "unknown check id(s) nope"),
    Row("lock-unknown-flag", ("lock", "--bogus"), 2, "unrecognized arguments: --bogus"),
    # --- output paths, checked before any build or container ------------------------------------------------------
    Row("json-is-a-directory", ("verify", IMG, "--json", "{scratch}"), 2, "--json {scratch} is a directory"),
    Row("junit-proc-file", ("verify", IMG, "--junit", "/proc/version"), 2, "/proc does not accept new files"),
    Row("markdown-under-proc", ("verify", IMG, "--markdown", "/proc/dockyard/r.md"), 2, "does not accept new files"),
    Row("json-under-a-file", ("verify", IMG, "--json", "{scratch}/file/r.json"), 2, "is not a directory",
        prepare=_a_file),
    Row("json-read-only-dir", ("verify", IMG, "--json", "{scratch}/ro/r.json"), 2, "cannot write --json",
        unprivileged=True, prepare=_read_only_dir),
    Row("outputs-before-the-build", ("verify", "--junit", "/proc/version"), 2, "/proc does not accept new files"),
    Row("size-json-directory", ("size-report", IMG, "--json", "{scratch}"), 2, "is a directory"),
    Row("size-markdown-proc", ("size-report", IMG, "--markdown", "/proc/version"), 2, "does not accept new files"),
    Row("compose-junit-proc", ("verify-compose", "--junit", "/proc/version"), 2, "does not accept new files"),
    Row("step-summary-proc", ("verify", IMG), 2, "GITHUB_STEP_SUMMARY /proc/version",
        env={"GITHUB_STEP_SUMMARY": "/proc/version"}),
    # --- the Invoke and Nox doors --------------------------------------------------------------------------------
    Row("invoke-json-directory", ("verify", "--image", IMG, "--json", "{scratch}"), 2, "is a directory",
        door="invoke"),
    Row("invoke-size-markdown-proc", ("size-report", "--image", IMG, "--markdown", "/proc/version"), 2,
        "does not accept new files", door="invoke"),
    Row("invoke-bad-config", ("build",), 2, "size-budget: 0 must be more than 0 bytes",
        toml="[tool.dockyard]\nsize-budget = 0\n", door="invoke"),
    Row("invoke-bad-reference", ("size-report", "--image", "Bad:Ref:"), 2, "is not a valid", door="invoke"),
    Row("nox-json-directory", ("-s", "verify-image", "--", "--image", IMG, "--json", "{scratch}"), 1,
        "is a directory", door="nox"),
]  # fmt: skip


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the project that the project links to."""
    secret = tmp_path / "outside" / "host-file"
    secret.parent.mkdir()
    secret.write_text("bytes of a file outside the project\n")
    return secret


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_hostile_input(row: Row, tmp_path: Path, outside: Path) -> None:
    project = tmp_path / "project"
    files: dict[str, str | bytes] = {
        "pyproject.toml": row.pyproject if row.pyproject is not None else PYPROJECT + row.toml,
        "src/victim/__init__.py": "",
        "assets/outside": f"->{outside}",
        "tasks.py": "from dockyard.tasks import ns\n",
        "noxfile.py": NOXFILE,
        "Dockerfile": "FROM scratch\n",
        **row.files,
    }
    make_repo(project, files)
    scratch, temp, state = tmp_path / "scratch", tmp_path / "tmp", tmp_path / "state"
    for directory in (scratch, temp, state):
        directory.mkdir()
    if row.prepare is not None:
        row.prepare(project, scratch)
    untouched = Untouched.of(project)
    outside_before = outside.read_bytes()

    def fill(text: str) -> str:
        return text.replace("{scratch}", str(scratch)).replace("{project}", str(project))

    env = environment(temp, state, {k: fill(v) for k, v in row.env.items()}, machine=False)
    prefix = unprivileged() if row.unprivileged else []
    try:
        ran = run([fill(a) for a in row.argv], cwd=project, env=env, door=row.door, prefix=prefix)
    finally:
        if (scratch / "ro").exists():
            (scratch / "ro").chmod(0o755)
    check_outcome(ran, row.code, fill(row.says))
    untouched.check()
    check_no_temp(temp)
    assert outside.read_bytes() == outside_before
    assert not any(state.rglob("*.json")), "a run that failed on its input recorded nothing"


def test_the_table_is_large_enough() -> None:
    assert len(ROWS) >= 70
    assert len({row.id for row in ROWS}) == len(ROWS)
