"""The machine dockyard runs on: `provision.sh` readies a bare Debian/Ubuntu host (engine, Compose,
BuildKit path, base-image stand-ins, machine file)."""
