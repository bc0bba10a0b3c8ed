"""The batch hash: what links one settled batch to the next, on chain and in exports.

Kept apart, in one place, because it MUST match the settlement contract
(contracts/SettlementLedger.sol) bit for bit. If the contract's formula changes, change
it here (and only here); the verifier then reports every export or chain batch that does
not match. tests/audit/fixtures/contract_batch_hash.json holds hashes computed by the
deployed contract itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import eth_abi
from eth_utils import to_checksum_address

from settlement.merkle import HexLike, keccak256, to_hex, to_node

__all__ = [
    "FIRST_BATCH_NUMBER",
    "POSITION_AMOUNT_MAX",
    "ZERO_HASH",
    "batch_hash",
    "currency_bytes3",
    "position_sort_key",
    "positions_hash",
]

ZERO_HASH: Final = "0x" + "00" * 32
"""bytes32(0): the previous-batch hash of batch 1."""

FIRST_BATCH_NUMBER: Final = 1
"""Batches are numbered 1, 2, 3, ... (the contract's convention)."""

POSITION_AMOUNT_MAX: Final = (1 << 63) - 1
"""The contract's ``AMOUNT_MAX``: largest absolute net position (int64's maximum)."""


def currency_bytes3(currency: str) -> bytes:
    """The contract's ``bytes3`` form of an ISO 4217 code: ``"USD"`` -> ``b"USD"``."""
    raw = currency.encode("ascii", errors="replace")
    if len(raw) != 3 or not raw.isalpha() or not raw.isupper():
        raise ValueError(f"currency {currency!r} is not three upper-case letters A-Z")
    return raw


def position_sort_key(position: tuple[str, str, int]) -> tuple[bytes, int]:
    """The contract's order of net positions: by currency, then by participant address
    as a number. Submitted positions must be strictly ascending in this key."""
    address, currency, _ = position
    return (currency_bytes3(currency), int(address, 16))


def positions_hash(positions: Sequence[tuple[str, str, int]]) -> str:
    """``keccak256(abi.encode(positions))``, ``positions`` typed ``(address,bytes3,int256)[]``.

    ``positions`` are ``(participant_address, currency, amount_minor)`` in submission
    order: the order is part of the hash.
    """
    rows = [(to_checksum_address(a), currency_bytes3(c), m) for a, c, m in positions]
    return to_hex(keccak256(eth_abi.encode(["(address,bytes3,int256)[]"], [rows])))


def batch_hash(
    *,
    number: int,
    transfers_root: HexLike,
    balances_root: HexLike,
    prev_batch_hash: HexLike,
    transfer_count: int,
    positions: Sequence[tuple[str, str, int]],
) -> str:
    """The hash of a batch header. Must match ``SettlementLedger.sol`` (``settleBatch``).

    batchHash = keccak256(abi.encode(
        uint256 number, bytes32 transfersRoot, bytes32 balancesRoot, bytes32 prevBatchHash,
        uint256 transferCount, bytes32 positionsHash))
    positionsHash = keccak256(abi.encode((address participant, bytes3 currency,
        int256 amountMinor)[] positions))

    (uint64 and uint256 encode to the same 32-byte word, so the number and count may be
    declared either way.) ``positions`` are ``(participant_address, currency, amount_minor)``
    in the order they were submitted to the contract; ``currency`` is the ISO code as a
    string, encoded as ``bytes3`` ASCII.
    """
    encoded = eth_abi.encode(
        ["uint256", "bytes32", "bytes32", "bytes32", "uint256", "bytes32"],
        [
            number,
            to_node(transfers_root, "transfers root"),
            to_node(balances_root, "balances root"),
            to_node(prev_batch_hash, "previous batch hash"),
            transfer_count,
            to_node(positions_hash(positions), "positions hash"),
        ],
    )
    return to_hex(keccak256(encoded))
