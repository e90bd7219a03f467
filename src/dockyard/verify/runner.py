"""Running Python inside an image: dockyard's probe (`dockyard.verify.probe`), or any small snippet, in
one labelled, network-less container that answers with one JSON document."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.engine import Engine
from dockyard.errors import DockyardError
from dockyard.verify import probe

# The app's interpreter is the `python` first on the image's PATH; `python3` when there is no `python`.
INTERPRETERS = ("python", "python3")


class ProbeFailed(DockyardError):
    """The snippet could not run in the image, or did not answer with a JSON object."""


def run_python(
    engine: Engine,
    image_ref: str,
    source: str,
    argument: object,
    *,
    what: str,
    user: str | None = None,
    timeout: float = 120,
    interpreters: Sequence[str] = INTERPRETERS,
) -> tuple[dict[str, Any], str]:
    """Run `source` with the image's first Python (as its user, or `user`), passing `argument` as JSON.

    Returns the JSON object it printed and the interpreter that ran it. `what` names the snippet in
    errors ("the probe", "the command check").
    """
    problems = []
    extra = {"user": user} if user else {}
    for interpreter in interpreters:
        try:
            done = engine.run_once(
                image_ref,
                ["-c", source, json.dumps(argument)],
                entrypoint=[interpreter],
                timeout=timeout,
                network_mode="none",
                **extra,
            )
        except DockyardError as exc:
            text = exc.message.lower()
            if "not found" not in text and "no such file" not in text:
                raise  # not a missing interpreter: an unknown user, say
            problems.append(f"{interpreter}: {exc.message}")
            continue
        try:
            answer = json.loads(done.stdout)
        except json.JSONDecodeError:
            tail = done.output[-300:] or "no output"
            raise ProbeFailed(
                f"{what} in {image_ref} exited {done.code} without a JSON answer: {tail}"
            ) from None
        if not isinstance(answer, dict):
            raise ProbeFailed(f"{what} in {image_ref} answered {type(answer).__name__}, not an object")
        return answer, interpreter
    raise ProbeFailed(f"no Python in {image_ref} to run {what} with ({'; '.join(problems)})")


def run_probe(
    engine: Engine, image_ref: str, spec: Mapping[str, object], *, timeout: float = 120
) -> dict[str, Any]:
    """Run dockyard's probe once in a container of `image_ref`, as its user."""
    answer, _ = run_python(engine, image_ref, probe.source(), dict(spec), what="the probe", timeout=timeout)
    return answer
