"""Versioned leaf schemas of the audit trees, and the net positions they imply.

docs/AUDIT.md ("Leaf schemas") is the reference for auditors; the tuples below are the
definition the code uses, in the same order. A leaf's values are ABI-encoded in this
order and hashed the OpenZeppelin way (settlement.merkle), so renaming a field is
harmless but changing a type or the order is a new schema version: add ``..._V2`` and
keep V1 readable for as long as batches settled with it exist on chain.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from eth_utils import is_address, to_checksum_address

from settlement.audit.commitment import currency_bytes3, position_sort_key
from settlement.merkle import MerkleTreeError, StandardMerkleTree, leaf_codec

__all__ = [
    "BALANCE_LEAF_FIELDS_V1",
    "LEAF_SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "TRANSFER_LEAF_FIELDS_V1",
    "BalanceLeaf",
    "LeafError",
    "NetPosition",
    "TransferLeaf",
    "balance_leaf_encoding",
    "balance_leaves_of",
    "build_balances_tree",
    "build_transfers_tree",
    "compute_net_positions",
    "net_amounts",
    "transfer_leaf_encoding",
    "transfer_leaves_of",
]

LEAF_SCHEMA_VERSION: Final = 1
"""The schema version new batches are built with."""

TRANSFER_LEAF_FIELDS_V1: Final[tuple[tuple[str, str], ...]] = (
    ("uint64", "seq"),
    ("string", "transferId"),
    ("string", "debitParticipant"),
    ("string", "debitWallet"),
    ("string", "creditParticipant"),
    ("string", "creditWallet"),
    ("string", "currency"),
    ("uint256", "amountMinor"),
    ("uint64", "postedAtMs"),
)

BALANCE_LEAF_FIELDS_V1: Final[tuple[tuple[str, str], ...]] = (
    ("string", "participant"),
    ("string", "wallet"),
    ("string", "currency"),
    ("int256", "balanceMinor"),
    ("uint64", "batchNumber"),
)

_TRANSFER_FIELDS: Final = {1: TRANSFER_LEAF_FIELDS_V1}
_BALANCE_FIELDS: Final = {1: BALANCE_LEAF_FIELDS_V1}
SUPPORTED_SCHEMA_VERSIONS: Final = frozenset(_TRANSFER_FIELDS)

_UINT64_MAX: Final = (1 << 64) - 1
_UINT256_MAX: Final = (1 << 256) - 1
_INT256_MIN: Final = -(1 << 255)
_INT256_MAX: Final = (1 << 255) - 1


class LeafError(ValueError):
    """A leaf or position that does not fit its schema (stable ``code``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _schema(table: Mapping[int, tuple[tuple[str, str], ...]], version: int) -> tuple[str, ...]:
    try:
        fields = table[version]
    except KeyError:
        raise LeafError(
            "leaf.unknown_schema_version", f"unknown leaf schema version {version!r}"
        ) from None
    return tuple(abi_type for abi_type, _ in fields)


def transfer_leaf_encoding(version: int = LEAF_SCHEMA_VERSION) -> tuple[str, ...]:
    """The OZ ``leafEncoding`` (ABI types) of transfer leaves of a schema version."""
    return _schema(_TRANSFER_FIELDS, version)


def balance_leaf_encoding(version: int = LEAF_SCHEMA_VERSION) -> tuple[str, ...]:
    """The OZ ``leafEncoding`` (ABI types) of balance leaves of a schema version."""
    return _schema(_BALANCE_FIELDS, version)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LeafError("leaf.invalid_field", f"{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise LeafError("leaf.invalid_field", f"{name} {value} is out of range [{low}, {high}]")


def _check_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise LeafError("leaf.invalid_field", f"{name} must be a str, got {value!r}")


def _normalized(encoding: tuple[str, ...], values: Sequence[Any], what: str) -> tuple[Any, ...]:
    try:
        return leaf_codec(encoding).normalize(values)
    except MerkleTreeError as exc:
        raise LeafError("leaf.invalid_values", f"{what}: {exc.message}") from None


@dataclass(frozen=True, slots=True)
class TransferLeaf:
    """One transfer (a single-currency movement between two wallets) of a batch."""

    seq: int
    transfer_id: str
    debit_participant: str
    debit_wallet: str
    credit_participant: str
    credit_wallet: str
    currency: str
    amount_minor: int
    posted_at_ms: int

    def __post_init__(self) -> None:
        _check_int("seq", self.seq, 0, _UINT64_MAX)
        for name in (
            "transfer_id",
            "debit_participant",
            "debit_wallet",
            "credit_participant",
            "credit_wallet",
            "currency",
        ):
            _check_str(name, getattr(self, name))
        _check_int("amount_minor", self.amount_minor, 0, _UINT256_MAX)
        _check_int("posted_at_ms", self.posted_at_ms, 0, _UINT64_MAX)

    def to_values(self) -> tuple[Any, ...]:
        """The leaf values in schema order (the OZ tree value, Python form)."""
        return (
            self.seq,
            self.transfer_id,
            self.debit_participant,
            self.debit_wallet,
            self.credit_participant,
            self.credit_wallet,
            self.currency,
            self.amount_minor,
            self.posted_at_ms,
        )

    def to_json_values(self) -> list[Any]:
        """The leaf values as they appear in a dump (integers as decimal strings)."""
        return leaf_codec(transfer_leaf_encoding(1)).to_json(self.to_values())

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> TransferLeaf:
        """From schema-ordered values, Python or JSON form (``"1200"`` for 1200)."""
        v = _normalized(transfer_leaf_encoding(1), values, "transfer leaf")
        return cls(*v)


@dataclass(frozen=True, slots=True)
class BalanceLeaf:
    """A wallet's balance in one currency after a batch (balances the batch touched)."""

    participant: str
    wallet: str
    currency: str
    balance_minor: int
    batch_number: int

    def __post_init__(self) -> None:
        for name in ("participant", "wallet", "currency"):
            _check_str(name, getattr(self, name))
        _check_int("balance_minor", self.balance_minor, _INT256_MIN, _INT256_MAX)
        _check_int("batch_number", self.batch_number, 0, _UINT64_MAX)

    def to_values(self) -> tuple[Any, ...]:
        return (self.participant, self.wallet, self.currency, self.balance_minor, self.batch_number)

    def to_json_values(self) -> list[Any]:
        return leaf_codec(balance_leaf_encoding(1)).to_json(self.to_values())

    @classmethod
    def from_values(cls, values: Sequence[Any]) -> BalanceLeaf:
        v = _normalized(balance_leaf_encoding(1), values, "balance leaf")
        return cls(*v)


@dataclass(frozen=True, slots=True)
class NetPosition:
    """A participant's multilateral net position in one currency for one batch.

    Negative: the participant owes that amount; positive: it is owed. The on-chain form
    is ``(participant_address, currency, amount_minor)``.
    """

    participant: str
    participant_address: str
    currency: str
    amount_minor: int

    def __post_init__(self) -> None:
        _check_str("participant", self.participant)
        _check_str("currency", self.currency)
        try:
            currency_bytes3(self.currency)
        except ValueError as exc:
            raise LeafError("leaf.invalid_currency", f"net position: {exc}") from None
        if not isinstance(self.participant_address, str) or not is_address(
            self.participant_address
        ):
            raise LeafError(
                "leaf.invalid_field",
                f"participant_address of {self.participant} is not an address: "
                f"{self.participant_address!r}",
            )
        _check_int("amount_minor", self.amount_minor, _INT256_MIN, _INT256_MAX)

    def to_chain(self) -> tuple[str, str, int]:
        """``(address, currency, amount)``, the tuple the contract takes."""
        return (to_checksum_address(self.participant_address), self.currency, self.amount_minor)


# ----------------------------------------------------------------------------- trees


def build_transfers_tree(leaves: Iterable[TransferLeaf]) -> StandardMerkleTree:
    """The batch's transfers tree (schema v1). Raises MerkleTreeError when empty."""
    return StandardMerkleTree.of([leaf.to_values() for leaf in leaves], transfer_leaf_encoding(1))


def build_balances_tree(leaves: Iterable[BalanceLeaf]) -> StandardMerkleTree:
    """The batch's balances tree (schema v1). Raises MerkleTreeError when empty."""
    return StandardMerkleTree.of([leaf.to_values() for leaf in leaves], balance_leaf_encoding(1))


def transfer_leaves_of(tree: StandardMerkleTree) -> list[TransferLeaf]:
    """The transfer leaves of a tree, in its value order."""
    if tree.leaf_encoding != transfer_leaf_encoding(1):
        raise LeafError(
            "leaf.wrong_encoding",
            f"tree leaf encoding {list(tree.leaf_encoding)} is not transfer schema v1",
        )
    return [TransferLeaf(*v) for _, v in tree.entries()]


def balance_leaves_of(tree: StandardMerkleTree) -> list[BalanceLeaf]:
    """The balance leaves of a tree, in its value order."""
    if tree.leaf_encoding != balance_leaf_encoding(1):
        raise LeafError(
            "leaf.wrong_encoding",
            f"tree leaf encoding {list(tree.leaf_encoding)} is not balance schema v1",
        )
    return [BalanceLeaf(*v) for _, v in tree.entries()]


# ----------------------------------------------------------------------------- netting


def net_amounts(leaves: Iterable[TransferLeaf]) -> dict[tuple[str, str], int]:
    """Multilateral net amounts ``{(participant, currency): amount}`` of transfer leaves.

    Only transfers between different participants count (a participant moving money
    between its own wallets settles nothing): the debit side pays, the credit side
    receives. Zeros are dropped. Keys are sorted by (currency, participant).
    """
    totals: defaultdict[tuple[str, str], int] = defaultdict(int)
    for leaf in leaves:
        if leaf.debit_participant == leaf.credit_participant:
            continue
        totals[(leaf.debit_participant, leaf.currency)] -= leaf.amount_minor
        totals[(leaf.credit_participant, leaf.currency)] += leaf.amount_minor
    result = {key: totals[key] for key in sorted(totals, key=lambda k: (k[1], k[0])) if totals[key]}
    by_currency: defaultdict[str, int] = defaultdict(int)
    for (_, currency), amount in result.items():
        by_currency[currency] += amount
    # Each transfer adds +a and -a: a non-zero sum is a bug here, not bad input.
    assert not any(by_currency.values()), "net amounts must sum to zero per currency"
    return result


def compute_net_positions(
    leaves: Iterable[TransferLeaf], participant_addresses: Mapping[str, str]
) -> list[NetPosition]:
    """The batch's net positions, in the order the contract requires them.

    Order: strictly ascending by (currency, participant address as a number), the order
    ``SettlementLedger.settleBatch`` checks (see ``commitment.position_sort_key``).
    ``participant_addresses`` maps each participant id to its on-chain address; a
    participant with a non-zero position and no address, or two participants sharing an
    address, is a ``LeafError``.
    """
    positions = []
    for (participant, currency), amount in net_amounts(leaves).items():
        address = participant_addresses.get(participant)
        if address is None:
            raise LeafError(
                "leaf.unknown_participant_address",
                f"participant {participant} has a net position but no on-chain address",
            )
        positions.append(NetPosition(participant, to_checksum_address(address), currency, amount))
    positions.sort(key=lambda p: position_sort_key(p.to_chain()))
    for before, after in itertools.pairwise(positions):
        if position_sort_key(before.to_chain()) == position_sort_key(after.to_chain()):
            raise LeafError(
                "leaf.shared_participant_address",
                f"participants {before.participant} and {after.participant} share the "
                f"address {after.participant_address}",
            )
    return positions
