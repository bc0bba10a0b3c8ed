"""Audit: a transfer's Merkle proof against its settled batch, and a batch's export.

What is handed out here is exactly what docs/AUDIT.md documents (`TransferProof.to_json`,
the export directory's three files), so an auditor can check it with
`@openzeppelin/merkle-tree`, the contract's `verifyTransfer`, or `corridor verify`, against
the root read from the chain rather than from this API.

The helpers at the top (reading the chain, rebuilding a settled batch, building a proof) are
shared with the command line (api/cli_settlement.py).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from api.auth import CorridorDep, Principal, Reader, require
from api.auth_store import Role
from api.context import Corridor
from api.problems import ApiError
from settlement.audit.export import BatchExport, TransferProof
from settlement.audit.leaves import TransferLeaf, transfer_leaves_of
from settlement.batches import Window, WindowStatus, get_window, rebuild_batch
from settlement.chain import ChainError, ChainGateway, ChainRevertError, open_gateway
from settlement.db import read_transaction
from settlement.ledger.model import Transfer
from settlement.merkle import StandardMerkleTree

router = APIRouter(prefix="/v1/audit", tags=["audit"])

AuditorOrOperator = Annotated[Principal, Depends(require(Role.OPERATOR, Role.AUDITOR))]

EXPORT_CACHE_BATCHES_MAX: Final = 8
"""Rebuilt batches kept per database for proofs (a 10,000-transfer batch is a few MB)."""


# ---------------------------------------------------------------------- shared helpers


def chain_error(error: ChainError) -> ApiError:
    """A chain failure as a problem: a revert is the request's fault, the rest the chain's."""
    if isinstance(error, ChainRevertError):
        return ApiError("chain_revert", str(error), 422)
    return ApiError(error.code, f"the chain cannot be reached or read: {error}", 503)


@contextmanager
def reading_chain(corridor: Corridor, *, read_only: bool = False) -> Iterator[ChainGateway]:
    """A gateway to read the chain with, from any process.

    The leader (or any process, on a JSON-RPC chain) reads through its own gateway. Another
    process on the embedded chain must not open it for writing (one writer per data dir),
    so it opens the chain read-only for the call: a reader never blocks the writer.
    `read_only`: always open a read-only gateway (a one-shot command: no key to decrypt).
    """
    try:
        if not read_only and (not corridor.chain_is_local() or corridor.leader.held):
            yield corridor.chain()
            return
        config = replace(corridor.chain_config, read_only=True, index_events=False)
        gateway = open_gateway(config)
        try:
            gateway.ensure_deployed()
            yield gateway
        finally:
            gateway.close()
    except ChainError as error:
        raise chain_error(error) from None


@dataclass(frozen=True)
class BuiltBatch:
    """A settled batch rebuilt from the ledger, with its transfers tree loaded once and
    each transfer's value index, so that a proof costs one `get_proof`."""

    export: BatchExport
    tree: StandardMerkleTree
    leaves: tuple[TransferLeaf, ...]
    index: Mapping[str, int]

    @classmethod
    def of(cls, export: BatchExport) -> BuiltBatch:
        tree = export.transfers_tree()
        leaves = tuple(transfer_leaves_of(tree))
        return cls(export, tree, leaves, {leaf.transfer_id: i for i, leaf in enumerate(leaves)})


class _BatchCache:
    """The last few rebuilt batches (LRU). A settled window never changes, so a rebuilt
    batch stays valid; reconciliation always rebuilds afresh, so tampering is still seen."""

    def __init__(self) -> None:
        self._items: OrderedDict[int, BuiltBatch] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, number: int) -> BuiltBatch | None:
        with self._lock:
            found = self._items.get(number)
            if found is not None:
                self._items.move_to_end(number)
            return found

    def put(self, number: int, built: BuiltBatch) -> None:
        with self._lock:
            self._items[number] = built
            self._items.move_to_end(number)
            while len(self._items) > EXPORT_CACHE_BATCHES_MAX:
                self._items.popitem(last=False)


