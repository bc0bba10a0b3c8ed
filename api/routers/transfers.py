"""Moving money: deposits (cash-in), withdrawals (cash-out), transfers, batches, pending."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from api.auth import CorridorDep, Participant, Reader
from api.problems import ApiError
from api.routers.common import After, IdempotencyKey, Limit, client_id, int_cursor, mark_replay
from api.schemas import (
    BatchIn,
    BatchItemOut,
    BatchOut,
    BatchTransferIn,
    DepositIn,
    Page,
    TransferIn,
    TransferOut,
    WithdrawalIn,
)
from api.stepup_deps import prepared, transfer_check
from settlement.ledger.model import BatchOutcome, TransferRequest
from settlement.stepup import Prepared

router = APIRouter(prefix="/v1", tags=["transfers"])

_CREATED_OR_REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"description": "A replay of an earlier request with the same id"}
}


@router.post(
    "/deposits", status_code=201, response_model=TransferOut, responses=_CREATED_OR_REPLAYED
)
def deposit(
    body: DepositIn,
    response: Response,
    who: Participant,
    corridor: CorridorDep,
    idempotency_key: IdempotencyKey = None,
) -> TransferOut:
    """Cash-in: the partner received money outside the ledger for this wallet."""
    transfer, created = corridor.ledger.deposit(
        who.acting_participant(),
        client_id(body.id, idempotency_key),
        body.wallet_id,
        body.amount.currency,
        body.amount.minor(),
        body.memo,
    )
    mark_replay(response, created)
    return TransferOut.of(transfer)


@router.post(
    "/withdrawals", status_code=201, response_model=TransferOut, responses=_CREATED_OR_REPLAYED
)
def withdraw(
    body: WithdrawalIn,
    response: Response,
    who: Participant,
    corridor: CorridorDep,
    idempotency_key: IdempotencyKey = None,
) -> TransferOut:
    """Cash-out: money leaves the wallet; the partner pays it out outside the ledger."""
    transfer, created = corridor.ledger.withdraw(
        who.acting_participant(),
        client_id(body.id, idempotency_key),
        body.wallet_id,
        body.amount.currency,
        body.amount.minor(),
        body.memo,
    )
    mark_replay(response, created)
    return TransferOut.of(transfer)


def _request(body: TransferIn | BatchTransferIn, key: str) -> TransferRequest:
    return TransferRequest(
        client_id=key,
        from_wallet=body.from_wallet,
        to_wallet=body.to_wallet,
        to_alias=body.to_alias,
        currency=body.amount.currency,
        amount_minor=body.amount.minor(),
        pending=body.pending,
        timeout_s=body.timeout_s,
        # Only batch items can be linked (a single transfer has nothing to link to).
        linked=isinstance(body, BatchTransferIn) and body.linked,
        memo=body.memo,
    )


def _order(request: TransferRequest, body: TransferIn) -> Prepared:
    """The step-up order of a transfer: the body's recipient as given, no quote."""
    recipient = body.to_wallet if body.to_wallet is not None else body.to_alias or ""
    return prepared(
        request.client_id,
        request.from_wallet,
        recipient,
        request.amount_minor,
        request.currency,
        "",
        body.step_up,
    )


@router.post(
    "/transfers", status_code=201, response_model=TransferOut, responses=_CREATED_OR_REPLAYED
)
async def create_transfer(
    body: TransferIn,
    response: Response,
    who: Participant,
    corridor: CorridorDep,
    idempotency_key: IdempotencyKey = None,
) -> TransferOut:
    """Send money from one of your wallets to any wallet, by wallet id or alias.

    Above the source wallet's step-up threshold, `step_up` must carry an EIP-712 signature
    of the order by the wallet's signing key (see /v1/wallets/{wallet_id}/step-up)."""
    # A coroutine: the hot path of the API waits for its group commit on the event loop
    # instead of holding a worker thread (see settlement/ledger/group_commit.py).
    request = _request(body, client_id(body.id, idempotency_key))
    participant = who.acting_participant()
    if body.step_up is None:
        order = _order(request, body)
    else:  # recovering the signer is CPU work best kept off the event loop
        order = await run_in_threadpool(_order, request, body)
    check = transfer_check(participant, [order], corridor.clock)
    transfer, created = await corridor.ledger.transfer_async(participant, request, check)
    mark_replay(response, created)
    return TransferOut.of(transfer)


@router.post("/transfers/batch", response_model=BatchOut)
def create_batch(body: BatchIn, who: Participant, corridor: CorridorDep) -> BatchOut:
    """Up to 8,190 transfers in one durable transaction, each with its own result.

    Every item needs its own `id`; replaying the batch returns `exists` for items already
    posted. Items marked `linked` succeed or fail together with the next item.
    """
    requests = []
    for index, item in enumerate(body.transfers):
        if item.id is None:
            raise ApiError("idempotency_key_missing", f"transfers.{index}: every item needs an id")
        requests.append(_request(item, item.id))
    participant = who.acting_participant()
    orders = [_order(r, item) for r, item in zip(requests, body.transfers, strict=True)]
    check = transfer_check(participant, orders, corridor.clock, batch=True)
    results = corridor.ledger.post_batch(participant, requests, check)
    counts = {outcome: 0 for outcome in BatchOutcome}
    for result in results:
        counts[result.outcome] += 1
    return BatchOut(
        created=counts[BatchOutcome.CREATED],
        exists=counts[BatchOutcome.EXISTS],
        failed=counts[BatchOutcome.FAILED],
        results=[BatchItemOut.of(result) for result in results],
    )


@router.get("/transfers", response_model=Page[TransferOut])
def list_transfers(
    who: Reader,
    corridor: CorridorDep,
    participant_id: Annotated[str | None, Query()] = None,
    limit: Limit = 100,
    after: After = None,
) -> Page[TransferOut]:
    """Transfers in acceptance order: a participant sees those it sent or received."""
    scope = participant_id or who.participant_id
    if scope is not None and not who.may_read_participant(scope):
        raise ApiError("participant_not_found", f"no participant {scope}")
    found = corridor.ledger.list_transfers(scope, int_cursor(after), limit)
    cursor = str(found[-1].seq) if len(found) == limit else None
    return Page(data=[TransferOut.of(t) for t in found], next_cursor=cursor)


@router.get("/transfers/{transfer_id}", response_model=TransferOut)
def get_transfer(transfer_id: str, who: Reader, corridor: CorridorDep) -> TransferOut:
    transfer = corridor.ledger.get_transfer(transfer_id)
    if not (
        who.may_read_participant(transfer.debit_participant_id)
        or who.may_read_participant(transfer.credit_participant_id)
    ):
        raise ApiError("transfer_not_found", f"no transfer {transfer_id}")
    return TransferOut.of(transfer)


@router.post("/transfers/{transfer_id}/post", response_model=TransferOut)
def post_pending(transfer_id: str, who: Participant, corridor: CorridorDep) -> TransferOut:
    """Complete a pending transfer (safe to repeat)."""
    return TransferOut.of(corridor.ledger.post_pending(who.acting_participant(), transfer_id))


@router.post("/transfers/{transfer_id}/void", response_model=TransferOut)
def void_pending(transfer_id: str, who: Participant, corridor: CorridorDep) -> TransferOut:
    """Cancel a pending transfer and release its hold (safe to repeat)."""
    return TransferOut.of(corridor.ledger.void_pending(who.acting_participant(), transfer_id))
