"""The files `dockyard init` writes, rendered from the templates in `templates/` (package data).

The renderer is deliberately tiny: `{{ name }}` substitutes a value, and `{% if name %}` /
`{% else %}` / `{% endif %}` on lines of their own keep or drop the lines between them. Everything a
template needs is computed here from an `Inference`, so the templates hold no logic and the output is
the same for the same project on every machine.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from importlib import resources

from dockyard.errors import DockyardError
from dockyard.init.model import Fact, Inference
from dockyard.init.project import Project

WIDTH = 110  # the longest line the renderer makes (a facts row, a shell line)
PROSE = 104  # comment paragraphs wrap here
_VALUE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_DIRECTIVE = re.compile(r"^\{%\s*(if|else|endif)\s*(not\s+)?(\w*)\s*%\}$")


def template(name: str) -> str:
    return resources.files("dockyard.init").joinpath("templates", name).read_text()


def render(text: str, values: Mapping[str, object]) -> str:
    """Fill `text`: conditionals on their own lines first, then `{{ name }}` values."""
    out: list[str] = []
    stack: list[bool] = []  # whether each open block keeps its lines
    for line in text.splitlines(keepends=True):
        directive = _DIRECTIVE.match(line.strip())
        if directive:
            word, negate, name = directive.groups()
            if word == "if":
                if name not in values:
                    raise DockyardError(f"template condition {name!r} has no value")
                stack.append(bool(values[name]) != bool(negate))
            elif not stack:
                raise DockyardError(f"template: {{% {word} %}} without {{% if %}}")
            elif word == "else":
                stack[-1] = not stack[-1]
            else:
                stack.pop()
            continue
        if all(stack):
            out.append(line)
    if stack:
        raise DockyardError("template: {% if %} without {% endif %}")

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise DockyardError(f"template value {name!r} is missing")
        return str(values[name])

    return _VALUE.sub(value, "".join(out))


def _exec_form(argv: Sequence[str]) -> str:
    return json.dumps(list(argv), ensure_ascii=False)


def _label_value(text: str) -> str:
    """A double-quoted Dockerfile value: quotes and backslashes escaped, `$` kept literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _comment_block(text: str, indent: str = "") -> list[str]:
    wrapped = textwrap.wrap(
        text, PROSE, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    )
    return wrapped or [""]


def facts_table(facts: Sequence[Fact]) -> list[str]:
    """The header's table: what, value, why; long reasons wrap under their column."""
    what_width = max(len(f.what) for f in facts) + 2
    value_width = min(max(len(f.value) for f in facts) + 2, 26)
    lines = []
    for fact in facts:
        lead = f"#   {fact.what:<{what_width}}{fact.value:<{value_width}}"
        if len(fact.value) >= value_width:
            lines.append(f"#   {fact.what:<{what_width}}{fact.value}")
            lead = "#   " + " " * (what_width + value_width)
        room = WIDTH - len(lead)
        wrapped = textwrap.wrap(fact.why, room, break_on_hyphens=False) or [""]
        lines.append(lead + wrapped[0])
        lines += ["#   " + " " * (what_width + value_width) + rest for rest in wrapped[1:]]
    return lines


def header(inference: Inference) -> str:
    project = inference.project
    what = "package" if project.packaged else "modules"
    data = "".join(f" and {d}" for d in inference.data_dirs)
    mounted = "the lock files, the wheel" if project.packaged else "the lock files"
    keyed = (
        "uv.lock and pyproject.toml"
        if not project.workspace
        else "uv.lock and the workspace's pyproject.toml files"
    )
    paragraphs = [
        "Build it with `invoke build`. It needs only the engine's built-in BuildKit (Engine 20.10+) or "
        "buildx: no `# syntax=` line, no heredocs, no variables inside --mount, no COPY --link. After "
        "changing any of the above, `dockyard init --dry-run` shows what init would write now.",
        f"Layers of the final image, bottom to top: the base image, the user{data}, the locked dependencies "
        f"(keyed only on {keyed}), then a small layer holding just the project's own {what}. A source-only "
        "change rebuilds and ships only that last layer.",
        "Everything is installed in the final stage, so an inline cache (`--cache-from` an image pushed with "
        f"`--cache-to`) carries the dependency layer to a fresh machine and its install does not run again. "
        f"uv, {mounted} and the CA bundle are mounted for the steps that use them, never copied: they are "
        "not in the image. The mounts sit under a tmpfs on /tmp, so their mount points leave nothing in a "
        "layer either.",
    ]
    lines = [
        f"# {project.name}'s production image, written by `dockyard init` from what it found:",
        "#",
        *facts_table(inference.facts),
    ]
    for paragraph in paragraphs:
        lines += ["#", *_comment_block(paragraph, "# ")]
    return "\n".join(line.rstrip() for line in lines)


