"""The leader's periodic reconciliation raises the alarm when a settled row is edited."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import update

from api.app import Workers
from api.context import Corridor
from settlement.batches import CloseReason, close_window
from settlement.ledger.model import TransferRequest
from settlement.ledger.tables import transfers


def test_periodic_reconciliation_alarms_on_an_edited_settled_transfer(
    corridor: Corridor, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = corridor.ledger
    for pid in ("acme", "bolt"):
        ledger.create_participant(pid, participant_id=pid)
        corridor.settler().fund(pid, "USD", 1_000_00, client_id="prefund")
    payer = ledger.create_wallet("acme", kyc_tier="enhanced").id
    payee = ledger.create_wallet("bolt").id
    ledger.deposit("acme", "cash", payer, "USD", 500_00)
    sent, _ = ledger.transfer("acme", TransferRequest("t", payer, "USD", 70_00, to_wallet=payee))
    close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND)
    assert corridor.leader.try_acquire()
    corridor.settler().settle_due()
    workers = Workers(corridor)

    with caplog.at_level(logging.ERROR):
        workers._reconcile()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "a clean ledger"

    with corridor.engine.begin() as conn:
        conn.execute(update(transfers).where(transfers.c.id == sent.id).values(amount_minor=7_00))
    with caplog.at_level(logging.ERROR):
        workers._reconcile()
    alarms = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert alarms and any(sent.id in message for message in alarms), alarms
