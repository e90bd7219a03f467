"""api-service: a small HTTP API, packaged and checked the dockyard way."""

from importlib.metadata import version

__version__ = version("api-service")
