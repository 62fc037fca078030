"""Alembic environment of the governance registry.

Run programmatically by `services.governance.adapters.registry_migrations.upgrade` (which passes the open
connection and the schema in ``config.attributes``), or from the command line:

    alembic -c services/governance/migrations/alembic.ini -x url=postgresql+psycopg://... -x schema=gov upgrade head

With a schema (PostgreSQL), the schema is created if missing and becomes the transaction's search_path, so
every unqualified name in the scripts lands there, and the version table is kept there too. On PostgreSQL
an advisory lock serializes governance instances that start at the same time.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection

_LOCK_KEY = 0x6672617564  # "fraud": one advisory lock for registry migrations

config = context.config
_args = context.get_x_argument(as_dictionary=True)
schema: str | None = config.attributes.get("schema") or _args.get("schema") or None


def run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        if schema:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
    context.configure(connection=connection, version_table_schema=schema, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = _args.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the registry database with -x url=... (or sqlalchemy.url)")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        run(conn)


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: the migrations inspect the live database")
run_online()
