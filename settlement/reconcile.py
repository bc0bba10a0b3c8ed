"""Reconciliation: the ledger's database against the chain, batch by batch.

For every settled window the batch is rebuilt from the ledger's rows now
(`settlement.batches.rebuild_batch`, the same pure function that built it for settlement)
and compared with what the chain recorded when it was settled: both roots, the previous
batch hash, the batch hash, the transfer count and the net positions, plus the settling
transaction and block the database remembers. A row changed after settlement (an edited
amount, a deleted or re-dated transfer, a moved balance) makes the rebuilt batch differ from
the chain's, and the report says in which batch and what differs.

Two checks inside the database make the report point at the row when it can:

* every transfer of the window must match its two postings (the debit and credit entries
  carry the amount too), so an edited amount names its transfer;
* the header stored when the batch was built must equal the rebuilt one.

Any difference is logged as an error (the alarm); `reconcile` never changes anything.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from eth_utils import to_checksum_address
from sqlalchemy import Connection, Engine, select

from settlement.audit.chain_reader import read_chain_batches
from settlement.audit.export import BatchExport, ExportError
from settlement.audit.verify import ChainBatch
from settlement.batches import Window, WindowStatus, rebuild_batch, window_from_row
from settlement.chain.gateway import ChainGateway
from settlement.db import read_transaction
from settlement.ledger.tables import (
    accounts,
    entries,
    participants,
    settlement_windows,
    transfers,
)

__all__ = [
    "DIFFERENCES_PER_BATCH_MAX",
    "RECONCILE_BATCHES_MAX",
    "Difference",
    "ReconciliationReport",
    "reconcile",
]

log = logging.getLogger("corridor.reconcile")

RECONCILE_BATCHES_MAX: Final = 10_000
"""Batches compared in one run; a larger range is refused (reconcile it in parts)."""
DIFFERENCES_PER_BATCH_MAX: Final = 50
"""Differences listed per batch; the rest are counted in one line."""


@dataclass(frozen=True)
class Difference:
    """One thing the database and the chain disagree on. ``code`` is stable."""

    batch: int
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.batch, "code": self.code, "message": self.message}


@dataclass
class ReconciliationReport:
    batches: list[int] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chain_last_batch: int | None = None
    database_last_settled: int | None = None

    @property
    def ok(self) -> bool:
        return not self.differences

    def codes(self) -> list[str]:
        return [d.code for d in self.differences]

    def lines(self) -> list[str]:
        verdict = "OK" if self.ok else f"FAILED: {len(self.differences)} difference(s)"
        return [
            f"{verdict} ({len(self.batches)} settled batch(es) compared with the chain; "
            f"chain's last batch {self.chain_last_batch}, database's last settled "
            f"{self.database_last_settled})",
            *(f"  - {d.message}" for d in self.differences),
            *(f"  note: {n}" for n in self.notes),
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "batches": self.batches,
            "chain_last_batch": self.chain_last_batch,
            "database_last_settled": self.database_last_settled,
            "differences": [d.to_json() for d in self.differences],
            "notes": self.notes,
        }


class _Batch:
    def __init__(self, report: ReconciliationReport, number: int) -> None:
        self.report = report
        self.number = number
        self.count = 0

    def differ(self, code: str, message: str) -> None:
        self.count += 1
        if self.count <= DIFFERENCES_PER_BATCH_MAX:
            self.report.differences.append(
                Difference(self.number, code, f"batch {self.number}: {message}")
            )

    def close(self) -> None:
        if self.count > DIFFERENCES_PER_BATCH_MAX:
            self.report.differences.append(
                Difference(
                    self.number,
                    "more",
                    f"batch {self.number}: ... and {self.count - DIFFERENCES_PER_BATCH_MAX} "
                    "more differences",
                )
            )


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def _settled_windows(conn: Connection, numbers: Iterable[int] | None) -> list[Window]:
    query = (
        select(settlement_windows)
        .where(settlement_windows.c.status == WindowStatus.SETTLED.value)
        .order_by(settlement_windows.c.number)
    )
    if numbers is not None:
        wanted = sorted(set(numbers))
        if not wanted:
            return []
        query = query.where(settlement_windows.c.number.in_(wanted))
    return [window_from_row(row) for row in conn.execute(query)]


def _check_postings(conn: Connection, b: _Batch, number: int) -> None:
    """Each transfer of the window against its own two postings (debit -a, credit +a).

    Entries are read from the entries side, joined to their transfer by its key (entries
    have no index on transfer_seq: driving from transfers would scan entries per transfer).
    """
    window_transfers = conn.execute(
        select(
            transfers.c.seq,
            transfers.c.id,
            transfers.c.amount_minor,
            transfers.c.debit_account_id,
            transfers.c.credit_account_id,
        )
        .where(transfers.c.window_number == number)
        .order_by(transfers.c.seq)
    ).all()
    postings: dict[int, list[Any]] = defaultdict(list)
    for row in conn.execute(
        select(
            entries.c.transfer_seq,
            entries.c.account_id,
            entries.c.delta_minor,
            accounts.c.wallet_id,
            accounts.c.currency,
        )
        .select_from(
            entries.join(transfers, transfers.c.seq == entries.c.transfer_seq).join(
                accounts, accounts.c.id == entries.c.account_id
            )
        )
        .where(transfers.c.window_number == number)
        .order_by(entries.c.id)
    ):
        postings[row.transfer_seq].append(row)
    for t in window_transfers:
        moved = postings.get(t.seq, [])
        expected = sorted(
            [(t.debit_account_id, -t.amount_minor), (t.credit_account_id, t.amount_minor)]
        )
        if sorted((r.account_id, r.delta_minor) for r in moved) != expected:
            what = ", ".join(f"{r.wallet_id} {r.currency} {r.delta_minor:+d}" for r in moved)
            b.differ(
                "ledger.postings",
                f"transfer {t.id} (seq {t.seq}) is for {t.amount_minor} but its postings "
                f"move {what or 'nothing'}: the transfer row or its entries were changed",
            )


def _compare_stored(b: _Batch, window: Window, rebuilt: BatchExport) -> None:
    if window.transfer_count != rebuilt.transfer_count:
        b.differ(
            "window.header",
            f"transfer count recorded when the batch was built is {window.transfer_count}, "
            f"rebuilt from the ledger now it is {rebuilt.transfer_count}",
        )
    stored = {
        "transfers root": (window.transfers_root, rebuilt.transfers_root),
        "balances root": (window.balances_root, rebuilt.balances_root),
        "previous batch hash": (window.prev_batch_hash, rebuilt.prev_batch_hash),
        "batch hash": (window.batch_hash, rebuilt.batch_hash),
    }
    for what, (was, now) in stored.items():
        if not _same(was, now):
            b.differ(
                "window.header",
                f"{what} recorded when the batch was built is {was}, rebuilt from the "
                f"ledger now it is {now}",
            )


def _compare_chain(
    b: _Batch,
    window: Window,
    rebuilt: BatchExport,
    chain: ChainBatch,
    names: dict[str, str],
) -> None:
    def hashes(code: str, what: str, ours: str, theirs: str) -> None:
        if not _same(ours, theirs):
            b.differ(code, f"{what} rebuilt from the database is {ours}, on chain {theirs}")

    hashes("transfers.root", "transfers root", rebuilt.transfers_root, chain.transfers_root)
    hashes("balances.root", "balances root", rebuilt.balances_root, chain.balances_root)
    hashes("link.previous", "previous batch hash", rebuilt.prev_batch_hash, chain.prev_batch_hash)
    hashes("batch_hash", "batch hash", rebuilt.batch_hash, chain.batch_hash)
    if rebuilt.transfer_count != chain.transfer_count:
        b.differ(
            "transfers.count",
            f"the database holds {rebuilt.transfer_count} transfers in this window, the chain "
            f"records {chain.transfer_count}",
        )

    def who(address: str) -> str:
        name = names.get(address)
        return f"{name} ({address})" if name else f"unknown participant {address}"

    ours: dict[tuple[str, str], int] = {
        (to_checksum_address(p.participant_address), p.currency): p.amount_minor
        for p in rebuilt.net_positions
    }
    theirs: dict[tuple[str, str], int] = defaultdict(int)
    for address, currency, amount in chain.positions:
        theirs[(to_checksum_address(address), currency)] += amount
    for key in sorted(set(ours) | set(theirs), key=lambda k: (k[1], k[0])):
        db_amount, chain_amount = ours.get(key, 0), theirs.get(key, 0)
        if db_amount != chain_amount:
            b.differ(
                "positions",
                f"net position of {who(key[0])} in {key[1]} is {db_amount} from the "
                f"database, {chain_amount} on chain",
            )
    if chain.tx_hash is not None and not _same(window.tx_hash, chain.tx_hash):
        b.differ(
            "location.tx",
            f"the database says it was settled in tx {window.tx_hash}, the chain in "
            f"{chain.tx_hash}",
        )
    if chain.block_number is not None and window.block_number != chain.block_number:
        b.differ(
            "location.block",
            f"the database says it was settled in block {window.block_number}, the chain in "
            f"block {chain.block_number}",
        )


def reconcile(
    engine: Engine,
    gateway: ChainGateway,
    numbers: Iterable[int] | None = None,
) -> ReconciliationReport:
    """Compare every settled window (or those numbered) with the chain; log each difference.

    Read-only on both sides. Windows not settled yet are skipped; batches on chain beyond
    the database's last settled window are noted (a settlement whose receipt the database
    has not recorded yet, or a chain shared with something else).
    """
    report = ReconciliationReport()
    with read_transaction(engine) as conn:
        windows = _settled_windows(conn, numbers)
        last_settled = conn.execute(
            select(settlement_windows.c.number)
            .where(settlement_windows.c.status == WindowStatus.SETTLED.value)
            .order_by(settlement_windows.c.number.desc())
            .limit(1)
        ).scalar()
        names: dict[str, str] = {
            to_checksum_address(r.settlement_address): str(r.id)
            for r in conn.execute(select(participants.c.id, participants.c.settlement_address))
            if r.settlement_address
        }
    report.database_last_settled = None if last_settled is None else int(last_settled)
    if len(windows) > RECONCILE_BATCHES_MAX:
        raise ValueError(
            f"{len(windows)} batches to reconcile, at most {RECONCILE_BATCHES_MAX} at once"
        )
    report.chain_last_batch = gateway.last_batch_number()
    chain = read_chain_batches(gateway, [w.number for w in windows])
    for window in windows:
        number = window.number
        report.batches.append(number)
        b = _Batch(report, number)
        try:
            with read_transaction(engine) as conn:
                _check_postings(conn, b, number)
                rebuilt = rebuild_batch(conn, number)
        except ExportError as error:
            b.differ("rebuild.failed", f"cannot be rebuilt from the database: {error.message}")
            b.close()
            continue
        _compare_stored(b, window, rebuilt)
        on_chain = chain.get(number)
        if on_chain is None:
            b.differ(
                "chain.missing",
                f"settled in the database (tx {window.tx_hash}) but not found on chain",
            )
        else:
            _compare_chain(b, window, rebuilt, on_chain, names)
        b.close()
    if numbers is None and report.chain_last_batch > (report.database_last_settled or 0):
        report.notes.append(
            f"the chain holds batches up to {report.chain_last_batch}, the database has "
            f"settled up to {report.database_last_settled}: the settler records the rest on "
            "its next run"
        )
    for difference in report.differences:
        log.error("reconciliation: %s", difference.message)
    if report.ok:
        log.info("reconciliation: %d batch(es) agree with the chain", len(report.batches))
    return report
