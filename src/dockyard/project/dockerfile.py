"""Just enough Dockerfile reading to know the stages, the declared ARGs, the final base image and
every image the build pulls."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import UsageError

# `COPY --from=X` and `RUN --mount=type=bind,from=X,...`: X is a stage, a stage's index or an image.
_FROM_OPTION = re.compile(r"(?:^|\s|,)--(?:from|mount=(?:[^\s]*,)?from)=([^\s,]+)")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Stage:
    base: str  # as written, variables unresolved
    name: str | None


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    global_args: Mapping[str, str | None]  # ARGs before the first FROM, with their defaults
    stages: tuple[Stage, ...]
    instructions: tuple[tuple[str, str], ...]  # (KEYWORD, rest), continuation lines joined

    def final_base(self, build_args: Mapping[str, str]) -> str | None:
        """The image the final stage starts from, following stage names; None for scratch."""
        values = {k: v for k, v in self.global_args.items() if v is not None}
        values.update(build_args)
        names = {stage.name: stage for stage in self.stages if stage.name}
        stage = self.stages[-1]
        for _ in range(len(self.stages)):
            base = substitute(stage.base, values)
            if base.lower() in names:
                stage = names[base.lower()]
                continue
            return None if base == "scratch" else base
        return None

    def external_images(self, build_args: Mapping[str, str]) -> tuple[Pulled, ...]:
        """Every image the build pulls, in order: the stages' bases and the sources of `COPY --from`
        and `RUN --mount=from=` that are not stages, with the global ARGs substituted as the builder
        does (their defaults, overridden by the build args given for them). Not scratch."""
        values = {k: v for k, v in self.global_args.items() if v is not None}
        values.update({k: v for k, v in build_args.items() if k in self.global_args})
        stages: set[str] = set()
        found: dict[str, Pulled] = {}

        def add(written: str) -> None:
            reference = substitute(written, values)
            if not reference or reference.lower() in stages or reference.isdigit() or reference == "scratch":
                return
            whole = _VARIABLE.fullmatch(written)
            arg = (whole.group(1) or whole.group(3)) if whole else None
            found.setdefault(reference, Pulled(reference, arg if arg in self.global_args else None))

        for keyword, rest in self.instructions:
            if keyword == "FROM":
                words = [w for w in rest.split() if not w.startswith("--")]
                add(words[0] if words else "")
                if len(words) >= 3 and words[1].upper() == "AS":
                    stages.add(words[2].lower())
            elif keyword in ("COPY", "RUN"):
                for match in _FROM_OPTION.finditer(rest):
                    add(match.group(1).strip("\"'"))
        return tuple(found.values())


@dataclass(frozen=True)
class Pulled:
    """An image a build pulls, and the global ARG that names it (None: written into the Dockerfile)."""

    reference: str
    arg: str | None = None


def substitute(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2)
        return values.get(name, default if default is not None else "")

    return _VARIABLE.sub(replace, text)


def parse(path: Path) -> Dockerfile:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"Dockerfile {path} does not exist: fix `dockerfile` in [tool.dockyard]") from None
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0] if words else "", name=name))
        elif keyword == "ARG" and not stages:
            for item in rest.split():
                key, sep, default = item.partition("=")
                global_args[key] = default.strip("\"'") if sep else None
    if not stages:
        raise UsageError(f"{path} has no FROM instruction: it is not a Dockerfile")
    return Dockerfile(path, global_args, tuple(stages), tuple(instructions))
