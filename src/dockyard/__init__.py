"""dockyard: the container image lifecycle for uv-managed Python services."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Looked up on first use, not at import: `python -m dockyard` reaches its signal handlers at once.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("dockyard")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0"
    raise AttributeError(f"module 'dockyard' has no attribute {name!r}")
