"""Running dockyard's probe (src/dockyard/probe.py) inside an image: one container, one JSON answer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dockyard import probe
from dockyard.engine import Engine
from dockyard.errors import DockyardError

# The app's interpreter is the `python` first on the image's PATH; `python3` when there is no `python`.
_INTERPRETERS = ("python", "python3")


class ProbeFailed(DockyardError):
    """The probe could not run in the image, or did not answer with JSON."""


def run_probe(
    engine: Engine, image_ref: str, spec: Mapping[str, object], *, timeout: float = 120
) -> dict[str, Any]:
    """Run the probe once in a labelled, network-less container of `image_ref`, as its user."""
    source = probe.source()
    problems = []
    for interpreter in _INTERPRETERS:
        try:
            done = engine.run_once(
                image_ref,
                ["-c", source, json.dumps(dict(spec))],
                entrypoint=[interpreter],
                timeout=timeout,
                network_mode="none",
            )
        except DockyardError as exc:  # most often: no such executable in the image
            problems.append(f"{interpreter}: {exc.message}")
            continue
        try:
            answer = json.loads(done.stdout)
        except json.JSONDecodeError:
            tail = done.output[-300:] or "no output"
            raise ProbeFailed(
                f"the probe in {image_ref} exited {done.code} without a JSON answer: {tail}"
            ) from None
        if not isinstance(answer, dict):
            raise ProbeFailed(f"the probe in {image_ref} answered {type(answer).__name__}, not an object")
        return answer
    raise ProbeFailed(
        f"no Python to probe {image_ref} with ({'; '.join(problems)}): dockyard checks Python images"
    )
