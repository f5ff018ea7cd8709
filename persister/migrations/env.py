"""Alembic environment for the persister.

Runs only programmatically (``persister.store.Store.migrate`` /
:func:`persister.migrate.upgrade`): the caller passes an open SQLAlchemy
``Connection`` in ``config.attributes["connection"]``; there is no alembic.ini.
On PostgreSQL a transaction-scoped advisory lock serialises concurrent
persisters that start at the same time.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from trackprint.persister.models import metadata

MIGRATION_LOCK_KEY = 0x7472_6B70_6D69_6772  # "trkpmigr"


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("persister migrations run programmatically: pass config.attributes['connection']")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
