"""Settlement windows in the database: closing the open window and building its batch.

Closing only touches the database (any process may do it: the API, `corridor settle`, the
worker's timer); the batch is then built from the frozen window: both Merkle trees, the
net positions and the hash that links it to the previous batch. Building is a pure
function of the ledger's rows, so the same batch can be rebuilt at any time (proofs,
exports, reconciliation) and must always give the same roots.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from settlement.audit.export import BatchExport, build_batch_export
from settlement.audit.leaves import BalanceLeaf, TransferLeaf
from settlement.chain.gateway import ZERO_HASH
from settlement.db import is_postgres, read_transaction, write_transaction
from settlement.ledger.tables import (
    accounts,
    batch_positions,
    entries,
    participants,
    settlement_windows,
    transfers,
    wallets,
)


class WindowStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    FAILED = "failed"


class CloseReason(StrEnum):
    TIME = "time"
    COUNT = "count"
    DEMAND = "demand"


@dataclass(frozen=True, slots=True)
class Window:
    number: int
    status: WindowStatus
    opened_at_us: int
    closed_at_us: int | None
    close_reason: str | None
    transfer_count: int | None
    transfers_root: str | None
    balances_root: str | None
    prev_batch_hash: str | None
    batch_hash: str | None
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    settled_at_us: int | None
    attempts: int
    last_error: str | None
    next_attempt_at_us: int | None

    @property
    def built(self) -> bool:
        return self.batch_hash is not None


def window_from_row(row: object) -> Window:
    values = dict(row._mapping)  # type: ignore[attr-defined]
    values["status"] = WindowStatus(values["status"])
    return Window(**values)


def get_window(engine: Engine, number: int) -> Window | None:
    with read_transaction(engine) as conn:
        row = conn.execute(
            select(settlement_windows).where(settlement_windows.c.number == number)
        ).first()
    return None if row is None else window_from_row(row)


def list_windows(engine: Engine, before: int | None = None, limit: int = 50) -> list[Window]:
    query = select(settlement_windows).order_by(settlement_windows.c.number.desc()).limit(limit)
    if before is not None:
        query = query.where(settlement_windows.c.number < before)
    with read_transaction(engine) as conn:
        return [window_from_row(row) for row in conn.execute(query)]


def open_window_stats(engine: Engine) -> tuple[int, int, int]:
    """(number, opened_at_us, transfers in it) of the open window."""
    with read_transaction(engine) as conn:
        number, opened = conn.execute(
            select(settlement_windows.c.number, settlement_windows.c.opened_at_us).where(
                settlement_windows.c.status == WindowStatus.OPEN.value
            )
        ).one()
        count = conn.execute(
            select(func.count()).select_from(transfers).where(transfers.c.window_number == number)
        ).scalar_one()
    return int(number), int(opened), int(count)


def close_reason(
    now_us: int, opened_at_us: int, transfer_count: int, interval_s: int, max_transfers: int
) -> CloseReason | None:
    """Whether the open window is due to close: never empty; full, or old enough."""
    if transfer_count == 0:
        return None
    if transfer_count >= max_transfers:
        return CloseReason.COUNT
    if now_us - opened_at_us >= interval_s * 1_000_000:
        return CloseReason.TIME
    return None


def close_window(engine: Engine, now_us: int, reason: CloseReason) -> Window | None:
    """Freeze the open window and open the next one; None if it holds no transfer.

    On PostgreSQL the window row's exclusive lock waits for every posting that joined the
    window (they hold it shared), so no transfer can land in a window after it closed.
    """
    with write_transaction(engine) as conn:
        query = select(settlement_windows.c.number).where(
            settlement_windows.c.status == WindowStatus.OPEN.value
        )
        if is_postgres(conn):
            query = query.with_for_update()
        number = conn.execute(query).scalar_one()
        has_transfers = conn.execute(
            select(transfers.c.seq).where(transfers.c.window_number == number).limit(1)
        ).first()
        if has_transfers is None:
            return None
        conn.execute(
            update(settlement_windows)
            .where(settlement_windows.c.number == number)
            .values(status=WindowStatus.CLOSED.value, closed_at_us=now_us, close_reason=reason)
        )
        conn.execute(
            insert(settlement_windows).values(
                number=number + 1,
                status=WindowStatus.OPEN.value,
                opened_at_us=now_us,
                attempts=0,
            )
        )
    window = get_window(engine, number)
    assert window is not None
    return window


def _transfer_leaves(conn: Connection, number: int) -> list[TransferLeaf]:
    rows = conn.execute(
        select(
            transfers.c.seq,
            transfers.c.id,
            transfers.c.debit_participant_id,
            transfers.c.debit_wallet_id,
            transfers.c.credit_participant_id,
            transfers.c.credit_wallet_id,
            transfers.c.currency,
            transfers.c.amount_minor,
            transfers.c.resolved_at_us,
        )
        .where(transfers.c.window_number == number)
        .order_by(transfers.c.seq)
    )
    return [
        TransferLeaf(
            seq=r.seq,
            transfer_id=r.id,
            debit_participant=r.debit_participant_id,
            debit_wallet=r.debit_wallet_id,
            credit_participant=r.credit_participant_id,
            credit_wallet=r.credit_wallet_id,
            currency=r.currency,
            amount_minor=r.amount_minor,
            posted_at_ms=r.resolved_at_us // 1000,
        )
        for r in rows
    ]


def _balance_leaves(conn: Connection, number: int) -> list[BalanceLeaf]:
    """Each touched account's balance right after its last movement in the window.

    Postings of window n+1 start only after window n closed, so within one account the
    last entry of a window's transfers is its balance at the window's end.
    """
    last_entry = (
        select(entries.c.account_id, func.max(entries.c.id).label("entry_id"))
        .join(transfers, transfers.c.seq == entries.c.transfer_seq)
        .where(transfers.c.window_number == number)
        .group_by(entries.c.account_id)
        .subquery()
    )
    rows = conn.execute(
        select(
            wallets.c.participant_id,
            accounts.c.wallet_id,
            accounts.c.currency,
            entries.c.balance_after_minor,
        )
        .join(last_entry, last_entry.c.entry_id == entries.c.id)
        .join(accounts, accounts.c.id == entries.c.account_id)
        .join(wallets, wallets.c.id == accounts.c.wallet_id)
        .order_by(accounts.c.wallet_id, accounts.c.currency)
    )
    return [
        BalanceLeaf(r.participant_id, r.wallet_id, r.currency, r.balance_after_minor, number)
        for r in rows
    ]


def _prev_batch_hash(conn: Connection, number: int) -> str:
    if number == 1:
        return "0x" + ZERO_HASH.hex()
    previous = conn.execute(
        select(settlement_windows.c.batch_hash).where(settlement_windows.c.number == number - 1)
    ).scalar_one()
    assert previous is not None, f"batch {number - 1} must be built before batch {number}"
    return str(previous)


def rebuild_batch(conn: Connection, number: int) -> BatchExport:
    """The batch of a frozen window, recomputed from the ledger's rows."""
    addresses = {
        r.id: r.settlement_address
        for r in conn.execute(select(participants.c.id, participants.c.settlement_address))
        if r.settlement_address
    }
    return build_batch_export(
        batch_number=number,
        transfers=_transfer_leaves(conn, number),
        balances=_balance_leaves(conn, number),
        prev_batch_hash=_prev_batch_hash(conn, number),
        participant_addresses=addresses,
    )


def build_batch(engine: Engine, number: int) -> BatchExport:
    """Build a closed window's batch and persist its header and positions (idempotent)."""
    with write_transaction(engine) as conn:
        export = rebuild_batch(conn, number)
        conn.execute(delete(batch_positions).where(batch_positions.c.window_number == number))
        if export.net_positions:
            conn.execute(
                insert(batch_positions),
                [
                    {
                        "window_number": number,
                        "participant_id": p.participant,
                        "currency": p.currency,
                        "participant_address": p.participant_address,
                        "amount_minor": p.amount_minor,
                    }
                    for p in export.net_positions
                ],
            )
        conn.execute(
            update(settlement_windows)
            .where(settlement_windows.c.number == number)
            .values(
                transfer_count=export.transfer_count,
                transfers_root=export.transfers_root,
                balances_root=export.balances_root,
                prev_batch_hash=export.prev_batch_hash,
                batch_hash=export.batch_hash,
            )
        )
    return export
