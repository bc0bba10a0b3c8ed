"""Webhook subscriptions and their deliveries in the database: what the API reads and
changes. The dispatcher (dispatcher.py) is the only writer of delivery outcomes."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine, func, insert, select, update

from settlement.db import read_transaction, write_transaction
from settlement.errors import LedgerError
from settlement.ledger.tables import participants
from settlement.notify.rules import EVENT_TYPES, SUBSCRIPTIONS_PER_PARTICIPANT_MAX
from settlement.notify.signing import new_secret
from settlement.notify.tables import webhook_attempts, webhook_deliveries, webhook_subscriptions

DELIVERY_STATUSES: Final = ("pending", "delivered", "failed", "cancelled")
PAGE_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    participant_id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    created_at_us: int
    deleted_at_us: int | None


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    started_at_us: int
    duration_us: int
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    subscription_id: str
    event_id: int
    event_type: str
    participant_id: str
    wallet_id: str | None
    status: str
    replay: bool
    attempts: int
    created_at_us: int
    next_attempt_at_us: int | None
    expires_at_us: int
    delivered_at_us: int | None
    last_status_code: int | None
    last_error: str | None


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        participant_id=row.participant_id,
        url=row.url,
        event_types=tuple(json.loads(row.event_types)),
        description=row.description,
        created_at_us=row.created_at_us,
        deleted_at_us=row.deleted_at_us,
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        event_type=row.event_type,
        participant_id=row.participant_id,
        wallet_id=row.wallet_key or None,
        status=row.status,
        replay=bool(row.replay),
        attempts=row.attempts,
        created_at_us=row.created_at_us,
        next_attempt_at_us=row.next_attempt_at_us,
        expires_at_us=row.expires_at_us,
        delivered_at_us=row.delivered_at_us,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
    )


def check_event_types(event_types: Sequence[str] | None) -> tuple[str, ...]:
    if event_types is None:
        return EVENT_TYPES
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown or not event_types:
        raise LedgerError(
            "invalid_event_types",
            f"event types are a non-empty subset of {', '.join(EVENT_TYPES)}",
            unknown=unknown,
        )
    return tuple(t for t in EVENT_TYPES if t in event_types)


class WebhookStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        participant_id: str,
        url: str,
        event_types: Sequence[str] | None,
        description: str | None,
        now_us: int,
    ) -> tuple[Subscription, str]:
        """A new subscription and its signing secret (returned here only)."""
        types = check_event_types(event_types)
        secret = new_secret()
        subscription = Subscription(
            id=f"wh_{secrets.token_hex(10)}",
            participant_id=participant_id,
            url=url,
            event_types=types,
            description=description,
            created_at_us=now_us,
            deleted_at_us=None,
        )
        with write_transaction(self.engine) as conn:
            if (
                conn.execute(
                    select(participants.c.id).where(participants.c.id == participant_id)
                ).first()
                is None
            ):
                raise LedgerError("participant_not_found", f"no participant {participant_id}")
            active = conn.execute(
                select(func.count())
                .select_from(webhook_subscriptions)
                .where(
                    webhook_subscriptions.c.participant_id == participant_id,
                    webhook_subscriptions.c.deleted_at_us.is_(None),
                )
            ).scalar_one()
            if active >= SUBSCRIPTIONS_PER_PARTICIPANT_MAX:
                raise LedgerError(
                    "too_many_subscriptions",
                    f"a participant has at most {SUBSCRIPTIONS_PER_PARTICIPANT_MAX} webhooks",
                )
            conn.execute(
                insert(webhook_subscriptions).values(
                    id=subscription.id,
                    participant_id=participant_id,
                    url=url,
                    event_types=json.dumps(list(types)),
                    secret=secret,
                    description=description,
                    created_at_us=now_us,
                )
            )
        return subscription, secret

    def subscriptions(self, participant_id: str | None) -> list[Subscription]:
        query = (
            select(webhook_subscriptions)
            .where(webhook_subscriptions.c.deleted_at_us.is_(None))
            .order_by(webhook_subscriptions.c.created_at_us, webhook_subscriptions.c.id)
        )
        if participant_id is not None:
            query = query.where(webhook_subscriptions.c.participant_id == participant_id)
        with read_transaction(self.engine) as conn:
            return [_subscription(row) for row in conn.execute(query)]

    def get(self, subscription_id: str, participant_id: str | None = None) -> Subscription:
        """A live subscription; another participant's is reported as not found."""
        with read_transaction(self.engine) as conn:
            row = conn.execute(
                select(webhook_subscriptions).where(webhook_subscriptions.c.id == subscription_id)
            ).first()
        if (
            row is None
            or row.deleted_at_us is not None
            or (participant_id is not None and row.participant_id != participant_id)
        ):
            raise LedgerError("webhook_not_found", f"no webhook {subscription_id}")
        return _subscription(row)

    def delete(self, subscription_id: str, now_us: int) -> None:
        """Stop delivering: the subscription goes, its pending deliveries are cancelled."""
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(webhook_subscriptions)
                .where(
                    webhook_subscriptions.c.id == subscription_id,
                    webhook_subscriptions.c.deleted_at_us.is_(None),
                )
                .values(deleted_at_us=now_us)
            )
            conn.execute(
                update(webhook_deliveries)
                .where(
                    webhook_deliveries.c.subscription_id == subscription_id,
                    webhook_deliveries.c.status == "pending",
                )
                .values(status="cancelled", next_attempt_at_us=None)
            )

    def deliveries(
        self,
        subscription_id: str,
        status: str | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        """Newest first; `after` is the id of the last delivery of the previous page."""
        assert 0 < limit <= PAGE_MAX
        query = (
            select(webhook_deliveries)
            .where(webhook_deliveries.c.subscription_id == subscription_id)
            .order_by(webhook_deliveries.c.id.desc())
            .limit(limit)
        )
        if status is not None:
            query = query.where(webhook_deliveries.c.status == status)
        if after is not None:
            query = query.where(webhook_deliveries.c.id < after)
        with read_transaction(self.engine) as conn:
            return [_delivery(row) for row in conn.execute(query)]

    def delivery(self, subscription_id: str, delivery_id: int) -> tuple[Delivery, list[Attempt]]:
        with read_transaction(self.engine) as conn:
            row = conn.execute(
                select(webhook_deliveries).where(
                    webhook_deliveries.c.id == delivery_id,
                    webhook_deliveries.c.subscription_id == subscription_id,
                )
            ).first()
            if row is None:
                raise LedgerError("delivery_not_found", f"no delivery {delivery_id}")
            attempts = [
                Attempt(a.id, a.started_at_us, a.duration_us, a.status_code, a.error)
                for a in conn.execute(
                    select(webhook_attempts)
                    .where(webhook_attempts.c.delivery_id == delivery_id)
                    .order_by(webhook_attempts.c.id)
                )
            ]
        return _delivery(row), attempts

    def replay(
        self, subscription_id: str, delivery_id: int, now_us: int, lifetime_s: float
    ) -> Delivery:
        """Send a finished delivery again, now, outside the per-wallet order."""
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                select(webhook_deliveries.c.status).where(
                    webhook_deliveries.c.id == delivery_id,
                    webhook_deliveries.c.subscription_id == subscription_id,
                )
            ).first()
            if row is None:
                raise LedgerError("delivery_not_found", f"no delivery {delivery_id}")
            if row.status not in ("delivered", "failed"):
                raise LedgerError(
                    "delivery_not_finished",
                    f"delivery {delivery_id} is {row.status}; only finished ones are replayed",
                )
            conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == delivery_id)
                .values(
                    status="pending",
                    replay=True,
                    attempts=0,
                    next_attempt_at_us=now_us,
                    expires_at_us=now_us + int(lifetime_s * 1_000_000),
                    delivered_at_us=None,
                )
            )
        return self.delivery(subscription_id, delivery_id)[0]
