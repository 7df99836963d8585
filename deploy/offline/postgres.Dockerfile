# PostgreSQL from Debian's packages with the official image's interface: POSTGRES_USER,
# POSTGRES_PASSWORD, /docker-entrypoint-initdb.d/*.sql on a new data volume, pg_isready.
ARG DEBIAN_IMAGE=docker.io/library/debian:12.11-slim
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 tini \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d /run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
USER postgres
EXPOSE 5432
ENTRYPOINT ["tini", "--", "postgres-entrypoint"]
