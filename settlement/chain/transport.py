"""What differs between the embedded chain and a JSON-RPC node, behind one small interface.

The gateway (web3_gateway.py) does everything through `Transport.w3` (a web3 `Web3`) plus
the few operations below whose right implementation depends on the backend: locking,
receipts, confirmations and log scanning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar

from web3 import Web3

from settlement.chain.gateway import Transport as TransportKind


@dataclass(frozen=True)
class RawLog:
    """One log as mined, before decoding. Hashes as 0x-hex, topics and data raw."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    block_hash: str
    tx_hash: str
    tx_index: int
    log_index: int


class Transport(ABC):
    kind: ClassVar[TransportKind]
    w3: Web3
    # Gas limit sent with every transaction; None: estimate each one (which also surfaces
    # a revert before anything is sent).
    fixed_gas_limit: int | None = None
    confirmations: int = 1
    read_only: bool = False
    # Blocks per log query (bounded: nodes cap eth_getLogs ranges).
    log_range_max: int = 2000

    @abstractmethod
    def write_lock(self) -> AbstractContextManager[Any]:
        """Held while building, signing and sending a transaction (nonce order)."""

    @abstractmethod
    def read_lock(self) -> AbstractContextManager[Any]:
        """Held around reads; a no-op where the backend is thread-safe."""

    @abstractmethod
    def chain_id(self) -> int: ...

    @abstractmethod
    def block_hash(self, number: int) -> str:
        """The canonical block hash at `number` (0x-hex)."""

    def genesis_hash(self) -> str:
        """Identifies the chain: two chains with one id (a reset anvil) differ here."""
        return self.block_hash(0)

    @abstractmethod
    def gas_used(self, tx_hash: str, block_number: int) -> int:
        """Gas used by a mined transaction known to be in `block_number`."""

    @abstractmethod
    def head_block_number(self) -> int: ...

    @abstractmethod
    def send_raw_transaction(self, raw: bytes) -> str:
        """Broadcasts a signed transaction; returns its hash (0x-hex)."""

    @abstractmethod
    def wait_for_receipt(self, tx_hash: str, raw: bytes, timeout_s: float) -> dict[str, Any]:
        """The receipt once mined with `confirmations`; raises ChainTimeout. `raw` lets a
        transport re-broadcast after a fail-over."""

    @abstractmethod
    def fetch_logs(self, address: str, from_block: int, to_block: int) -> list[RawLog]:
        """Logs of `address` in [from_block, to_block], in chain order."""

    def fee_fields(self, priority_fee_wei: int) -> dict[str, int]:
        """EIP-1559 fees for the next block (max fee = 2 x base fee + tip, which stays
        valid through several full blocks), or a legacy gas price on a chain without."""
        base_fee = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        return {
            "maxPriorityFeePerGas": priority_fee_wei,
            "maxFeePerGas": 2 * int(base_fee) + priority_fee_wei,
        }

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases files, locks and connections."""
