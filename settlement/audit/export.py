"""A settled batch as files an auditor can check with standard tools.

An export directory holds:

* ``transfers.json``: the transfers tree, in ``@openzeppelin/merkle-tree``'s
  ``standard-v1`` dump format (``StandardMerkleTree.load`` in JavaScript reproduces it);
* ``balances.json``: the balances tree, same format;
* ``batch.json``: the header: batch number, leaf schema version, both roots, previous
  batch hash, batch hash, transfer count, net positions with participant addresses, the
  participant-id to address map, and where the batch was settled (chain id, contract,
  transaction, block).

docs/AUDIT.md describes every field. Reading keeps the two dumps as raw JSON, so that a
tampered file still reads and the verifier can say precisely what is wrong with it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from eth_utils import is_address, to_checksum_address

from settlement.audit.commitment import batch_hash
from settlement.audit.leaves import (
    LEAF_SCHEMA_VERSION,
    BalanceLeaf,
    LeafError,
    NetPosition,
    TransferLeaf,
    balance_leaves_of,
    build_balances_tree,
    build_transfers_tree,
    compute_net_positions,
    transfer_leaf_encoding,
    transfer_leaves_of,
)
from settlement.merkle import StandardMerkleTree, leaf_codec, to_hex

__all__ = [
    "BALANCES_FILE",
    "BATCH_FILE",
    "BATCH_FORMAT",
    "EXPORT_FILE_BYTES_MAX",
    "TRANSFERS_FILE",
    "BatchExport",
    "ExportError",
    "TransferProof",
    "build_batch_export",
    "parse_batch_header",
    "read_batch_export",
    "transfer_proofs",
    "write_batch_export",
]

BATCH_FORMAT: Final = "corridor-batch-v1"
TRANSFERS_FILE: Final = "transfers.json"
BALANCES_FILE: Final = "balances.json"
BATCH_FILE: Final = "batch.json"
EXPORT_FILE_BYTES_MAX: Final = 1 << 30
"""Largest export file read (1 GiB; a 100,000-transfer dump is about 30 MB)."""

_HASH_RE: Final = re.compile(r"^0x[0-9a-fA-F]{64}$")


class ExportError(ValueError):
    """An export that cannot be read or built (stable ``code``, message naming the file)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BatchExport:
    """One settled batch, as exported. Hashes are ``0x`` hex; dumps are raw JSON."""

    batch_number: int
    leaf_schema_version: int
    transfers_root: str
    balances_root: str
    prev_batch_hash: str
    batch_hash: str
    transfer_count: int
    net_positions: tuple[NetPosition, ...]
    participants: Mapping[str, str]
    """participant id -> on-chain address, for every participant in the batch's leaves."""
    transfers_dump: Mapping[str, Any] = field(repr=False)
    balances_dump: Mapping[str, Any] = field(repr=False)
    chain_id: int | None = None
    contract_address: str | None = None
    chain_tx_hash: str | None = None
    block_number: int | None = None

    def header(self) -> dict[str, Any]:
        """The ``batch.json`` document. Integers that can exceed 2**53 are strings."""
        return {
            "format": BATCH_FORMAT,
            "batchNumber": self.batch_number,
            "leafSchemaVersion": self.leaf_schema_version,
            "transfersRoot": self.transfers_root,
            "balancesRoot": self.balances_root,
            "prevBatchHash": self.prev_batch_hash,
            "batchHash": self.batch_hash,
            "transferCount": self.transfer_count,
            "netPositions": [
                {
                    "participant": p.participant,
                    "participantAddress": p.participant_address,
                    "currency": p.currency,
                    "amountMinor": str(p.amount_minor),
                }
                for p in self.net_positions
            ],
            "participants": dict(sorted(self.participants.items())),
            "chainId": self.chain_id,
            "contractAddress": self.contract_address,
            "chainTxHash": self.chain_tx_hash,
            "blockNumber": self.block_number,
        }

    def transfers_tree(self) -> StandardMerkleTree:
        """The transfers tree, loaded and validated as OZ does (MerkleTreeError if bad)."""
        return StandardMerkleTree.load(self.transfers_dump)

    def balances_tree(self) -> StandardMerkleTree:
        return StandardMerkleTree.load(self.balances_dump)

    def transfer_leaves(self) -> list[TransferLeaf]:
        return transfer_leaves_of(self.transfers_tree())

    def balance_leaves(self) -> list[BalanceLeaf]:
        return balance_leaves_of(self.balances_tree())

    def with_chain(
        self, *, chain_id: int, contract_address: str, chain_tx_hash: str, block_number: int
    ) -> BatchExport:
        """The same export, stamped with where the batch was settled."""
        return replace(
            self,
            chain_id=chain_id,
            contract_address=to_checksum_address(contract_address),
            chain_tx_hash=chain_tx_hash.lower(),
            block_number=block_number,
        )


