"""Commit transfers in this process and die (os._exit, as abrupt as kill -9) at a named
point of notification, for test_crash.py.

    python -m tests.notify.crash_runner DATA_DIR DATABASE_URL STEP TRANSFERS

Steps: `after_commit` dies once the transfers are committed, before any delivery;
`mid_delivery` dies after the first round of deliveries was sent, before its outcomes
were recorded. Every third transfer is above the sender's step-up threshold and unsigned:
it is refused after its rows (and events) were written, so its transaction rolls back.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from api.stepup_deps import prepared, transfer_check
from settlement.errors import LedgerError
from settlement.ledger.model import TransferRequest
from settlement.notify import Dispatcher
from tests.notify.conftest import open_corridor

KILLED = 137


def main() -> None:
    data_dir, database_url, step, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    corridor = open_corridor(database_url, Path(data_dir))
    alice = corridor.ledger.resolve_alias("@alice")
    bob = corridor.ledger.resolve_alias("@bob")
    for i in range(int(count)):
        amount = 6_000 if i % 3 == 2 else 100
        request = TransferRequest(f"crash-{i}", alice, "USD", amount, to_wallet=bob)
        item = prepared(request.client_id, alice, bob, amount, "USD", "", None)
        try:
            corridor.ledger.transfer(
                "acme", request, transfer_check("acme", [item], corridor.clock)
            )
        except LedgerError as error:
            assert error.code == "step_up_required", error
    if step == "after_commit":
        os._exit(KILLED)
    assert step == "mid_delivery", step
    dispatcher = Dispatcher(corridor.engine, corridor.clock)

    def die(*_: Any) -> None:
        os._exit(KILLED)

    dispatcher._record = die  # type: ignore[method-assign]
    dispatcher.run_once()
    raise SystemExit("the crash point was never reached")


if __name__ == "__main__":
    main()
