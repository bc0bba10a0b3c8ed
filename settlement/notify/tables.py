"""Tables of webhook notifications: subscriptions, deliveries, attempts, the fan-out cursor.

Events themselves live in the ledger's outbox (`events`, settlement/ledger/tables.py); a
delivery is one event for one subscription, with its retry state; an attempt is one HTTP
request made for a delivery, kept so that a participant can see what happened.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from settlement.db import metadata

# The step-up tables are registered (and bridged below) with these.

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("participant_id", String(64), ForeignKey("participants.id"), nullable=False),
    Column("url", String(2000), nullable=False),
    # JSON list of event types, e.g. ["transfer.created","payment.completed"].
    Column("event_types", String(400), nullable=False),
    # The HMAC key. Kept in clear because signing needs it; shown to the participant once.
    Column("secret", String(80), nullable=False),
    Column("description", String(200), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    # Deleted subscriptions stay, so that their deliveries can still be listed.
    Column("deleted_at_us", BigInteger, nullable=True),
    Index("ix_webhook_subscriptions_participant", "participant_id", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", String(40), ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("event_id", Integer, ForeignKey("events.id"), nullable=False),
    Column("participant_id", String(64), nullable=False),
    # Deliveries of one subscription and one wallet go out in event order ("" = no wallet).
    Column("wallet_key", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    # pending -> delivered | failed (lifetime or attempts exhausted) | cancelled (deleted
    # subscription). A replay puts a finished delivery back to pending, out of order.
    Column("status", String(16), nullable=False),
    Column("replay", Boolean, nullable=False),
    # Attempts since the delivery was (re)queued; every attempt is also a row below.
    Column("attempts", Integer, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("next_attempt_at_us", BigInteger, nullable=True),
    Column("expires_at_us", BigInteger, nullable=False),
    Column("delivered_at_us", BigInteger, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    UniqueConstraint("subscription_id", "event_id"),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at_us"),
    Index("ix_webhook_deliveries_queue", "subscription_id", "wallet_key", "status", "event_id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("webhook_deliveries.id"), nullable=False),
    Column("started_at_us", BigInteger, nullable=False),
    Column("duration_us", BigInteger, nullable=False),
    # The receiver's HTTP status, or None when no response came (refused, timed out).
    Column("status_code", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Index("ix_webhook_attempts_delivery", "delivery_id", "id"),
)

notify_cursors = Table(
    "notify_cursors",
    metadata,
    # Every event id <= event_id has been fanned out into deliveries (see GapTracker).
    Column("name", String(32), primary_key=True),
    Column("event_id", Integer, nullable=False),
)
