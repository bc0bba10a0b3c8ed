"""A process that dies between committing events and delivering them: a new dispatcher
delivers exactly the committed events (none lost, none invented), in order per wallet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from api.context import Corridor
from settlement.db import read_transaction
from settlement.ledger.tables import events
from settlement.notify import Dispatcher, WebhookStore
from settlement.stepup import StepUpStore
from tests.helpers import allow_settlement_debits
from tests.notify.conftest import Receiver, open_corridor
from tests.notify.crash_runner import KILLED

TRANSFERS = 30
REPO_ROOT = Path(__file__).parents[2]


def setup_world(corridor: Corridor, receiver: Receiver) -> None:
    ledger = corridor.ledger
    for pid in ("acme", "bolt"):
        ledger.create_participant(pid, participant_id=pid)
    allow_settlement_debits(ledger, ["acme", "bolt"])
    alice = ledger.create_wallet("acme", aliases_raw=["@alice"]).id
    ledger.create_wallet("bolt", aliases_raw=["@bob"])
    ledger.deposit("acme", "fund", alice, "USD", 1_000_000)
    StepUpStore(corridor.engine).set_policy(
        alice, "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1", {"USD": 5_000}, corridor.clock()
    )
    store = WebhookStore(corridor.engine)
    for pid in ("acme", "bolt"):
        store.create(pid, receiver.url, ["transfer.created"], None, corridor.clock())


@pytest.mark.parametrize("step", ["after_commit", "mid_delivery"])
def test_crash_between_commit_and_delivery(
    step: str, database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    data_dir = tmp_path / "data"
    corridor = open_corridor(database_url, data_dir)
    try:
        setup_world(corridor, receiver)
        crashed = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.notify.crash_runner",
                str(data_dir),
                database_url,
                step,
                str(TRANSFERS),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=120,
        )
        assert crashed.returncode == KILLED, crashed.stderr.decode()[-2000:]
        sent_before_restart = len(receiver.received)
        if step == "after_commit":
            assert sent_before_restart == 0
        else:
            assert sent_before_restart > 0, "the crash came after some deliveries were sent"

        dispatcher = Dispatcher(corridor.engine, corridor.clock)
        try:
            dispatcher.run_until_idle()
        finally:
            dispatcher.close()

        with read_transaction(corridor.engine) as conn:
            committed = [
                (row.id, row.participant_id, row.wallet_id)
                for row in conn.execute(
                    select(events)
                    .where(events.c.type == "transfer.created", events.c.subject_id != "")
                    .order_by(events.c.id)
                )
                if row.id > 0
            ]
        accepted = TRANSFERS - TRANSFERS // 3  # every third was refused and rolled back
        # The deposit came before the subscriptions: each accepted transfer notifies both.
        assert len(committed) == 1 + 2 * accepted
        wanted = {event_id for event_id, _, _ in committed[1:]}
        got = [r.event["id"] for r in receiver.received]
        assert set(got) == wanted, "exactly the committed events: none lost, none invented"
        if step == "after_commit":
            assert len(got) == len(wanted), "nothing had been sent: each is sent once"
        else:
            # Only the round whose outcome the crash lost is sent again.
            assert len(got) - len(wanted) <= sent_before_restart
        for wallet in {w for _, _, w in committed}:
            first_seen: list[int] = []
            for r in receiver.received[sent_before_restart:]:
                if r.event["wallet_id"] == wallet and r.event["id"] not in first_seen:
                    first_seen.append(r.event["id"])
            assert first_seen == sorted(first_seen), "in order per wallet after restart"
    finally:
        corridor.close()
