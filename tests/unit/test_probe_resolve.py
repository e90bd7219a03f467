"""How the probe finds what the app runs and as whom, on small trees built under tmp_path: USER as
Docker resolves it, ENTRYPOINT/CMD followed as the kernel and Python do, and what raises privileges."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from dockyard.verify.probe import resolve
from dockyard.verify.probe.resolve import parse_python_args, resolve_command, resolve_user, shell_target

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
# a comment line
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:10001:10001::/app:/usr/sbin/nologin
web:x:10002:10001::/srv/web:/bin/sh
boss:x:0:0::/home/boss:/bin/sh
broken-line
"""
GROUP = """\
root:x:0:
app:x:10001:
docker:x:998:web,app
audio:x:29:web
"""


@pytest.fixture
def etc(tmp_path: Path) -> tuple[str, str]:
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text(PASSWD)
    group.write_text(GROUP)
    return str(passwd), str(group)


@pytest.mark.parametrize(
    ("spec", "uid", "gid", "groups", "name", "home"),
    [
        ("", 0, 0, [], "root", "/root"),  # no USER: root
        ("app", 10001, 10001, [998], "app", "/app"),  # passwd gid, supplementary groups by name
        ("web", 10002, 10001, [998, 29], "web", "/srv/web"),
        ("10001", 10001, 10001, [998], "app", "/app"),  # a uid finds its passwd line
        ("10001:10001", 10001, 10001, [], "app", "/app"),  # an explicit group: no supplementary ones
        ("app:docker", 10001, 998, [], "app", "/app"),  # a group by name
        ("4242", 4242, 0, [], None, "/"),  # a uid without a passwd line: gid 0, home /
        ("4242:4242", 4242, 4242, [], None, "/"),
        ("boss", 0, 0, [], "boss", "/home/boss"),  # a name for uid 0 is root too
    ],
)
def test_user_resolves_as_docker_does(
    etc: tuple[str, str], spec: str, uid: int, gid: int, groups: list[int], name: str | None, home: str
) -> None:
    found = resolve_user(spec, *etc)
    assert (found["uid"], found["gid"], found["groups"], found["name"], found["home"]) == (
        uid, gid, groups, name, home,
    )  # fmt: skip
    assert found["error"] is None


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("nobody-here", "unable to find user nobody-here"),
        ("app:nogroup", "unable to find group nogroup"),
    ],
)
def test_an_unknown_user_or_group_is_an_error_as_in_docker(
    etc: tuple[str, str], spec: str, error: str
) -> None:
    assert resolve_user(spec, *etc)["error"].startswith(error)


def test_no_passwd_file_still_resolves_numeric_users(tmp_path: Path) -> None:
    found = resolve_user("1234:5678", str(tmp_path / "none"), str(tmp_path / "none"))
    assert (found["uid"], found["gid"], found["error"]) == (1234, 5678, None)


# --- commands ----------------------------------------------------------------------------------