# --- Dockerfile -------------------------------------------------------------------------------------

UV = "/tmp/bin/uv"  # noqa: S108 - a mount point under the step's own tmpfs, not a temporary file


def _project_copies(inference: Inference) -> str:
    lines = []
    for source in inference.wheel_sources:
        files = " ".join(source.files)
        target = "./" if source.directory == "." else f"./{source.directory}/"
        lines.append(f"COPY {files} {target}")
        lines += [f"COPY {tree} ./{tree}" for tree in source.trees]
    return "\n".join(lines)


def _wheel_build(inference: Inference) -> str:
    build = f"{UV} build --wheel --out-dir /wheel"
    directories = [s.directory for s in inference.wheel_sources]
    if directories == ["."]:
        return f"    UV_CACHE_DIR=/tmp/uv-cache UV_PYTHON_DOWNLOADS=never \\\n    {build}"
    commands = " \\\n    && ".join(f"{build} {d}" for d in directories)
    return f"    export UV_CACHE_DIR=/tmp/uv-cache UV_PYTHON_DOWNLOADS=never; \\\n    {commands}"


def _wrapped(words: list[str], indent: str) -> list[str]:
    """Shell words on lines that stay within WIDTH with a continuation backslash (joined by the caller)."""
    lines = [indent + words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) + 2 > WIDTH:
            lines.append(indent + word)
        else:
            lines[-1] += " " + word
    return lines


def _sync(inference: Inference) -> str:
    project = inference.project
    flags = [inference.lock_flag]
    if project.workspace:
        flags += ["--package", project.name, "--no-default-groups", "--no-install-workspace"]
    else:
        flags += ["--no-default-groups", "--no-install-project"]
    flags += ["--no-editable", "--compile-bytecode", "--link-mode=copy"]
    env = "UV_CACHE_DIR=/tmp/uv-cache UV_PROJECT_ENVIRONMENT=/app/.venv UV_PYTHON_DOWNLOADS=never"
    sync = _wrapped([f"{UV} sync", *flags], "       ")
    lines = ["    cd /tmp/project", f"    && {env}", *sync]
    if inference.build_packages:
        names = " ".join(p.name for p in inference.build_packages)
        lines = [
            f"    apt-get update && apt-get install -y --no-install-recommends {names}",
            "    && " + lines[0].strip(),
            *lines[1:],
        ]
        lines.append(f"    && apt-get purge -y --auto-remove {names} && rm -rf /var/lib/apt/lists/*")
    return " \\\n".join(lines)


def _app_copies(inference: Inference) -> str:
    files = [p for p in inference.app_paths if p.endswith(".py")]
    dirs = [p for p in inference.app_paths if not p.endswith(".py")]
    lines = [f"COPY {' '.join(files)} ./"] if files else []
    lines += [f"COPY {directory} ./{directory.rsplit('/', 1)[-1]}" for directory in dirs]
    return "\n".join(lines)


def _labels(inference: Inference) -> str:
    project = inference.project
    labels = [("org.opencontainers.image.title", project.name)]
    if project.description:
        labels.append(("org.opencontainers.image.description", project.description))
    source = _source_url(project.urls)
    if source:
        labels.append(("org.opencontainers.image.source", source))
    parts = [f"{k}={_label_value(v)}" for k, v in labels]
    parts += [
        'org.opencontainers.image.version="${VERSION}"',
        'org.opencontainers.image.revision="${REVISION}"',
        'org.opencontainers.image.created="${CREATED}"',
    ]
    return " \\\n      ".join(parts)


def _source_url(urls: Mapping[str, str]) -> str | None:
    lowered = {k.lower(): v for k, v in urls.items()}
    for key in ("source", "repository", "source code", "code", "homepage"):
        if key in lowered:
            return lowered[key]
    return None


