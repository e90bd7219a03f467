"""dockyard's Nox sessions: tests, lint, types, and dockyard's own checks on its own image."""

from __future__ import annotations

import nox

from dockyard import sessions

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True


def _sync(session: nox.Session, *groups: str) -> None:
    """Install the locked project (and dependency groups) into the session's virtualenv."""
    args = [f"--group={group}" for group in groups]
    session.run_install(
        "uv", "sync", "--frozen", "--no-default-groups", *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )  # fmt: skip


@nox.session(tags=["test"])
def tests(session: nox.Session) -> None:
    """Run the unit and engine tests."""
    _sync(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(tags=["lint"])
def lint(session: nox.Session) -> None:
    """Lint and check formatting with ruff."""
    _sync(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["lint"])
def typing(session: nox.Session) -> None:
    """Type-check with mypy (strict)."""
    _sync(session, "lint", "test")
    session.run("mypy")


verify_image = nox.session(name="verify-image", venv_backend="none", tags=["image"])(sessions.verify_image)


@nox.session(name="verify-compose", venv_backend="none", tags=["image"])
def verify_compose(session: nox.Session) -> None:
    """Build examples/worker-stack's services and check each service and image."""
    with session.chdir("examples/worker-stack"):
        sessions.verify_compose(session)
