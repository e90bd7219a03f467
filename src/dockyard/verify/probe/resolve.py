"""What the app runs and as whom: the image's USER resolved as Docker does, the ENTRYPOINT and
CMD followed to the Python interpreter as the kernel and Python do, and what raises its privileges."""

from __future__ import annotations

import os
import re
import shlex
import stat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: never evaluated at runtime, so fine on Python 3.8
    PycCache = dict[str, dict[str, list[tuple[str, int]]]]  # directory -> {stem: [(pyc, size)]}

# probe: parts (these imports are dropped when source() joins the parts into one program)
from dockyard.verify.probe.common import (
    DEFAULT_PATH,
    _head,
)

# probe: end parts

# The probe runs in images of ~20k files: os.path strings, not a pathlib object per entry.
# ruff: noqa: PTH110, PTH116, PTH117, PTH118, PTH119, PTH120, PTH123

MAX_HOPS = 12  # shebangs, wrappers and shells followed before giving up


SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"})


INIT_WRAPPERS = frozenset({"tini", "tini-static", "dumb-init", "catatonit", "docker-init"})


INIT_OPTIONS_WITH_VALUE = frozenset({"-p", "-e", "-r", "--rewrite", "-s"})  # -s: tini takes none; harmless


PYTHON_NAME = re.compile(r"^(?:python|pypy)(?:\d+(?:\.\d+)*)?$")


UV_RUN_OPTIONS_WITH_VALUE = frozenset(
    {
        "--with", "--with-editable", "--with-requirements", "--python", "-p", "--package",
        "--project", "--directory", "--env-file", "--group", "--only-group", "--no-group",
        "--extra", "--index", "--default-index", "--index-url", "--extra-index-url",
        "--find-links", "-f", "--python-preference", "--index-strategy", "--keyring-provider",
        "--resolution", "--prerelease", "--link-mode", "--config-file", "--cache-dir", "--color",
        "--refresh-package", "--reinstall-package", "--upgrade-package", "-P", "--exclude-newer",
        "--config-setting", "-C", "--no-binary-package", "--no-build-package",
        "--allow-insecure-host", "--no-extra",
    }
)  # fmt: skip


# Python options that take a value (as a separate argument or glued on).
PYTHON_OPTIONS_WITH_VALUE = frozenset("WX")


PYTHON_DROPPED_OPTIONS = frozenset({"-i", "-h", "-V", "-?"})  # not for a probe's run


# Linux capability numbers (linux/capability.h) of the ones worth naming.
CAPABILITY_NAMES = {
    0: "chown", 1: "dac_override", 2: "dac_read_search", 3: "fowner", 4: "fsetid", 5: "kill",
    6: "setgid", 7: "setuid", 8: "setpcap", 10: "net_bind_service", 12: "net_admin", 13: "net_raw",
    16: "sys_module", 18: "sys_chroot", 19: "sys_ptrace", 21: "sys_admin", 27: "mknod",
}  # fmt: skip


def _read_db(path: str, fields: int) -> list[list[str]]:
    """The rows of /etc/passwd or /etc/group (comments and short lines skipped, as libcontainer)."""
    rows = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                line = raw.strip()
                if line and not line.startswith("#") and len(line.split(":")) >= fields:
                    rows.append(line.split(":"))
    except OSError:  # no file: numeric users still resolve
        return []
    return rows


def _int_or_none(text: str) -> int | None:
    return int(text) if re.match(r"^\d+$", text) else None


def _passwd_entry(user: str, passwd: str) -> list[str] | None:
    """The first passwd row for a name or uid (``""``: uid 0), as libcontainer matches them."""
    uid_arg = _int_or_none(user)
    for row in _read_db(passwd, 7):
        uid = _int_or_none(row[2])
        if uid is not None and ((user == "" and uid == 0) or uid == uid_arg or row[0] == user):
            return row
    return None


