"""The rules of notification, in plain Python: which events exist, who gets what, when to
try again, when to give up, and how far the outbox has been read.

No database and no HTTP here: the dispatcher (dispatcher.py) does the I/O around these.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

EVENT_TYPES: Final = (
    "transfer.created",
    "transfer.posted",
    "transfer.voided",
    "payment.completed",
    "batch.settled",
    "limit.refused",
)

SUBSCRIPTIONS_PER_PARTICIPANT_MAX: Final = 10
URL_LENGTH_MAX: Final = 2000
ERROR_LENGTH_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in lifetime.

    Attempt n (1-based) that failed is followed by attempt n+1 after
    min(backoff_max_s, backoff_base_s * 2**(n-1)), scaled by a random factor in
    [1 - jitter, 1], so that a receiver coming back up is not hit by every queue at once.
    """

    backoff_base_s: float = 1.0
    backoff_max_s: float = 3600.0
    attempts_max: int = 25
    lifetime_s: float = 3 * 86_400
    jitter: float = 0.5

    def __post_init__(self) -> None:
        assert self.backoff_base_s > 0 and self.backoff_max_s >= self.backoff_base_s
        assert self.attempts_max >= 1 and self.lifetime_s > 0 and 0 <= self.jitter < 1

    def delay_s(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        assert failed_attempts >= 1
        exponent = min(failed_attempts - 1, 62)  # 2**62 s is past any cap
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0**exponent)
        factor = 1.0 - self.jitter * (rng or random).random()
        return ceiling * factor

    def next_attempt_us(
        self,
        failed_attempts: int,
        now_us: int,
        expires_at_us: int,
        rng: random.Random | None = None,
    ) -> int | None:
        """When to try again after `failed_attempts` failures; None: give up now."""
        if failed_attempts >= self.attempts_max:
            return None
        at = now_us + int(self.delay_s(failed_attempts, rng) * 1_000_000)
        return at if at <= expires_at_us else None


def is_success(status_code: int | None) -> bool:
    """Only a 2xx answer counts: redirects are not followed, anything else is retried."""
    return status_code is not None and 200 <= status_code < 300


def wants(event_types: Sequence[str], event_type: str) -> bool:
    return event_type in event_types


def iso(us: int) -> str:
    moment = datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
    return moment.isoformat().replace("+00:00", "Z")


def envelope(
    event_id: int,
    event_type: str,
    participant_id: str,
    wallet_id: str | None,
    subject_id: str,
    payload: str,
    created_at_us: int,
) -> dict[str, Any]:
    """What a receiver gets (webhook body, SSE data): the same for every attempt."""
    return {
        "id": event_id,
        "type": event_type,
        "created_at": iso(created_at_us),
        "participant_id": participant_id,
        "wallet_id": wallet_id,
        "subject_id": subject_id,
        "data": json.loads(payload),
    }


def body_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class GapTracker:
    """How far an outbox reader has got, when ids may become visible out of order.

    On PostgreSQL an event id is taken from a sequence when the row is inserted, but the
    row becomes visible at commit: id 9 may appear after id 10, and a rolled-back
    transaction leaves a hole forever. A reader that remembered only "the highest id seen"
    would skip a late 9; one that waited for every hole would stall on rollbacks.

    So the tracker keeps `horizon` (every id at or below it is handled) and the ids handled
    above it. A hole is waited for, and looked for again (`missing_ranges`), until the id
    just above it has been visible for `grace_s`: no transaction of the ledger stays open
    that long, so the hole is a rollback. On SQLite ids are assigned and committed in order
    under the write lock, and holes do not arise.
    """

    horizon: int
    grace_s: float = 60.0
    seen: dict[int, float] = field(default_factory=dict)

    @property
    def top(self) -> int:
        return max(self.seen, default=self.horizon)

    def fresh(self, ids: Iterable[int]) -> list[int]:
        """The ids not handled yet, in order."""
        return sorted({i for i in ids if i > self.horizon and i not in self.seen})

    def mark(self, ids: Iterable[int], now_s: float) -> None:
        for i in ids:
            if i > self.horizon:
                self.seen.setdefault(i, now_s)

    def missing_ranges(self, ranges_max: int = 50) -> list[tuple[int, int]]:
        """Inclusive id ranges of holes between the horizon and the top, lowest first."""
        ranges: list[tuple[int, int]] = []
        previous = self.horizon
        for i in sorted(self.seen):
            if i > previous + 1:
                ranges.append((previous + 1, i - 1))
                if len(ranges) == ranges_max:
                    break
            previous = i
        return ranges

    def advance(self, now_s: float) -> int:
        """Move the horizon over handled ids and over holes older than the grace period."""
        while self.seen:
            following = self.horizon + 1
            if following in self.seen:
                del self.seen[following]
                self.horizon = following
                continue
            lowest = min(self.seen)
            if now_s - self.seen[lowest] < self.grace_s:
                break
            del self.seen[lowest]
            self.horizon = lowest
        return self.horizon
