"""Runs the registry's Alembic migrations programmatically (at service start, and in tests).

The scripts live in ``services/governance/migrations`` (env.py + versions/). `upgrade` hands Alembic an open
connection of the engine (so a SQLite file, a PostgreSQL database and a PostgreSQL schema all work the same
way) and the schema `make_engine` placed the tables in.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine

from services.governance.adapters.registry_tables import schema_of

# Alembic announces each of its plugins at INFO on first use: noise in the service log.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
HEAD = "head"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config for the registry scripts and ``engine``'s URL and schema."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["schema"] = schema_of(engine)
    return config


def upgrade(engine: Engine, revision: str = HEAD) -> None:
    """Upgrades the registry schema to ``revision`` (idempotent; ``head`` = newest) in one transaction."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrades the registry schema to ``revision`` (``base`` = no tables)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None before any migration)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table_schema": schema_of(engine)})
        return context.get_current_revision()
