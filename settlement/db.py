"""The ledger database: the schema registry and engine set-up (SQLite file or PostgreSQL).

Every table of the `settlement` package is declared on `metadata`; the Alembic migrations
in api/migrations are the only way the schema changes on a real database.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

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

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the ledger. SQLite gets WAL, full fsync and BEGIN IMMEDIATE writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN IMMEDIATE can be issued.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transfer survives power loss, not only a process crash.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers take the write lock up front: two writers can never both read a balance
        # and then both spend it, and no reader-turned-writer deadlocks on upgrade.
        if conn.get_execution_options().get("write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


# Below this many rows an INSERT is as quick as a COPY and simpler to read in logs.
COPY_ROWS_MIN = 64


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows with the same keys; on PostgreSQL through COPY.

    A multi-row INSERT makes PostgreSQL parse and plan a statement of thousands of
    parameters; COPY streams the rows (posting a batch of 8,190 transfers took 2.8 s with
    INSERTs, 0.8 s with COPY). It runs in the connection's transaction like any statement,
    and its errors are raised as SQLAlchemy's (a duplicate key is an IntegrityError, which
    the ledger's retry turns into a replay).
    """
    if not rows:
        return
    if not is_postgres(conn) or len(rows) < COPY_ROWS_MIN:
        conn.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    quote = conn.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    driver_error = conn.dialect.loaded_dbapi.Error
    driver_connection: Any = conn.connection.driver_connection
    try:
        with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
    except driver_error as exc:
        raise DBAPIError.instance(statement, None, exc, driver_error) from exc


class _SqliteWriterLock:
    """SQLite admits one writer at a time; writers queue here instead of in SQLite.

    SQLite's own busy handler sleeps with a growing back-off (1, 2, 5 ... 100 ms), which
    turned waits of milliseconds into seconds under 32 concurrent requests. Threads of one
    process queue on a lock; processes sharing the file (several API workers) queue on an
    exclusive flock of `<database>.writer`, which the kernel hands over as soon as it is
    released. SQLite's locking still guarantees correctness: this only orders the queue.
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._file = None
        if database and database != ":memory:":
            self._file = open(f"{database}.writer", "a+b")  # noqa: SIM115 (lives with the engine)

    def __enter__(self) -> None:
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1 and self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._threads.release()


_sqlite_writers: WeakKeyDictionary[Engine, _SqliteWriterLock] = WeakKeyDictionary()
_sqlite_writers_guard = threading.Lock()


def _writer_lock(engine: Engine) -> AbstractContextManager[object]:
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _sqlite_writers_guard:
        found = _sqlite_writers.get(engine)
        if found is None:
            found = _sqlite_writers[engine] = _SqliteWriterLock(engine.url.database)
        return found


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: serialized on SQLite, row-locking on PostgreSQL."""
    with _writer_lock(engine), engine.connect() as conn:
        conn = conn.execution_options(write=True)
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent snapshot for reads."""
    with engine.connect() as conn, conn.begin():
        yield conn
