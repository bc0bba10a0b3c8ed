"""The chain gateway's interface: what Corridor does on chain, whatever the transport.

Everything here is plain data plus the `ChainGateway` protocol; the implementation is
`settlement.chain.web3_gateway.Web3ChainGateway`, opened with `open_gateway(config)`.

Conventions (mirroring contracts/SettlementLedger.sol):
- Addresses are EIP-55 checksummed hex strings; hashes and roots are 32 raw bytes.
- Currencies are ISO 4217 alphabetic codes ("USD"); on chain they are `bytes3` of the ASCII.
- Amounts are integers in minor units, |amount| <= AMOUNT_MAX (int64's maximum).
- Net positions are submitted in canonical order, ascending by (currency, participant
  address as a 160-bit number); `BatchSubmission` sorts them, so callers need not.
- positions_hash = keccak256(abi.encode((address,bytes3,int256)[] positions))
- batch_hash = keccak256(abi.encode(uint256 number, bytes32 transfersRoot,
  bytes32 balancesRoot, bytes32 prevBatchHash, uint256 transferCount, bytes32 positionsHash))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from node_config.chain import KEYSTORE_PASSPHRASE_DEV

AMOUNT_MAX = 2**63 - 1  # SettlementLedger.AMOUNT_MAX
POSITIONS_MAX = 1000  # SettlementLedger.POSITIONS_MAX
TRANSFER_COUNT_MAX = 2**32 - 1  # uint32 in the contract
BATCH_NUMBER_MAX = 2**64 - 1  # uint64 in the contract
ZERO_HASH = bytes(32)
POSITION_ABI_TYPE = "(address,bytes3,int256)[]"
BATCH_HASH_ABI_TYPES = ("uint256", "bytes32", "bytes32", "bytes32", "uint256", "bytes32")

Transport = Literal["embedded", "rpc"]


def currency_code_bytes(currency: str) -> bytes:
    """ "USD" -> b"USD" (the contract's bytes3); refuses anything but three letters A-Z."""
    if len(currency) != 3 or not all("A" <= c <= "Z" for c in currency):
        raise ValueError(f"not an ISO 4217 alphabetic code: {currency!r}")
    return currency.encode("ascii")


def currency_from_bytes(raw: bytes) -> str:
    return raw.decode("ascii")


def _hash32(value: bytes, name: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes")
    return value


@dataclass(frozen=True, slots=True)
class NetPosition:
    """One participant's signed net position in one currency: positive receives."""

    participant: str
    currency: str
    amount_minor: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "participant", to_checksum_address(self.participant))
        currency_code_bytes(self.currency)
        if type(self.amount_minor) is not int:
            raise TypeError("amount_minor must be an int (minor units)")

    @property
    def sort_key(self) -> tuple[bytes, int]:
        return (self.currency.encode("ascii"), int(self.participant, 16))

    def as_abi(self) -> tuple[str, bytes, int]:
        return (self.participant, currency_code_bytes(self.currency), self.amount_minor)


def canonical_positions(positions: Iterable[NetPosition]) -> tuple[NetPosition, ...]:
    return tuple(sorted(positions, key=lambda p: p.sort_key))


def positions_hash(positions: Sequence[NetPosition]) -> bytes:
    """keccak256(abi.encode(positions)) of positions in the order given."""
    return keccak(abi_encode([POSITION_ABI_TYPE], [[p.as_abi() for p in positions]]))


def batch_hash(
    number: int,
    transfers_root: bytes,
    balances_root: bytes,
    prev_batch_hash: bytes,
    transfer_count: int,
    positions_hash_: bytes,
) -> bytes:
    """The contract's batch hash (see the module docstring)."""
    return keccak(
        abi_encode(
            list(BATCH_HASH_ABI_TYPES),
            [
                number,
                transfers_root,
                balances_root,
                prev_batch_hash,
                transfer_count,
                positions_hash_,
            ],
        )
    )


@dataclass(frozen=True)
class BatchSubmission:
    """What `settle_batch` sends. Positions are stored in canonical order."""

    number: int
    transfers_root: bytes
    balances_root: bytes
    prev_batch_hash: bytes
    transfer_count: int
    positions: tuple[NetPosition, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.number <= BATCH_NUMBER_MAX:
            raise ValueError(f"batch number out of range: {self.number}")
        if not 0 <= self.transfer_count <= TRANSFER_COUNT_MAX:
            raise ValueError(f"transfer count out of range: {self.transfer_count}")
        _hash32(self.transfers_root, "transfers_root")
        _hash32(self.balances_root, "balances_root")
        _hash32(self.prev_batch_hash, "prev_batch_hash")
        if len(self.positions) > POSITIONS_MAX:
            raise ValueError(f"{len(self.positions)} positions, at most {POSITIONS_MAX}")
        object.__setattr__(self, "positions", canonical_positions(self.positions))

    @property
    def positions_hash(self) -> bytes:
        return positions_hash(self.positions)

    @property
    def batch_hash(self) -> bytes:
        return batch_hash(
            self.number,
            self.transfers_root,
            self.balances_root,
            self.prev_batch_hash,
            self.transfer_count,
            self.positions_hash,
        )


@dataclass(frozen=True)
class BatchHeader:
    """A settled batch's header as stored by the contract."""

    number: int
    transfers_root: bytes
    balances_root: bytes
    prev_batch_hash: bytes
    batch_hash: bytes
    transfer_count: int
    positions_hash: bytes
    block_number: int
    timestamp: int


@dataclass(frozen=True)
class TxReceipt:
    """A mined (and, on rpc, confirmed) successful transaction."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int


@dataclass(frozen=True)
class SettlementReceipt(TxReceipt):
    """`settle_batch`'s result. `already_settled` is true when the same batch (same hash)
    was found on chain, settled by an earlier call; the receipt is then that transaction's."""

    batch_number: int = 0
    batch_hash: bytes = ZERO_HASH
    already_settled: bool = False


@dataclass(frozen=True)
class Deployment:
    """Where the settlement contract lives; recorded so that a restart reuses it."""

    chain_id: int
    address: str
    block_number: int
    block_hash: str
    tx_hash: str
    deployer: str
    deployed_bytecode_hash: str


@dataclass(frozen=True)
class ChainEvent:
    """One decoded contract event. `args` is JSON-safe: addresses checksummed, currencies
    as codes, bytes32 as 0x-hex, integers as int; BatchSettled's positions as a list of
    {"participant", "currency", "amount_minor"}."""

    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int
    name: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class ChainConfig:
    """How to reach the chain. `from_env` reads the CORRIDOR_ variables.

    transport: "embedded" (py-evm in-process, persisted under data_dir/chain) or "rpc".
    rpc_urls: JSON-RPC URLs tried in order, the next one on a connection failure.
    expected_chain_id: refuse a node reporting another id (rpc); None: the id recorded at
        deployment, or whatever the first node reports.
    confirmations: blocks a transaction must have (1 = mined) before it counts (rpc).
    keystore_scrypt_n: scrypt cost of a newly created keystore; lower only in tests.
    priority_fee_wei: tip per gas; None: node_config.chain.PRIORITY_FEE_WEI (0 suits a
        zero-fee permissioned network).
    read_only: open without sending transactions (e.g. an auditor reading a data dir).
    index_events: index contract events into SQL after each transaction.
    """

    transport: Transport = "embedded"
    data_dir: Path = Path(".corridor")
    rpc_urls: tuple[str, ...] = ()
    keystore_passphrase: str = field(default=KEYSTORE_PASSPHRASE_DEV, repr=False)
    keystore_scrypt_n: int = 2**18
    expected_chain_id: int | None = None
    contract_address: str | None = None
    confirmations: int = 1
    receipt_timeout_s: float = 120.0
    rpc_timeout_s: float = 10.0
    poll_interval_s: float = 0.1
    priority_fee_wei: int | None = None
    read_only: bool = False
    index_events: bool = True

    def __post_init__(self) -> None:
        if self.transport not in ("embedded", "rpc"):
            raise ValueError(f"unknown chain transport {self.transport!r}")
        if self.confirmations < 1:
            raise ValueError("confirmations must be at least 1")
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "rpc_urls", tuple(self.rpc_urls))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ChainConfig:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if "CORRIDOR_CHAIN" in env:
            values["transport"] = env["CORRIDOR_CHAIN"]
        if "CORRIDOR_DATA_DIR" in env:
            values["data_dir"] = Path(env["CORRIDOR_DATA_DIR"])
        if env.get("CORRIDOR_CHAIN_RPC_URLS"):
            urls = [u.strip() for u in env["CORRIDOR_CHAIN_RPC_URLS"].split(",")]
            values["rpc_urls"] = tuple(u for u in urls if u)
        if "CORRIDOR_CHAIN_KEYSTORE_PASSPHRASE" in env:
            values["keystore_passphrase"] = env["CORRIDOR_CHAIN_KEYSTORE_PASSPHRASE"]
        if env.get("CORRIDOR_CHAIN_ID"):
            values["expected_chain_id"] = int(env["CORRIDOR_CHAIN_ID"])
        if env.get("CORRIDOR_CHAIN_CONTRACT"):
            values["contract_address"] = env["CORRIDOR_CHAIN_CONTRACT"]
        if env.get("CORRIDOR_CHAIN_CONFIRMATIONS"):
            values["confirmations"] = int(env["CORRIDOR_CHAIN_CONFIRMATIONS"])
        if env.get("CORRIDOR_CHAIN_RECEIPT_TIMEOUT_S"):
            values["receipt_timeout_s"] = float(env["CORRIDOR_CHAIN_RECEIPT_TIMEOUT_S"])
        return cls(**values)


@runtime_checkable
class ChainGateway(Protocol):
    """Everything Corridor does on chain. Reverts raise `ChainRevertError`; other expected
    failures raise the other `ChainError` subclasses (settlement.chain.errors)."""

    @property
    def transport(self) -> Transport: ...

    @property
    def operator_address(self) -> str: ...

    def chain_id(self) -> int: ...

    def head_block_number(self) -> int: ...

    # -- deployment
    def deployment(self) -> Deployment | None: ...

    def deploy(self) -> Deployment: ...

    def ensure_deployed(self) -> Deployment: ...

    # -- participants and funding
    def register_participant(self, participant: str) -> TxReceipt: ...

    def is_participant(self, participant: str) -> bool: ...

    def fund(
        self, participant: str, currency: str, amount_minor: int, reference: bytes | None = None
    ) -> TxReceipt: ...

    def withdraw(
        self, participant: str, currency: str, amount_minor: int, reference: bytes | None = None
    ) -> TxReceipt: ...

    def reference_used(self, reference: bytes) -> bool: ...

    def settlement_balance(self, participant: str, currency: str) -> int: ...

    # -- settlement
    def settle_batch(self, submission: BatchSubmission) -> SettlementReceipt: ...

    def batch(self, number: int) -> BatchHeader | None: ...

    def batch_receipt(self, number: int) -> SettlementReceipt | None: ...

    def last_batch_number(self) -> int: ...

    def last_batch_hash(self) -> bytes: ...

    def verify_transfer(self, batch_number: int, leaf: bytes, proof: Sequence[bytes]) -> bool: ...

    # -- incident response
    def pause(self) -> TxReceipt: ...

    def unpause(self) -> TxReceipt: ...

    def paused(self) -> bool: ...

    # -- events
    def index_events(self) -> int: ...

    def events_since(self, block_number: int, limit: int = 1000) -> list[ChainEvent]: ...

    def close(self) -> None: ...
