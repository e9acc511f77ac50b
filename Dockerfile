# syntax=docker/dockerfile:1
# Invite Service: a slim two-stage image. The builder turns the package and its dependencies
# into wheels (compilers stay there); the runtime stage installs only those wheels and runs as
# an unprivileged user.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY invite ./invite
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    SQL_DIR=/app/sql \
    DATA_DIR=/app/data
RUN groupadd --system --gid 10001 invite \
 && useradd --system --uid 10001 --gid invite --home-dir /app --shell /usr/sbin/nologin invite
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels invite-service
WORKDIR /app
COPY --chown=root:root sql ./sql
RUN mkdir -p /app/data && chown invite:invite /app/data
USER invite
EXPOSE 8000
# liveness: the health route under the configured prefix and port
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s%s/health' % (os.environ.get('PORT', '8000'), os.environ.get('API_PREFIX', '/api/v1/invite')), timeout=4)"]
CMD ["python", "-m", "invite", "serve"]
