"""The embedded chain: py-evm through eth-tester, persisted under data_dir/chain/.

eth-tester's own backend builds its chain over an in-memory database. Here the same py-evm
`MiningChain` runs over `SqliteKeyValueStore` and the store is committed after every mined
block, so a restart (or a kill -9) reopens the chain at its canonical head with every mined
block. eth-tester auto-mines: each transaction is its own block.

eth-tester is not thread-safe: every request goes through one re-entrant lock, and one
process at a time may open a data dir for writing (an exclusive lock file).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from pathlib import Path
from typing import IO, Any, ClassVar, cast

from eth.abc import AtomicDatabaseAPI, BlockHeaderAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.chain import ChainDB
from eth.exceptions import CanonicalHeadNotFound
from eth.vm.forks import PragueVM
from eth_abi import encode as abi_encode
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_typing import BlockNumber
from eth_utils import ValidationError as EthValidationError
from eth_utils import (
    encode_hex,
    function_signature_to_4byte_selector,
    int_to_big_endian,
    to_canonical_address,
    to_checksum_address,
)
from eth_utils.toolz import assoc
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return
from web3.types import RPCEndpoint, RPCResponse

from node_config.chain import GenesisSpec
from settlement.chain.deployment import contract_address_for
from settlement.chain.errors import (
    ChainStateError,
    ChainUnavailable,
    TransactionRejected,
    revert_data_from,
)
from settlement.chain.transport import RawLog, Transport

log = logging.getLogger(__name__)

CHAIN_DB_FILE = "chain.sqlite3"
LOCK_FILE = "chain.lock"
_ERROR_STRING = function_signature_to_4byte_selector("Error(string)")


def chain_class(chain_id: int) -> type[MiningChain]:
    """A Prague-from-genesis mining chain with this id and a constant gas limit (the
    same set-up as eth-tester's own test chain, with our chain id)."""

    class CorridorDevChain(MiningChain):
        vm_configuration = ((BlockNumber(0), PragueVM),)

        def create_header_from_parent(
            self, parent_header: BlockHeaderAPI, **header_params: Any
        ) -> BlockHeaderAPI:
            return super().create_header_from_parent(
                parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
            )

        def get_transaction_builder(self) -> Any:
            return super().get_vm().get_transaction_builder()

    CorridorDevChain.chain_id = chain_id
    return CorridorDevChain


def _genesis_params(spec: GenesisSpec) -> dict[str, Any]:
    params: dict[str, Any] = dict(PyEVMBackend.generate_genesis_params())
    params["gas_limit"] = spec.gas_limit
    params["base_fee_per_gas"] = spec.base_fee_wei
    return params


def _genesis_state(spec: GenesisSpec) -> Any:
    return {
        to_canonical_address(address): {"balance": wei, "nonce": 0, "code": b"", "storage": {}}
        for address, wei in spec.alloc_wei.items()
    }


class PersistentPyEVMBackend(PyEVMBackend):
    """eth-tester's py-evm backend over a given (persistent) chain; holds no keys."""

    def __init__(self, chain: MiningChain, store: Any) -> None:
        # PyEVMBackend.__init__ would build a fresh in-memory chain: set state directly.
        self.account_keys = ()
        self.chain = chain
        self._store = store

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = bytes(20)) -> tuple[bytes, ...]:
        hashes = tuple(super().mine_blocks(num_blocks, coinbase))
        self._store.commit()  # the block boundary: everything mined so far is durable
        return hashes

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        raise ChainStateError("the embedded chain is persistent: it is never reset")


class EmbeddedProvider(EthereumTesterProvider):
    """web3 provider over eth-tester that (1) serializes every request with one lock,
    (2) reports our chain id, (3) turns eth-tester's `TransactionFailed` into a JSON-RPC
    revert error carrying the raw revert data, exactly as a node does, so that web3 raises
    the same `ContractCustomError` on both transports."""

    def __init__(self, tester: EthereumTester, chain_id: int, lock: threading.RLock) -> None:
        endpoints = {**API_ENDPOINTS, "eth": {**API_ENDPOINTS["eth"]}}
        endpoints["eth"]["chainId"] = static_return(chain_id)
        super().__init__(tester, api_endpoints=endpoints)
        self._lock = lock

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        request_id = self._current_request_id
        self._current_request_id += 1
        namespace, _, endpoint = method.partition("_")
        assert self.api_endpoints is not None
        delegator = self.api_endpoints.get(namespace, {}).get(endpoint)
        if delegator is None:
            return _error(request_id, -32601, f"Unknown RPC Endpoint: {method}")
        try:
            with self._lock:
                result = delegator(self.ethereum_tester, params)
        except NotImplementedError:
            return _error(request_id, -32601, f"RPC Endpoint has not been implemented: {method}")
        except TransactionFailed as failure:
            return _error(request_id, 3, "execution reverted", "0x" + _revert_bytes(failure).hex())
        return cast(RPCResponse, {"id": request_id, "jsonrpc": "2.0", "result": result})


