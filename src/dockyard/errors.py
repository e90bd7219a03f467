"""One exception root for everything dockyard reports to a user.

Every error carries a one-line message that names what is wrong and how to fix it. The CLI, the Invoke
tasks and the Nox sessions map these to exit codes in one place (`dockyard.cli.run_boundary`).
"""

from __future__ import annotations

from collections.abc import Sequence

EXIT_FAILURE = 1
EXIT_USAGE = 2


class DockyardError(Exception):
    """Root of all errors dockyard raises on purpose."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # extra output shown below the one-line message (e.g. a failing build step)


class UsageError(DockyardError):
    """Bad input from the user: an option, an argument, a file that is not there."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Invalid `[tool.dockyard]` configuration."""


class EngineUnavailable(DockyardError):
    """No Docker engine answers, or no BuildKit-capable build path exists."""


class CommandError(DockyardError):
    """An external command (docker, uv, git) failed."""

    def __init__(self, message: str, *, argv: Sequence[str], returncode: int, output: str) -> None:
        super().__init__(message, detail=output)
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output


class BuildFailed(CommandError):
    """An image build failed; `detail` holds the failing step's output."""


class BaseImageUnavailable(BuildFailed):
    """A build could not start: an image it pulls (a base, a `--from` image) could not be had from its
    registry. Not the Dockerfile's fault: a check reports it as an ERROR, not a FAIL."""


class ImageNotFound(UsageError):
    """The image reference names no local image."""


class CommandTimeout(DockyardError):
    """An external command or a container did not finish within its time limit."""


class ChecksFailed(DockyardError):
    """One or more checks failed; the report has already been printed."""
