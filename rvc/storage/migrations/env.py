"""Alembic's entry point: run the versions on the connection ``migrate`` hands over.

The caller owns the connection and its transaction (and, on PostgreSQL, the
advisory lock that keeps two gateways starting together from migrating twice),
so this file only configures the context on it. Offline SQL generation is not
supported: the service always migrates a live database.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("rvc.storage migrations run through rvc.storage.database.migrate (a live connection)")
context.configure(connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
