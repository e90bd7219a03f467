"""Every command line the README shows works as written: `invoke` tasks take the options shown,
`dockyard` parses them, `nox` sessions exist, scripts and bench files are there."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dockyard import cli
from dockyard.tasks import ns

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PLACEHOLDERS = {"IMAGE": "acme/api:1.0", "REF": "acme/api:1.0", "PATH": "out.json", "ID": "size"}


def _commands() -> list[str]:
    """Command lines in code spans and console blocks, without `uv run` and trailing comments."""
    spans = re.findall(r"`((?:uv run |sudo )?(?:invoke|nox|dockyard|bash) [^`]*)`", README)
    blocks = re.findall(r"```console\n(.*?)```", README, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    found = []
    for raw in [*spans, *lines]:
        text = " ".join(raw.split()).removeprefix("sudo ").removeprefix("uv run ")
        if text.startswith(("invoke ", "nox ", "dockyard ", "bash ")):
            found.append(text)
    return sorted(set(found))


COMMANDS = _commands()


def _words(command: str) -> list[str]:
    """Optional parts `[--image IMAGE]` taken as given, placeholders filled."""
    words = shlex.split(command.replace("[", "").replace("]", ""))
    return [PLACEHOLDERS.get(word, word) for word in words]


def test_the_readme_shows_every_door() -> None:
    kinds = {command.split()[0] for command in COMMANDS}
    assert kinds == {"invoke", "nox", "dockyard", "bash"}, COMMANDS
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("invoke ")])
def test_invoke_commands_take_their_options(command: str) -> None:
    words = _words(command)[1:]
    if words[:1] == ["-r"]:  # invoke's own option: the project directory
        assert words[1] == "DIR" or (ROOT / words[1] / "tasks.py").is_file()
        words = words[2:]
    if not words:  # the option alone, named in prose
        return
    task = ns.tasks[words[0]]
    options = {name for arg in task.get_arguments() for name in arg.names}
    rest = words[1:]
    for word in rest:
        if word.startswith("--"):
            assert word.removeprefix("--") in options, f"`invoke {words[0]}` has no {word}"
    previous = [None, *rest][: len(rest)]
    positional = [
        w
        for w, p in zip(rest, previous, strict=True)
        if not w.startswith("-") and not (p or "").startswith("--")
    ]
    assert not positional, f"Invoke tasks take no positional arguments (Invoke requires them): {command}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("dockyard ")])
def test_dockyard_commands_parse(command: str) -> None:
    cli.parser().parse_args(_words(command)[1:])


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("nox ")])
def test_nox_sessions_exist(command: str) -> None:
    words = _words(command)[1:]
    names = words[words.index("-s") + 1 :]
    names = names[: names.index("--")] if "--" in names else names
    noxfile = (ROOT / "noxfile.py").read_text()
    for name in names:
        assert re.search(rf'(name="{name}"|def {name.replace("-", "_")}\b)', noxfile), name
    if "--" in words:  # posargs go to `dockyard verify`
        cli.parser().parse_args(["verify", *words[words.index("--") + 1 :]])


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("bash ") and "/" in c.split()[1]])
def test_scripts_exist(command: str) -> None:
    assert (ROOT / _words(command)[1]).is_file()


def test_bench_scripts_named_in_the_readme_exist() -> None:
    for name in re.findall(r"`(\w+\.py)`", README.split("## Benchmarks")[1].split("##")[0]):
        assert (ROOT / "bench" / name).is_file(), name
