"""The webhook dispatcher: reads the outbox, fans events out into deliveries, sends them.

One process dispatches at a time (the caller holds the settlement leader lock). Each
`run_once`:

1. fan-out: events not handled yet (see `GapTracker`) become one delivery per matching
   subscription, inserted idempotently (unique subscription + event), and the cursor moves;
2. delivery rounds: the due head of every (subscription, wallet) queue is sent, all queues
   in parallel, one request each; outcomes and attempts are recorded in one transaction.

Delivery is at least once: a crash after the receiver answered but before the outcome was
recorded sends that event again, with the same event id, which receivers deduplicate on.
Nothing committed is lost (fan-out resumes from the persisted cursor), and nothing that
was rolled back is sent (only committed outbox rows are ever read).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import httpx
from sqlalchemy import Connection, Engine, and_, exists, insert, or_, select, tuple_, update

from settlement.db import read_transaction, write_transaction
from settlement.ledger.tables import events
from settlement.notify.outbox import OutboxReader
from settlement.notify.rules import (
    ERROR_LENGTH_MAX,
    GapTracker,
    RetryPolicy,
    body_bytes,
    envelope,
    is_success,
)
from settlement.notify.signing import SIGNATURE_HEADER, sign
from settlement.notify.tables import (
    notify_cursors,
    webhook_attempts,
    webhook_deliveries,
    webhook_subscriptions,
)

log = logging.getLogger("corridor.notify")

CURSOR_NAME: Final = "webhooks"
FANOUT_EVENTS_MAX: Final = 2000
# With no delivery to write, the cursor is saved at most this often: fanning out again
# after a restart is harmless (a delivery per subscription and event, duplicates ignored),
# and a write per run competed with the ledger's writers for SQLite's lock.
CURSOR_SAVE_INTERVAL_S: Final = 1.0
ROUND_DELIVERIES_MAX: Final = 256
# Deliveries of one queue sent back to back in a round (one HTTP request at a time).
QUEUE_RUN_MAX: Final = 64
CONCURRENCY_MAX: Final = 16
RUN_BUDGET_S_DEFAULT: Final = 1.0
USER_AGENT: Final = "Corridor-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    attempts_before: int
    expires_at_us: int
    started_at_us: int
    duration_us: int
    status_code: int | None
    error: str | None


@dataclass
class RunStats:
    fanned_out: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0


def _cursor(conn: Connection) -> int:
    value = conn.execute(
        select(notify_cursors.c.event_id).where(notify_cursors.c.name == CURSOR_NAME)
    ).scalar()
    return int(value) if value is not None else 0


def _save_cursor(conn: Connection, value: int) -> None:
    changed = conn.execute(
        update(notify_cursors)
        .where(notify_cursors.c.name == CURSOR_NAME, notify_cursors.c.event_id < value)
        .values(event_id=value)
    ).rowcount
    if changed == 0 and _cursor_missing(conn):
        conn.execute(insert(notify_cursors).values(name=CURSOR_NAME, event_id=value))


def _cursor_missing(conn: Connection) -> bool:
    return (
        conn.execute(
            select(notify_cursors.c.name).where(notify_cursors.c.name == CURSOR_NAME)
        ).first()
        is None
    )


def _insert_ignoring_duplicates(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert deliveries; those already there (a re-read event) are left alone."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    statement = dialect_insert(webhook_deliveries).on_conflict_do_nothing(
        index_elements=["subscription_id", "event_id"]
    )
    conn.execute(statement, rows)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], int],
        policy: RetryPolicy | None = None,
        timeout_s: float = 10.0,
        concurrency: int = CONCURRENCY_MAX,
        gap_grace_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        assert 0 < concurrency <= CONCURRENCY_MAX
        self.engine = engine
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.gap_grace_s = gap_grace_s
        self.rng = rng or random.Random()
        self.http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
            transport=transport,
        )
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook")
        self.reader: OutboxReader | None = None
        self._cursor_saved_at = float("-inf")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.http.close()

    # ------------------------------------------------------------------------- running

    def run_once(self, budget_s: float = RUN_BUDGET_S_DEFAULT) -> RunStats:
        """Fan out, then deliver rounds until nothing is due or the budget is spent."""
        stats = RunStats()
        deadline = time.monotonic() + budget_s
        stats.fanned_out = self.fan_out()
        while True:
            outcomes = self.deliver_round()
            for o in outcomes:
                if is_success(o.status_code):
                    stats.delivered += 1
                else:
                    stats.failed_attempts += 1
            if not outcomes or time.monotonic() >= deadline:
                return stats

    def run_until_idle(self, timeout_s: float = 30.0) -> RunStats:
        """Tests and tools: run until nothing is left to fan out or due now."""
        total = RunStats()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stats = self.run_once()
            total.fanned_out += stats.fanned_out
            total.delivered += stats.delivered
            total.failed_attempts += stats.failed_attempts
            if stats.fanned_out == 0 and stats.delivered == 0 and stats.failed_attempts == 0:
                return total
        return total

    # ------------------------------------------------------------------------- fan-out

    def fan_out(self) -> int:
        """Turn outbox events not handled yet into deliveries; returns how many events."""
        with read_transaction(self.engine) as conn:
            if self.reader is None:
                self.reader = OutboxReader(GapTracker(_cursor(conn), self.gap_grace_s))
            reader = self.reader
            found = reader.read(conn, FANOUT_EVENTS_MAX)
            subscriptions: dict[str, list[tuple[str, frozenset[str], int]]] = defaultdict(list)
            if found:
                for sub in conn.execute(
                    select(
                        webhook_subscriptions.c.id,
                        webhook_subscriptions.c.participant_id,
                        webhook_subscriptions.c.event_types,
                        webhook_subscriptions.c.created_at_us,
                    ).where(webhook_subscriptions.c.deleted_at_us.is_(None))
                ):
                    subscriptions[sub.participant_id].append(
                        (sub.id, frozenset(json.loads(sub.event_types)), sub.created_at_us)
                    )
        now_us = self.clock()
        expires = now_us + int(self.policy.lifetime_s * 1_000_000)
        deliveries = [
            {
                "subscription_id": sub_id,
                "event_id": event.id,
                "participant_id": event.participant_id,
                "wallet_key": event.wallet_id or "",
                "event_type": event.type,
                "status": "pending",
                "replay": False,
                "attempts": 0,
                "created_at_us": now_us,
                "next_attempt_at_us": now_us,
                "expires_at_us": expires,
            }
            for event in found
            for sub_id, types, created_at_us in subscriptions.get(event.participant_id, ())
            # A subscription hears of what happens after it was made, and what it asked for.
            if created_at_us <= event.created_at_us and event.type in types
        ]
        if deliveries or time.monotonic() - self._cursor_saved_at >= CURSOR_SAVE_INTERVAL_S:
            with write_transaction(self.engine) as conn:
                _insert_ignoring_duplicates(conn, deliveries)
                # The horizon as of the previous run: every event at or below it is fanned
                # out.
                _save_cursor(conn, reader.tracker.horizon)
            self._cursor_saved_at = time.monotonic()
        reader.done(event.id for event in found)
        return len(found)

    # ------------------------------------------------------------------------ delivery

    def _columns(self) -> tuple[Any, ...]:
        d, s = webhook_deliveries, webhook_subscriptions
        return (
            d.c.id,
            d.c.subscription_id,
            d.c.wallet_key,
            d.c.replay,
            d.c.attempts,
            d.c.expires_at_us,
            s.c.url,
            s.c.secret,
            events.c.id.label("event_id"),
            events.c.type,
            events.c.participant_id,
            events.c.wallet_id,
            events.c.subject_id,
            events.c.payload,
            events.c.created_at_us,
        )

    def _due(self, conn: Connection, now_us: int) -> list[list[Any]]:
        """Due work as queues: each a list of deliveries to send one after the other.

        The head of a (subscription, wallet) queue is due when no earlier delivery of its
        queue is pending; the due deliveries right behind it ride along (sent only if those
        before them succeed), so one busy wallet is not limited to one delivery per round.
        A replay is a queue of its own.
        """
        d, s = webhook_deliveries, webhook_subscriptions
        earlier = d.alias("earlier")
        blocked = exists().where(
            earlier.c.subscription_id == d.c.subscription_id,
            earlier.c.wallet_key == d.c.wallet_key,
            earlier.c.status == "pending",
            earlier.c.replay.is_(False),
            earlier.c.event_id < d.c.event_id,
        )
        joined = d.join(s, s.c.id == d.c.subscription_id).join(events, events.c.id == d.c.event_id)
        heads = list(
            conn.execute(
                select(*self._columns())
                .select_from(joined)
                .where(
                    d.c.status == "pending",
                    d.c.next_attempt_at_us <= now_us,
                    or_(d.c.replay.is_(True), and_(~blocked)),
                )
                .order_by(d.c.next_attempt_at_us, d.c.id)
                .limit(ROUND_DELIVERIES_MAX)
            )
        )
        queues: dict[tuple[str, str], list[Any]] = {}
        singles: list[list[Any]] = []
        for row in heads:
            if row.replay:
                singles.append([row])
            else:
                queues[(row.subscription_id, row.wallet_key)] = [row]
        budget = ROUND_DELIVERIES_MAX - len(heads)
        if queues and budget > 0:
            followers = conn.execute(
                select(*self._columns())
                .select_from(joined)
                .where(
                    d.c.status == "pending",
                    d.c.replay.is_(False),
                    d.c.next_attempt_at_us <= now_us,
                    tuple_(d.c.subscription_id, d.c.wallet_key).in_(list(queues)),
                )
                .order_by(d.c.event_id)
                .limit(budget + len(queues))
            )
            for row in followers:
                queue = queues[(row.subscription_id, row.wallet_key)]
                if row.event_id > queue[-1].event_id and len(queue) < QUEUE_RUN_MAX:
                    queue.append(row)
        return list(queues.values()) + singles

    def deliver_round(self) -> list[Outcome]:
        """Send every due queue in parallel, each in order; record what happened."""
        with read_transaction(self.engine) as conn:
            due = self._due(conn, self.clock())
        if not due:
            return []
        outcomes = [o for run in self.pool.map(self._send_run, due) for o in run]
        self._record(outcomes)
        return outcomes

    def _send_run(self, rows: list[Any]) -> list[Outcome]:
        """One queue's deliveries in order, stopping at the first that fails."""
        outcomes = []
        for row in rows:
            outcome = self._send(row)
            outcomes.append(outcome)
            if not is_success(outcome.status_code):
                break
        return outcomes

    def _send(self, row: Any) -> Outcome:
        document = envelope(
            row.event_id,
            row.type,
            row.participant_id,
            row.wallet_id,
            row.subject_id,
            row.payload,
            row.created_at_us,
        )
        body = body_bytes(document)
        started = self.clock()
        headers = {
            "content-type": "application/json",
            "Corridor-Event-Id": str(row.event_id),
            "Corridor-Event-Type": row.type,
            "Corridor-Delivery-Id": str(row.id),
            "Corridor-Attempt": str(row.attempts + 1),
            SIGNATURE_HEADER: sign(row.secret, started // 1_000_000, body),
        }
        status: int | None = None
        error: str | None = None
        begun = time.perf_counter()
        try:
            response = self.http.post(row.url, content=body, headers=headers)
            status = response.status_code
            if not is_success(status):
                error = f"HTTP {status}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bad URL or anything else must not stop the others
            log.exception("webhook delivery %s failed unexpectedly", row.id)
            error = f"{type(exc).__name__}: {exc}"
        duration = int((time.perf_counter() - begun) * 1_000_000)
        return Outcome(
            delivery_id=row.id,
            attempts_before=row.attempts,
            expires_at_us=row.expires_at_us,
            started_at_us=started,
            duration_us=duration,
            status_code=status,
            error=error[:ERROR_LENGTH_MAX] if error else None,
        )

    def _record(self, outcomes: list[Outcome]) -> None:
        now_us = self.clock()
        with write_transaction(self.engine) as conn:
            conn.execute(
                insert(webhook_attempts),
                [
                    {
                        "delivery_id": o.delivery_id,
                        "started_at_us": o.started_at_us,
                        "duration_us": o.duration_us,
                        "status_code": o.status_code,
                        "error": o.error,
                    }
                    for o in outcomes
                ],
            )
            for o in outcomes:
                attempts = o.attempts_before + 1
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "last_status_code": o.status_code,
                    "last_error": o.error,
                }
                if is_success(o.status_code):
                    values.update(
                        status="delivered", delivered_at_us=now_us, next_attempt_at_us=None
                    )
                else:
                    retry_at = self.policy.next_attempt_us(
                        attempts, now_us, o.expires_at_us, self.rng
                    )
                    if retry_at is None:
                        values.update(status="failed", next_attempt_at_us=None)
                    else:
                        values.update(next_attempt_at_us=retry_at)
                conn.execute(
                    update(webhook_deliveries)
                    .where(
                        webhook_deliveries.c.id == o.delivery_id,
                        webhook_deliveries.c.status == "pending",
                    )
                    .values(**values)
                )
