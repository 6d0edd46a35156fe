"""Alembic environment for every component, configured by :func:`crossroad.storage.engine.migrate`.

The caller hands over an open connection and the component name in ``config.attributes``; each
component keeps its revision in its own version table.  SQLite runs in batch mode so that later
``ALTER`` migrations work there too.
"""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes.get("connection")
component = config.attributes.get("component", "central")
if connection is None:
    raise RuntimeError("Run migrations through crossroad.storage.engine.migrate()")

context.configure(
    connection=connection,
    target_metadata=None,
    version_table=f"alembic_version_{component}",
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
