"""Everything a running Corridor needs, built once from settings and shared by the API,
the CLI and the background workers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy import Engine

from api.auth_store import KeyStore
from api.database import open_database
from api.settings import Settings
from fx.service import FxService
from settlement.chain import ChainConfig, Web3ChainGateway, open_gateway
from settlement.errors import LedgerError
from settlement.leader import LeaderLock
from settlement.ledger.model import ParticipantKind
from settlement.ledger.service import Ledger, now_us
from settlement.payments import Payments
from settlement.settler import Settler

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
    chain_config: ChainConfig
    leader: LeaderLock
    _gateway: Web3ChainGateway | None = field(default=None, repr=False)
    _settler: Settler | None = field(default=None, repr=False)
    _chain_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        clock: Callable[[], int] = now_us,
        chain_config: ChainConfig | None = None,
    ) -> Corridor:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = open_database(settings.resolved_database_url())
        ledger = Ledger(engine, clock)
        fx = FxService(
            engine,
            quote_lifetime_default_s=settings.fx_quote_lifetime_s,
            quote_lifetime_max_s=settings.fx_quote_lifetime_max_s,
        )
        payments = Payments(ledger, fx, settings.fx_liquidity_participant, OPERATOR_PARTICIPANT_ID)
        chain_config = replace(chain_config or ChainConfig.from_env(), data_dir=settings.data_dir)
        corridor = cls(
            settings,
            engine,
            ledger,
            KeyStore(engine),
            fx,
            payments,
            clock,
            chain_config,
            LeaderLock(engine, settings.data_dir),
        )
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

    def chain(self) -> Web3ChainGateway:
        """The chain gateway, opened (and the contract deployed) on first use.

        The embedded chain lives in this process's data directory: only the settlement
        leader opens it. A JSON-RPC chain may be opened by every process.
        """
        with self._chain_lock:
            if self._gateway is None:
                gateway = open_gateway(self.chain_config, index_engine=self.engine)
                try:
                    gateway.ensure_deployed()
                except BaseException:
                    gateway.close()
                    raise
                self._gateway = gateway
            return self._gateway

    def chain_is_local(self) -> bool:
        return self.chain_config.transport == "embedded"

    def settler(self) -> Settler:
        gateway = self.chain()
        with self._chain_lock:
            if self._settler is None:
                self._settler = Settler(self.engine, self.ledger, gateway, self.clock)
            return self._settler

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()
        self.leader.release()
        self.engine.dispose()
