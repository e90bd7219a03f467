"""Running Python inside an image: dockyard's probe (`dockyard.verify.probe`), or any small snippet, in
one labelled, network-less container that answers with one JSON document.

The probe starts as root (it must see every file) with a Python of the image, isolated from the
image's Python settings (`-I -S`); it resolves the app's own interpreter and user itself, from the
image config passed in its spec (`app_config`), and runs the user-level part as the app."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.engine import Engine
from dockyard.errors import DockyardError
from dockyard.image.metadata import ImageInfo
from dockyard.verify import probe

# A snippet runs with the `python` first on the image's PATH; `python3` when there is no `python`.
INTERPRETERS = ("python", "python3")
# The probe only needs some Python of the image to start from (it finds the app's own itself).
PROBE_INTERPRETERS = ("python3", "python")
ROOT = "0:0"


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
    flags: Sequence[str] = (),
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
                [*flags, "-c", source, json.dumps(argument)],
                entrypoint=[interpreter],
                timeout=timeout,
                network_mode="none",
                **extra,
            )
        except DockyardError as exc:
            text = exc.message.lower()
            if "not found" not in text and "no such file" not in text:
                raise  # not a missing interpreter: an unknown user, say
            problems.append(interpreter)
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
    tried = " nor ".join(f"`{name}`" for name in problems)
    raise ProbeFailed(
        f"no Python in {image_ref} to run {what} with: {'neither ' if len(problems) > 1 else ''}{tried} "
        "is on its PATH (an image without Python cannot be checked from inside)"
    )


def app_config(info: ImageInfo) -> dict[str, object]:
    """What the probe needs to run the app's part as the app: the image's command, ENV, USER, WORKDIR."""
    return {
        "entrypoint": list(info.entrypoint) if info.entrypoint is not None else None,
        "cmd": list(info.cmd) if info.cmd is not None else None,
        "env": [f"{key}={value}" for key, value in info.env.items()],
        "user": info.user,
        "workdir": info.working_dir or "/",
        "volumes": list(info.volumes),
    }


def run_probe(
    engine: Engine, image_ref: str, spec: Mapping[str, object], *, timeout: float = 120
) -> dict[str, Any]:
    """Run dockyard's probe once in a container of `image_ref`: as root, the app's part as the app."""
    starters = list(PROBE_INTERPRETERS)
    app = spec.get("app")
    command = [*(app.get("entrypoint") or []), *(app.get("cmd") or [])] if isinstance(app, dict) else []
    first = str(command[0]) if command else ""
    if first.startswith("/") and probe.PYTHON_NAME.match(first.rsplit("/", 1)[-1]):
        starters.append(first)  # an interpreter off PATH: still one the probe can start from
    answer, _ = run_python(
        engine,
        image_ref,
        probe.source(),
        dict(spec),
        what="the probe",
        user=ROOT,
        timeout=timeout,
        interpreters=starters,
        flags=("-I", "-S"),
    )
    return answer
