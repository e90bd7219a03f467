"""The user's project as dockyard finds it: its lock (`lock`), its Dockerfile (`dockerfile`) and its
compose model (`compose`)."""
