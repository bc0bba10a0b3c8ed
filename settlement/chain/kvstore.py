"""A persistent key-value store for py-evm, on SQLite.

py-evm's chain classes run over any `DatabaseAPI` (get/set/delete/exists on bytes). This
one keeps writes in memory and writes them to SQLite in one transaction on `commit()`, which
the embedded chain calls once per mined block: the file always holds whole blocks, so a
crash (kill -9 included) loses at most the block being built, never part of one.

WAL journal: readers (an auditor opening the data dir read-only) never block the writer.
synchronous=FULL: a committed block also survives a power cut, at one fsync per block.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from eth.db.backends.base import BaseDB

_DELETED = None  # marker in the pending map: key deleted since the last commit


class SqliteKeyValueStore(BaseDB):
    """py-evm DatabaseAPI over one SQLite table; writes buffered until `commit()`."""

    def __init__(self, path: Path, *, read_only: bool = False, synchronous: str = "FULL") -> None:
        assert synchronous in ("FULL", "NORMAL"), "synchronous must be FULL or NORMAL"
        self.path = path
        self.read_only = read_only
        if read_only:
            self._conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
            )
        self._pending: dict[bytes, bytes | None] = {}
        self.commits = 0

    # -- DatabaseAPI
    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is _DELETED:
                raise KeyError(key)
            assert value is not None
            return value
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        found: bytes = row[0]
        return found

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[bytes(key)] = bytes(value)

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[bytes(key)] = _DELETED

    def _exists(self, key: bytes) -> bool:
        if key in self._pending:
            return self._pending[key] is not _DELETED
        row = self._conn.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone()
        return row is not None

    # -- durability
    @property
    def pending_writes(self) -> int:
        return len(self._pending)

    def commit(self) -> None:
        """Writes every pending change in one SQLite transaction (a no-op read-only)."""
        if self.read_only or not self._pending:
            self._pending.clear()
            return
        upserts = [(k, v) for k, v in self._pending.items() if v is not _DELETED]
        deletes = [(k,) for k, v in self._pending.items() if v is _DELETED]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if upserts:
                self._conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", upserts)
            if deletes:
                self._conn.executemany("DELETE FROM kv WHERE k = ?", deletes)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._pending.clear()
        self.commits += 1

    def discard(self) -> None:
        """Drops uncommitted changes (the block being built when the chain is closed)."""
        self._pending.clear()

    def close(self) -> None:
        self._pending.clear()
        self._conn.close()