def _group_ids(group_part: str, member: str | None, group_db: str) -> list[int]:
    """The gid of an explicit group (a name or gid), or the groups listing ``member``."""
    gid_arg = _int_or_none(group_part)
    found = []
    for row in _read_db(group_db, 4):
        gid = _int_or_none(row[2])
        if gid is None:
            continue
        if group_part and (gid == gid_arg or row[0] == group_part):
            return [gid]
        if not group_part and member is not None and member in row[3].split(","):
            found.append(gid)
    return found


def resolve_user(
    spec: str,
    passwd: str = "/etc/passwd",  # noqa: S107 - the file, not a password
    group: str = "/etc/group",
) -> dict[str, Any]:
    """USER as Docker (libcontainer's GetExecUser) resolves it in this filesystem.

    ``name`` or ``uid`` finds the passwd entry (its gid and home; a uid without one is used as is, with
    gid 0), ``:group`` (a name or gid) replaces the gid; without an explicit group, the groups whose
    member list names the user are its supplementary groups. An unknown name is an error: Docker
    refuses to start the container.
    """
    user_part, _, group_part = (spec or "").partition(":")
    result: dict[str, Any] = {"spec": spec or "", "uid": 0, "gid": 0, "groups": [], "name": None, "home": "/"}
    result["error"] = None
    entry = _passwd_entry(user_part, passwd)
    if entry is not None:
        result.update(name=entry[0], uid=int(entry[2]), gid=_int_or_none(entry[3]) or 0, home=entry[5] or "/")
    elif user_part:
        if _int_or_none(user_part) is None:
            result["error"] = f"unable to find user {user_part}: no matching entries in passwd file"
            return result
        result["uid"] = int(user_part)
    if not group_part:
        result["groups"] = _group_ids("", entry[0] if entry else None, group) if entry else []
        return result
    gids = _group_ids(group_part, None, group)
    if gids:
        result["gid"] = gids[0]
    elif _int_or_none(group_part) is not None:
        result["gid"] = int(group_part)
    else:
        result["error"] = f"unable to find group {group_part}: no matching entries in group file"
    return result


def _lookup(name: str, path_dirs: list[str], workdir: str) -> str | None:
    """The file ``name`` runs as: a path (relative to the working directory), or the first
    executable of that name on PATH (Go's exec.LookPath, which Docker uses: any x bit)."""
    if "/" in name:
        path = name if os.path.isabs(name) else os.path.join(workdir or "/", name)
        return os.path.normpath(path) if os.path.exists(path) else None
    for directory in path_dirs:
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) and st.st_mode & 0o111:
            return candidate
    return None


def parse_shebang(head: bytes) -> tuple[str, str]:
    """(interpreter, optional argument) of a ``#!`` line, as Linux splits it: one argument at most."""
    line = head[2:].split(b"\n", 1)[0].strip().decode("utf-8", errors="replace")
    interpreter, _, argument = line.partition(" ")
    if not argument:
        interpreter, _, argument = line.partition("\t")
    return interpreter, argument.strip()


def _env_command(args: list[str], env: dict[str, str]) -> list[str]:
    """What ``env [-S "..."] [-i] [NAME=VALUE]... PROGRAM ARGS`` runs; assignments go to ``env``."""
    rest = list(args)
    while rest:
        token = rest[0]
        if token == "--":
            rest.pop(0)
            break
        if token.startswith("-S") or token.startswith("--split-string"):
            value = token[2:] if token.startswith("-S") else token.partition("=")[2]
            rest.pop(0)
            if not value and rest:
                value = rest.pop(0)
            rest[0:0] = shlex.split(value)
            continue
        if token in ("-u", "--unset", "-C", "--chdir"):
            del rest[:2]
            continue
        if token.startswith("-"):
            rest.pop(0)
            continue
        if "=" in token and not token.startswith("="):
            key, _, value = token.partition("=")
            env[key] = value
            rest.pop(0)
            continue
        break
    return rest


