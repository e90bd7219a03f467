"""`python -m worker_stack.healthcheck [PORT]`: exit 0 when GET /health on localhost answers 200.

Used by the image's HEALTHCHECK (the web service, port 8000) and by the worker's (port 8001), so the
image needs no curl.
"""

from __future__ import annotations

import sys
import urllib.request


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    port = int(args[0]) if args else 8000
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
