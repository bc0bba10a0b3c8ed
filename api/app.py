"""The FastAPI application: routers, problem+json errors, body limits, background workers."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from api.body_limit import BodyLimit
from api.conformance import install_conformance
from api.context import Corridor
from api.notify import install_wake_up, stop_webhook_worker, webhook_worker_step
from api.problems import install_problem_handlers
from api.routers import audit as audit_router
from api.routers import events, fx, keys, participants, stepup, transfers, wallets, webhooks
from api.routers import settlement as settlement_router
from settlement.batches import (
    WindowStatus,
    close_reason,
    close_window,
    list_windows,
    open_window_stats,
)
from settlement.reconcile import reconcile

# A full batch of 8,190 transfers is about 2.5 MB of JSON.
REQUEST_BODY_BYTES_MAX = 4 * 1024 * 1024
PENDING_SWEEP_INTERVAL_S = 1.0
# The periodic check covers the latest batches; GET /v1/settlement/reconciliation all.
RECONCILE_RECENT_MAX = 10
log = logging.getLogger("corridor.api")


def _telemetry(enabled: bool) -> TelemetryConfig:
    return {"tracing": enabled, "metrics": enabled, "logs": enabled}


class Workers:
    """Background loops of a serving process; stopped with the application."""

    def __init__(self, corridor: Corridor) -> None:
        self.corridor = corridor
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self._spawn("pending-sweeper", self._sweep_pending, PENDING_SWEEP_INTERVAL_S)
        self._spawn("settlement", self._settle, self.corridor.settings.settlement_poll_s)
        self._spawn("reconcile", self._reconcile, self.corridor.settings.reconcile_interval_s)
        self._spawn(
            "fx-refresh", self.corridor.fx.refresh, self.corridor.settings.fx_refresh_interval_s
        )
        self._spawn(  # webhook deliveries (the leader only); the step waits for work itself
            "webhooks", lambda: webhook_worker_step(self.corridor), 0.0
        )

    def _spawn(self, name: str, step: Callable[[], object], interval_s: float) -> None:
        def loop() -> None:
            while not self.stopping.wait(interval_s):
                try:
                    step()
                except Exception:
                    log.exception("background worker %s failed; retrying", name)

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _reconcile(self) -> None:
        """The leader recomputes its latest settled batches from the ledger and compares them
        with the chain; every difference is logged as an error (the alarm)."""
        corridor = self.corridor
        if not corridor.leader.held:
            return
        recent = [
            w.number
            for w in list_windows(corridor.engine, limit=RECONCILE_RECENT_MAX + 2)
            if w.status is WindowStatus.SETTLED
        ][:RECONCILE_RECENT_MAX]
        if recent:
            reconcile(corridor.engine, corridor.chain(), recent)

    def _sweep_pending(self) -> None:
        self.corridor.ledger.expire_pending()

    def _settle(self) -> None:
        """Close the window when due (any process); settle closed ones (the leader only)."""
        corridor = self.corridor
        settings = corridor.settings
        _, opened_at_us, count = open_window_stats(corridor.engine)
        now = corridor.clock()
        reason = close_reason(
            now,
            opened_at_us,
            count,
            settings.settlement_interval_s,
            settings.settlement_max_transfers,
        )
        if reason is not None:
            close_window(corridor.engine, now, reason)
        if corridor.leader.try_acquire():
            corridor.settler().settle_due()

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=10)
        stop_webhook_worker(self.corridor)


def create_app(corridor: Corridor, run_workers: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        workers = Workers(corridor)
        if run_workers:
            workers.start()
        try:
            yield
        finally:
            workers.stop()

    app = FastAPI(
        title="Corridor",
        version="0.1.0",
        summary="Multi-currency settlement ledger for cross-border payments",
        description=(
            "Wallet balances and transfers post instantly on a double-entry ledger and settle "
            "in batches on a permissioned EVM chain. Authenticate with `Authorization: Bearer "
            "<API key>`. Amounts are decimal strings in major units with an ISO 4217 currency. "
            "Errors are RFC 9457 `application/problem+json` with a stable `code`."
        ),
        lifespan=lifespan,
        # Off unless asked for: its per-request check for a configured provider alone
        # cost about a tenth of a transfer request's CPU.
        telemetry=_telemetry(corridor.settings.otel),
    )
    app.state.corridor = corridor
    install_problem_handlers(app)

    app.add_middleware(BodyLimit, limit_bytes=REQUEST_BODY_BYTES_MAX)

    routers = (participants, wallets, transfers, fx, settlement_router, audit_router, keys)
    for module in routers:
        app.include_router(module.router)
    for module in (webhooks, events, stepup):  # issue 6: notifications, step-up
        app.include_router(module.router)
    install_conformance(app)  # problem responses and examples in the OpenAPI document
    install_wake_up(app)  # webhooks go out as soon as a write commits
    return app