def _init_command(args: list[str]) -> list[str]:
    """The command an init wrapper (tini, dumb-init) runs: its options skipped."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        token = rest.pop(0)
        if token == "--":
            break
        if token in INIT_OPTIONS_WITH_VALUE and rest and token != "-s":
            rest.pop(0)
    return rest


def _shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell text, in order (a reading good enough for entrypoints:
    lines joined at backslashes, split at ``;``, ``&&``, ``||``, ``|`` and ``&``)."""
    joined = re.sub(r"\\\n", " ", text)
    commands: list[list[str]] = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        try:
            tokens = list(lexer)
        except ValueError:  # unbalanced quotes: a multi-line string this reading cannot follow
            tokens = line.split()
        for token in tokens:
            if token and set(token) <= set(";&|()"):
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
        if current:
            commands.append(current)
    return commands


def shell_target(text: str, positional: list[str]) -> tuple[bool, list[str] | None]:
    """(whether the shell ``exec``s a program, the argv of the app it runs) for a ``-c`` string or a
    script. The app is the last ``exec``'d program, else the last command; ``"$@"`` is expanded to
    ``positional``. None when the program cannot be told without running the shell."""
    target: list[str] | None = None
    execs = False
    for command in _shell_commands(text):
        words = [w for w in command if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w)]
        if not words or words[0] in ("set", "export", "cd", "umask", "trap", "echo", "printf", ":"):
            continue
        if words[0] == "exec":
            program = [w for w in words[1:] if not re.match(r"^\d*[<>]", w)]
            while program and program[0] in ("-a", "-c", "-l"):
                program = program[2:] if program[0] == "-a" else program[1:]
            if program:
                execs, target = True, program
            continue
        if not execs:
            target = words
    if target is None:
        return execs, None
    expanded: list[str] = []
    for word in target:
        if word in ("$@", "$*", "${@}", "${*}"):
            expanded.extend(positional)
        else:
            expanded.append(word)
    if not expanded or "$" in expanded[0] or "`" in expanded[0]:
        return execs, None
    return execs, expanded


