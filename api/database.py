"""Opening the ledger database and bringing its schema up to date (Alembic)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, text

# Imported for their tables: every table must be registered before migrations compare.
import api.auth_store  # noqa: F401
import settlement.chain.index_store
import settlement.ledger.tables
import settlement.notify.tables
import settlement.stepup  # noqa: F401
from fx.store import fx_metadata
from settlement.db import make_engine, metadata

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same in every Corridor process.
MIGRATION_LOCK_KEY = 0x636F7272  # "corr"


def all_metadata() -> list[MetaData]:
    return [metadata, fx_metadata]


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision; safe when several processes start at once."""
    config = alembic_config()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
        try:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            conn.commit()
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()


def open_database(url: str) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    return engine
