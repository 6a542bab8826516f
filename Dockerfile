# Every agentwire service image from one file: one target per service, all sharing one venv stage.
#
#   docker build --target edge -t agentwire/agentwire-edge:dev .      (or podman build --format docker ...)
#
# Targets: ingest, edge, runner, processor, gateway (the default). `make images` builds them all, with the
# Kafka and Prometheus images beside them (deploy/containers/images.py; docs/containers.md).
# BASE_IMAGE is any Debian-based image with Python 3.11 and its venv module: the official slim image where
# a registry can be reached, else the one `make images` builds from Debian packages.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

FROM ${BASE_IMAGE} AS builder
# pip byte-compiles what it installs, so the read-only runtime image never needs to write .pyc files.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Third-party dependencies first (exact pins, transitives from constraints.txt): this layer is rebuilt only
# when the pins change, not on every source edit.
COPY constraints.txt ./
COPY requirements/runtime.txt requirements/build.txt requirements/
RUN pip install -c constraints.txt -r requirements/build.txt -r requirements/runtime.txt
# Every service goes into the one venv: the five images differ only in their entry point, so they share
# every layer (one build, one copy on disk, one pull). Built with the setuptools installed above rather than
# in an isolated build environment per package, which would fetch setuptools seven times on every edit.
COPY libs/ libs/
COPY services/ services/
RUN pip install --no-build-isolation --no-deps ./libs ./services/webui ./services/ingest ./services/edge \
      ./services/runner ./services/processor ./services/gateway \
 && pip check

FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    AGENTWIRE_HTTP__HOST=0.0.0.0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTH_PORT_SETTING=AGENTWIRE_HTTP__PORT \
    HEALTH_PORT=8080
RUN groupadd --system --gid 10001 agentwire \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin agentwire \
 && install -d -o 10001 -g 10001 /var/lib/agentwire /var/lib/agentwire/processor
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
# /health on the port the service's own setting names (HEALTH_PORT_SETTING), with the standard library.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as r; e = os.environ; r.urlopen('http://127.0.0.1:%s/health' % e.get(e['HEALTH_PORT_SETTING'], e['HEALTH_PORT']), timeout=3)"]

FROM runtime AS ingest
EXPOSE 8080
ENTRYPOINT ["agentwire-ingest"]

FROM runtime AS edge
EXPOSE 8080
ENTRYPOINT ["agentwire-edge"]

FROM runtime AS runner
ENV HEALTH_PORT_SETTING=AGENTWIRE_RUNNER__OPS_PORT \
    HEALTH_PORT=9101
EXPOSE 9101
ENTRYPOINT ["agentwire-runner"]

FROM runtime AS processor
ENV HEALTH_PORT_SETTING=AGENTWIRE_PROCESSOR__OPS_PORT \
    HEALTH_PORT=9102 \
    AGENTWIRE_PROCESSOR__DATA_DIR=/var/lib/agentwire/processor
EXPOSE 9102
ENTRYPOINT ["agentwire-processor"]

FROM runtime AS gateway
EXPOSE 8080
ENTRYPOINT ["agentwire-gateway"]