def build_batch_export(
    *,
    batch_number: int,
    transfers: Sequence[TransferLeaf],
    balances: Sequence[BalanceLeaf],
    prev_batch_hash: str,
    participant_addresses: Mapping[str, str],
    chain_id: int | None = None,
    contract_address: str | None = None,
    chain_tx_hash: str | None = None,
    block_number: int | None = None,
) -> BatchExport:
    """Builds both trees, the net positions and the batch hash of one batch.

    This is also what the settlement service submits: ``transfers_root``,
    ``balances_root``, ``prev_batch_hash``, ``transfer_count`` and
    ``[p.to_chain() for p in net_positions]`` (already in the contract's order).
    A batch needs at least one transfer and one balance (OZ trees cannot be empty).
    """
    for leaf in balances:
        if leaf.batch_number != batch_number:
            raise ExportError(
                "export.balance_batch_mismatch",
                f"balance leaf {leaf.participant}/{leaf.wallet}/{leaf.currency} is for batch "
                f"{leaf.batch_number}, not {batch_number}",
            )
    transfers_tree = build_transfers_tree(transfers)
    balances_tree = build_balances_tree(balances)
    try:
        positions = tuple(compute_net_positions(transfers, participant_addresses))
    except LeafError as exc:
        raise ExportError(exc.code, exc.message) from None
    named = {t.debit_participant for t in transfers} | {t.credit_participant for t in transfers}
    named |= {b.participant for b in balances}
    participants = {
        p: to_checksum_address(participant_addresses[p])
        for p in sorted(named)
        if p in participant_addresses
    }
    return BatchExport(
        batch_number=batch_number,
        leaf_schema_version=LEAF_SCHEMA_VERSION,
        transfers_root=transfers_tree.root,
        balances_root=balances_tree.root,
        prev_batch_hash=prev_batch_hash.lower(),
        batch_hash=batch_hash(
            number=batch_number,
            transfers_root=transfers_tree.root,
            balances_root=balances_tree.root,
            prev_batch_hash=prev_batch_hash,
            transfer_count=len(transfers),
            positions=[p.to_chain() for p in positions],
        ),
        transfer_count=len(transfers),
        net_positions=positions,
        participants=participants,
        transfers_dump=transfers_tree.dump(),
        balances_dump=balances_tree.dump(),
        chain_id=chain_id,
        contract_address=to_checksum_address(contract_address) if contract_address else None,
        chain_tx_hash=chain_tx_hash.lower() if chain_tx_hash else None,
        block_number=block_number,
    )


# ----------------------------------------------------------------------------- files


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_batch_export(export: BatchExport, out_dir: str | os.PathLike[str]) -> Path:
    """Writes the three files into ``out_dir`` (created if needed); returns the directory.

    The dumps are compact JSON as ``JSON.stringify(tree.dump())`` writes them; batch.json
    is indented for people, and written last, so its presence marks a complete export.
    """
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for name, dump in (
        (TRANSFERS_FILE, export.transfers_dump),
        (BALANCES_FILE, export.balances_dump),
    ):
        _write_atomically(
            directory / name, json.dumps(dump, separators=(",", ":"), ensure_ascii=False)
        )
    _write_atomically(
        directory / BATCH_FILE, json.dumps(export.header(), indent=2, ensure_ascii=False) + "\n"
    )
    return directory


def _read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ExportError("export.missing_file", f"{path} is missing") from None
    if size > EXPORT_FILE_BYTES_MAX:
        raise ExportError(
            "export.file_too_large", f"{path} is {size} bytes, over {EXPORT_FILE_BYTES_MAX}"
        )
    try:
        return json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError("export.invalid_json", f"{path} is not valid JSON: {exc}") from None


def _field(doc: Mapping[str, Any], name: str, kind: str, *, optional: bool = False) -> Any:
    value = doc.get(name)
    if value is None and optional:
        return None
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "hash": isinstance(value, str) and bool(_HASH_RE.match(value)),
        "address": isinstance(value, str) and is_address(value),
        "str": isinstance(value, str),
        "list": isinstance(value, list),
        "dict": isinstance(value, dict),
    }[kind]
    if not ok:
        raise ExportError(
            "export.invalid_header", f"batch.json: {name} is not a valid {kind}: {value!r}"
        )
    return value


