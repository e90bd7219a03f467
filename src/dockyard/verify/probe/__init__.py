"""The in-container probe: one program that collects every fact verify-image and size-report need.

dockyard reads this file's source (:func:`source`) and runs it once in a container of the image, as
root, with a Python of the image, isolated from the image's Python settings::

    docker run --rm --user 0:0 --entrypoint python3 IMAGE -I -S -c <source> <spec-json>

It prints exactly one JSON document to stdout and exits 0. It runs on Python 3.8 through 3.14 and uses
the standard library only: no ``match``, no runtime ``X | Y`` or ``list[str]`` (annotations are strings
thanks to the ``__future__`` import), nothing newer than 3.8 at runtime.

The program travels as one ``-c`` argument: :func:`source` joins the parts (``PARTS``, in order: each
may use what an earlier one defines) into one module, dropping the imports between the parts, which
exist so each part can be read, linted, type-checked and unit-tested on its own. Each part starts with
a ``PART_MARK`` line, so the root hands the app probe only the parts it runs (``APP_PARTS``).

Two processes, one container:

* **root** (this process) resolves what the app really runs, the way the kernel, Docker and Python
  do: the exec-form ENTRYPOINT + CMD, ``argv[0]`` looked up on the image's PATH, shebangs followed
  (``#!/usr/bin/env python3`` too), init wrappers (tini, dumb-init), shells and ``uv run`` seen
  through, then ``python [flags] (-m mod | -c code | script)``. It resolves the image's USER from the
  image's /etc/passwd and /etc/group as Docker does (``name``, ``uid``, ``uid:gid``, ``name:group``,
  supplementary groups, HOME). It then starts the **app** probe and, while that runs, walks the
  whole filesystem: every file is seen, an unreadable entry is counted and listed, never skipped in
  silence; only what is not in the image is left out (/proc, /sys, /dev and mount points other than
  the image's VOLUMEs).
* **app** (this same source, started again) runs with the app's interpreter and its flags, as the
  image's user, with the image's ENV and WORKDIR. It reports the user it really is (uid, euid, gid,
  egid, groups), the app's real ``sys.path`` (``sys.path[0]`` as the app gets it: the script's folder,
  the working directory for ``-m``, nothing when isolated), every distribution on it with RECORD
  verified for the ones the host asks about and the file each of their top-level import names
  resolves to; and it runs the imports (the entry point's module and the configured ones) and the
  smoke commands, concurrently.

Spec (a JSON object, every key optional):

* ``app``: ``{"entrypoint", "cmd", "env" (list of ``K=V``), "user", "workdir", "volumes"}``, the
  image's config. Absent: the app is this interpreter, user and environment.
* ``imports`` (module names), ``import_timeout`` (default 20 s), ``commands``
  (``{"argv": [...], "timeout": seconds}``, default 30 s), ``which`` (executables to look up).
* ``verify_records`` (distribution names): their RECORD is verified (files present, sha256) and their
  top-level import names resolved.
* ``forbidden_names`` (basename globs, case-insensitive, also matched against what an editor backup
  such as ``.env~``, ``#.env#`` or ``.env.swp`` is a copy of), ``forbidden_paths`` (absolute path
  globs), ``project_trees`` (``{"tests": [[relative path, size], ...]}``: a folder of that name anywhere
  whose contents match the project's own is reported), ``sniff_private_keys`` (default true: every
  regular file, whatever its size, is streamed for a PEM private key block; ELF binaries and bytecode
  beside its source excepted).
* ``facts`` (names from ``FACTS``): what to gather besides the app's resolution, user, interpreter
  and sys.path, which always come; absent, everything. Each fact implies those it is judged with
  (``FACT_IMPLIES``); the walk runs only for ``environments``, ``strays``, ``privileged`` or
  ``build_tools``, and a section not asked for is empty.
* ``walk_roots`` (default ``["/"]``), ``walk_exclude`` (default ``/proc /sys /dev``; globs),
  ``deadline_seconds`` (default 60: the walk stops then and says ``"truncated": true``).

Output keys: ``probe``, ``app``, ``python``, ``user``, ``env``, ``cwd``, ``sys_path``,
``environments``, ``imports``, ``commands``, ``which``, ``stray_files``, ``privileged``,
``build_tools``, ``walk``, ``errors``, ``seconds``, ``cpu_seconds``. Every section guards itself: a
failing section is recorded in ``errors`` and never loses the others.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from dockyard.verify.probe.common import (
    APP_PARTS,
    FACT_BUILD_TOOLS,
    FACT_COMMANDS,
    FACT_ENVIRONMENTS,
    FACT_FOOTPRINT,
    FACT_IMPORTS,
    FACT_PRIVILEGED,
    FACT_RECORDS,
    FACT_STRAYS,
    FACTS,
    PART_MARK,
    app_source,
    closed_facts,
)
from dockyard.verify.probe.resolve import PYTHON_NAME

PARTS = ("common", "resolve", "distributions", "app", "walk", "main")
_BETWEEN_PARTS = re.compile(r"^# probe: parts.*?^# probe: end parts\n", re.MULTILINE | re.DOTALL)
_FUTURE = "from __future__ import annotations\n"

__all__ = [
    "APP_PARTS",
    "FACTS",
    "FACT_BUILD_TOOLS",
    "FACT_COMMANDS",
    "FACT_ENVIRONMENTS",
    "FACT_FOOTPRINT",
    "FACT_IMPORTS",
    "FACT_PRIVILEGED",
    "FACT_RECORDS",
    "FACT_STRAYS",
    "PARTS",
    "PART_MARK",
    "PYTHON_NAME",
    "app_source",
    "closed_facts",
    "source",
]


@functools.cache
def source() -> str:
    """The probe as one program, for ``python -c`` in a container (host side; Python >= 3.9)."""
    texts = []
    for part in PARTS:
        text = resources.files(__name__).joinpath(f"{part}.py").read_text(encoding="utf-8")
        body = _BETWEEN_PARTS.sub("", text).replace(_FUTURE, "", 1)
        texts.append(f"{PART_MARK}{part}\n{body}")
    return _FUTURE + "\n".join(texts)