def parse_python_args(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """(interpreter options, entry) of ``python [options] (-m mod | -c code | script | -) ...``."""
    flags: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            i += 1
            break
        if token in ("--help", "--version"):
            return flags, {"kind": "info"}
        if token == "--check-hash-based-pycs":
            flags.extend(args[i : i + 2])
            i += 2
            continue
        if token.startswith("--"):
            flags.append(token)
            i += 1
            continue
        if not token.startswith("-") or token == "-":
            break
        j = 1
        while j < len(token):
            letter = token[j]
            if letter in "cm":
                value = token[j + 1 :] or (args[i + 1] if i + 1 < len(args) else "")
                kind = "module" if letter == "m" else "code"
                return flags, {"kind": kind, "value": value}
            if letter in PYTHON_OPTIONS_WITH_VALUE:
                value = token[j + 1 :]
                if not value:
                    i += 1
                    value = args[i] if i < len(args) else ""
                flags.extend(["-" + letter, value])
                break
            if "-" + letter not in PYTHON_DROPPED_OPTIONS:
                flags.append("-" + letter)
            j += 1
        i += 1
    if i < len(args):
        return flags, {"kind": "stdin" if args[i] == "-" else "script", "value": args[i]}
    return flags, {"kind": "repl"}


def _uv_run(args: list[str], env: dict[str, str], workdir: str) -> tuple[list[str], str, bool]:
    """(command, environment folder, synced at start) of ``uv run [options] [--] command``."""
    rest = list(args)
    project = workdir or "/"
    module = False
    syncs = True
    while rest and rest[0].startswith("-"):
        token = rest.pop(0)
        if token == "--":
            break
        name, glued, value = token.partition("=")
        if name in UV_RUN_OPTIONS_WITH_VALUE and not glued and rest:
            value = rest.pop(0)
        if name in ("--project", "--directory"):
            project = os.path.join(project, value)
        elif name in ("-m", "--module"):
            module = True
        elif name in ("--no-sync", "--no-project"):
            syncs = False
    folder = env.get("UV_PROJECT_ENVIRONMENT") or ".venv"
    venv = os.path.normpath(os.path.join(project, folder))
    if module and rest:
        rest = [os.path.join(venv, "bin", "python"), "-m", *rest]
    return rest, venv, syncs


def empty_plan(argv: list[str] | None, **fields: Any) -> dict[str, Any]:
    """A plan with nothing followed yet (see `resolve_command`), `fields` set."""
    plan: dict[str, Any] = {
        "argv": None if argv is None else list(argv),
        "chain": [],
        "steps": [],
        "interpreter": None,
        "flags": [],
        "entry": None,
        "shell": None,
        "wrappers": [],
        "uv_run": None,
        "error": None,
        "error_kind": None,
    }
    plan.update(fields)
    return plan


def resolve_command(argv: list[str], env: dict[str, str], workdir: str) -> dict[str, Any]:
    """What the exec-form ``argv`` really runs, followed to the Python interpreter where there is one.

    Returns the plan: ``chain`` (every file executed, in order, with how it was found), ``steps``
    (the same for people), ``interpreter``, ``flags`` and ``entry`` when it is Python, ``shell``
    (a shell on the way: its command, whether it ``exec``s the app), ``wrappers``, ``uv_run``, and
    ``error`` when the chain cannot be followed (the interpreter is then unknown).
    """
    env = dict(env)
    plan = empty_plan(argv)
    args = list(argv)
    path_dirs = (env.get("PATH") or DEFAULT_PATH).split(":")
    for _ in range(MAX_HOPS):
        if not args:
            plan.update(error="the command is empty", error_kind="empty")
            return plan
        name = args[0]
        path = _lookup(name, path_dirs, workdir)
        if path is None:
            where = "" if "/" in name else f" on PATH ({':'.join(path_dirs)})"
            plan.update(error=f"{name}: not found{where}", error_kind="not_found")
            return plan
        real = os.path.realpath(path)
        plan["chain"].append({"name": name, "path": path, "real": real})
        plan["steps"].append(path if name == path else f"{name} -> {path}")
        head = _head(real)
        if head.startswith(b"#!"):
            interpreter, argument = parse_shebang(head)
            plan["steps"].append(f"#!{interpreter}" + (f" {argument}" if argument else ""))
            args = [interpreter] + ([argument] if argument else []) + [path] + args[1:]
            continue
        base = os.path.basename(name)
        real_base = os.path.basename(real)
        if base in INIT_WRAPPERS or real_base in INIT_WRAPPERS:
            plan["wrappers"].append(path)
            args = _init_command(args[1:])
            continue
        if base == "env" or real_base == "env":
            args = _env_command(args[1:], env)
            path_dirs = (env.get("PATH") or DEFAULT_PATH).split(":")
            continue
        if base in SHELLS or real_base in SHELLS:
            target = _through_shell(plan, path, args, workdir, path_dirs)
            if target is None:
                return plan
            args = target
            continue
        if (base == "uv" or real_base == "uv") and len(args) > 1 and args[1] == "run":
            args, venv, syncs = _uv_run(args[2:], env, workdir)
            plan["uv_run"] = {"environment": venv, "syncs_at_start": syncs}
            path_dirs = [os.path.join(venv, "bin"), *path_dirs]
            continue
        if PYTHON_NAME.match(base) or PYTHON_NAME.match(real_base):
            flags, entry = parse_python_args(args[1:])
            if entry.get("kind") == "script":
                entry["value"] = os.path.normpath(os.path.join(workdir or "/", entry["value"]))
            plan.update(interpreter=path, flags=flags, entry=entry)
            return plan
        plan.update(error=f"{path} is not a Python interpreter", error_kind="not_python")
        return plan
    plan.update(
        error=f"more than {MAX_HOPS} interpreters, wrappers or shells in a row", error_kind="unresolved"
    )
    return plan


def _through_shell(
    plan: dict[str, Any], path: str, args: list[str], workdir: str, path_dirs: list[str]
) -> list[str] | None:
    """The command a shell in the chain runs; records the shell (and whether it ``exec``s) in ``plan``."""
    rest = args[1:]
    command = None
    while rest and rest[0][:1] in ("-", "+") and rest[0] not in ("-", "--"):
        token = rest.pop(0)
        if token in ("-o", "+o") and rest:
            rest.pop(0)
        elif not token.startswith("--") and "c" in token[1:]:
            command = rest.pop(0) if rest else ""
            break
    if rest and rest[0] == "--":
        rest.pop(0)
    script = None
    if command is None:
        if not rest:
            plan["shell"] = {"path": path, "command": None, "script": None, "execs": False}
            plan.update(error=f"{path} runs with no command: an interactive shell", error_kind="unresolved")
            return None
        script = _lookup(rest[0], path_dirs, workdir) if "/" in rest[0] else rest[0]
        text = _head(script or "", 1 << 16).decode("utf-8", errors="replace") if script else ""
        positional = rest[1:]
    else:
        text = command
        positional = rest[1:]  # rest[0] is $0
    execs, target = shell_target(text, positional)
    plan["shell"] = {"path": path, "command": command, "script": script, "execs": execs}
    plan["steps"].append(("exec " if execs else "runs ") + " ".join(target or ["?"]))
    if target is None:
        plan.update(error=f"cannot tell which program {path} runs", error_kind="unresolved")
    return target


def _python_path0(plan: dict[str, Any], env: dict[str, str], workdir: str) -> list[str]:
    """``sys.path[0]`` as the app gets it: [] when isolated (-I, -P, PYTHONSAFEPATH)."""
    flags = plan.get("flags") or []
    letters = {f[1:] for f in flags if re.match(r"^-[A-Za-z]$", f)}
    if "I" in letters or "P" in letters or (env.get("PYTHONSAFEPATH") and "E" not in letters):
        return []
    entry = plan.get("entry") or {}
    if entry.get("kind") == "script":
        return [os.path.dirname(os.path.realpath(entry["value"]))]
    return [workdir or "/"]


def decode_capabilities(raw: bytes) -> dict[str, Any]:
    """A ``security.capability`` value (struct vfs_cap_data): the permitted capabilities by name and
    whether they are effective at exec."""
    words = [int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw) - len(raw) % 4, 4)]
    if len(words) < 3:
        return {"raw": raw.hex(), "names": [], "effective": False}
    permitted = words[1] | ((words[3] << 32) if len(words) > 3 else 0)
    names = [CAPABILITY_NAMES.get(bit, f"cap{bit}") for bit in range(64) if permitted & (1 << bit)]
    return {"raw": raw.hex(), "names": names, "effective": bool(words[0] & 1)}


def capabilities(path: str) -> dict[str, Any] | None:
    """The file capabilities of ``path`` (the ``security.capability`` xattr), or None."""
    try:
        raw = os.getxattr(path, "security.capability", follow_symlinks=False)
    except (OSError, AttributeError):  # none set, or no xattrs here
        return None
    return decode_capabilities(raw)


def privilege(path: str, st: os.stat_result | None = None) -> dict[str, Any] | None:
    """How running ``path`` raises privileges: setuid/setgid root bits and file capabilities."""
    try:
        st = st or os.stat(path)
    except OSError:
        return None
    found: dict[str, Any] = {"path": path, "mode": oct(stat.S_IMODE(st.st_mode)), "size": st.st_size}
    raised = False
    if st.st_mode & stat.S_ISUID and st.st_uid == 0:
        found["setuid_root"] = raised = True
    if st.st_mode & stat.S_ISGID and st.st_gid == 0:
        found["setgid_root"] = raised = True
    caps = capabilities(path)
    if caps is not None:
        found["capabilities"] = caps
        raised = True
    return found if raised else None