def _parse_amount(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    raise ExportError("export.invalid_header", f"batch.json: {where} is not an integer: {value!r}")


def parse_batch_header(
    header: Mapping[str, Any],
    transfers_dump: Mapping[str, Any],
    balances_dump: Mapping[str, Any],
) -> BatchExport:
    """A ``BatchExport`` from the three JSON documents (ExportError when malformed)."""
    if not isinstance(header, Mapping) or header.get("format") != BATCH_FORMAT:
        raise ExportError(
            "export.invalid_header",
            f"batch.json: format is not {BATCH_FORMAT!r}: "
            f"{header.get('format') if isinstance(header, Mapping) else header!r}",
        )
    for name, dump in ((TRANSFERS_FILE, transfers_dump), (BALANCES_FILE, balances_dump)):
        if not isinstance(dump, Mapping):
            raise ExportError("export.invalid_dump", f"{name} is not a JSON object")
    positions = []
    for i, raw in enumerate(_field(header, "netPositions", "list")):
        if not isinstance(raw, dict):
            raise ExportError(
                "export.invalid_header", f"batch.json: netPositions[{i}] is not an object"
            )
        entry: Any = raw
        try:
            positions.append(
                NetPosition(
                    # NetPosition checks the types; a missing key reads as None and fails there.
                    participant=entry.get("participant"),
                    participant_address=entry.get("participantAddress"),
                    currency=entry.get("currency"),
                    amount_minor=_parse_amount(raw.get("amountMinor"), f"netPositions[{i}]"),
                )
            )
        except LeafError as exc:
            raise ExportError(
                "export.invalid_header", f"batch.json: netPositions[{i}]: {exc}"
            ) from None
    participants = _field(header, "participants", "dict")
    for pid, address in participants.items():
        if not isinstance(address, str) or not is_address(address):
            raise ExportError(
                "export.invalid_header",
                f"batch.json: participants[{pid!r}] is not an address: {address!r}",
            )
    contract = _field(header, "contractAddress", "address", optional=True)
    return BatchExport(
        batch_number=_field(header, "batchNumber", "int"),
        leaf_schema_version=_field(header, "leafSchemaVersion", "int"),
        transfers_root=_field(header, "transfersRoot", "hash").lower(),
        balances_root=_field(header, "balancesRoot", "hash").lower(),
        prev_batch_hash=_field(header, "prevBatchHash", "hash").lower(),
        batch_hash=_field(header, "batchHash", "hash").lower(),
        transfer_count=_field(header, "transferCount", "int"),
        net_positions=tuple(positions),
        participants={k: to_checksum_address(v) for k, v in participants.items()},
        transfers_dump=transfers_dump,
        balances_dump=balances_dump,
        chain_id=_field(header, "chainId", "int", optional=True),
        contract_address=to_checksum_address(contract) if contract else None,
        chain_tx_hash=(_field(header, "chainTxHash", "hash", optional=True) or "").lower() or None,
        block_number=_field(header, "blockNumber", "int", optional=True),
    )


def read_batch_export(directory: str | os.PathLike[str]) -> BatchExport:
    """Reads an export directory. The dumps are not validated here: see verify.py."""
    path = Path(directory)
    return parse_batch_header(
        _read_json(path / BATCH_FILE),
        _read_json(path / TRANSFERS_FILE),
        _read_json(path / BALANCES_FILE),
    )


# ----------------------------------------------------------------------------- proofs


@dataclass(frozen=True)
class TransferProof:
    """What ``corridor audit proof`` hands out: a transfer leaf and its proof in a batch."""

    batch_number: int
    leaf: TransferLeaf
    proof: tuple[str, ...]
    transfers_root: str
    leaf_schema_version: int = LEAF_SCHEMA_VERSION
    chain_tx_hash: str | None = None
    block_number: int | None = None

    @property
    def leaf_hash(self) -> str:
        codec = leaf_codec(transfer_leaf_encoding(self.leaf_schema_version))
        return to_hex(codec.leaf_hash(self.leaf.to_values()))

    def to_json(self) -> dict[str, Any]:
        return {
            "batchNumber": self.batch_number,
            "leafSchemaVersion": self.leaf_schema_version,
            "leafEncoding": list(transfer_leaf_encoding(self.leaf_schema_version)),
            "leaf": self.leaf.to_json_values(),
            "leafHash": self.leaf_hash,
            "proof": list(self.proof),
            "transfersRoot": self.transfers_root,
            "chainTxHash": self.chain_tx_hash,
            "blockNumber": self.block_number,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TransferProof:
        try:
            return cls(
                batch_number=int(doc["batchNumber"]),
                leaf=TransferLeaf.from_values(doc["leaf"]),
                proof=tuple(str(p) for p in doc["proof"]),
                transfers_root=str(doc["transfersRoot"]),
                leaf_schema_version=int(doc.get("leafSchemaVersion", LEAF_SCHEMA_VERSION)),
                chain_tx_hash=doc.get("chainTxHash"),
                block_number=doc.get("blockNumber"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportError("export.invalid_proof", f"not a transfer proof: {exc}") from None


def transfer_proofs(export: BatchExport, transfer_ids: Iterable[str]) -> list[TransferProof]:
    """Proofs of the transfer leaves with the given ids (every leg of each), by seq."""
    wanted = set(transfer_ids)
    tree = export.transfers_tree()
    proofs = [
        TransferProof(
            batch_number=export.batch_number,
            leaf=leaf,
            proof=tuple(tree.get_proof(i)),
            transfers_root=tree.root,
            leaf_schema_version=export.leaf_schema_version,
            chain_tx_hash=export.chain_tx_hash,
            block_number=export.block_number,
        )
        for i, leaf in enumerate(transfer_leaves_of(tree))
        if leaf.transfer_id in wanted
    ]
    return sorted(proofs, key=lambda p: p.leaf.seq)
