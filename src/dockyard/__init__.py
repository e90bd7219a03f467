"""dockyard: the container image lifecycle for uv-managed Python services."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dockyard")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