def executable(path: Path, text: str | bytes = b"\x7fELF fake binary") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A small image tree: a venv with a console script, a system python, a shell, tini, uv."""
    root = tmp_path
    executable(root / "usr/bin/python3.13")
    (root / "usr/bin/python3").symlink_to("python3.13")
    (root / "venv/bin").mkdir(parents=True)
    (root / "venv/bin/python").symlink_to(root / "usr/bin/python3.13")
    executable(root / "venv/bin/app", f"#!{root}/venv/bin/python\nfrom app.cli import main\n")
    executable(root / "venv/bin/envapp", "#!/usr/bin/env python3\nimport sys\n")
    executable(root / "usr/bin/env")  # env itself: resolved by name
    executable(root / "bin/sh")
    executable(root / "usr/bin/tini")
    executable(root / "usr/local/bin/uv")
    executable(root / "app/entrypoint.sh", f'#!{root}/bin/sh\nset -e\necho starting\nexec "$@"\n')
    executable(root / "app/run.sh", f"#!{root}/bin/sh\nmigrate\napp serve\n")
    (root / "app/notes.txt").write_text("not executable")
    return root


def path_of(root: Path, *dirs: str) -> str:
    return ":".join(str(root / d) for d in dirs)


def test_a_console_script_on_path_resolves_through_its_shebang(image: Path) -> None:
    env = {"PATH": path_of(image, "usr/local/bin", "venv/bin", "usr/bin")}
    plan = resolve_command(["app", "serve"], env, str(image / "app"))
    assert plan["interpreter"] == f"{image}/venv/bin/python"
    assert plan["entry"] == {"kind": "script", "value": f"{image}/venv/bin/app"}
    assert plan["steps"] == [
        f"app -> {image}/venv/bin/app",
        f"#!{image}/venv/bin/python",
        f"{image}/venv/bin/python",
    ]
    assert plan["chain"][-1]["real"] == f"{image}/usr/bin/python3.13"
    assert plan["error"] is None


def test_the_system_python_first_on_path_is_not_the_apps(image: Path) -> None:
    # PATH puts a system python first; `app` is only in the venv, and its shebang names the venv's python.
    executable(image / "usr/local/bin/python3")
    env = {"PATH": path_of(image, "usr/local/bin", "venv/bin")}
    assert resolve_command(["app"], env, "/")["interpreter"] == f"{image}/venv/bin/python"
    # while `python3 -m app` really runs the system one
    plan = resolve_command(["python3", "-m", "app"], env, "/")
    assert plan["interpreter"] == f"{image}/usr/local/bin/python3"
    assert plan["entry"] == {"kind": "module", "value": "app"}


def test_env_shebangs_look_the_interpreter_up_on_path(image: Path) -> None:
    (image / "venv/bin/python3").symlink_to("python")
    env = {"PATH": path_of(image, "venv/bin", "usr/bin")}
    executable(image / "venv/bin/envapp", f"#!{image}/usr/bin/env python3\nimport sys\n")
    plan = resolve_command(["envapp"], env, "/")
    assert plan["interpreter"] == f"{image}/venv/bin/python3"
    assert plan["entry"]["value"] == f"{image}/venv/bin/envapp"


def test_env_split_string_and_assignments(image: Path) -> None:
    env = {"PATH": path_of(image, "usr/bin")}
    plan = resolve_command([f"{image}/usr/bin/env", "-S", "X=1 python3 -u -m app.main"], env, "/")
    assert plan["interpreter"] == f"{image}/usr/bin/python3"
    assert plan["flags"] == ["-u"]
    assert plan["entry"] == {"kind": "module", "value": "app.main"}


@pytest.mark.parametrize(
    ("argv", "execs", "interpreter"),
    [
        (["sh", "-c", "exec app serve"], True, "venv/bin/python"),
        (["sh", "-ec", "migrate; exec app"], True, "venv/bin/python"),
        (["/bin/sh", "-c", "app serve"], False, "venv/bin/python"),  # the shell stays PID 1
        (["sh", "-e", "-c", "app"], False, "venv/bin/python"),
        (["tini", "--", "sh", "-c", "exec app"], True, "venv/bin/python"),
    ],
)
def test_shells_are_seen_through_and_their_exec_is_noted(
    image: Path, argv: list[str], execs: bool, interpreter: str
) -> None:
    env = {"PATH": path_of(image, "bin", "usr/bin", "venv/bin")}
    argv = [a.replace("/bin/sh", f"{image}/bin/sh") for a in argv]
    plan = resolve_command(argv, env, "/")
    assert plan["shell"]["execs"] is execs
    assert plan["interpreter"] == f"{image}/{interpreter}"


def test_an_entrypoint_script_that_execs_its_arguments(image: Path) -> None:
    env = {"PATH": path_of(image, "bin", "venv/bin")}
    plan = resolve_command([f"{image}/app/entrypoint.sh", "app", "serve"], env, "/")
    assert plan["shell"]["execs"] is True
    assert plan["shell"]["script"] == f"{image}/app/entrypoint.sh"
    assert plan["interpreter"] == f"{image}/venv/bin/python"
    plan = resolve_command([f"{image}/app/run.sh"], env, "/")
    assert plan["shell"]["execs"] is False  # runs `app serve` as a child: the shell stays PID 1
    assert plan["interpreter"] == f"{image}/venv/bin/python"


def test_init_wrappers_are_skipped(image: Path) -> None:
    env = {"PATH": path_of(image, "usr/bin", "venv/bin")}
    plan = resolve_command(["tini", "-g", "--", "app"], env, "/")
    assert plan["wrappers"] == [f"{image}/usr/bin/tini"]
    assert plan["interpreter"] == f"{image}/venv/bin/python"


def test_uv_run_runs_the_project_environment(image: Path) -> None:
    (image / "app/.venv/bin").mkdir(parents=True)
    (image / "app/.venv/bin/python").symlink_to(image / "usr/bin/python3.13")
    executable(image / "app/.venv/bin/web", f"#!{image}/app/.venv/bin/python\n")
    env = {"PATH": path_of(image, "usr/local/bin", "usr/bin")}
    plan = resolve_command(["uv", "run", "--frozen", "--no-dev", "web"], env, str(image / "app"))
    assert plan["uv_run"] == {"environment": f"{image}/app/.venv", "syncs_at_start": True}
    assert plan["interpreter"] == f"{image}/app/.venv/bin/python"
    plan = resolve_command(["uv", "run", "--no-sync", "-m", "web.main"], env, str(image / "app"))
    assert plan["uv_run"]["syncs_at_start"] is False
    assert plan["entry"] == {"kind": "module", "value": "web.main"}


@pytest.mark.parametrize(
    ("argv", "kind", "error"),
    [
        (["missing-tool"], "not_found", "missing-tool: not found on PATH"),
        (["/nowhere/app"], "not_found", "/nowhere/app: not found"),
        (["tini"], "empty", "the command is empty"),
        ([], "empty", "the command is empty"),
    ],
)
def test_what_cannot_run_is_said(image: Path, argv: list[str], kind: str, error: str) -> None:
    plan = resolve_command(argv, {"PATH": path_of(image, "usr/bin")}, "/")
    assert (plan["error_kind"], plan["interpreter"]) == (kind, None)
    assert plan["error"].startswith(error)


def test_a_shebang_to_a_missing_interpreter_cannot_start(image: Path) -> None:
    executable(image / "venv/bin/stale", "#!/home/dev/project/.venv/bin/python\n")
    plan = resolve_command([f"{image}/venv/bin/stale"], {"PATH": ""}, "/")
    assert plan["error_kind"] == "not_found"
    assert plan["error"] == "/home/dev/project/.venv/bin/python: not found"


def test_a_native_program_is_not_python(image: Path) -> None:
    executable(image / "usr/bin/server")
    plan = resolve_command(["server"], {"PATH": path_of(image, "usr/bin")}, "/")
    assert plan["error_kind"] == "not_python"


def test_lookup_skips_files_without_an_x_bit_and_directories(image: Path) -> None:
    (image / "first/app").mkdir(parents=True)  # a directory named app
    (image / "second").mkdir()
    (image / "second/app").write_text("#!/bin/sh\n")  # no x bit
    env = {"PATH": path_of(image, "first", "second", "venv/bin")}
    assert resolve_command(["app"], env, "/")["chain"][0]["path"] == f"{image}/venv/bin/app"


@pytest.mark.parametrize(
    ("args", "flags", "entry"),
    [
        (["-m", "pkg.mod", "--x"], [], {"kind": "module", "value": "pkg.mod"}),
        (["-mpkg"], [], {"kind": "module", "value": "pkg"}),
        (["-I", "-u", "-m", "x"], ["-I", "-u"], {"kind": "module", "value": "x"}),
        (["-Iu", "app.py", "-m"], ["-I", "-u"], {"kind": "script", "value": "app.py"}),
        (
            ["-X", "dev", "-W", "error", "-c", "pass"],
            ["-X", "dev", "-W", "error"],
            {"kind": "code", "value": "pass"},
        ),
        (["-Wignore", "-OO", "s.py"], ["-W", "ignore", "-O", "-O"], {"kind": "script", "value": "s.py"}),
        (["-i"], [], {"kind": "repl"}),  # -i is dropped: a probe never goes interactive
        (["--version"], [], {"kind": "info"}),
        (["-", "x"], [], {"kind": "stdin", "value": "-"}),
    ],
)
def test_python_arguments(args: list[str], flags: list[str], entry: dict[str, str]) -> None:
    assert parse_python_args(args) == (flags, entry)


@pytest.mark.parametrize(
    ("text", "positional", "execs", "target"),
    [
        ("exec app --port 8000", [], True, ["app", "--port", "8000"]),
        ("set -e\nmigrate && exec gunicorn app:app", [], True, ["gunicorn", "app:app"]),
        ('exec "$@"', ["app", "serve"], True, ["app", "serve"]),
        ("app serve", [], False, ["app", "serve"]),
        ("exec >/var/log/app 2>&1\napp", [], False, ["app"]),  # exec only redirects
        ("X=1 exec app", [], True, ["app"]),
        ("exec $APP_CMD", [], True, None),  # a variable program: cannot tell without running it
        ("# only a comment\n", [], False, None),
        ("app --flag \\\n  --more", [], False, ["app", "--flag", "--more"]),
    ],
)
def test_shell_text_reading(text: str, positional: list[str], execs: bool, target: list[str] | None) -> None:
    assert shell_target(text, positional) == (execs, target)


def test_sys_path_zero_as_the_app_gets_it(image: Path) -> None:
    env = {"PATH": path_of(image, "venv/bin", "usr/bin")}
    script = resolve_command(["app"], env, "/work")
    assert resolve._python_path0(script, env, "/work") == [f"{image}/venv/bin"]
    module = resolve_command(["python3", "-m", "x"], env, "/work")
    assert resolve._python_path0(module, env, "/work") == ["/work"]
    isolated = resolve_command(["python3", "-I", "-m", "x"], env, "/work")
    assert resolve._python_path0(isolated, env, "/work") == []
    assert resolve._python_path0(module, {**env, "PYTHONSAFEPATH": "1"}, "/work") == []


def _stat(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((mode, 1, 1, 1, uid, gid, 42, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "gid", "raised"),
    [
        (stat.S_IFREG | 0o4755, 0, 0, {"setuid_root": True}),
        (stat.S_IFREG | 0o2755, 0, 0, {"setgid_root": True}),
        (stat.S_IFREG | 0o4755, 1000, 1000, None),  # setuid to an ordinary user: not root
        (stat.S_IFREG | 0o755, 0, 0, None),
    ],
)
def test_setuid_and_setgid_root(
    tmp_path: Path, mode: int, uid: int, gid: int, raised: dict[str, bool] | None
) -> None:
    plain = executable(tmp_path / "bin")
    found = resolve.privilege(str(plain), _stat(mode, uid, gid))
    if raised is None:
        assert found is None
    else:
        assert found is not None
        assert {k: found[k] for k in raised} == raised
        assert found["path"] == str(plain)


def test_file_capabilities_are_decoded() -> None:
    # vfs_cap_data revision 2, effective bit set, permitted = cap_setuid (7) | cap_net_bind_service (10)
    raw = (0x02000001).to_bytes(4, "little") + ((1 << 7) | (1 << 10)).to_bytes(4, "little") + bytes(12)
    assert resolve.decode_capabilities(raw) == {
        "raw": raw.hex(),
        "names": ["setuid", "net_bind_service"],
        "effective": True,
    }


@pytest.mark.skipif(sys.platform != "linux", reason="xattrs as Linux has them")
def test_a_file_without_capabilities_has_none(tmp_path: Path) -> None:
    assert resolve.capabilities(str(executable(tmp_path / "plain"))) is None
