"""Run one settlement in this process and kill it (os._exit) at a named step.

Used by test_crash.py as a real subprocess: the kill is as abrupt as kill -9 (no cleanup,
no finally blocks, no flush), at a precise point of the state machine.

    python -m tests.settlement.crash_runner DATA_DIR DATABASE_URL STEP
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from settlement import settler as settler_module
from tests.settlement.conftest import open_corridor

KILLED = 137


def die(*_: Any, **__: Any) -> None:
    os._exit(KILLED)


def main() -> None:
    data_dir, database_url, step = sys.argv[1], sys.argv[2], sys.argv[3]
    corridor = open_corridor(Path(data_dir), database_url)
    settler = corridor.settler()
    chain: Any = settler.chain
    if step == "after_build":
        build = settler_module.build_batch

        def build_then_die(*args: Any) -> Any:
            build(*args)
            die()

        settler_module.build_batch = build_then_die  # type: ignore[assignment]
    elif step == "before_send":
        chain.settle_batch = die
    elif step == "after_send_before_receipt":
        broadcast = chain._broadcast

        def broadcast_then_die(*args: Any) -> Any:
            broadcast(*args)
            die()

        chain._broadcast = broadcast_then_die
    elif step == "after_receipt_before_record":
        settle = chain.settle_batch

        def settle_then_die(*args: Any) -> Any:
            settle(*args)
            die()

        chain.settle_batch = settle_then_die
    else:
        raise SystemExit(f"unknown step {step}")
    settler.settle_due()
    raise SystemExit("the crash point was never reached")


if __name__ == "__main__":
    main()
