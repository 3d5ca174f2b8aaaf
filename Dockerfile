# The metadata service: `docker build -t metadata .`, then
# `docker run -p 8775:8775 -p 9775:9775 -e METADATA_ADMIN_TOKEN=... metadata`.
# Configuration is by environment (METADATA_*, see README); deploy/ has compose and Kubernetes.

# Build stage: only the wheel leaves it.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY metadata ./metadata
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Runtime stage: the installed wheel and its dependencies, no sources, no build tools.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    METADATA_LISTEN=0.0.0.0:8775 \
    METADATA_ADMIN_LISTEN=0.0.0.0:9775 \
    METADATA_DATABASE_URL=sqlite+aiosqlite:////var/lib/metadata/metadata.db \
    METADATA_ADMIN_TOKEN_FILE=/var/lib/metadata/admin-token \
    METADATA_SHUTDOWN_GRACE=10
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/metadata --create-home metadata
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
WORKDIR /var/lib/metadata
VOLUME ["/var/lib/metadata"]
EXPOSE 8775 9775
STOPSIGNAL SIGTERM
# slim has no curl: the admin /healthz through urllib, on the port METADATA_ADMIN_LISTEN names
# (a wildcard bind is reached on loopback).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; h, _, p = os.environ.get('METADATA_ADMIN_LISTEN', '127.0.0.1:9775').rpartition(':'); h = h.strip('[]'); h = {'': '127.0.0.1', '0.0.0.0': '127.0.0.1', '::': '::1'}.get(h, h); h = f'[{h}]' if ':' in h else h; urllib.request.urlopen(f'http://{h}:{p}/healthz', timeout=2).read()"]
CMD ["metadata", "serve"]
