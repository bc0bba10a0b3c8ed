"""Webhook subscriptions of a participant, their deliveries, attempts and replays.

Deliveries are signed (`Corridor-Signature`, see docs/WEBHOOKS.md), sent in order per
wallet, retried with exponential backoff for a bounded lifetime, and every attempt is kept.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field, StrictStr

from api.auth import CorridorDep, OperatorOrParticipant, Principal
from api.auth_store import Role
from api.problems import ApiError
from api.routers.common import After, Limit, int_cursor
from api.routers.events import EventType
from api.schemas import Page, Strict, to_iso
from settlement.notify import EVENT_TYPES, Attempt, Delivery, Subscription, WebhookStore
from settlement.notify.rules import URL_LENGTH_MAX

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

WebhookId = Annotated[str, Path(max_length=40, examples=["wh_5f1c0b2a9d8e7f6a5b4c"])]
DeliveryId = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[17])]
DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


class WebhookIn(Strict):
    url: StrictStr = Field(
        min_length=8,
        max_length=URL_LENGTH_MAX,
        description="http(s) URL that receives POSTed events",
        examples=["https://partner.example/corridor/webhooks"],
    )
    event_types: list[EventType] | None = Field(
        None,
        min_length=1,
        max_length=len(EVENT_TYPES),
        description="Events to receive; all of them when omitted",
        examples=[["transfer.created", "payment.completed"]],
    )
    description: StrictStr | None = Field(None, max_length=200, examples=["production"])
    participant_id: StrictStr | None = Field(
        None, max_length=64, description="Operator keys only: the participant subscribed"
    )


class WebhookOut(BaseModel):
    id: str
    participant_id: str
    url: str
    event_types: list[str]
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, s: Subscription) -> WebhookOut:
        return cls(
            id=s.id,
            participant_id=s.participant_id,
            url=s.url,
            event_types=list(s.event_types),
            description=s.description,
            created_at=to_iso(s.created_at_us),  # type: ignore[arg-type]
        )


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(
        description="HMAC-SHA256 key of the Corridor-Signature header. Shown once; store it"
    )


class AttemptOut(BaseModel):
    started_at: datetime
    duration_ms: float
    status_code: int | None = Field(description="The receiver's answer; null if none came")
    error: str | None


class DeliveryOut(BaseModel):
    id: int
    webhook_id: str
    event_id: int
    event_type: str
    wallet_id: str | None
    status: str = Field(description="pending, delivered, failed or cancelled")
    replay: bool = Field(description="Sent again on request, outside the per-wallet order")
    attempts: int = Field(description="Attempts since it was (re)queued")
    created_at: datetime
    next_attempt_at: datetime | None
    expires_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(
            id=d.id,
            webhook_id=d.subscription_id,
            event_id=d.event_id,
            event_type=d.event_type,
            wallet_id=d.wallet_id,
            status=d.status,
            replay=d.replay,
            attempts=d.attempts,
            created_at=to_iso(d.created_at_us),  # type: ignore[arg-type]
            next_attempt_at=to_iso(d.next_attempt_at_us),
            expires_at=to_iso(d.expires_at_us),  # type: ignore[arg-type]
            delivered_at=to_iso(d.delivered_at_us),
            last_status_code=d.last_status_code,
            last_error=d.last_error,
        )


class DeliveryDetailOut(DeliveryOut):
    attempt_log: list[AttemptOut] = Field(description="Every attempt, oldest first")

    @classmethod
    def with_attempts(cls, d: Delivery, attempts: list[Attempt]) -> DeliveryDetailOut:
        return cls(
            **DeliveryOut.of(d).model_dump(),
            attempt_log=[
                AttemptOut(
                    started_at=to_iso(a.started_at_us),  # type: ignore[arg-type]
                    duration_ms=a.duration_us / 1000,
                    status_code=a.status_code,
                    error=a.error,
                )
                for a in attempts
            ],
        )


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError("invalid_url", "a webhook URL is an absolute http or https URL")
    if parts.username or parts.password:
        raise ApiError("invalid_url", "put no credentials in the URL: deliveries are signed")


def _own(who: Principal, corridor: CorridorDep, webhook_id: str) -> Subscription:
    owner = who.participant_id if who.role is Role.PARTICIPANT else None
    return WebhookStore(corridor.engine).get(webhook_id, owner)


@router.post("", status_code=201, response_model=WebhookCreatedOut)
def create_webhook(
    body: WebhookIn, who: OperatorOrParticipant, corridor: CorridorDep
) -> WebhookCreatedOut:
    """Subscribe a URL to your events. The signing secret is in this answer only."""
    if who.role is Role.PARTICIPANT:
        if body.participant_id not in (None, who.participant_id):
            raise ApiError("forbidden", "a participant subscribes only to its own events", 403)
        owner = who.participant_id
    else:
        owner = body.participant_id
    if owner is None:
        raise ApiError("participant_required", "operator keys must name the participant_id")
    _check_url(body.url)
    subscription, secret = WebhookStore(corridor.engine).create(
        owner, body.url, body.event_types, body.description, corridor.clock()
    )
    return WebhookCreatedOut(**WebhookOut.of(subscription).model_dump(), secret=secret)


@router.get("", response_model=list[WebhookOut])
def list_webhooks(who: OperatorOrParticipant, corridor: CorridorDep) -> list[WebhookOut]:
    """Your webhooks (operators: everyone's); never their secrets."""
    owner = who.participant_id if who.role is Role.PARTICIPANT else None
    return [WebhookOut.of(s) for s in WebhookStore(corridor.engine).subscriptions(owner)]


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(
    webhook_id: WebhookId, who: OperatorOrParticipant, corridor: CorridorDep
) -> WebhookOut:
    return WebhookOut.of(_own(who, corridor, webhook_id))


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
def delete_webhook(
    webhook_id: WebhookId, who: OperatorOrParticipant, corridor: CorridorDep
) -> Response:
    """Unsubscribe: nothing more is sent; pending deliveries are cancelled."""
    _own(who, corridor, webhook_id)
    WebhookStore(corridor.engine).delete(webhook_id, corridor.clock())
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryOut])
def list_deliveries(
    webhook_id: WebhookId,
    who: OperatorOrParticipant,
    corridor: CorridorDep,
    status: Annotated[DeliveryStatus | None, Query(description="Only this status")] = None,
    limit: Limit = 100,
    after: After = None,
) -> Page[DeliveryOut]:
    """Deliveries of this webhook, newest first."""
    _own(who, corridor, webhook_id)
    cursor = int_cursor(after)
    found = WebhookStore(corridor.engine).deliveries(webhook_id, status, cursor, limit)
    return Page(
        data=[DeliveryOut.of(d) for d in found],
        next_cursor=str(found[-1].id) if len(found) == limit else None,
    )


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryDetailOut)
def get_delivery(
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
    who: OperatorOrParticipant,
    corridor: CorridorDep,
) -> DeliveryDetailOut:
    """One delivery with every attempt made."""
    _own(who, corridor, webhook_id)
    delivery, attempts = WebhookStore(corridor.engine).delivery(webhook_id, delivery_id)
    return DeliveryDetailOut.with_attempts(delivery, attempts)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay", status_code=202, response_model=DeliveryOut
)
def replay_delivery(
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
    who: OperatorOrParticipant,
    corridor: CorridorDep,
) -> DeliveryOut:
    """Send a delivered or failed event again, now (same event id: deduplicate on it)."""
    _own(who, corridor, webhook_id)
    delivery = WebhookStore(corridor.engine).replay(
        webhook_id, delivery_id, corridor.clock(), corridor.settings.webhook_lifetime_s
    )
    return DeliveryOut.of(delivery)
