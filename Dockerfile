# dockyard's production image: the `dockyard` CLI on a slim Python, running as a non-root user.
# Build it with `invoke build`. It needs only the engine's built-in BuildKit (Engine 20.10+) or buildx:
# no `# syntax=` line, no heredocs, no variables inside --mount.
#
# Layers of the final image, bottom to top: the base image, the user, the dependencies (keyed only on
# uv.lock and pyproject.toml), then a small layer holding just the project's own files. A source-only
# change rebuilds and ships only that last layer.

ARG PYTHON_IMAGE=python:3.13-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# --- dependencies: the locked runtime set, without the project --------------------------------------
FROM ${PYTHON_IMAGE} AS deps
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
# An optional CA bundle (for a TLS-intercepting proxy) arrives as the BuildKit secret `ca_bundle`:
# mounted for this step only, never written to a layer, ENV or label.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi; \
    uv sync --locked --no-dev --no-install-project --no-editable

# --- the project: built from source and staged under /staging, to be laid over the venv --------------
FROM deps AS project
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi; \
    uv pip install --python /app/.venv/bin/python --prefix /staging --no-deps --compile-bytecode . \
    && rm -f /staging/.lock

# --- runtime ----------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY --from=deps /app/.venv /app/.venv
COPY --from=project /staging/ /app/.venv/
USER 10001:10001
ENTRYPOINT ["dockyard"]
CMD ["--help"]

# Declared last: new values (each commit) change only the image config, never a cached layer.
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="dockyard" \
      org.opencontainers.image.description="The container image lifecycle for uv-managed Python services" \
      org.opencontainers.image.source="https://github.com/dockyard-dev/dockyard" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
