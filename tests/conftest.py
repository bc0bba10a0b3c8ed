"""Shared fixtures: a real SQLite file and a real PostgreSQL schema per test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from api.database import open_database

POSTGRES_ADMIN_DSN = os.environ.get(
    "CORRIDOR_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres_unavailable() -> str | None:
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {exc}".splitlines()[0]


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    reason = _postgres_unavailable()
    if reason is not None:
        if os.environ.get("CORRIDOR_TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"CORRIDOR_TEST_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    return POSTGRES_ADMIN_DSN


@pytest.fixture
def postgres_url(postgres_dsn: str) -> Iterator[str]:
    """A SQLAlchemy URL whose connections live in a fresh schema, dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    base = postgres_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}?options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on a SQLite file and on the PostgreSQL server."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_database(database_url)
    yield engine
    engine.dispose()
