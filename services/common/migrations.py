"""What every service's Alembic ``env.py`` runs: migrations on the connection handed over by
:meth:`services.common.db.Database.migrate` (online only; no offline SQL generation)."""

from __future__ import annotations

from alembic import context


def run_migrations() -> None:
    config = context.config
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        version_table=config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
