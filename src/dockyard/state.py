"""Where dockyard keeps its own state: the user's state directory, never the project's tree.

`$XDG_STATE_HOME/dockyard/` (default `~/.local/state/dockyard/`), with one directory per project, named
by a readable slug of the project's path and a short hash of it (`home-ana-src-api-3f2a9c1e`), so two
checkouts of the same project keep separate histories and a person can still tell them apart.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["project_key", "project_state_dir", "state_dir"]

_SLUG_MAX = 48


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """dockyard's state directory: `$XDG_STATE_HOME/dockyard`, else `~/.local/state/dockyard`."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME", "")
    if not base or not Path(base).is_absolute():  # the XDG spec: a relative value is to be ignored
        base = str(_home(environ) / ".local" / "state")
    return Path(base) / "dockyard"


def _home(environ: Mapping[str, str]) -> Path:
    if home := environ.get("HOME"):
        return Path(home)
    try:
        return Path.home()
    except RuntimeError:  # a uid with no passwd entry and no HOME (a container run as --user 12345)
        return Path(tempfile.gettempdir()) / f"dockyard-{os.getuid()}"


def project_key(root: Path) -> str:
    """A stable, readable directory name for the project at `root`: a slug of its path plus a hash."""
    real = os.path.realpath(root)
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", real.lower()).strip("-")[-_SLUG_MAX:].lstrip("-") or "root"
    return f"{slug}-{digest}"


def project_state_dir(root: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The state directory of the project at `root` (not created here)."""
    return state_dir(environ) / "projects" / project_key(root)


def lock_file(path: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The lock file that guards `path` (any file dockyard updates in place), kept in the state
    directory so that a history the user keeps in the project gets no lock file beside it."""
    return state_dir(environ) / "locks" / f"{project_key(path)}.lock"
