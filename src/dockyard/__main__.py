"""`python -m dockyard`: the `dockyard` command (`dockyard.cli.run`), with SIGTERM honoured while the
CLI loads too (a signal in that moment ends dockyard with exit 130; nothing exists yet to clean up)."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

EXIT_INTERRUPTED = 130


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        from dockyard.cli import run
    except KeyboardInterrupt:
        print("dockyard: interrupted", file=sys.stderr)
        os._exit(EXIT_INTERRUPTED)
    run()
