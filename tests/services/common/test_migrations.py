"""Every service's migrations build exactly the tables its store declares (SQLite and
PostgreSQL): a column added to a table without a migration, or a migration that changes a
table the store does not know, fails here rather than on a database that was migrated."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from services.auth.service import SERVICE as AUTH
from services.auth.store import metadata as auth_tables
from services.common.db import Database
from services.common.service import ServiceDefinition
from services.file.service import SERVICE as FILE
from services.file.store import metadata as file_tables
from services.tenant.service import SERVICE as TENANT
from services.tenant.store import metadata as tenant_tables
from services.user.service import SERVICE as USER
from services.user.store import metadata as user_tables
from services.workflow.service import SERVICE as WORKFLOW
from services.workflow.store import metadata as workflow_tables

SERVICES = {
    "auth": (AUTH, auth_tables),
    "tenant": (TENANT, tenant_tables),
    "file": (FILE, file_tables),
    "user": (USER, user_tables),
    "workflow": (WORKFLOW, workflow_tables),
}


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_the_migrations_create_exactly_the_tables_of_the_store(
    name: str, database_url: str
) -> None:
    service: ServiceDefinition
    metadata: MetaData
    service, metadata = SERVICES[name]
    db = Database(database_url, name)
    try:
        await db.migrate(service.migrations)

        def differences(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            found = compare_metadata(context, metadata)
            return [d for d in found if "alembic_version" not in str(d)]

        async with db.engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await db.dispose()
