"""dockyard: the container image lifecycle for uv-managed Python services."""

# Written out rather than read with importlib.metadata, whose import alone would double the time
# `dockyard --version` takes; tests/unit/test_startup.py checks it against pyproject.toml.
__version__ = "0.1.0"

__all__ = ["__version__"]
