"""A participant's events: a page of the outbox, and a live Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.auth import CorridorDep, OperatorOrParticipant, Principal, Reader
from api.notify import feed_for
from api.problems import ApiError
from api.routers.common import After, Limit, int_cursor
from api.schemas import Page
from settlement.db import read_transaction
from settlement.ledger.tables import events
from settlement.notify.rules import EVENT_TYPES, envelope

router = APIRouter(prefix="/v1/events", tags=["events"])

STREAM_QUEUE_MAX: Final = 1000
STREAM_HISTORY_MAX: Final = 1000
STREAM_HEARTBEAT_S: Final = 15.0
STREAM_LIFETIME_S: Final = 3600.0
STREAM_RETRY_MS: Final = 2000

EventType = Literal[
    "transfer.created",
    "transfer.posted",
    "transfer.voided",
    "payment.completed",
    "batch.settled",
    "limit.refused",
]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]

_EXAMPLE: dict[str, Any] = {
    "id": 42,
    "type": "transfer.created",
    "created_at": "2026-11-25T10:00:00.123456Z",
    "participant_id": "acme",
    "wallet_id": "w_1f2e3d4c5b6a79880011",
    "subject_id": "tr_0a1b2c3d4e5f60718293",
    "data": {"id": "tr_0a1b2c3d4e5f60718293", "amount": {"amount": "40.00", "currency": "USD"}},
}


class EventOut(BaseModel):
    """One event, as webhooks and the stream deliver it."""

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE]}}

    id: int = Field(description="Increasing; receivers deduplicate on it")
    type: str
    created_at: datetime
    participant_id: str
    wallet_id: str | None
    subject_id: str = Field(description="The transfer, payment or batch it is about")
    data: dict[str, Any]


def _scope(who: Principal, participant_id: str | None) -> str | None:
    scope = participant_id or who.participant_id
    if scope is not None and not who.may_read_participant(scope):
        raise ApiError("participant_not_found", f"no participant {scope}")
    return scope


def _document(row: Any) -> dict[str, Any]:
    return envelope(
        row.id,
        row.type,
        row.participant_id,
        row.wallet_id,
        row.subject_id,
        row.payload,
        row.created_at_us,
    )


@router.get("", response_model=Page[EventOut])
def list_events(
    who: Reader,
    corridor: CorridorDep,
    participant_id: Annotated[str | None, Query(max_length=64)] = None,
    event_type: Annotated[
        EventType | None, Query(alias="type", description="Only this event type")
    ] = None,
    limit: Limit = 100,
    after: After = None,
) -> Page[EventOut]:
    """Events oldest first; a participant sees its own. `after`: the last id seen."""
    scope = _scope(who, participant_id)
    query = select(events).order_by(events.c.id).limit(limit)
    if scope is not None:
        query = query.where(events.c.participant_id == scope)
    if event_type is not None:
        query = query.where(events.c.type == event_type)
    cursor = int_cursor(after)
    if cursor is not None:
        query = query.where(events.c.id > cursor)
    with read_transaction(corridor.engine) as conn:
        rows = list(conn.execute(query))
    found = [EventOut.model_validate(_document(row)) for row in rows]
    return Page(data=found, next_cursor=str(rows[-1].id) if len(rows) == limit else None)


def _frame(row: Any) -> str:
    data = json.dumps(_document(row), separators=(",", ":"))
    return f"id: {row.id}\nevent: {row.type}\ndata: {data}\n\n"


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "text/event-stream: `id` is the event id, `event` its type, "
            "`data` the event (as in GET /v1/events). Comments keep the connection alive.",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "example": f"id: 42\nevent: transfer.created\ndata: {json.dumps(_EXAMPLE)}\n\n",
                }
            },
        }
    },
)
async def stream_events(
    who: OperatorOrParticipant,
    corridor: CorridorDep,
    participant_id: Annotated[
        str | None, Query(max_length=64, description="Operators: whose events")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=20,
            description="Resume after this event id (browsers send it on reconnect)",
        ),
    ] = None,
) -> StreamingResponse:
    """A live stream of a participant's events, for dashboards (Server-Sent Events).

    On reconnect with Last-Event-ID, up to 1,000 missed events are sent first. A stream
    lasts at most an hour; reconnecting resumes it.
    """
    scope = _scope(who, participant_id)
    if scope is None:
        raise ApiError("participant_required", "name the participant_id whose events to stream")
    resume_after = None
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise ApiError("invalid_cursor", "Last-Event-ID must be an event id")
        resume_after = int(last_event_id)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=STREAM_QUEUE_MAX)
    feed = feed_for(corridor)
    subscriber = await run_in_threadpool(feed.subscribe, scope, loop, queue)

    def history() -> list[Any]:
        with read_transaction(corridor.engine) as conn:
            return list(
                conn.execute(
                    select(events)
                    .where(events.c.participant_id == scope, events.c.id > resume_after)
                    .order_by(events.c.id)
                    .limit(STREAM_HISTORY_MAX)
                )
            )

    async def frames() -> AsyncIterator[str]:
        try:
            yield f"retry: {STREAM_RETRY_MS}\n: stream of {scope}'s events\n\n"
            sent: set[int] = set()
            if resume_after is not None:
                for row in await run_in_threadpool(history):
                    sent.add(row.id)
                    yield _frame(row)
            deadline = loop.time() + STREAM_LIFETIME_S
            while loop.time() < deadline:
                try:
                    row = await asyncio.wait_for(queue.get(), timeout=STREAM_HEARTBEAT_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if row is None:  # fell behind: the client reconnects with Last-Event-ID
                    return
                if row.id not in sent:
                    yield _frame(row)
        finally:
            feed.unsubscribe(subscriber)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
