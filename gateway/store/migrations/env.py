"""Alembic environment: always driven through ``gateway.store.migrate`` with a live
connection in ``config.attributes["connection"]``."""

from alembic import context

from gateway.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `hr-gateway db upgrade`")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
