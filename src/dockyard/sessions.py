"""Nox sessions dockyard offers to projects (install `dockyard[nox]`). In a project's noxfile.py:

    from dockyard import sessions
    verify_image = nox.session(name="verify-image", venv_backend="none")(sessions.verify_image)
    verify_compose = nox.session(name="verify-compose", venv_backend="none")(sessions.verify_compose)

They run dockyard in the Nox process itself (no session virtualenv is needed): `nox -s verify-image`
builds the project's image and runs the checklist; `nox -s verify-image -- --image REF --junit X`
passes options through to `dockyard verify` (and `verify-compose` to `dockyard verify-compose`).
"""

from __future__ import annotations

import logging

import nox

from dockyard import cli


def _run(session: nox.Session, command: str) -> None:
    # Nox sets the root logger to DEBUG; the engine clients' request logs (docker-py's, urllib3's and
    # dockyard's own client's) are not part of a report.
    for name in ("docker", "urllib3", "dockyard"):
        logging.getLogger(name).setLevel(logging.WARNING)
    code = cli.main([command, *session.posargs])
    if code:
        session.error(f"dockyard {command} exited {code}")


def verify_image(session: nox.Session) -> None:
    """Build the project's image and run dockyard's image checklist on it."""
    _run(session, "verify")


def verify_compose(session: nox.Session) -> None:
    """Build the compose file's services and check each service and each distinct image."""
    _run(session, "verify-compose")
