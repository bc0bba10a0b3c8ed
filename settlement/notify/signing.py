"""Webhook signatures: HMAC-SHA256 over a timestamp and the exact body bytes.

Header: ``Corridor-Signature: t=<unix seconds>,v1=<hex digest>`` where the digest is
``HMAC_SHA256(secret, f"{t}.".encode() + body)``. A receiver recomputes it with its secret,
compares in constant time, and refuses timestamps older than a few minutes, so that a
captured request cannot be replayed later. docs/WEBHOOKS.md has the receiver's side.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

SIGNATURE_HEADER: Final = "Corridor-Signature"
SECRET_PREFIX: Final = "whsec_"
# A receiver should refuse a signature older (or newer) than this.
TOLERANCE_S_DEFAULT: Final = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str, timestamp_s: int, body: bytes) -> str:
    signed = f"{timestamp_s}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    """The value of the Corridor-Signature header for this body sent at this time."""
    return f"t={timestamp_s},v1={digest(secret, timestamp_s, body)}"


class SignatureError(Exception):
    """A delivery whose signature does not check: the receiver must refuse it."""


def verify(
    secret: str,
    header: str,
    body: bytes,
    now_s: float,
    tolerance_s: int = TOLERANCE_S_DEFAULT,
) -> int:
    """Check a Corridor-Signature header; returns its timestamp or raises SignatureError.

    Several `v1=` values may be present (one per secret while a secret is being replaced);
    one match is enough.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header")
    if abs(now_s - timestamp) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance: a replay or a wrong clock")
    expected = digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("signature does not match")
    return timestamp