_EXEC_FORM = "# Exec form: the {} is PID 1 and gets `docker stop`'s SIGTERM"
_CMD_COMMENTS = {
    "web": _EXEC_FORM.format("server") + ", which starts a graceful shutdown.",
    "worker": _EXEC_FORM.format("worker") + ", so it ends its current job.",
    "job": _EXEC_FORM.format("process") + ".",
}


def _cmd_comment(inference: Inference) -> str:
    return _CMD_COMMENTS.get(inference.kind, "") if inference.run.cmd else ""


def _healthcheck_comment(inference: Inference) -> str:
    lines = ["# Python, not curl: the slim base has no curl, and the app's interpreter is there anyway."]
    if inference.healthcheck and "urlopen" in inference.healthcheck[-1]:
        lines[0] += " Any error"
        lines.append(
            "# (refused, timeout, non-2xx status) raises, and the non-zero exit marks the probe failed."
        )
    else:
        lines.append("# No health route was found: any HTTP answer below 500 means the server is up.")
    return "\n".join(lines)


def dockerfile(inference: Inference) -> str:
    project = inference.project
    runtime = inference.runtime_packages
    why = "; ".join(dict.fromkeys(f"{p.name}: {p.why}" for p in runtime))
    data_dirs = "".join(f" \\\n    && mkdir -p {d} && chown 10001:10001 {d}" for d in inference.data_dirs)
    keyed = "pyproject.toml and uv.lock" if not project.workspace else "uv.lock and the pyproject.toml files"
    values: dict[str, object] = {
        "header": header(inference),
        "python_image": f"python:{inference.python}-slim",
        "uv_image": f"ghcr.io/astral-sh/uv:{inference.uv_version}",
        "packaged": project.packaged,
        "project_copies": _project_copies(inference) if project.packaged else "",
        "wheel_build": _wheel_build(inference),
        "runtime_packages": " ".join(p.name for p in runtime),
        "runtime_packages_why": "\n".join(
            _comment_block(f"System libraries the dependencies load: {why}.", "# ")
        ),
        "data_dirs": data_dirs,
        "data_dirs_why": (
            f"{' '.join(inference.data_dirs)}: volume mount points, owned by the app's user so a fresh named "
            "volume starts writable."
        ),
        "keyed_on": keyed,
        "bind_mounts": "\n".join(
            f"    --mount=type=bind,source={m},target=/tmp/project/{m} \\" for m in inference.mounts
        ),
        "sync_command": _sync(inference),
        "app_copies": _app_copies(inference),
        "ports": " ".join(str(p) for p in inference.ports),
        "healthcheck": _exec_form(inference.healthcheck) if inference.healthcheck else "",
        "healthcheck_comment": _healthcheck_comment(inference),
        "entrypoint": _exec_form(inference.run.entrypoint) if inference.run.entrypoint else "",
        "cmd": _exec_form(inference.run.cmd) if inference.run.cmd else "",
        "cmd_comment": _cmd_comment(inference),
        "labels": _labels(inference),
    }
    return render(template("Dockerfile.tmpl"), values)


# --- .dockerignore ----------------------------------------------------------------------------------


def dockerignore(inference: Inference, large: Sequence[str] = ()) -> str:
    needed = inference.context_paths
    lines = _comment_block(", ".join(needed) + ".", "# ")
    values = {
        "needed": "\n".join(lines),
        "allow": "\n".join(f"!{p}" for p in needed),
        "large": "\n".join(large),
    }
    return render(template("dockerignore.tmpl"), values)


