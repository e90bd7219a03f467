"""`invoke build`, `invoke verify`, `invoke lock --check`: dockyard's tasks for this project."""

from dockyard.tasks import ns

__all__ = ["ns"]
