"""The ledger database's schema registry and engine set-up (SQLite file or PostgreSQL).

Every table of the `settlement` package is declared on `metadata`; Alembic migrations in
settlement/migrations are the only way the schema changes on a real database.
"""

from __future__ import annotations

from sqlalchemy import MetaData

# Stable constraint names, so that migrations can refer to them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
