"""Builders of realistic settled batches for the audit tests (no database, no chain)."""

from __future__ import annotations

import copy
import random
import zlib
from dataclasses import replace
from typing import Any

from eth_utils import to_checksum_address

from settlement.audit.commitment import ZERO_HASH
from settlement.audit.export import BatchExport, build_batch_export
from settlement.audit.leaves import BalanceLeaf, TransferLeaf
from settlement.audit.verify import ChainBatch

PARTICIPANTS = {
    "p_acme": to_checksum_address("0x" + "a1" * 20),
    "p_beta": to_checksum_address("0x" + "0b" * 20),
    "p_fxlp": to_checksum_address("0x" + "5f" * 20),
}
CURRENCIES = ("USD", "PHP", "EUR")


def make_transfers(batch: int, count: int, first_seq: int, seed: int = 0) -> list[TransferLeaf]:
    rng = random.Random(batch * 1000 + seed)
    names = sorted(PARTICIPANTS)
    transfers = []
    for i in range(count):
        debit, credit = rng.choice(names), rng.choice(names)
        currency = rng.choice(CURRENCIES)
        transfers.append(
            TransferLeaf(
                seq=first_seq + i,
                transfer_id=f"tr_{batch:02d}{i:04d}{rng.getrandbits(24):06x}",
                debit_participant=debit,
                debit_wallet=f"w_{debit[2:]}_{rng.randrange(3)}",
                credit_participant=credit,
                credit_wallet=f"w_{credit[2:]}_{rng.randrange(3)}",
                currency=currency,
                amount_minor=rng.randrange(1, 500_000),
                posted_at_ms=1_767_225_600_000 + batch * 3_600_000 + i,
            )
        )
    return transfers


def make_balances(transfers: list[TransferLeaf], batch: int) -> list[BalanceLeaf]:
    touched = sorted(
        {(t.debit_participant, t.debit_wallet, t.currency) for t in transfers}
        | {(t.credit_participant, t.credit_wallet, t.currency) for t in transfers}
    )
    return [
        BalanceLeaf(p, w, c, zlib.crc32(f"{p}{w}{c}{batch}".encode()) % 10**9 - 10**8, batch)
        for p, w, c in touched
    ]


def chain_batch_of(export: BatchExport) -> ChainBatch:
    """What the contract would record for this export (it computes the same hash)."""
    return ChainBatch(
        number=export.batch_number,
        transfers_root=export.transfers_root,
        balances_root=export.balances_root,
        prev_batch_hash=export.prev_batch_hash,
        batch_hash=export.batch_hash,
        transfer_count=export.transfer_count,
        positions=[p.to_chain() for p in export.net_positions],
        tx_hash=export.chain_tx_hash,
        block_number=export.block_number,
    )


def make_history(
    batches: int = 3, transfers_per_batch: int = 40
) -> tuple[list[BatchExport], dict[int, ChainBatch]]:
    """Batches 1..n, linked by hash, each with the chain's record of it."""
    exports: list[BatchExport] = []
    prev = ZERO_HASH
    seq = 1
    for number in range(1, batches + 1):
        transfers = make_transfers(number, transfers_per_batch, seq)
        seq += transfers_per_batch
        export = build_batch_export(
            batch_number=number,
            transfers=transfers,
            balances=make_balances(transfers, number),
            prev_batch_hash=prev,
            participant_addresses=PARTICIPANTS,
            chain_id=1337,
            contract_address="0x" + "c0" * 20,
            chain_tx_hash="0x" + f"{number:02x}" * 32,
            block_number=100 + number,
        )
        exports.append(export)
        prev = export.batch_hash
    return exports, {e.batch_number: chain_batch_of(e) for e in exports}


def edited(export: BatchExport, **changes: Any) -> BatchExport:
    """A copy of an export with deep-copied dumps (safe to tamper with) and changes."""
    return replace(
        export,
        transfers_dump=copy.deepcopy(dict(export.transfers_dump)),
        balances_dump=copy.deepcopy(dict(export.balances_dump)),
        **changes,
    )
