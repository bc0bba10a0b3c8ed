"""Participants: partner platforms and liquidity providers, onboarded by the operator."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field, StrictStr

from api.auth import CorridorDep, Operator, Reader
from api.context import Corridor
from api.problems import ApiError
from api.routers.common import After, Limit
from api.schemas import Page, ParticipantIn, ParticipantOut, Strict, to_minor_or_zero
from fx.currency import currency as check_currency
from fx.currency import to_major
from settlement.ledger.model import ParticipantKind

router = APIRouter(prefix="/v1/participants", tags=["participants"])


@router.post("", status_code=201, response_model=ParticipantOut)
def create_participant(body: ParticipantIn, who: Operator, corridor: CorridorDep) -> ParticipantOut:
    participant = corridor.ledger.create_participant(
        body.name, ParticipantKind(body.kind), body.id, body.settlement_address
    )
    return ParticipantOut.of(participant)


@router.get("", response_model=Page[ParticipantOut])
def list_participants(
    who: Reader, corridor: CorridorDep, limit: Limit = 100, after: After = None
) -> Page[ParticipantOut]:
    if who.participant_id is not None:
        only = corridor.ledger.get_participant(who.participant_id)
        return Page(data=[ParticipantOut.of(only)], next_cursor=None)
    found = corridor.ledger.list_participants(after, limit)
    cursor = found[-1].id if len(found) == limit else None
    return Page(data=[ParticipantOut.of(p) for p in found], next_cursor=cursor)


@router.get("/{participant_id}", response_model=ParticipantOut)
def get_participant(participant_id: str, who: Reader, corridor: CorridorDep) -> ParticipantOut:
    if not who.may_read_participant(participant_id):
        raise ApiError("participant_not_found", f"no participant {participant_id}")
    return ParticipantOut.of(corridor.ledger.get_participant(participant_id))


class CapIn(Strict):
    cap: StrictStr | None = Field(
        description="Most the participant may owe others unsettled; null: its prefunding",
        examples=["25000.00"],
    )


class ExposureOut(BaseModel):
    currency: str
    prefunded: str = Field(description="Settlement balance on chain (mirrored)")
    unsettled: str = Field(description="Net position of windows not yet settled")
    net_debit_cap: str
    cap_is_prefunding: bool


@router.put("/{participant_id}/net-debit-caps/{currency}", response_model=ExposureOut)
def set_net_debit_cap(
    participant_id: str, currency: str, body: CapIn, who: Operator, corridor: CorridorDep
) -> ExposureOut:
    check_currency(currency)
    cap = None if body.cap is None else to_minor_or_zero(body.cap, currency)
    corridor.ledger.set_net_debit_cap(participant_id, currency, cap)
    return next(e for e in _exposure(corridor, participant_id) if e.currency == currency)


@router.get("/{participant_id}/settlement", response_model=list[ExposureOut])
def settlement_exposure(
    participant_id: str, who: Reader, corridor: CorridorDep
) -> list[ExposureOut]:
    """Per currency: prefunded settlement balance, unsettled net position and the cap."""
    if not who.may_read_participant(participant_id):
        raise ApiError("participant_not_found", f"no participant {participant_id}")
    return _exposure(corridor, participant_id)


def _exposure(corridor: Corridor, participant_id: str) -> list[ExposureOut]:
    return [
        ExposureOut(
            currency=s.currency,
            prefunded=to_major(s.prefunded_minor, s.currency),
            unsettled=to_major(s.unsettled_minor, s.currency),
            net_debit_cap=to_major(s.debit_cap_minor, s.currency),
            cap_is_prefunding=s.cap_minor is None,
        )
        for s in corridor.ledger.settlement_exposure(participant_id)
    ]
