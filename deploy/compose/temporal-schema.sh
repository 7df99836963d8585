#!/bin/sh
# Temporal's schema in PostgreSQL with its own admin tools (temporalio/admin-tools): the two
# databases, then every schema version; each step leaves what exists as it is.
set -eu
tool() {
  temporal-sql-tool --plugin postgres12 --ep postgres -p 5432 -u adx --pw "$POSTGRES_PASSWORD" "$@"
}
schemas=/etc/temporal/schema/postgresql/v12
tool --db temporal create || true
tool --db temporal setup-schema -v 0.0
tool --db temporal update-schema -d "$schemas/temporal/versioned"
tool --db temporal_visibility create || true
tool --db temporal_visibility setup-schema -v 0.0
tool --db temporal_visibility update-schema -d "$schemas/visibility/versioned"
