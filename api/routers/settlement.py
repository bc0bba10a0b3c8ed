"""Settlement: windows, settled batches, prefunding on chain, reconciliation, and where a
transfer stands in settlement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, StrictStr
from sqlalchemy import Engine, select

from api.auth import Anyone, CorridorDep, Operator, Reader
from api.auth_store import Role
from api.problems import ApiError
from api.routers.audit import AuditorOrOperator, chain_error, reading_chain, settled_window
from api.routers.common import After, Limit, int_cursor
from api.schemas import Money, Strict, to_iso
from settlement.batches import (
    CloseReason,
    Window,
    WindowStatus,
    close_window,
    get_window,
    list_windows,
    open_window_stats,
)
from settlement.chain import ChainError
from settlement.db import read_transaction
from settlement.ledger.model import CLIENT_ID_LENGTH_MAX, Transfer, TransferStatus
from settlement.ledger.tables import batch_positions
from settlement.reconcile import RECONCILE_BATCHES_MAX, reconcile

router = APIRouter(prefix="/v1/settlement", tags=["settlement"])

FUNDING_RETRY_AFTER_S: Final = 5


# ---------------------------------------------------------------------------- schemas


class WindowOut(BaseModel):
    """A settlement window; window n settles as batch n. Hashes are 0x-hex."""

    number: int
    status: str = Field(description="open, closed, submitted, settled or failed")
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None = Field(description="time, count or demand")
    transfer_count: int | None = Field(description="So far, while the window is open")
    transfers_root: str | None
    balances_root: str | None
    prev_batch_hash: str | None
    batch_hash: str | None
    tx_hash: str | None
    block_number: int | None
    gas_used: int | None
    settled_at: datetime | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None

    @classmethod
    def of(cls, window: Window, open_count: int | None = None) -> WindowOut:
        return cls(
            number=window.number,
            status=window.status.value,
            opened_at=to_iso(window.opened_at_us),  # type: ignore[arg-type]
            closed_at=to_iso(window.closed_at_us),
            close_reason=window.close_reason,
            transfer_count=open_count if window.transfer_count is None else window.transfer_count,
            transfers_root=window.transfers_root,
            balances_root=window.balances_root,
            prev_batch_hash=window.prev_batch_hash,
            batch_hash=window.batch_hash,
            tx_hash=window.tx_hash,
            block_number=window.block_number,
            gas_used=window.gas_used,
            settled_at=to_iso(window.settled_at_us),
            attempts=window.attempts,
            last_error=window.last_error,
            next_attempt_at=to_iso(window.next_attempt_at_us),
        )


class WindowPage(BaseModel):
    data: list[WindowOut]
    next_cursor: str | None = Field(
        description="Pass as `after` to get the next (older) page; null on the last page"
    )


class PositionOut(BaseModel):
    participant_id: str
    participant_address: str
    currency: str
    amount: Money = Field(description="Positive: receives; negative: pays")
    amount_minor: int


class BatchOut(BaseModel):
    """A settled batch: its header as submitted, its net positions, where it was settled."""

    number: int
    transfer_count: int
    transfers_root: str
    balances_root: str
    prev_batch_hash: str
    batch_hash: str
    positions: list[PositionOut] = Field(
        description="In the contract's order; a participant key sees only its own"
    )
    tx_hash: str
    block_number: int
    gas_used: int | None
    closed_at: datetime | None
    settled_at: datetime | None


class FundingIn(Strict):
    id: StrictStr = Field(
        min_length=1,
        max_length=CLIENT_ID_LENGTH_MAX,
        description="Your id for this funding: a retry with the same id funds once",
    )
    participant_id: StrictStr
    amount: Money


class FundingOut(BaseModel):
    id: str
    participant_id: str
    amount: Money
    settlement_balance: Money = Field(description="The participant's balance on chain now")


class TransferSettlementOut(BaseModel):
    transfer_id: str
    window: int | None
    status: str = Field(
        description="open, closed, submitted, settled or failed (its window's status); "
        "pending while the transfer is pending; voided or expired if it never posted"
    )
    batch: int | None = Field(description="The batch it settles in (= window number)")
    tx_hash: str | None
    block_number: int | None


# ------------------------------------------------------------------------ shared helpers


def settlement_status(engine: Engine, transfer: Transfer) -> TransferSettlementOut:
    """Where a transfer stands in settlement (shared with the CLI)."""
    if transfer.window_number is None:
        status = (
            "pending"
            if transfer.status is TransferStatus.PENDING
            else transfer.status.value  # voided, expired: never posted, never settled
        )
        return TransferSettlementOut(
            transfer_id=transfer.id,
            window=None,
            status=status,
            batch=None,
            tx_hash=None,
            block_number=None,
        )
    window = get_window(engine, transfer.window_number)
    assert window is not None, f"transfer {transfer.id} names a missing window"
    settled = window.status is WindowStatus.SETTLED
    return TransferSettlementOut(
        transfer_id=transfer.id,
        window=window.number,
        status=window.status.value,
        batch=window.number if window.status is not WindowStatus.OPEN else None,
        tx_hash=window.tx_hash if settled else None,
        block_number=window.block_number if settled else None,
    )


def batch_out(engine: Engine, window: Window, participant_id: str | None = None) -> BatchOut:
    """A settled window as a batch; positions of one participant only, if given."""
    query = (
        select(batch_positions)
        .where(batch_positions.c.window_number == window.number)
        .order_by(batch_positions.c.currency, batch_positions.c.participant_address)
    )
    if participant_id is not None:
        query = query.where(batch_positions.c.participant_id == participant_id)
    with read_transaction(engine) as conn:
        found = conn.execute(query).all()
    # The contract's order: by currency, then address as a number (not as text).
    rows = sorted(found, key=lambda r: (r.currency, int(r.participant_address, 16)))
    assert window.transfers_root and window.balances_root and window.prev_batch_hash
    assert window.batch_hash and window.tx_hash and window.transfer_count is not None
    assert window.block_number is not None
    return BatchOut(
        number=window.number,
        transfer_count=window.transfer_count,
        transfers_root=window.transfers_root,
        balances_root=window.balances_root,
        prev_batch_hash=window.prev_batch_hash,
        batch_hash=window.batch_hash,
        positions=[
            PositionOut(
                participant_id=r.participant_id,
                participant_address=r.participant_address,
                currency=r.currency,
                amount=Money.of(r.amount_minor, r.currency),
                amount_minor=r.amount_minor,
            )
            for r in rows
        ],
        tx_hash=window.tx_hash,
        block_number=window.block_number,
        gas_used=window.gas_used,
        closed_at=to_iso(window.closed_at_us),
        settled_at=to_iso(window.settled_at_us),
    )


def _window_out(engine: Engine, window: Window) -> WindowOut:
    if window.status is WindowStatus.OPEN:
        number, _, count = open_window_stats(engine)
        return WindowOut.of(window, count if number == window.number else None)
    return WindowOut.of(window)


# ---------------------------------------------------------------------------- routes


@router.post("/windows/close", response_model=WindowOut)
def close_open_window(who: Operator, corridor: CorridorDep) -> WindowOut:
    """Close the open window now (it settles on the settlement leader's next run).

    409 `window_empty` when the open window holds no transfer: empty windows never close.
    """
    closed = close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND)
    if closed is None:
        raise ApiError("window_empty", "the open window holds no transfer: nothing to close", 409)
    return WindowOut.of(closed)


@router.get("/windows", response_model=WindowPage)
def windows(
    who: Anyone, corridor: CorridorDep, limit: Limit = 50, after: After = None
) -> WindowPage:
    """Settlement windows, newest first (the open one on top)."""
    found = list_windows(corridor.engine, before=int_cursor(after), limit=limit)
    data = [_window_out(corridor.engine, w) for w in found]
    cursor = str(found[-1].number) if len(found) == limit else None
    return WindowPage(data=data, next_cursor=cursor)


@router.get("/windows/{number}", response_model=WindowOut)
def window(number: int, who: Anyone, corridor: CorridorDep) -> WindowOut:
    found = get_window(corridor.engine, number)
    if found is None:
        raise ApiError("window_not_found", f"no settlement window {number}", 404)
    return _window_out(corridor.engine, found)


@router.get("/batches/{number}", response_model=BatchOut)
def batch(number: int, who: Anyone, corridor: CorridorDep) -> BatchOut:
    """A settled batch. 404 `batch_not_found`; 409 `not_settled` while it is not."""
    found = settled_window(corridor.engine, number)
    scope = who.participant_id if who.role is Role.PARTICIPANT else None
    return batch_out(corridor.engine, found, scope)


@router.post("/funding", response_model=FundingOut)
def fund(body: FundingIn, who: Operator, corridor: CorridorDep) -> FundingOut:
    """Prefund a participant's settlement balance on chain (safe to retry with the same id).

    On the embedded chain only the settlement leader process can write to the chain:
    503 `chain_busy` from any other (retry, or send it to the leader).
    """
    participant = corridor.ledger.get_participant(body.participant_id)
    amount_minor = body.amount.minor()
    currency = body.amount.currency
    if corridor.chain_is_local() and not corridor.leader.try_acquire():
        raise ApiError(
            "chain_busy",
            "the embedded chain is held by the settlement leader, another process: "
            "fund through it or retry",
            503,
            retry_after_s=FUNDING_RETRY_AFTER_S,
        )
    try:
        balance = corridor.settler().fund(participant.id, currency, amount_minor, body.id)
    except ChainError as error:
        raise chain_error(error) from None
    return FundingOut(
        id=body.id,
        participant_id=participant.id,
        amount=Money.of(amount_minor, currency),
        settlement_balance=Money.of(balance, currency),
    )


@router.get("/reconciliation")
def reconciliation(
    who: AuditorOrOperator,
    corridor: CorridorDep,
    first: Annotated[int | None, Query(ge=1, description="First batch to compare")] = None,
    last: Annotated[int | None, Query(ge=1, description="Last batch to compare")] = None,
) -> dict[str, Any]:
    """Rebuild every settled batch (or those in [first, last]) from the ledger and compare
    it with the chain: roots, hashes, transfer count, net positions, transaction, block.
    `ok` is false, and each difference is listed (and alarmed), when they disagree."""
    numbers: range | None = None
    if first is not None or last is not None:
        low = first or 1
        high = last if last is not None else low + RECONCILE_BATCHES_MAX - 1
        if high < low or high - low + 1 > RECONCILE_BATCHES_MAX:
            raise ApiError(
                "invalid_range",
                f"first..last must be a range of 1 to {RECONCILE_BATCHES_MAX} batches",
                422,
            )
        numbers = range(low, high + 1)
    with reading_chain(corridor) as gateway:
        try:
            report = reconcile(corridor.engine, gateway, numbers)
        except ValueError as error:
            raise ApiError("invalid_range", str(error), 422) from None
    return report.to_json()


@router.get("/transfers/{transfer_id}", response_model=TransferSettlementOut)
def transfer_settlement(
    transfer_id: str, who: Reader, corridor: CorridorDep
) -> TransferSettlementOut:
    """Where a transfer stands in settlement: its window, the window's status, the batch
    and the settling transaction once settled."""
    transfer = corridor.ledger.get_transfer(transfer_id)
    if not (
        who.may_read_participant(transfer.debit_participant_id)
        or who.may_read_participant(transfer.credit_participant_id)
    ):
        raise ApiError("transfer_not_found", f"no transfer {transfer_id}", 404)
    return settlement_status(corridor.engine, transfer)
