"""The settlement state machine: closed windows become settled batches on chain, in order,
each exactly once.

    closed --build--> (roots persisted) --submit--> submitted --receipt--> settled
       \\________________________ failed (retried with backoff) _______________/

Every step is persisted before the next is taken. Before sending, the chain is asked
whether batch n is already there (a send before a crash may have been mined): if it is,
with the same hash, the batch is recorded as settled from the chain's own receipt; so a
crash at any point resumes without a gap or a second settlement. Only the leader process
runs this (settlement.leader).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from eth_utils import keccak
from sqlalchemy import Engine, insert, select, update

from settlement.batches import (
    Window,
    WindowStatus,
    build_batch,
    get_window,
    window_from_row,
)
from settlement.chain.errors import BatchConflict, ChainError
from settlement.chain.gateway import (
    BatchSubmission,
    ChainGateway,
    NetPosition,
    SettlementReceipt,
)
from settlement.db import read_transaction, write_transaction
from settlement.errors import LedgerError
from settlement.ledger.events import event_row, write_events
from settlement.ledger.service import Ledger
from settlement.ledger.tables import (
    batch_positions,
    settlement_accounts,
    settlement_fundings,
    settlement_windows,
)

log = logging.getLogger("corridor.settlement")

BACKOFF_BASE_S = 2
BACKOFF_MAX_S = 300
ERROR_TEXT_MAX = 500


@dataclass(frozen=True, slots=True)
class SettleOutcome:
    settled: list[Window]
    failed: Window | None


def _hex_bytes(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


class Settler:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        chain: ChainGateway,
        clock: Callable[[], int],
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.chain = chain
        self.clock = clock
        # One chain writer per process: settlement and funding never interleave their
        # reads and writes of the settlement balances.
        self._lock = threading.Lock()
        self._registered: set[str] = set()

    # ------------------------------------------------------------------ settlement

    def settle_due(self) -> SettleOutcome:
        """Settle every closed window in order; stop at the first that cannot be settled."""
        settled: list[Window] = []
        with self._lock:
            while True:
                window = self._lowest_unsettled()
                if window is None:
                    return SettleOutcome(settled, None)
                if (
                    window.status is WindowStatus.FAILED
                    and window.next_attempt_at_us is not None
                    and window.next_attempt_at_us > self.clock()
                ):
                    return SettleOutcome(settled, window)
                try:
                    settled.append(self._settle(window))
                except (ChainError, LedgerError) as error:
                    failed = self._mark_failed(window.number, error)
                    log.warning("batch %d not settled: %s", window.number, error)
                    return SettleOutcome(settled, failed)

    def _lowest_unsettled(self) -> Window | None:
        with read_transaction(self.engine) as conn:
            row = conn.execute(
                select(settlement_windows)
                .where(
                    settlement_windows.c.status.in_(
                        [
                            WindowStatus.CLOSED.value,
                            WindowStatus.SUBMITTED.value,
                            WindowStatus.FAILED.value,
                        ]
                    )
                )
                .order_by(settlement_windows.c.number)
                .limit(1)
            ).first()
        return None if row is None else window_from_row(row)

    def _settle(self, window: Window) -> Window:
        number = window.number
        if not window.built:
            build_batch(self.engine, number)
        submission = self._submission(number)
        header = self.chain.batch(number)
        if header is not None:
            # Sent before a crash and mined: record what the chain says, never send again.
            if header.batch_hash != submission.batch_hash:
                raise BatchConflict(number, header.batch_hash, submission.batch_hash)
            receipt = self.chain.batch_receipt(number)
            assert receipt is not None
            return self._record_settled(number, receipt)
        self._register(submission.positions)
        self._mark_submitted(number)
        receipt = self.chain.settle_batch(submission)
        return self._record_settled(number, receipt)

    def _submission(self, number: int) -> BatchSubmission:
        with read_transaction(self.engine) as conn:
            window = window_from_row(
                conn.execute(
                    select(settlement_windows).where(settlement_windows.c.number == number)
                ).one()
            )
            positions = [
                NetPosition(r.participant_address, r.currency, r.amount_minor)
                for r in conn.execute(
                    select(batch_positions).where(batch_positions.c.window_number == number)
                )
            ]
        assert window.transfers_root and window.balances_root and window.prev_batch_hash
        assert window.transfer_count is not None
        submission = BatchSubmission(
            number=number,
            transfers_root=_hex_bytes(window.transfers_root),
            balances_root=_hex_bytes(window.balances_root),
            prev_batch_hash=_hex_bytes(window.prev_batch_hash),
            transfer_count=window.transfer_count,
            positions=tuple(positions),
        )
        assert "0x" + submission.batch_hash.hex() == window.batch_hash, (
            f"batch {number}: the contract's hash differs from the audit hash"
        )
        return submission

    def _register(self, positions: tuple[NetPosition, ...]) -> None:
        for position in positions:
            address = position.participant
            if address in self._registered:
                continue
            if not self.chain.is_participant(address):
                self.chain.register_participant(address)
            self._registered.add(address)

    def _mark_submitted(self, number: int) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                update(settlement_windows)
                .where(settlement_windows.c.number == number)
                .values(
                    status=WindowStatus.SUBMITTED.value,
                    attempts=settlement_windows.c.attempts + 1,
                )
            )

    def _record_settled(self, number: int, receipt: SettlementReceipt) -> Window:
        """Settled, and the positions moved from unsettled to prefunded: exactly once."""
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                update(settlement_windows)
                .where(
                    settlement_windows.c.number == number,
                    settlement_windows.c.status != WindowStatus.SETTLED.value,
                )
                .values(
                    status=WindowStatus.SETTLED.value,
                    tx_hash=receipt.tx_hash,
                    block_number=receipt.block_number,
                    gas_used=receipt.gas_used,
                    settled_at_us=self.clock(),
                    last_error=None,
                    next_attempt_at_us=None,
                )
            )
            if done.rowcount == 1:
                positions = conn.execute(
                    select(batch_positions).where(batch_positions.c.window_number == number)
                ).all()
                notice = {
                    "batch": number,
                    "tx_hash": receipt.tx_hash,
                    "block_number": receipt.block_number,
                }
                write_events(
                    conn,
                    (
                        event_row(pid, "batch.settled", str(number), notice, self.clock())
                        for pid in sorted({p.participant_id for p in positions})
                    ),
                )
                for position in positions:
                    conn.execute(
                        update(settlement_accounts)
                        .where(
                            settlement_accounts.c.participant_id == position.participant_id,
                            settlement_accounts.c.currency == position.currency,
                        )
                        .values(
                            prefunded_minor=settlement_accounts.c.prefunded_minor
                            + position.amount_minor,
                            unsettled_minor=settlement_accounts.c.unsettled_minor
                            - position.amount_minor,
                        )
                    )
        log.info(
            "batch %d settled in tx %s (block %d, %d gas)",
            number,
            receipt.tx_hash,
            receipt.block_number,
            receipt.gas_used,
        )
        window = get_window(self.engine, number)
        assert window is not None
        return window

    def _mark_failed(self, number: int, error: Exception) -> Window:
        with write_transaction(self.engine) as conn:
            attempts = conn.execute(
                select(settlement_windows.c.attempts).where(settlement_windows.c.number == number)
            ).scalar_one()
            delay_s = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))
            conn.execute(
                update(settlement_windows)
                .where(settlement_windows.c.number == number)
                .values(
                    status=WindowStatus.FAILED.value,
                    attempts=max(attempts, 1),
                    last_error=f"{type(error).__name__}: {error}"[:ERROR_TEXT_MAX],
                    next_attempt_at_us=self.clock() + delay_s * 1_000_000,
                )
            )
        window = get_window(self.engine, number)
        assert window is not None
        return window

    # --------------------------------------------------------------------- funding

    def fund(self, participant_id: str, currency: str, amount_minor: int, client_id: str) -> int:
        """Prefund a participant's settlement balance on chain; returns the new balance.

        Safe to retry: the request is recorded first (the same id with another amount or
        currency is refused), the chain accepts the reference derived from it once, and
        the mirror is set from the chain's balance, not incremented.
        """
        if type(amount_minor) is not int or amount_minor <= 0:
            raise LedgerError("invalid_amount", "a prefunding must be a positive amount")
        participant = self.ledger.get_participant(participant_id)
        address = participant.settlement_address
        assert address is not None
        self._record_funding(participant_id, client_id, currency, amount_minor)
        reference = keccak(f"corridor.funding:{participant_id}:{client_id}".encode())
        with self._lock:
            self._register((NetPosition(address, currency, 0),))
            if not self.chain.reference_used(reference):
                self.chain.fund(address, currency, amount_minor, reference)
            return self._sync_prefunding(participant_id, address, currency)

    def _record_funding(
        self, participant_id: str, client_id: str, currency: str, amount_minor: int
    ) -> None:
        with write_transaction(self.engine) as conn:
            prior = conn.execute(
                select(settlement_fundings).where(
                    settlement_fundings.c.participant_id == participant_id,
                    settlement_fundings.c.client_id == client_id,
                )
            ).first()
            if prior is None:
                conn.execute(
                    insert(settlement_fundings).values(
                        participant_id=participant_id,
                        client_id=client_id,
                        currency=currency,
                        amount_minor=amount_minor,
                        created_at_us=self.clock(),
                    )
                )
            elif (prior.currency, prior.amount_minor) != (currency, amount_minor):
                raise LedgerError(
                    "idempotency_conflict",
                    f"id {client_id!r} was already used for a different prefunding",
                )

    def _sync_prefunding(self, participant_id: str, address: str, currency: str) -> int:
        on_chain = self.chain.settlement_balance(address, currency)
        exposure = {
            s.currency: s.prefunded_minor for s in self.ledger.settlement_exposure(participant_id)
        }
        self.ledger.record_prefunding(
            participant_id, currency, on_chain - exposure.get(currency, 0)
        )
        return on_chain
