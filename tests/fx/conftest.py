"""Fixtures for the fx tests: a real database (SQLite file, and PostgreSQL when it runs)
with the fx tables, a clock the test moves, and the real embedded ECB source."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from fx.sources import EcbEmbeddedSource, OperatorSource
from fx.store import fx_metadata

# The day this was written; the embedded ECB data ends on 2026-10-30.
TODAY = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POSTGRES_DSN = os.environ.get(
    "CORRIDOR_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass
class FakeClock:
    now: datetime = field(default=TODAY)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _postgres_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_DSN}: {error}".splitlines()[0])
    schema = f"fx_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    base = POSTGRES_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}?options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fx_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine with the fx tables, on a SQLite file and on PostgreSQL (when it runs)."""
    if request.param == "sqlite":
        url_iter: Iterator[str] = iter([f"sqlite:///{tmp_path / 'fx.sqlite3'}"])
    else:
        url_iter = _postgres_url()
    url = next(url_iter)
    engine = create_engine(url)
    fx_metadata.create_all(engine)
    yield engine
    engine.dispose()
    next(url_iter, None)  # drops the PostgreSQL schema


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'fx.sqlite3'}")
    fx_metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def embedded() -> EcbEmbeddedSource:
    return EcbEmbeddedSource()


@pytest.fixture
def offline_sources(embedded: EcbEmbeddedSource) -> list[object]:
    return [OperatorSource(), embedded]
