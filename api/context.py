"""Everything a running Corridor needs, built once from settings and shared by the API,
the CLI and the background workers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from api.auth_store import KeyStore
from api.database import open_database
from api.settings import Settings
from settlement.errors import LedgerError
from settlement.ledger.model import ParticipantKind
from settlement.ledger.service import Ledger, now_us

OPERATOR_PARTICIPANT_ID = "operator"


@dataclass
class Corridor:
    settings: Settings
    engine: Engine
    ledger: Ledger
    keys: KeyStore
    clock: Callable[[], int]

    @classmethod
    def open(cls, settings: Settings, clock: Callable[[], int] = now_us) -> Corridor:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = open_database(settings.resolved_database_url())
        ledger = Ledger(engine, clock)
        corridor = cls(settings, engine, ledger, KeyStore(engine), clock)
        corridor.ensure_operator()
        return corridor

    def ensure_operator(self) -> None:
        """The hub's own participant (fee revenue) exists from the first start."""
        try:
            self.ledger.get_participant(OPERATOR_PARTICIPANT_ID)
        except LedgerError:
            try:
                self.ledger.create_participant(
                    "Corridor hub", ParticipantKind.OPERATOR, OPERATOR_PARTICIPANT_ID
                )
            except LedgerError as error:
                if error.code != "participant_exists":  # another process won the race
                    raise

    def close(self) -> None:
        self.engine.dispose()
