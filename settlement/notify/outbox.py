"""Reading the outbox (`events`) in order, once, without missing late commits."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import Connection, func, or_, select

from settlement.ledger.tables import events
from settlement.notify.rules import GapTracker

READ_EVENTS_MAX: Final = 2000


class OutboxReader:
    """Hands out each committed event once, in id order as far as commits allow.

    `read` returns the events not handled yet; the caller processes them and then calls
    `done` with their ids, so that a failure in between reads them again.
    """

    def __init__(self, tracker: GapTracker) -> None:
        self.tracker = tracker

    @classmethod
    def from_now(cls, conn: Connection, grace_s: float) -> OutboxReader:
        """A reader that starts after the newest event (for live streams)."""
        newest = conn.execute(select(func.max(events.c.id))).scalar()
        return cls(GapTracker(int(newest or 0), grace_s))

    def read(self, conn: Connection, limit: int = READ_EVENTS_MAX) -> list[Any]:
        tracker = self.tracker
        rows = list(
            conn.execute(
                select(events).where(events.c.id > tracker.top).order_by(events.c.id).limit(limit)
            )
        )
        holes = tracker.missing_ranges()
        if holes:
            rows += conn.execute(
                select(events).where(or_(*(events.c.id.between(lo, hi) for lo, hi in holes)))
            ).all()
        fresh = set(tracker.fresh(row.id for row in rows))
        return sorted((row for row in rows if row.id in fresh), key=lambda row: row.id)

    def done(self, ids: Iterable[int]) -> int:
        """Mark events handled; returns the new horizon."""
        now = time.monotonic()
        self.tracker.mark(ids, now)
        return self.tracker.advance(now)
