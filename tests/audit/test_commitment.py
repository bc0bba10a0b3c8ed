"""The batch hash against hashes computed by the compiled SettlementLedger contract."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from settlement.audit.commitment import (
    ZERO_HASH,
    batch_hash,
    currency_bytes3,
    position_sort_key,
    positions_hash,
)

VECTORS = json.loads(
    (Path(__file__).parent / "fixtures" / "contract_batch_hash.json").read_text("utf-8")
)


@pytest.mark.parametrize("batch", VECTORS["batches"], ids=lambda b: f"batch{b['number']}")
def test_batch_hash_matches_the_contract(batch: dict[str, Any]) -> None:
    positions = [(a, c, int(m)) for a, c, m in batch["positions"]]
    assert positions_hash(positions) == batch["positionsHash"]
    assert (
        batch_hash(
            number=batch["number"],
            transfers_root=batch["transfersRoot"],
            balances_root=batch["balancesRoot"],
            prev_batch_hash=batch["prevBatchHash"],
            transfer_count=batch["transferCount"],
            positions=positions,
        )
        == batch["batchHash"]
    )


def test_contract_vectors_chain_from_zero() -> None:
    batches = VECTORS["batches"]
    assert batches[0]["prevBatchHash"] == ZERO_HASH
    for before, after in itertools.pairwise(batches):
        assert after["prevBatchHash"] == before["batchHash"]


def test_position_order_is_currency_then_address_number() -> None:
    low, high = "0x" + "0b" * 20, "0x" + "a1" * 20
    rows = [(high, "USD", 1), (low, "USD", -1), (high, "EUR", 2), (low, "EUR", -2)]
    assert sorted(rows, key=position_sort_key) == [rows[3], rows[2], rows[1], rows[0]]


@pytest.mark.parametrize("bad", ["usd", "US", "USDC", "U$D", "ÜSD"])
def test_currency_must_be_three_upper_case_letters(bad: str) -> None:
    with pytest.raises(ValueError):
        currency_bytes3(bad)
