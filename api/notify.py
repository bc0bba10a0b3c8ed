"""Notifications in a serving process: the webhook worker and the live event feed.

The webhook worker runs in every serving process but dispatches only in the settlement
leader (one process at a time delivers, so per-wallet order holds). The live feed reads the
outbox once per process and hands each new event to the streams (SSE) of its participant.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.context import Corridor
from settlement.db import read_transaction
from settlement.notify import Dispatcher, RetryPolicy
from settlement.notify.outbox import OutboxReader
from settlement.stepup import StepUpStore

log = logging.getLogger("corridor.notify")

NONCE_PRUNE_INTERVAL_S: Final = 60.0
WAKE_COALESCE_S: Final = 0.005
FEED_POLL_S: Final = 0.25
FEED_GAP_GRACE_S: Final = 60.0
FEED_IDLE_STOP_S: Final = 30.0


# ----------------------------------------------------------------------- webhook worker


@dataclass
class _WorkerState:
    dispatcher: Dispatcher
    pruned_at: float = 0.0


_workers: weakref.WeakKeyDictionary[Engine, _WorkerState] = weakref.WeakKeyDictionary()
_workers_lock = threading.Lock()


def dispatcher_for(corridor: Corridor) -> Dispatcher:
    return _state(corridor).dispatcher


def _state(corridor: Corridor) -> _WorkerState:
    with _workers_lock:
        state = _workers.get(corridor.engine)
        if state is None:
            s = corridor.settings
            policy = RetryPolicy(
                backoff_base_s=s.webhook_backoff_base_s,
                backoff_max_s=s.webhook_backoff_max_s,
                attempts_max=s.webhook_attempts_max,
                lifetime_s=s.webhook_lifetime_s,
            )
            dispatcher = Dispatcher(
                corridor.engine, corridor.clock, policy, timeout_s=s.webhook_timeout_s
            )
            state = _workers[corridor.engine] = _WorkerState(dispatcher)
        return state


def webhook_worker_step(corridor: Corridor) -> None:
    """One turn of the background loop: wait for a change in this process or the poll
    interval, then deliver (leader only) and prune used nonces."""
    wake = _wake_event(corridor.engine)
    if wake.wait(corridor.settings.webhook_poll_s):
        # Under load every write wakes the dispatcher; a short pause lets one run take
        # the events of many writes instead of running back to back.
        time.sleep(WAKE_COALESCE_S)
    wake.clear()
    if not corridor.leader.try_acquire():
        return
    state = _state(corridor)
    state.dispatcher.run_once()
    if time.monotonic() - state.pruned_at > NONCE_PRUNE_INTERVAL_S:
        StepUpStore(corridor.engine).prune_nonces(corridor.clock())
        state.pruned_at = time.monotonic()


def install_wake_up(app: FastAPI) -> None:
    """After a successful write request, wake this process's dispatcher: its events are
    committed by then, so they go out within milliseconds instead of at the next poll."""
    corridor: Corridor = app.state.corridor
    app.add_middleware(WakeDispatcher, wake=_wake_event(corridor.engine))


class WakeDispatcher:
    """Plain ASGI middleware: sets `wake` once a write request has answered 2xx."""

    def __init__(self, app: ASGIApp, wake: threading.Event) -> None:
        self.app = app
        self.wake = wake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "GET":
            await self.app(scope, receive, send)
            return
        succeeded = False

        async def watching_send(message: Message) -> None:
            nonlocal succeeded
            if message["type"] == "http.response.start":
                succeeded = message["status"] < 300
            await send(message)

        await self.app(scope, receive, watching_send)
        if succeeded:
            self.wake.set()


# Set when this process has just committed a change: deliver now, not at the next poll.
_wakes: weakref.WeakKeyDictionary[Engine, threading.Event] = weakref.WeakKeyDictionary()


def _wake_event(engine: Engine) -> threading.Event:
    with _workers_lock:
        found = _wakes.get(engine)
        if found is None:
            found = _wakes[engine] = threading.Event()
        return found


def stop_webhook_worker(corridor: Corridor) -> None:
    """At shutdown: the dispatcher's HTTP client and the live feed's thread go."""
    with _workers_lock:
        state = _workers.pop(corridor.engine, None)
    if state is not None:
        state.dispatcher.close()
    with _feeds_lock:
        feed = _feeds.pop(corridor.engine, None)
    if feed is not None:
        feed.stop()


# ---------------------------------------------------------------------------- live feed


@dataclass(eq=False)
class Subscriber:
    participant_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any]


class EventFeed:
    """One outbox reader per process for every live stream; runs while anyone listens.

    Each stream has a bounded queue; a stream that falls behind gets `None` and is closed
    (its client reconnects with Last-Event-ID and catches up from the database).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def subscribe(
        self, participant_id: str, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]
    ) -> Subscriber:
        """Listen from now on (blocking: call it from a worker thread)."""
        subscriber = Subscriber(participant_id, loop, queue)
        with self._lock:
            self._subscribers.add(subscriber)
            if self._thread is None:
                with read_transaction(self.engine) as conn:
                    reader = OutboxReader.from_now(conn, FEED_GAP_GRACE_S)
                self._thread = threading.Thread(
                    target=self._run, args=(reader,), name="event-feed", daemon=True
                )
                self._thread.start()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    def stop(self) -> None:
        """End every stream (each gets None) and the reading thread."""
        self._stopping.set()
        with self._lock:
            listeners = list(self._subscribers)
            self._subscribers.clear()
            thread = self._thread
        for subscriber in listeners:
            subscriber.loop.call_soon_threadsafe(_offer, subscriber.queue, None)
        if thread is not None:
            thread.join(timeout=5)

    def _run(self, reader: OutboxReader) -> None:
        idle_since: float | None = None
        while not self._stopping.is_set():
            with self._lock:
                listeners = list(self._subscribers)
                if not listeners:
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > FEED_IDLE_STOP_S:
                        self._thread = None
                        return
                else:
                    idle_since = None
            try:
                with read_transaction(self.engine) as conn:
                    found = reader.read(conn)
            except Exception:
                log.exception("event feed could not read the outbox; retrying")
                self._stopping.wait(1.0)
                continue
            by_participant: dict[str, list[Any]] = {}
            for row in found:
                by_participant.setdefault(row.participant_id, []).append(row)
            for subscriber in listeners:
                for row in by_participant.get(subscriber.participant_id, ()):
                    subscriber.loop.call_soon_threadsafe(_offer, subscriber.queue, row)
            reader.done(row.id for row in found)
            if not found:
                self._stopping.wait(FEED_POLL_S)


def _offer(queue: asyncio.Queue[Any], item: Any) -> None:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        # The stream is too slow: end it with None once there is room, never block the feed.
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)


_feeds: weakref.WeakKeyDictionary[Engine, EventFeed] = weakref.WeakKeyDictionary()
_feeds_lock = threading.Lock()


def feed_for(corridor: Corridor) -> EventFeed:
    with _feeds_lock:
        feed = _feeds.get(corridor.engine)
        if feed is None:
            feed = _feeds[corridor.engine] = EventFeed(corridor.engine)
        return feed
