"""worker-stack: a web service, a worker and a scheduler sharing one image and a SQLite job queue."""

__version__ = "1.0.0"
