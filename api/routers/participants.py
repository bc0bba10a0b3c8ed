"""Participants: partner platforms and liquidity providers, onboarded by the operator."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import CorridorDep, Operator, Reader
from api.problems import ApiError
from api.routers.common import After, Limit
from api.schemas import Page, ParticipantIn, ParticipantOut
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
