# dockyard's production image, written by `dockyard init` from what it found:
#
#   python       3.13                      requires-python ">=3.11" (the default)
#   uv           0.13.8                    dockyard's pin (set [tool.uv] required-version to choose)
#   project      packaged (uv_build)       a wheel built in the `project` stage, installed --no-deps
#   lock         uv.lock, --locked         next to pyproject.toml; the build fails if it is stale
#   runs         command line: `dockyard`  [project.scripts] dockyard = dockyard.cli:run parses arguments
#   size budget  200MB                     base ~130 MB + 15 locked wheels ~11 MB installed, +25%
#
# Build it with `invoke build`. It needs only the engine's built-in BuildKit (Engine 20.10+) or buildx:
# no `# syntax=` line, no heredocs, no variables inside --mount, no COPY --link. After changing any of
# the above, `dockyard init --dry-run` shows what init would write now.
#
# Layers of the final image, bottom to top: the base image, the user, the locked dependencies (keyed
# only on uv.lock and pyproject.toml), then a small layer holding just the project's own package. A
# source-only change rebuilds and ships only that last layer.
#
# Everything is installed in the final stage, so an inline cache (`--cache-from` an image pushed with
# `--cache-to`) carries the dependency layer to a fresh machine and its install does not run again. uv,
# the lock files, the wheel and the CA bundle are mounted for the steps that use them, never copied:
# they are not in the image. The mounts sit under a tmpfs on /tmp, so their mount points leave nothing
# in a layer either.

ARG PYTHON_IMAGE=python:3.13-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# --- the project, as a wheel (this stage never ships) -------------------------------------------------
FROM ${PYTHON_IMAGE} AS project
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# An optional CA bundle (for a TLS-intercepting proxy) arrives as the BuildKit secret `ca_bundle`, in
# the steps that may download only: never written to a layer, ENV or label.
RUN --mount=type=tmpfs,target=/tmp \
    --mount=from=uv,source=/uv,target=/tmp/bin/uv \
    --mount=type=cache,target=/tmp/uv-cache \
    --mount=type=secret,id=ca_bundle,target=/tmp/ca_bundle \
    if [ -s /tmp/ca_bundle ]; then export SSL_CERT_FILE=/tmp/ca_bundle; fi; \
    UV_CACHE_DIR=/tmp/uv-cache UV_PYTHON_DOWNLOADS=never \
    /tmp/bin/uv build --wheel --out-dir /wheel

# --- runtime ----------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# The locked runtime dependencies, without the project: keyed on pyproject.toml and uv.lock only.
RUN --mount=type=tmpfs,target=/tmp \
    --mount=from=uv,source=/uv,target=/tmp/bin/uv \
    --mount=type=bind,source=pyproject.toml,target=/tmp/project/pyproject.toml \
    --mount=type=bind,source=uv.lock,target=/tmp/project/uv.lock \
    --mount=type=cache,target=/tmp/uv-cache \
    --mount=type=secret,id=ca_bundle,target=/tmp/ca_bundle \
    if [ -s /tmp/ca_bundle ]; then export SSL_CERT_FILE=/tmp/ca_bundle; fi; \
    cd /tmp/project \
    && UV_CACHE_DIR=/tmp/uv-cache UV_PROJECT_ENVIRONMENT=/app/.venv UV_PYTHON_DOWNLOADS=never \
       /tmp/bin/uv sync --locked --no-default-groups --no-install-project --no-editable --compile-bytecode \
       --link-mode=copy
# The project's own package, from the wheel: a small layer of its own.
RUN --mount=type=tmpfs,target=/tmp \
    --mount=from=uv,source=/uv,target=/tmp/bin/uv \
    --mount=from=project,source=/wheel,target=/tmp/wheel \
    /tmp/bin/uv pip install --python /app/.venv/bin/python --no-deps --no-cache --offline \
       --compile-bytecode --link-mode=copy /tmp/wheel/*.whl
USER 10001:10001
ENTRYPOINT ["dockyard"]
CMD ["--help"]

# Declared last: new values (each commit) change only the image config, never a cached layer.
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="dockyard" \
      org.opencontainers.image.description="The container image lifecycle for uv-managed Python services: lock, build, verify, size, compose." \
      org.opencontainers.image.source="https://github.com/dockyard-dev/dockyard" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
