"""Fixture trees for `dockyard init`: uv projects written file by file, with a uv.lock written the way
uv writes one (packages, sources, dependency edges, wheels), so inference is tested without network."""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PYPI = 'source = { registry = "https://pypi.org/simple" }'
ANY_WHEEL = "py3-none-any"
CP313_LINUX = "cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64"


@dataclass
class Locked:
    """One `[[package]]` of a uv.lock."""

    name: str
    version: str = "1.0.0"
    source: str = PYPI
    dependencies: Sequence[str] = ()
    wheels: Sequence[str] = (ANY_WHEEL,)  # wheel tags; empty: an sdist only
    sdist: bool = True
    size: int = 100_000
    dev: Mapping[str, Sequence[str]] = field(default_factory=dict)


def lock_text(packages: Sequence[Locked], members: Sequence[str] = ()) -> str:
    out = ["version = 1", "revision = 3", 'requires-python = ">=3.11"', ""]
    if members:
        out += ["[manifest]", "members = [" + ", ".join(f'"{m}"' for m in members) + "]", ""]
    for package in packages:
        out += ["[[package]]", f'name = "{package.name}"', f'version = "{package.version}"', package.source]
        if package.dependencies:
            out.append(
                "dependencies = [" + ", ".join(f'{{ name = "{d}" }}' for d in package.dependencies) + "]"
            )
        stem = f"{package.name.replace('-', '_')}-{package.version}"
        if package.sdist and package.source == PYPI:
            url = f"https://files.example/{stem}.tar.gz"
            out.append(f'sdist = {{ url = "{url}", hash = "sha256:00", size = {package.size} }}')
        if package.wheels and package.source == PYPI:
            wheels = ", ".join(
                f'{{ url = "https://files.example/{stem}-{tag}.whl", hash = "sha256:00", '
                f"size = {package.size} }}"
                for tag in package.wheels
            )
            out.append(f"wheels = [{wheels}]")
        if package.dev:
            out += ["", "[package.dev-dependencies]"]
            for group, names in package.dev.items():
                out.append(f"{group} = [" + ", ".join(f'{{ name = "{n}" }}' for n in names) + "]")
        out.append("")
    return "\n".join(out)


def write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def pyproject(
    name: str,
    dependencies: Sequence[str] = (),
    *,
    packaged: bool = True,
    scripts: Mapping[str, str] | None = None,
    requires_python: str = ">=3.11",
    extra: str = "",
) -> str:
    deps = ", ".join(f'"{d}"' for d in dependencies)
    text = f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = "{requires_python}"\n'
    text += f"dependencies = [{deps}]\n"
    if scripts:
        text += "\n[project.scripts]\n" + "".join(f'{k} = "{v}"\n' for k, v in scripts.items())
    if packaged:
        text += '\n[build-system]\nrequires = ["uv_build>=0.9,<0.14"]\nbuild-backend = "uv_build"\n'
    return text + extra


def packaged_project(
    root: Path,
    name: str,
    direct: Sequence[str] = (),
    *,
    locked: Sequence[Locked] = (),
    modules: Mapping[str, str] | None = None,
    scripts: Mapping[str, str] | None = None,
    dev: Sequence[str] = (),
    extra: str = "",
    packaged: bool = True,
) -> Path:
    """A `uv init --package`-shaped project (src/<pkg>/; `packaged=False`: a `uv init` app whose
    `modules` sit at the top), with a lock holding `direct`, `dev` and anything in `locked`."""
    package = name.replace("-", "_")
    files = {
        "pyproject.toml": pyproject(name, direct, scripts=scripts, extra=extra, packaged=packaged),
        "README.md": f"# {name}\n",
    }
    if packaged:
        files[f"src/{package}/__init__.py"] = ""
        files.update({f"src/{package}/{k}": v for k, v in (modules or {}).items()})
    else:
        files.update(modules or {"main.py": MAIN})
    write(root, files)
    source = 'source = { editable = "." }' if packaged else 'source = { virtual = "." }'
    own = Locked(name, "0.1.0", source=source, dependencies=direct, dev={"dev": list(dev)} if dev else {})
    named = {p.name for p in locked}
    extra_locked = [Locked(n) for n in (*direct, *dev) if n not in named]
    (root / "uv.lock").write_text(lock_text([own, *locked, *extra_locked]))
    return root


MAIN = """\
def main() -> None:
    print("Hello")


if __name__ == "__main__":
    main()
"""


def git_init(root: Path) -> None:
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"],
    ):
        subprocess.run(argv, cwd=root, check=True, capture_output=True)


STARLETTE_APP = """\
from starlette.applications import Starlette
from starlette.routing import Route

app = Starlette(routes=[])
"""

CELERY = """\
from celery import Celery
from celery.schedules import crontab

app = Celery("jobs", broker="redis://redis:6379/0")
app.conf.beat_schedule = {"tick": {"task": "jobs.tasks.tick", "schedule": crontab()}}
"""


def workspace_member(root: Path) -> Path:
    """A workspace of three members under packages/; returns api, which depends on lib (not other)."""
    write(
        root,
        {
            "pyproject.toml": '[project]\nname = "root"\nversion = "0"\nrequires-python = ">=3.11"\n'
            '[tool.uv.workspace]\nmembers = ["packages/*"]\n',
            "packages/api/pyproject.toml": pyproject(
                "api",
                ["lib", "starlette", "uvicorn"],
                extra="\n[tool.uv.sources]\nlib = { workspace = true }\n",
            ),
            "packages/api/README.md": "# api\n",
            "packages/api/src/api/__init__.py": "",
            "packages/api/src/api/main.py": STARLETTE_APP,
            "packages/lib/pyproject.toml": pyproject("lib"),
            "packages/lib/src/lib/__init__.py": "",
            "packages/other/pyproject.toml": pyproject("other"),
            "packages/other/src/other/__init__.py": "",
        },
    )
    members = [
        Locked("root", "0", source='source = { virtual = "." }'),
        Locked(
            "api",
            "0.1.0",
            source='source = { editable = "packages/api" }',
            dependencies=["lib", "starlette", "uvicorn"],
        ),
        Locked("lib", "0.1.0", source='source = { editable = "packages/lib" }'),
        Locked("other", "0.1.0", source='source = { editable = "packages/other" }'),
        Locked("starlette"),
        Locked("uvicorn"),
    ]
    (root / "uv.lock").write_text(lock_text(members, members=["api", "lib", "other", "root"]))
    return root / "packages" / "api"