_caches: weakref.WeakKeyDictionary[Engine, _BatchCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_of(engine: Engine) -> _BatchCache:
    with _caches_lock:
        cache = _caches.get(engine)
        if cache is None:
            cache = _caches[engine] = _BatchCache()
        return cache


def settled_window(engine: Engine, number: int) -> Window:
    """Window ``number``, which must be settled (404 batch_not_found, 409 not_settled)."""
    window = get_window(engine, number)
    if window is None:
        raise ApiError("batch_not_found", f"no settlement window {number}", 404)
    if window.status is not WindowStatus.SETTLED:
        raise ApiError(
            "not_settled",
            f"window {number} is {window.status.value}, not settled yet",
            409,
            window=number,
            window_status=window.status.value,
        )
    return window


def transfer_window(engine: Engine, transfer: Transfer) -> Window:
    """The settled window of a transfer (409 not_settled while it is not)."""
    if transfer.window_number is None:
        raise ApiError(
            "not_settled",
            f"transfer {transfer.id} is {transfer.status.value} and in no settlement window",
            409,
            window=None,
            window_status=None,
        )
    window = get_window(engine, transfer.window_number)
    assert window is not None, f"transfer {transfer.id} names a window that does not exist"
    if window.status is not WindowStatus.SETTLED:
        raise ApiError(
            "not_settled",
            f"transfer {transfer.id} is in window {window.number}, which is "
            f"{window.status.value}, not settled yet",
            409,
            window=window.number,
            window_status=window.status.value,
        )
    return window


def settled_batch(engine: Engine, window: Window, *, cached: bool = True) -> BuiltBatch:
    """A settled window's batch rebuilt from the ledger (the last few are cached)."""
    cache = _cache_of(engine)
    built = cache.get(window.number) if cached else None
    if built is None:
        with read_transaction(engine) as conn:
            built = BuiltBatch.of(rebuild_batch(conn, window.number))
        if cached:
            cache.put(window.number, built)
    return built


def settled_export(engine: Engine, window: Window, *, cached: bool = True) -> BatchExport:
    """A settled window's batch rebuilt from the ledger, not yet stamped with the chain."""
    return settled_batch(engine, window, cached=cached).export


def _stamp(export: BatchExport, window: Window, gateway: ChainGateway) -> BatchExport:
    deployment = gateway.deployment()
    assert deployment is not None, "an attached gateway has a deployment"
    assert window.tx_hash is not None and window.block_number is not None
    return export.with_chain(
        chain_id=deployment.chain_id,
        contract_address=deployment.address,
        chain_tx_hash=window.tx_hash,
        block_number=window.block_number,
    )


def stamped_export(engine: Engine, window: Window, gateway: ChainGateway) -> BatchExport:
    """The rebuilt batch, stamped with where it was settled (chain, contract, tx, block)."""
    return _stamp(settled_export(engine, window), window, gateway)


def proof_document(
    engine: Engine, transfer: Transfer, gateway: ChainGateway
) -> tuple[TransferProof, dict[str, Any]]:
    """A settled transfer's proof and the JSON document the API and the CLI hand out:
    docs/AUDIT.md's proof format, plus the transfer id, where the batch lives and whether
    the contract's own `verifyTransfer` view accepts the proof."""
    window = transfer_window(engine, transfer)
    built = settled_batch(engine, window)
    export = _stamp(built.export, window, gateway)
    position = built.index.get(transfer.id)
    assert position is not None, f"transfer {transfer.id} has no leaf in batch {window.number}"
    proof = TransferProof(
        batch_number=export.batch_number,
        leaf=built.leaves[position],
        proof=tuple(built.tree.get_proof(position)),
        transfers_root=built.tree.root,
        leaf_schema_version=export.leaf_schema_version,
        chain_tx_hash=export.chain_tx_hash,
        block_number=export.block_number,
    )
    accepted = gateway.verify_transfer(
        proof.batch_number,
        bytes.fromhex(proof.leaf_hash.removeprefix("0x")),
        [bytes.fromhex(p.removeprefix("0x")) for p in proof.proof],
    )
    document = {
        "transferId": transfer.id,
        **proof.to_json(),
        "chainId": export.chain_id,
        "contractAddress": export.contract_address,
        "verifiedOnChain": accepted,
    }
    return proof, document


# ---------------------------------------------------------------------------- schemas


class TransferProofOut(BaseModel):
    """docs/AUDIT.md's proof document (field names as there), with where to check it."""

    transferId: str  # the documented wire format: camelCase
    batchNumber: int
    leafSchemaVersion: int
    leafEncoding: list[str]
    leaf: list[str] = Field(description="Leaf values; integers as decimal strings")
    leafHash: str
    proof: list[str]
    transfersRoot: str
    chainTxHash: str | None
    blockNumber: int | None
    chainId: int | None
    contractAddress: str | None
    verifiedOnChain: bool = Field(
        description="The settlement contract's `verifyTransfer` view accepted this proof"
    )


class BatchExportOut(BaseModel):
    """The export directory's three files as one document."""

    batch: dict[str, Any] = Field(description="batch.json: header, positions, chain location")
    transfers: dict[str, Any] = Field(description="transfers.json: OZ standard-v1 dump")
    balances: dict[str, Any] = Field(description="balances.json: OZ standard-v1 dump")


# ---------------------------------------------------------------------------- routes


@router.get("/transfers/{transfer_id}/proof", response_model=TransferProofOut)
def transfer_proof(transfer_id: str, who: Reader, corridor: CorridorDep) -> dict[str, Any]:
    """The Merkle proof of a settled transfer in its batch, and where the batch is on chain.

    Participants get proofs of the transfers they sent or received. Check the proof against
    the root read from the chain (`batchHeader(batchNumber).transfersRoot`), not this one.
    409 `not_settled` while the transfer's window is not settled yet.
    """
    transfer = corridor.ledger.get_transfer(transfer_id)
    if not (
        who.may_read_participant(transfer.debit_participant_id)
        or who.may_read_participant(transfer.credit_participant_id)
    ):
        raise ApiError("transfer_not_found", f"no transfer {transfer_id}", 404)
    transfer_window(corridor.engine, transfer)  # 409 before touching the chain
    with reading_chain(corridor) as gateway:
        _, document = proof_document(corridor.engine, transfer, gateway)
    return document


@router.get("/batches/{number}/export", response_model=BatchExportOut)
def batch_export(number: int, who: AuditorOrOperator, corridor: CorridorDep) -> BatchExportOut:
    """A settled batch as `corridor audit export` writes it: batch.json, transfers.json and
    balances.json in one object (the dumps load with `StandardMerkleTree.load`)."""
    window = settled_window(corridor.engine, number)
    with reading_chain(corridor) as gateway:
        export = stamped_export(corridor.engine, window, gateway)
    return BatchExportOut(
        batch=export.header(),
        transfers=dict(export.transfers_dump),
        balances=dict(export.balances_dump),
    )
