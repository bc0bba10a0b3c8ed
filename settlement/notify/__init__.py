"""Notifications: webhook subscriptions, signed deliveries from the outbox, with retries."""

from settlement.notify.dispatcher import Dispatcher, RunStats
from settlement.notify.rules import EVENT_TYPES, GapTracker, RetryPolicy
from settlement.notify.signing import SIGNATURE_HEADER, SignatureError, sign, verify
from settlement.notify.store import Attempt, Delivery, Subscription, WebhookStore

__all__ = [
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "Attempt",
    "Delivery",
    "Dispatcher",
    "GapTracker",
    "RetryPolicy",
    "RunStats",
    "SignatureError",
    "Subscription",
    "WebhookStore",
    "sign",
    "verify",
]
