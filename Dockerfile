# syntax=docker/dockerfile:1
# pact-bot in one image: `pact-bot serve` (webhooks + workers) by default, `pact-bot worker`
# for extra workers. Build: docker build -t pact-bot .   Run: see docs/deployment.md.

ARG PYTHON_VERSION=3.11

# -- builder: the lock file's dependencies and pact-bot itself, installed into /app/.venv ------
FROM python:${PYTHON_VERSION}-slim AS builder
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-install-project
# Then the project, as a regular (non-editable) install: the venv needs no source tree.
COPY README.md app.yml ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-editable

# -- runtime: Python, git (mirrors, worktrees, push), bubblewrap (the agent's sandbox), socat
# (the sandbox's forwarder to the allowlist proxy) and the toolchains a repository's setup and
# tests commonly need inside the sandbox: Python 3 with venv and pip, uv, Node.js with npm.
FROM python:${PYTHON_VERSION}-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends git bubblewrap socat ca-certificates \
       nodejs npm make \
    && rm -rf /var/lib/apt/lists/*
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
RUN useradd --create-home --uid 10001 --user-group pact \
    && mkdir -p /data \
    && chown pact:pact /data
COPY --from=builder /app/.venv /app/.venv
# /data holds the SQLite queue, git mirrors, worktrees, transcripts and the .env the setup
# flow writes (mode 0600).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PACT_DATA_DIR=/data \
    PACT_DATABASE_URL=sqlite:////data/pact-bot.db \
    PACT_ENV_FILE=/data/.env \
    PACT_PORT=3000
VOLUME ["/data"]
WORKDIR /data
USER pact
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PACT_PORT', '3000'), timeout=4)"
CMD ["pact-bot", "serve", "--host", "0.0.0.0"]
