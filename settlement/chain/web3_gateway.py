"""`ChainGateway` over web3: one implementation, whatever the transport.

Transactions are built here, signed locally with the operator's key and handed to the
transport; every contract revert, from either backend, becomes one `ChainRevertError`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import (
    encode_hex,
    function_signature_to_4byte_selector,
    keccak,
    to_checksum_address,
)
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from web3.contract import Contract
from web3.exceptions import ContractLogicError, TransactionNotFound

from node_config.chain import PRIORITY_FEE_WEI
from settlement.chain.artifacts import ContractArtifact, load_artifact
from settlement.chain.deployment import (
    DeploymentRecord,
    contract_address_for,
    load_record,
    record_path,
    save_record,
)
from settlement.chain.errors import (
    BatchConflict,
    ChainRevertError,
    ChainStateError,
    ReadOnlyChain,
    RevertDecoder,
    TransactionRejected,
    revert_data_from,
)
from settlement.chain.events import EventDecoder
from settlement.chain.gateway import (
    BatchHeader,
    BatchSubmission,
    ChainConfig,
    ChainEvent,
    Deployment,
    SettlementReceipt,
    Transport,
    TxReceipt,
    currency_code_bytes,
)
from settlement.chain.index_store import EventIndex
from settlement.chain.transport import Transport as TransportImpl

log = logging.getLogger(__name__)

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
REORG_DEPTH_MAX = 64  # blocks re-indexed when the indexed head is no longer canonical
INDEX_CONFLICTS_MAX = 8  # concurrent indexers racing on the same blocks: give up after this
SEND_ATTEMPTS_MAX = 2  # a second try only after the node said our nonce was stale
GAS_ESTIMATE_MARGIN = (5, 4)  # send estimate * 5/4: state can change between estimate and mining


def _abi_type(param: Mapping[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + kind[5:]
    return kind


def _selector_and_types(item: Mapping[str, Any]) -> tuple[bytes, list[str]]:
    types = [_abi_type(i) for i in item["inputs"]]
    return function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})"), types


def _addr(address: str) -> ChecksumAddress:
    return to_checksum_address(address)


class Web3ChainGateway:
    """See `settlement.chain.gateway.ChainGateway` for the contract of each method."""

    def __init__(
        self,
        config: ChainConfig,
        transport: TransportImpl,
        account: LocalAccount | None,
        operator_address: str | None,
        index_engine: Engine | None,
        *,
        owns_engine: bool = False,
    ) -> None:
        self._config = config
        self._t = transport
        self._account = account
        self._operator = operator_address or ZERO_ADDRESS
        self._artifact: ContractArtifact = load_artifact()
        self._reverts = RevertDecoder(self._artifact.abi)
        self._events = EventDecoder(self._artifact.abi)
        # name -> (selector, argument types): encoding calldata with eth-abi directly is
        # several times cheaper than web3's by-name look-up and validation.
        self._functions: dict[str, tuple[bytes, list[str]]] = {
            item["name"]: _selector_and_types(item)
            for item in self._artifact.abi
            if item.get("type") == "function"
        }
        self._contract: Contract | None = None
        self._deployment: Deployment | None = None
        self._nonce: int | None = None
        self._index_engine = index_engine
        self._owns_engine = owns_engine
        self._index: EventIndex | None = None
        self._cursor: tuple[int, str] | None = None  # last indexed (block, hash), cached
        self._index_lock = threading.Lock()
        self._record_path = record_path(config.data_dir / "chain", transport.kind)
        self._priority_fee_wei = (
            PRIORITY_FEE_WEI if config.priority_fee_wei is None else config.priority_fee_wei
        )
        transport.w3.eth.default_account = self._operator  # type: ignore[assignment]

    # ------------------------------------------------------------------ basics
    @property
    def transport(self) -> Transport:
        return self._t.kind

    @property
    def operator_address(self) -> str:
        return self._operator

    @property
    def w3(self) -> Any:
        """The underlying web3 instance (tests, tools). Embedded: every request is locked."""
        return self._t.w3

    @property
    def artifact(self) -> ContractArtifact:
        return self._artifact

    def chain_id(self) -> int:
        return self._t.chain_id()

    def head_block_number(self) -> int:
        return self._t.head_block_number()

    def close(self) -> None:
        self._t.close()
        if self._owns_engine and self._index_engine is not None:
            self._index_engine.dispose()

    def __enter__(self) -> Web3ChainGateway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ deployment
    def deployment(self) -> Deployment | None:
        """The recorded deployment (not checked against the chain; see ensure_deployed)."""
        if self._deployment is not None:
            return self._deployment
        record = load_record(self._record_path)
        if record is None or record.status != "deployed":
            return None
        return record.deployment()

    def ensure_deployed(self) -> Deployment:
        """Reuses the recorded (or configured) contract after checking it is on this chain
        with the expected code; deploys when there is none; resolves a deployment that a
        crash interrupted by looking at the chain."""
        with self._t.write_lock():
            if self._deployment is not None:
                return self._deployment
            if self._config.contract_address:
                return self._use_pinned(self._config.contract_address)
            record = load_record(self._record_path)
            if record is not None:
                self._check_same_chain(record)
                if record.status == "pending":
                    resolved = self._resolve_pending(record)
                    if resolved is not None:
                        return resolved
                else:
                    self._check_code(record.address, record.deployed_bytecode_hash)
                    self._attach(record.deployment())
                    return record.deployment()
            if self._config.read_only:
                raise ChainStateError("no settlement contract recorded for this chain")
            return self.deploy()

    def deploy(self) -> Deployment:
        """Deploys a new SettlementLedger with the operator as admin, settler and funder."""
        self._require_writable()
        with self._t.write_lock():
            operator = self._operator
            data = self._artifact.bytecode + abi_encode(
                ["address", "address", "address"], [operator, operator, operator]
            )
            signed, nonce = self._sign({"data": data})
            record = DeploymentRecord(
                status="pending",
                chain_id=self.chain_id(),
                genesis_hash=self._t.genesis_hash(),
                address=contract_address_for(operator, nonce),
                tx_hash=encode_hex(signed.hash),
                deployer=operator,
                nonce=nonce,
                deployed_bytecode_hash=encode_hex(self._artifact.deployed_bytecode_hash),
            )
            save_record(self._record_path, record)
            receipt = self._broadcast(signed, nonce, {"data": data})
            return self._finish_deployment(record, receipt)

    def _finish_deployment(self, record: DeploymentRecord, receipt: dict[str, Any]) -> Deployment:
        address = to_checksum_address(receipt["contractAddress"])
        assert address == record.address, "CREATE address differs from the predicted one"
        done = DeploymentRecord(
            **{
                **record.__dict__,
                "status": "deployed",
                "block_number": int(receipt["blockNumber"]),
                "block_hash": encode_hex(receipt["blockHash"]),
            }
        )
        save_record(self._record_path, done)
        log.info("settlement contract deployed at %s (block %d)", address, done.block_number)
        self._attach(done.deployment())
        return done.deployment()

    def _resolve_pending(self, record: DeploymentRecord) -> Deployment | None:
        """A crash came between recording a deployment and recording its block: find out
        from the chain whether it happened. None: it did not (deploy anew)."""
        code = self._t.w3.eth.get_code(_addr(record.address))
        if not code:
            if self._t.kind == "embedded":
                return None  # no pool: not mined means never sent
            mined_nonce = self._t.w3.eth.get_transaction_count(_addr(record.deployer), "latest")
            if mined_nonce > record.nonce:
                return None  # the nonce went to another transaction, or the deploy failed
            try:
                self._t.w3.eth.get_transaction(record.tx_hash)  # type: ignore[arg-type]
            except TransactionNotFound:
                return None  # never sent, or dropped from the pool
        # Mined, or still in the node's pool: wait for it.
        receipt = self._t.wait_for_receipt(record.tx_hash, b"", self._config.receipt_timeout_s)
        if int(receipt["status"]) != 1:
            return None
        return self._finish_deployment(record, receipt)

    def _use_pinned(self, address: str) -> Deployment:
        address = to_checksum_address(address)
        self._check_code(address, encode_hex(self._artifact.deployed_bytecode_hash))
        record = load_record(self._record_path)
        if record is not None and record.status == "deployed" and record.address == address:
            deployment = record.deployment()
        else:  # deployment block unknown: index from genesis
            deployment = Deployment(
                chain_id=self.chain_id(),
                address=address,
                block_number=0,
                block_hash=self._t.genesis_hash(),
                tx_hash="",
                deployer="",
                deployed_bytecode_hash=encode_hex(self._artifact.deployed_bytecode_hash),
            )
        self._attach(deployment)
        return deployment

    def _check_same_chain(self, record: DeploymentRecord) -> None:
        genesis = self._t.genesis_hash()
        if record.chain_id != self.chain_id() or record.genesis_hash != genesis:
            raise ChainStateError(
                f"{self._record_path} records a deployment on chain {record.chain_id} "
                f"(genesis {record.genesis_hash}), but this node is chain {self.chain_id()} "
                f"(genesis {genesis}): the chain was reset or the data dir belongs elsewhere"
            )

    def _check_code(self, address: str, expected_hash: str) -> None:
        code = bytes(self._t.w3.eth.get_code(_addr(address)))
        if not code:
            raise ChainStateError(f"no contract at {address} on this chain")
        if encode_hex(keccak(code)) != expected_hash:
            raise ChainStateError(f"the code at {address} is not the expected SettlementLedger")
        if expected_hash != encode_hex(self._artifact.deployed_bytecode_hash):
            raise ChainStateError(
                f"the contract at {address} was built from another artifact than "
                "contracts/artifacts/SettlementLedger.json: deploy anew"
            )

    def _attach(self, deployment: Deployment) -> None:
        self._deployment = deployment
        self._contract = self._t.w3.eth.contract(
            address=_addr(deployment.address), abi=self._artifact.abi
        )
        if self._index_engine is not None:
            self._index = EventIndex(self._index_engine, deployment.chain_id, deployment.address)

    def _require_contract(self) -> Contract:
        if self._contract is None:
            raise ChainStateError("no settlement contract attached: call ensure_deployed()")
        return self._contract

    def _require_writable(self) -> LocalAccount:
        if self._config.read_only or self._account is None:
            raise ReadOnlyChain("this gateway was opened read-only")
        return self._account

    # ------------------------------------------------------------------ transactions
    def _next_nonce(self) -> int:
        # The embedded chain has a single writer (the lock file): ask once, then count.
        if self._nonce is None or self._t.kind != "embedded":
            pending = int(self._t.w3.eth.get_transaction_count(_addr(self._operator), "pending"))
            self._nonce = max(pending, self._nonce or 0)
        return self._nonce

    def _sign(self, tx: dict[str, Any]) -> tuple[Any, int]:
        account = self._require_writable()
        nonce = self._next_nonce()
        full = {
            **tx,
            "from": self._operator,
            "value": 0,
            "chainId": self.chain_id(),
            "nonce": nonce,
            **self._t.fee_fields(self._priority_fee_wei),
        }
        if self._t.fixed_gas_limit is not None:
            full["gas"] = self._t.fixed_gas_limit
        else:
            try:
                estimate = int(self._t.w3.eth.estimate_gas(full))  # type: ignore[arg-type]
            except ContractLogicError as error:
                raise self._decode(error) from None
            numerator, denominator = GAS_ESTIMATE_MARGIN
            full["gas"] = estimate * numerator // denominator
        full.pop("from")
        return account.sign_transaction(full), nonce

    def _broadcast(self, signed: Any, nonce: int, tx: dict[str, Any]) -> dict[str, Any]:
        """Sends, waits for the receipt (and confirmations) and raises on a revert."""
        raw = bytes(signed.raw_transaction)
        tx_hash = self._t.send_raw_transaction(raw)
        self._nonce = nonce + 1
        receipt = self._t.wait_for_receipt(tx_hash, raw, self._config.receipt_timeout_s)
        if int(receipt["status"]) != 1:
            raise self._replay_revert(tx, receipt, tx_hash)
        return receipt

    def _transact(self, function: str, *args: Any) -> dict[str, Any]:
        contract = self._require_contract()
        selector, types = self._functions[function]
        tx = {"to": contract.address, "data": selector + abi_encode(types, list(args))}
        with self._t.write_lock():
            for attempt in range(SEND_ATTEMPTS_MAX):
                signed, nonce = self._sign(tx)
                try:
                    receipt = self._broadcast(signed, nonce, tx)
                    break
                except TransactionRejected as error:
                    if not error.stale_nonce or attempt == SEND_ATTEMPTS_MAX - 1:
                        raise
                    self._nonce = None  # someone else used our nonce: ask the node again
        if self._config.index_events:
            self.index_events()
        return receipt

    def _replay_revert(
        self, tx: dict[str, Any], receipt: dict[str, Any], tx_hash: str
    ) -> ChainRevertError:
        """A mined transaction failed: run it again as a call on the state before its block
        to learn the contract's error."""
        call = {**tx, "from": self._operator, "gas": int(receipt["gasUsed"]) * 2 + 100_000}
        try:
            self._t.w3.eth.call(call, int(receipt["blockNumber"]) - 1)  # type: ignore[arg-type]
        except ContractLogicError as error:
            return self._decode(error, tx_hash)
        return ChainRevertError("unknown", {}, b"", tx_hash)

    def _decode(self, error: BaseException, tx_hash: str | None = None) -> ChainRevertError:
        data = revert_data_from(error)
        return self._reverts.decode(data or b"", tx_hash)

    def _call(self, function: str, *args: Any) -> Any:
        contract = self._require_contract()
        with self._t.read_lock():
            try:
                return getattr(contract.functions, function)(*args).call()
            except ContractLogicError as error:
                raise self._decode(error) from None

    @staticmethod
    def _receipt(receipt: dict[str, Any]) -> TxReceipt:
        return TxReceipt(
            tx_hash=encode_hex(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"]),
            block_hash=encode_hex(receipt["blockHash"]),
            gas_used=int(receipt["gasUsed"]),
        )

    # ------------------------------------------------------------------ participants, funding
    def register_participant(self, participant: str) -> TxReceipt:
        return self._receipt(
            self._transact("registerParticipant", to_checksum_address(participant))
        )

    def is_participant(self, participant: str) -> bool:
        return bool(self._call("isParticipant", to_checksum_address(participant)))

    def fund(
        self, participant: str, currency: str, amount_minor: int, reference: bytes | None = None
    ) -> TxReceipt:
        """Deposits into a settlement balance. Pass a stable 32-byte `reference` to make a
        retry safe: the contract accepts each reference once (else one is drawn at random)."""
        return self._movement("deposit", participant, currency, amount_minor, reference)

    def withdraw(
        self, participant: str, currency: str, amount_minor: int, reference: bytes | None = None
    ) -> TxReceipt:
        return self._movement("withdraw", participant, currency, amount_minor, reference)

    def _movement(
        self,
        function: str,
        participant: str,
        currency: str,
        amount_minor: int,
        reference: bytes | None,
    ) -> TxReceipt:
        if type(amount_minor) is not int:
            raise TypeError("amount_minor must be an int (minor units)")
        ref = os.urandom(32) if reference is None else reference
        if len(ref) != 32:
            raise ValueError("reference must be 32 bytes")
        return self._receipt(
            self._transact(
                function,
                to_checksum_address(participant),
                currency_code_bytes(currency),
                amount_minor,
                ref,
            )
        )

    def reference_used(self, reference: bytes) -> bool:
        return bool(self._call("isReferenceUsed", reference))

    def settlement_balance(self, participant: str, currency: str) -> int:
        return int(
            self._call(
                "settlementBalance", to_checksum_address(participant), currency_code_bytes(currency)
            )
        )

    # ------------------------------------------------------------------ settlement
    def settle_batch(self, submission: BatchSubmission) -> SettlementReceipt:
        """Settles a batch exactly once. If the same batch (same number and hash) is already
        on chain, e.g. sent before a crash, returns its receipt with already_settled=True;
        a different batch under that number raises BatchConflict."""
        self._require_writable()
        with self._t.write_lock():
            done = self._settled_as(submission)
            if done is not None:
                return done
            try:
                receipt = self._transact(
                    "settleBatch",
                    submission.number,
                    submission.transfers_root,
                    submission.balances_root,
                    submission.prev_batch_hash,
                    submission.transfer_count,
                    [p.as_abi() for p in submission.positions],
                )
            except ChainRevertError as revert:
                if revert.error_name == "SettlementLedgerWrongBatchNumber":
                    done = self._settled_as(submission)  # a lost earlier attempt got mined
                    if done is not None:
                        return done
                raise
        tx = self._receipt(receipt)
        return SettlementReceipt(
            **tx.__dict__,
            batch_number=submission.number,
            batch_hash=submission.batch_hash,
            already_settled=False,
        )

    def _settled_as(self, submission: BatchSubmission) -> SettlementReceipt | None:
        header = self.batch(submission.number)
        if header is None:
            return None
        if header.batch_hash != submission.batch_hash:
            raise BatchConflict(submission.number, header.batch_hash, submission.batch_hash)
        found = self._batch_receipt(header)
        return SettlementReceipt(**{**found.__dict__, "already_settled": True})

    def batch(self, number: int) -> BatchHeader | None:
        """The header of batch `number` as the contract stores it (read at the latest
        block), or None if not settled: the reliable answer to "was batch N settled?"."""
        if number < 1:
            return None
        try:
            raw = self._call("batchHeader", number)
        except ChainRevertError as revert:
            if revert.error_name == "SettlementLedgerUnknownBatch":
                return None
            raise
        (
            n,
            transfer_count,
            block_number,
            timestamp,
            transfers,
            balances,
            prev,
            positions,
            batch_hash,
        ) = raw
        return BatchHeader(
            number=int(n),
            transfers_root=bytes(transfers),
            balances_root=bytes(balances),
            prev_batch_hash=bytes(prev),
            batch_hash=bytes(batch_hash),
            transfer_count=int(transfer_count),
            positions_hash=bytes(positions),
            block_number=int(block_number),
            timestamp=int(timestamp),
        )

    def batch_receipt(self, number: int) -> SettlementReceipt | None:
        """Where batch `number` was settled: its transaction, block and gas."""
        header = self.batch(number)
        return None if header is None else self._batch_receipt(header)

    def _batch_receipt(self, header: BatchHeader) -> SettlementReceipt:
        tx_hash = block_hash = None
        if self._index is not None:
            self.index_events()
            indexed = self._index.batch(header.number)
            if indexed is not None:
                tx_hash, block_hash = indexed.tx_hash, indexed.block_hash
        if tx_hash is None:
            contract = self._require_contract()
            for raw in self._t.fetch_logs(
                contract.address, header.block_number, header.block_number
            ):
                event = self._events.decode(raw)
                if event and event.name == "BatchSettled" and event.args["number"] == header.number:
                    tx_hash, block_hash = event.tx_hash, event.block_hash
        if tx_hash is None or block_hash is None:
            raise ChainStateError(f"no BatchSettled log for batch {header.number}")
        return SettlementReceipt(
            tx_hash=tx_hash,
            block_number=header.block_number,
            block_hash=block_hash,
            gas_used=self._t.gas_used(tx_hash, header.block_number),
            batch_number=header.number,
            batch_hash=header.batch_hash,
            already_settled=True,
        )

    def last_batch_number(self) -> int:
        return int(self._call("lastBatchNumber"))

    def last_batch_hash(self) -> bytes:
        return bytes(self._call("lastBatchHash"))

    def verify_transfer(self, batch_number: int, leaf: bytes, proof: Sequence[bytes]) -> bool:
        return bool(self._call("verifyTransfer", batch_number, leaf, list(proof)))

    # ------------------------------------------------------------------ incident response
    def pause(self) -> TxReceipt:
        return self._receipt(self._transact("pause"))

    def unpause(self) -> TxReceipt:
        return self._receipt(self._transact("unpause"))

    def paused(self) -> bool:
        return bool(self._call("paused"))

    def has_role(self, role: str, account: str) -> bool:
        """role: "admin", "settler" or "funder"."""
        return bool(self._call("hasRole", self._role_id(role), to_checksum_address(account)))

    def grant_role(self, role: str, account: str) -> TxReceipt:
        return self._receipt(
            self._transact("grantRole", self._role_id(role), to_checksum_address(account))
        )

    @staticmethod
    def _role_id(role: str) -> bytes:
        ids = {
            "admin": bytes(32),
            "settler": keccak(text="SETTLER_ROLE"),
            "funder": keccak(text="FUNDER_ROLE"),
        }
        if role not in ids:
            raise ValueError(f"unknown role {role!r}: admin, settler or funder")
        return ids[role]

    # ------------------------------------------------------------------ events
    def index_events(self) -> int:
        """Scans the blocks mined since the last scan (up to the confirmed head) and stores
        the contract's events; returns how many were added. Cheap when nothing is new."""
        if self._index is None or self._deployment is None:
            return 0
        index, deployment = self._index, self._deployment
        # Lock order: transport, then index (the embedded transport's lock is also its
        # write lock, held by a writer that indexes after its transaction).
        with self._t.read_lock(), self._index_lock:
            safe_head = self._t.head_block_number() - (self._t.confirmations - 1)
            cursor = self._cursor if self._cursor is not None else index.cursor()
            if cursor is not None and cursor[0] >= safe_head:
                self._cursor = cursor
                return 0
            if cursor is not None and self._t.kind != "embedded":  # no forks on embedded
                cursor = self._unwind_if_reorganised(index, deployment, cursor)
            start = deployment.block_number if cursor is None else cursor[0] + 1
            added = 0
            conflicts = 0
            while start <= safe_head:
                end = min(safe_head, start + self._t.log_range_max - 1)
                raws = self._t.fetch_logs(deployment.address, start, end)
                events = [e for e in (self._events.decode(r) for r in raws) if e is not None]
                end_hash = self._t.block_hash(end)
                try:
                    index.record(events, end, end_hash)
                except IntegrityError:
                    # Another process indexed these blocks first: go on from its cursor.
                    conflicts += 1
                    if conflicts > INDEX_CONFLICTS_MAX:
                        raise
                    log.info("blocks %d-%d were indexed concurrently", start, end)
                    cursor = index.cursor()
                    start = deployment.block_number if cursor is None else cursor[0] + 1
                    continue
                self._cursor = (end, end_hash)
                added += len(events)
                start = end + 1
            return added

    def _unwind_if_reorganised(
        self, index: EventIndex, deployment: Deployment, cursor: tuple[int, str]
    ) -> tuple[int, str] | None:
        if self._t.block_hash(cursor[0]) == cursor[1]:
            return cursor
        restart = max(deployment.block_number, cursor[0] - REORG_DEPTH_MAX, 1)
        log.warning(
            "indexed block %d is no longer canonical: re-indexing from %d", cursor[0], restart
        )
        index.forget_from(restart, self._t.block_hash(restart - 1))
        self._cursor = None
        return index.cursor()

    def events_since(self, block_number: int, limit: int = 1000) -> list[ChainEvent]:
        """Contract events from `block_number` on, in chain order, at most `limit`."""
        if self._index is not None:
            self.index_events()
            return self._index.events_since(block_number, limit)
        contract = self._require_contract()
        end = min(self.head_block_number(), block_number + self._t.log_range_max - 1)
        raws = self._t.fetch_logs(contract.address, block_number, end)
        events = [e for e in (self._events.decode(r) for r in raws) if e is not None]
        return events[:limit]


def chain_dir(config: ChainConfig) -> Path:
    return config.data_dir / "chain"
