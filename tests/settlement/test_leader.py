"""Exactly one settlement leader; another process takes over when the leader dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from api.database import open_database
from settlement.leader import LeaderLock

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from api.database import open_database
from settlement.leader import LeaderLock
lock = LeaderLock(open_database(sys.argv[1]), __import__("pathlib").Path(sys.argv[2]))
assert lock.try_acquire()
print("leading", flush=True)
time.sleep(600)
"""


def test_leader_fails_over_when_the_leader_is_killed(database_url: str, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database_url, str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "leading"
        standby = LeaderLock(open_database(database_url), tmp_path)
        assert not standby.try_acquire(), "a second leader while the first is alive"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not standby.try_acquire():
            assert time.monotonic() < deadline, "nobody took over"
            time.sleep(0.1)
        assert standby.held
        standby.release()
    finally:
        if holder.poll() is None:
            holder.kill()
