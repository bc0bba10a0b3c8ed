"""SQLite writers queue on a lock, across threads and across processes sharing the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from api.database import open_database
from settlement.db import write_transaction


def _other_process_may_write(database: Path) -> bool:
    """Whether another process could take the writers' queue lock right now."""
    probe = (
        "import fcntl, sys\n"
        "with open(sys.argv[1], 'a+b') as f:\n"
        "    try:\n"
        "        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "    except BlockingIOError:\n"
        "        sys.exit(1)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, f"{database}.writer"], timeout=30)
    return done.returncode == 0


def test_a_sqlite_write_transaction_holds_the_file_lock_other_processes_queue_on(
    tmp_path: Path,
) -> None:
    database = tmp_path / "ledger.sqlite3"
    engine = open_database(f"sqlite:///{database}")
    try:
        assert _other_process_may_write(database)
        with write_transaction(engine):
            assert not _other_process_may_write(database)
        assert _other_process_may_write(database)
    finally:
        engine.dispose()
