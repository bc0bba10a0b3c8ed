"""Everything a running Corridor needs, built once from settings and shared by the API,
the CLI and the background workers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from api.auth_store import KeyStore
from api.database import open_database
from api.settings import Settings
from fx.service import FxService
from settlement.errors import LedgerError
from settlement.ledger.model import ParticipantKind
from settlement.ledger.service import Ledger, now_us
from settlement.payments import Payments

OPERATOR_PARTICIPANT_ID = "operator"


@dataclass
class Corridor:
    settings: Settings
    engine: Engine
    ledger: Ledger
    keys: KeyStore
    fx: FxService
    payments: Payments
    clock: Callable[[], int]

    @classmethod
    def open(cls, settings: Settings, clock: Callable[[], int] = now_us) -> Corridor:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = open_database(settings.resolved_database_url())
        ledger = Ledger(engine, clock)
        fx = FxService(
            engine,
            quote_lifetime_default_s=settings.fx_quote_lifetime_s,
            quote_lifetime_max_s=settings.fx_quote_lifetime_max_s,
        )
        payments = Payments(ledger, fx, settings.fx_liquidity_participant, OPERATOR_PARTICIPANT_ID)
        corridor = cls(settings, engine, ledger, KeyStore(engine), fx, payments, clock)
        corridor.ensure_participant(
            OPERATOR_PARTICIPANT_ID, "Corridor hub", ParticipantKind.OPERATOR
        )
        corridor.ensure_participant(
            settings.fx_liquidity_participant, "FX liquidity", ParticipantKind.LIQUIDITY
        )
        return corridor

    def ensure_participant(self, participant_id: str, name: str, kind: ParticipantKind) -> None:
        """The hub's own participants (fee revenue, FX liquidity) exist from the first start."""
        try:
            self.ledger.get_participant(participant_id)
        except LedgerError:
            try:
                self.ledger.create_participant(name, kind, participant_id)
            except LedgerError as error:
                if error.code != "participant_exists":  # another process won the race
                    raise

    def close(self) -> None:
        self.engine.dispose()
