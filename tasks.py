"""This repository's Invoke tasks: dockyard's own namespace, used on dockyard's own image."""

from dockyard.tasks import ns

__all__ = ["ns"]