def _error(request_id: int, code: int, message: str, data: str | None = None) -> RPCResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return cast(RPCResponse, {"id": request_id, "jsonrpc": "2.0", "error": error})


def _revert_bytes(failure: TransactionFailed) -> bytes:
    data = revert_data_from(failure) or b""
    if data:
        return data
    # eth-tester decodes Error(string) reverts to their message: encode it back.
    message = failure.args[0] if failure.args else None
    if isinstance(message, str) and message:
        return _ERROR_STRING + abi_encode(["string"], [message])
    return b""


class EmbeddedTransport(Transport):
    kind: ClassVar = "embedded"
    log_range_max = 10_000  # a local scan, block by block: no node-side cap

    def __init__(
        self,
        chain_dir: Path,
        genesis: GenesisSpec,
        *,
        fixed_gas_limit: int,
        read_only: bool = False,
    ) -> None:
        from settlement.chain.kvstore import SqliteKeyValueStore

        self.read_only = read_only
        self.fixed_gas_limit = fixed_gas_limit
        self._lock = threading.RLock()
        self._lock_file: IO[str] | None = None
        self._store: Any = None
        db_path = chain_dir / CHAIN_DB_FILE
        if read_only:
            if not db_path.exists():
                raise ChainStateError(f"no embedded chain at {db_path}")
        else:
            chain_dir.mkdir(parents=True, exist_ok=True)
            self._lock_file = _exclusive_lock(chain_dir / LOCK_FILE)
        try:
            self._store = SqliteKeyValueStore(db_path, read_only=read_only)
            base_db = cast(AtomicDatabaseAPI, AtomicDB(self._store))
            cls = chain_class(genesis.chain_id)
            if _has_chain(base_db):
                self._chain = cls(base_db)
                log.info(
                    "embedded chain reopened at block %d (%s)",
                    self._chain.get_canonical_head().block_number,
                    db_path,
                )
            elif read_only:
                raise ChainStateError(f"{db_path} holds no chain")
            else:
                self._chain = cast(
                    MiningChain,
                    cls.from_genesis(base_db, _genesis_params(genesis), _genesis_state(genesis)),
                )
                self._store.commit()
                log.info("embedded chain created (chain id %d) in %s", genesis.chain_id, db_path)
            self._chain_id = genesis.chain_id
            self._backend = PersistentPyEVMBackend(self._chain, self._store)
            tester = EthereumTester(backend=self._backend, auto_mine_transactions=True)
            self.w3 = Web3(EmbeddedProvider(tester, genesis.chain_id, self._lock))
        except BaseException:
            self.close()
            raise

    @property
    def chain(self) -> MiningChain:
        return self._chain

    @property
    def store_commits(self) -> int:
        return self._store.commits

    def write_lock(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock

    def read_lock(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock

    def chain_id(self) -> int:
        return self._chain_id

    def block_hash(self, number: int) -> str:
        with self._lock:
            return encode_hex(self._chain.get_canonical_block_hash(BlockNumber(number)))

    def gas_used(self, tx_hash: str, block_number: int) -> int:
        """From the block's receipts directly (eth-tester's receipt lookup scans back from
        the head, slow for an old transaction)."""
        wanted = bytes.fromhex(tx_hash.removeprefix("0x"))
        with self._lock:
            block = self._chain.get_canonical_block_by_number(BlockNumber(block_number))
            receipts = block.get_receipts(self._chain.chaindb)
            previous = 0
            for tx, receipt in zip(block.transactions, receipts, strict=True):
                if tx.hash == wanted:
                    return int(receipt.gas_used - previous)
                previous = receipt.gas_used
        raise ChainStateError(f"transaction {tx_hash} is not in block {block_number}")

    def head_block_number(self) -> int:
        with self._lock:
            return int(self._chain.get_canonical_head().block_number)

    def fee_fields(self, priority_fee_wei: int) -> dict[str, int]:
        # The block being built is the one the transaction goes into: its base fee, read
        # from py-evm directly (a web3 block query costs more than it is worth here).
        with self._lock:
            base_fee = int(self._chain.header.base_fee_per_gas or 0)
        return {
            "maxPriorityFeePerGas": priority_fee_wei,
            "maxFeePerGas": 2 * base_fee + priority_fee_wei,
        }

    def send_raw_transaction(self, raw: bytes) -> str:
        """Applies the transaction and mines its block (committed to disk) at once.

        Straight to the eth-tester backend: the web3 and eth-tester layers in between only
        reformat, and cost a fifth of the time of a transaction here.
        """
        if self.read_only:
            raise ChainStateError("the embedded chain is open read-only")
        with self._lock:
            try:
                tx_hash = self._backend.send_raw_transaction(raw)
            except EthValidationError as error:  # e.g. the sender cannot pay for the gas
                raise TransactionRejected(str(error)) from error
            self._backend.mine_blocks()
            return encode_hex(tx_hash)

    def wait_for_receipt(self, tx_hash: str, raw: bytes, timeout_s: float) -> dict[str, Any]:
        """Mined on send, so the receipt exists already (and is final: no forks here). Read
        from the head block directly; eth-tester's own look-up scans back from the head."""
        wanted = bytes.fromhex(tx_hash.removeprefix("0x"))
        with self._lock:
            block = self._chain.get_canonical_block_by_number(
                self._chain.get_canonical_head().block_number
            )
            receipts = block.get_receipts(self._chain.chaindb)
            previous_gas = 0
            for tx, receipt in zip(block.transactions, receipts, strict=True):
                if tx.hash == wanted:
                    created = (
                        contract_address_for(encode_hex(tx.sender), tx.nonce)
                        if tx.to == b""
                        else None
                    )
                    return {
                        "transactionHash": tx.hash,
                        "blockNumber": block.number,
                        "blockHash": block.hash,
                        "status": int.from_bytes(receipt.state_root, "big"),
                        "gasUsed": receipt.gas_used - previous_gas,
                        "contractAddress": created,
                    }
                previous_gas = receipt.gas_used
            return dict(self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]

    def fetch_logs(self, address: str, from_block: int, to_block: int) -> list[RawLog]:
        """Reads receipts straight from py-evm, block by block: O(blocks scanned), unlike
        eth-tester's get_logs which looks each receipt up by scanning back from the head."""
        target = to_canonical_address(address)
        found: list[RawLog] = []
        with self._lock:
            head = self._chain.get_canonical_head().block_number
            for number in range(max(from_block, 0), min(to_block, head) + 1):
                block = self._chain.get_canonical_block_by_number(BlockNumber(number))
                receipts = block.get_receipts(self._chain.chaindb)
                block_hash = encode_hex(block.hash)
                log_index = 0
                for tx_index, (tx, receipt) in enumerate(
                    zip(block.transactions, receipts, strict=True)
                ):
                    for entry in receipt.logs:
                        if entry.address == target:
                            found.append(
                                RawLog(
                                    address=to_checksum_address(entry.address),
                                    topics=tuple(
                                        int_to_big_endian(t).rjust(32, b"\0") for t in entry.topics
                                    ),
                                    data=bytes(entry.data),
                                    block_number=number,
                                    block_hash=block_hash,
                                    tx_hash=encode_hex(tx.hash),
                                    tx_index=tx_index,
                                    log_index=log_index,
                                )
                            )
                        log_index += 1
        return found

    def close(self) -> None:
        store = getattr(self, "_store", None)
        if store is not None:
            with self._lock:
                store.discard()  # nothing is pending between blocks; never half a block
                store.close()
            self._store = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None


def _has_chain(base_db: AtomicDatabaseAPI) -> bool:
    try:
        ChainDB(base_db).get_canonical_head()
    except CanonicalHeadNotFound:
        return False
    return True


def _exclusive_lock(path: Path) -> IO[str]:
    handle = path.open("a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ChainUnavailable(
            f"another process has the embedded chain open ({path}); "
            "open it read-only or stop that process"
        ) from None
    return handle