# --- pyproject.toml ---------------------------------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def dockyard_table(inference: Inference) -> str:
    """`[tool.dockyard]` for a project that has none, each value with where it came from."""
    project = inference.project
    budget_why = next((f.why for f in inference.facts if f.what == "size budget"), "")
    rows: list[tuple[str, object, str]] = [
        ("image", inference.image, "tags: <image>:<version>, <image>:<git sha>")
    ]
    if project.workspace:
        context = "/".join(".." for _ in project.relative.split("/"))
        rows += [
            ("dockerfile", "Dockerfile", ""),
            ("context", context, "the workspace root: uv.lock is there"),
        ]
    rows += [
        ("size-budget", inference.size_budget, budget_why),
        (
            "service",
            inference.service,
            "a long-running server: its HEALTHCHECK must get healthy" if inference.service else "",
        ),
    ]
    verify: list[tuple[str, object, str]] = [("user", "app", "uid 10001, created by the Dockerfile")]
    verify.append(("imports", list(inference.imports), ""))
    if inference.smoke:
        verify.append(("smoke", [{"command": list(c)} for c in inference.smoke], ""))
    if inference.ports:
        verify.append(("ports", list(inference.ports), ""))
    if inference.layer_cache_touch:
        verify.append(
            ("layer-cache-touch", inference.layer_cache_touch, "the file the layer-cache check edits")
        )
    out = [
        "",
        "[tool.dockyard]",
        "# Written by `dockyard init`; every key is described in dockyard's README.",
    ]
    out += _rows(rows)
    out += ["", "[tool.dockyard.verify]", *_rows(verify)]
    if inference.writes_compose:
        files = [inference.compose.file] if inference.compose else ["compose.yaml"]
        out += ["", "[tool.dockyard.compose]", *_rows([("files", files, "")])]
    return "\n".join(out) + "\n"


def _rows(rows: Sequence[tuple[str, object, str]]) -> list[str]:
    lines = []
    for key, value, why in rows:
        line = f"{key} = {_toml(value)}"
        if why and len(line) + len(why) + 5 <= WIDTH:
            line = f"{line:<28} # {why}" if len(line) < 28 else f"{line}  # {why}"
        lines.append(line)
    return lines


def with_dockyard_table(project: Project, table: str) -> str:
    """pyproject.toml's text with the table appended: the user's formatting and comments untouched."""
    text = project.text
    if text and not text.endswith("\n"):
        text += "\n"
    return text + table


# --- tasks.py, noxfile.py, compose.yaml -------------------------------------------------------------


def tasks_py() -> str:
    return render(template("tasks.py.tmpl"), {})


def noxfile_py(compose: bool) -> str:
    return render(template("noxfile.py.tmpl"), {"compose": compose})


TASKS_APPENDIX = """
# dockyard's tasks (build, verify, size-report, lock, compose-build, verify-compose), added by
# `dockyard init`.
from dockyard.tasks import build, compose_build, lock, size_report, verify, verify_compose  # noqa: E402, F401
"""

TASKS_APPENDIX_NS = """
# dockyard's tasks (build, verify, size-report, lock, compose-build, verify-compose), added by
# `dockyard init` to this file's namespace.
from dockyard import tasks as dockyard_tasks  # noqa: E402

for _task in dockyard_tasks.ns.tasks.values():
    {ns}.add_task(_task)
{ns}.configure(dockyard_tasks.ns.configuration())
"""

NOXFILE_APPENDIX = """
# dockyard's image checklist, added by `dockyard init`: `nox -s verify-image`.
from dockyard import sessions as dockyard_sessions  # noqa: E402

verify_image = nox.session(name="verify-image", venv_backend="none")(dockyard_sessions.verify_image)
"""


def compose_yaml(inference: Inference) -> str:
    project = inference.project
    blocks = []
    for role in inference.roles:
        lines = [f"  {role.name}:", "    <<: *app"]
        if role.command:
            lines.append(f"    command: {_exec_form(role.command)}")
        if role.name in ("web", "app") and inference.ports:
            lines.append("    ports:")
            for i, port in enumerate(inference.ports):
                variable = "WEB_PORT" if i == 0 else f"WEB_PORT_{port}"
                lines.append(f'      - "${{{variable}:-{port}}}:{port}"')
        blocks.append("\n".join(lines) + "\n")
    context = "." if project.relative == "." else "/".join(".." for _ in project.relative.split("/"))
    dockerfile = "Dockerfile" if project.relative == "." else f"{project.relative}/Dockerfile"
    values = {
        "name": inference.image.rsplit("/", 1)[-1].replace(".", "-"),
        "context": context,
        "dockerfile": dockerfile,
        "python_image": f"python:{inference.python}-slim",
        "uv_image": f"ghcr.io/astral-sh/uv:{inference.uv_version}",
        "services": "\n".join(blocks),
    }
    return render(template("compose.yaml.tmpl"), values)
