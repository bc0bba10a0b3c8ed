"""One settlement leader among all Corridor processes.

PostgreSQL: a session advisory lock, held by a dedicated connection for as long as the
process leads; if the process dies, its connection closes and another takes over.
SQLite (one machine): an exclusive lock on a file in the data directory; the kernel
releases it when the process dies.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

# One lock per Corridor database (database and schema): deployments sharing a PostgreSQL
# server, or tests in separate schemas, do not take each other's lead.
_LOCK_KEY_SQL = "hashtext(current_database() || '.' || current_schema() || '.settlement')"


class LeaderLock:
    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.lock_path = data_dir / "settlement.lock"
        self._held: Any = None

    @property
    def held(self) -> bool:
        return self._held is not None

    def try_acquire(self) -> bool:
        """Become the leader if nobody is; True if this process leads (now or already)."""
        if self._held is not None:
            return True
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            got = conn.execute(text(f"SELECT pg_try_advisory_lock({_LOCK_KEY_SQL})")).scalar()
            conn.commit()
            if got:
                self._held = conn
            else:
                conn.close()
        else:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
            else:
                self._held = fd
        return self._held is not None

    def release(self) -> None:
        if self._held is None:
            return
        if self.engine.dialect.name == "postgresql":
            self._held.execute(text(f"SELECT pg_advisory_unlock({_LOCK_KEY_SQL})"))
            self._held.commit()
            self._held.close()
        else:
            fcntl.flock(self._held, fcntl.LOCK_UN)
            os.close(self._held)
        self._held = None
