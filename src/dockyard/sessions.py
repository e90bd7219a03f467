"""Nox sessions dockyard offers to projects. In a project's noxfile.py:

    from dockyard import sessions
    verify_image = nox.session(name="verify-image", venv_backend="none")(sessions.verify_image)

They run dockyard in the Nox process itself (no session virtualenv is needed): `nox -s verify-image`
builds the project's image and runs the checklist; `nox -s verify-image -- --image REF --junit X`
passes options through to `dockyard verify`.
"""

from __future__ import annotations

import nox

from dockyard import cli


def verify_image(session: nox.Session) -> None:
    """Build the project's image and run dockyard's image checklist on it."""
    code = cli.main(["verify", *session.posargs])
    if code:
        session.error(f"dockyard verify exited {code}")
