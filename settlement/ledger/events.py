"""Outbox events: what happened, for whom, as rows written with the change itself.

Types: transfer.created, transfer.posted, transfer.voided, payment.completed,
batch.settled, limit.refused. Payloads carry amounts as decimal strings in major units,
like the API, so a receiver can use them without knowing currency exponents.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from fx.currency import to_major
from settlement.db import insert_rows
from settlement.ledger.model import Transfer
from settlement.ledger.tables import events


def transfer_payload(transfer: Transfer) -> dict[str, Any]:
    return {
        "id": transfer.id,
        "client_id": transfer.client_id,
        "kind": transfer.kind.value,
        "status": transfer.status.value,
        "from_wallet": transfer.debit_wallet_id,
        "to_wallet": transfer.credit_wallet_id,
        "from_participant": transfer.debit_participant_id,
        "to_participant": transfer.credit_participant_id,
        "amount": {
            "amount": to_major(transfer.amount_minor, transfer.currency),
            "currency": transfer.currency,
        },
        "memo": transfer.memo,
        "settlement_window": transfer.window_number,
    }


def transfer_event_rows(transfer: Transfer, event_type: str, now_us: int) -> list[dict[str, Any]]:
    """One row for the sending participant and, if another, one for the receiving one."""
    payload = json.dumps(transfer_payload(transfer), separators=(",", ":"))
    sides = [(transfer.debit_participant_id, transfer.debit_wallet_id)]
    if transfer.credit_participant_id != transfer.debit_participant_id:
        sides.append((transfer.credit_participant_id, transfer.credit_wallet_id))
    return [
        {
            "participant_id": participant,
            "type": event_type,
            "wallet_id": wallet,
            "subject_id": transfer.id,
            "payload": payload,
            "created_at_us": now_us,
        }
        for participant, wallet in sides
    ]


def event_row(
    participant_id: str,
    event_type: str,
    subject_id: str,
    payload: dict[str, Any],
    now_us: int,
    wallet_id: str | None = None,
) -> dict[str, Any]:
    return {
        "participant_id": participant_id,
        "type": event_type,
        "wallet_id": wallet_id,
        "subject_id": subject_id,
        "payload": json.dumps(payload, separators=(",", ":")),
        "created_at_us": now_us,
    }


def write_events(conn: Connection, rows: Iterable[dict[str, Any]]) -> None:
    insert_rows(conn, events, list(rows))
