# Redis from Debian's packages; the compose file gives its command line.
ARG DEBIAN_IMAGE=docker.io/library/debian:12.11-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server tini \
 && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
ENTRYPOINT ["tini", "--"]
CMD ["redis-server", "--protected-mode", "no"]
