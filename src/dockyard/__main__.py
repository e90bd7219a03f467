"""The `dockyard` command (and `python -m dockyard`): `dockyard.cli.main`, with Ctrl-C and SIGTERM
honoured from the first instant.

Importing the CLI (rich, the Docker SDK) takes a moment; a signal in that moment ends dockyard with
exit 130, as later, instead of a traceback or a silent death by SIGTERM. Nothing exists yet to clean up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 130


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        from dockyard import cli  # noqa: PLC0415 - after the handler, on purpose

        return cli.main()
    except KeyboardInterrupt:  # before or between the CLI's own boundaries
        print("dockyard: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run() -> None:
    """The command's entry point. An interrupted run ends right here, with 130, its cleanup done:
    the interpreter's own shutdown is skipped, because an interrupt that reached Python in the middle
    of an import can leave it to end the process by SIGINT instead (exit -2, seen under load)."""
    code = main()
    if code == EXIT_INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(EXIT_INTERRUPTED)
    sys.exit(code)


if __name__ == "__main__":
    run()
