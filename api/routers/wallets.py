"""Wallets: balances per currency, aliases, statements, limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import CorridorDep, Operator, OperatorOrParticipant, Reader
from api.auth_store import Role
from api.problems import ApiError
from api.routers.common import After, Limit, int_cursor
from api.schemas import (
    AliasIn,
    BalancesAtOut,
    LimitsIn,
    LimitsOut,
    Money,
    Page,
    StatementLineOut,
    WalletIn,
    WalletOut,
    WalletPatch,
    to_minor_or_zero,
    to_us,
)
from fx.currency import currency as check_currency
from fx.currency import to_major
from settlement.ledger.model import Limits

router = APIRouter(prefix="/v1", tags=["wallets"])


@router.post("/wallets", status_code=201, response_model=WalletOut)
def create_wallet(body: WalletIn, who: OperatorOrParticipant, corridor: CorridorDep) -> WalletOut:
    if who.role is Role.PARTICIPANT:
        if body.participant_id not in (None, who.participant_id):
            raise ApiError("forbidden", "a participant opens wallets only for itself", 403)
        owner = who.participant_id
    else:
        owner = body.participant_id
    if owner is None:
        raise ApiError("participant_required", "operator keys must name the participant_id")
    wallet = corridor.ledger.create_wallet(owner, body.kyc_tier, body.label, body.aliases)
    return WalletOut.of(wallet)


@router.get("/wallets", response_model=Page[WalletOut])
def list_wallets(
    who: Reader,
    corridor: CorridorDep,
    participant_id: Annotated[str | None, Query()] = None,
    limit: Limit = 100,
    after: After = None,
) -> Page[WalletOut]:
    owner = participant_id or who.participant_id
    if owner is None:
        raise ApiError("participant_required", "name the participant_id whose wallets to list")
    if not who.may_read_participant(owner):
        raise ApiError("participant_not_found", f"no participant {owner}")
    found = corridor.ledger.list_wallets(owner, after, limit)
    cursor = found[-1].id if len(found) == limit else None
    return Page(data=[WalletOut.of(w) for w in found], next_cursor=cursor)


@router.get("/wallets/{wallet_id}", response_model=WalletOut)
def get_wallet(wallet_id: str, who: Reader, corridor: CorridorDep) -> WalletOut:
    return WalletOut.of(who.check_wallet(corridor.ledger.get_wallet(wallet_id)))


@router.patch("/wallets/{wallet_id}", response_model=WalletOut)
def set_wallet_tier(
    wallet_id: str, body: WalletPatch, who: Operator, corridor: CorridorDep
) -> WalletOut:
    return WalletOut.of(corridor.ledger.set_wallet_tier(wallet_id, body.kyc_tier))


@router.post("/wallets/{wallet_id}/aliases", status_code=201, response_model=WalletOut)
def add_alias(
    wallet_id: str, body: AliasIn, who: OperatorOrParticipant, corridor: CorridorDep
) -> WalletOut:
    who.check_wallet(corridor.ledger.get_wallet(wallet_id))
    return WalletOut.of(corridor.ledger.add_alias(wallet_id, body.alias))


@router.get("/wallets/{wallet_id}/statement", response_model=Page[StatementLineOut])
def statement(
    wallet_id: str,
    who: Reader,
    corridor: CorridorDep,
    currency: Annotated[str | None, Query(examples=["USD"])] = None,
    since: Annotated[datetime | None, Query(description="Inclusive, ISO 8601")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive, ISO 8601")] = None,
    limit: Limit = 100,
    after: After = None,
) -> Page[StatementLineOut]:
    who.check_wallet(corridor.ledger.get_wallet(wallet_id))
    if currency is not None:
        check_currency(currency)
    lines = corridor.ledger.statement(
        wallet_id,
        currency,
        to_us(since) if since else None,
        to_us(until) if until else None,
        int_cursor(after),
        limit,
    )
    cursor = str(lines[-1].entry_id) if len(lines) == limit else None
    return Page(data=[StatementLineOut.of(line) for line in lines], next_cursor=cursor)


@router.get("/wallets/{wallet_id}/balances", response_model=BalancesAtOut)
def balances_at(
    wallet_id: str,
    at: Annotated[datetime, Query(description="The instant, ISO 8601")],
    who: Reader,
    corridor: CorridorDep,
) -> BalancesAtOut:
    who.check_wallet(corridor.ledger.get_wallet(wallet_id))
    found = corridor.ledger.balances_at(wallet_id, to_us(at))
    return BalancesAtOut(
        wallet_id=wallet_id,
        at=at,
        balances=[Money.of(amount, cur) for cur, amount in sorted(found.items())],
    )


def _limits_in(currency: str, body: LimitsIn) -> Limits:
    check_currency(currency)

    def parse(value: str | None) -> int | None:
        return None if value is None else to_minor_or_zero(value, currency)

    return Limits(parse(body.per_transfer_max), parse(body.daily_max))


def _limits_out(currency: str, limits: Limits | None) -> LimitsOut:
    def show(value: int | None) -> str | None:
        return None if value is None else to_major(value, currency)

    if limits is None:
        return LimitsOut(currency=currency, per_transfer_max=None, daily_max=None)
    return LimitsOut(
        currency=currency,
        per_transfer_max=show(limits.per_transfer_max_minor),
        daily_max=show(limits.daily_max_minor),
    )


@router.get("/wallets/{wallet_id}/limits/{currency}", response_model=LimitsOut)
def get_wallet_limits(
    wallet_id: str, currency: str, who: Reader, corridor: CorridorDep
) -> LimitsOut:
    who.check_wallet(corridor.ledger.get_wallet(wallet_id))
    check_currency(currency)
    return _limits_out(currency, corridor.ledger.effective_limits(wallet_id, currency))


@router.put("/wallets/{wallet_id}/limits/{currency}", response_model=LimitsOut)
def set_wallet_limits(
    wallet_id: str, currency: str, body: LimitsIn, who: Operator, corridor: CorridorDep
) -> LimitsOut:
    corridor.ledger.set_wallet_limits(wallet_id, currency, _limits_in(currency, body))
    return _limits_out(currency, corridor.ledger.effective_limits(wallet_id, currency))


@router.put("/limits/tiers/{tier}/{currency}", response_model=LimitsOut, tags=["limits"])
def set_tier_limits(
    tier: str, currency: str, body: LimitsIn, who: Operator, corridor: CorridorDep
) -> LimitsOut:
    limits = _limits_in(currency, body)
    corridor.ledger.set_tier_limits(tier, currency, limits)
    return _limits_out(currency, limits)
