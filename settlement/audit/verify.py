"""The auditor's offline check of batch exports against what the chain says.

Trust model: the chain is the only trusted source. The caller reads each settled batch
from the settlement contract (``SettlementLedger.batchHeader`` and the ``BatchSettled``
event's positions) into a plain ``ChainBatch``; this module imports no chain code.
Everything in an export is checked against it, and against itself:

* each dump is a valid OZ ``standard-v1`` tree whose values hash to its leaves, and the
  root rebuilt from the values equals the dump's root, ``batch.json``'s and the chain's;
* the transfer count matches the dump and the chain;
* balance leaves carry the batch number, are unique, and cover every wallet the
  transfers touched;
* net positions re-derived from the transfer leaves equal both the export's and the
  chain's (participant ids mapped to addresses by ``batch.json``), and each currency's
  positions sum to zero;
* the batch hash recomputed from the header equals the stated and on-chain hash, and each
  batch's previous hash is the previous batch's hash (zero for batch 1);
* a single transfer proof verifies against the on-chain root.

Every mismatch is reported, each with a message naming what differs; ``ok`` only when
there is none. Checks that could not run (e.g. the previous batch was not supplied) are
listed as notes, so a pass never hides what was not looked at.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from eth_utils import is_address, to_checksum_address

from settlement.audit.commitment import (
    FIRST_BATCH_NUMBER,
    ZERO_HASH,
    batch_hash,
    position_sort_key,
)
from settlement.audit.export import (
    BALANCES_FILE,
    TRANSFERS_FILE,
    BatchExport,
    ExportError,
    TransferProof,
    read_batch_export,
)
from settlement.audit.leaves import (
    SUPPORTED_SCHEMA_VERSIONS,
    BalanceLeaf,
    TransferLeaf,
    balance_leaf_encoding,
    net_amounts,
    transfer_leaf_encoding,
)
from settlement.merkle import (
    DUMP_FORMAT,
    MerkleTreeError,
    StandardMerkleTree,
    leaf_codec,
    make_merkle_tree,
    standard_node_hash,
    to_hex,
    to_node,
)

__all__ = [
    "MISMATCHES_PER_CHECK_MAX",
    "ChainBatch",
    "Mismatch",
    "VerificationReport",
    "batch_hash",
    "verify_balance_proof",
    "verify_export_dirs",
    "verify_exports",
    "verify_transfer_proof",
]

MISMATCHES_PER_CHECK_MAX: Final = 20
"""Mismatches listed one by one per check and batch; the rest are counted in one line."""


@dataclass(frozen=True)
class ChainBatch:
    """A settled batch as the chain records it (read by the caller from the contract).

    ``positions`` are ``(participant_address, currency, amount_minor)`` in the order they
    were submitted (the ``BatchSettled`` event's ``positions``; currency as its ISO code).
    """

    number: int
    transfers_root: str
    balances_root: str
    prev_batch_hash: str
    batch_hash: str
    transfer_count: int
    positions: Sequence[tuple[str, str, int]]
    tx_hash: str | None = None
    block_number: int | None = None


@dataclass(frozen=True)
class Mismatch:
    """One thing that differs. ``code`` is stable (for scripts); ``message`` is for people."""

    batch: int | None
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class VerificationReport:
    """The verifier's result: every mismatch, plus notes on checks that could not run."""

    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    transfers_checked: int = 0
    proofs_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def codes(self) -> list[str]:
        return [m.code for m in self.mismatches]

    def lines(self) -> list[str]:
        """Human-readable lines: a verdict, then each mismatch, then the notes."""
        verdict = "OK" if self.ok else f"FAILED: {len(self.mismatches)} mismatch(es)"
        head = (
            f"{verdict} ({len(self.batches)} batch(es), {self.transfers_checked} transfers, "
            f"{self.proofs_checked} proofs checked)"
        )
        return [
            head,
            *(f"  - {m.message}" for m in self.mismatches),
            *(f"  note: {n}" for n in self.notes),
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "batches": self.batches,
            "transfersChecked": self.transfers_checked,
            "proofsChecked": self.proofs_checked,
            "mismatches": [
                {"batch": m.batch, "code": m.code, "message": m.message} for m in self.mismatches
            ],
            "notes": self.notes,
        }


# ----------------------------------------------------------------------------- helpers


class _Batch:
    """Collects the mismatches of one batch, prefixing "batch N:" and capping each check."""

    def __init__(self, report: VerificationReport, number: int | None) -> None:
        self.report = report
        self.number = number
        self._counts: defaultdict[str, int] = defaultdict(int)

    def fail(self, code: str, message: str) -> None:
        self._counts[code] += 1
        if self._counts[code] <= MISMATCHES_PER_CHECK_MAX:
            prefix = f"batch {self.number}: " if self.number is not None else ""
            self.report.mismatches.append(Mismatch(self.number, code, prefix + message))

    def note(self, message: str) -> None:
        prefix = f"batch {self.number}: " if self.number is not None else ""
        self.report.notes.append(prefix + message)

    def close(self) -> None:
        for code, count in self._counts.items():
            if count > MISMATCHES_PER_CHECK_MAX:
                self.report.mismatches.append(
                    Mismatch(
                        self.number,
                        code,
                        f"batch {self.number}: ... and {count - MISMATCHES_PER_CHECK_MAX} more "
                        f"{code} mismatches",
                    )
                )


def _same_hash(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.lower() == b.lower()


def _describe_transfer(value: Sequence[Any]) -> str:
    return f"transfer leaf seq {value[0]} (id {value[1]})"


def _describe_balance(value: Sequence[Any]) -> str:
    return f"balance leaf {value[0]}/{value[1]} {value[2]}"


@dataclass
class _Dump:
    """What could be read from one dump; ``values`` is None when any value is unreadable."""

    values: list[tuple[Any, ...]] | None = None
    rebuilt_root: str | None = None


def _check_dump(
    b: _Batch,
    file_name: str,
    dump: Mapping[str, Any],
    encoding: tuple[str, ...],
    describe: Any,
) -> _Dump:
    """Validates a standard-v1 dump as OZ's load does, naming every offending entry."""
    what = file_name.removesuffix(".json")
    code = f"{what}.dump"
    if dump.get("format") != DUMP_FORMAT:
        b.fail(code, f"{file_name} format is {dump.get('format')!r}, not {DUMP_FORMAT!r}")
        return _Dump()
    if list(dump.get("leafEncoding") or []) != list(encoding):
        b.fail(
            code,
            f"{file_name} leafEncoding {dump.get('leafEncoding')!r} is not the schema's "
            f"{list(encoding)}",
        )
        return _Dump()
    raw_tree, raw_values = dump.get("tree"), dump.get("values")
    if not isinstance(raw_tree, list) or not isinstance(raw_values, list) or not raw_values:
        b.fail(code, f"{file_name} needs a non-empty 'values' list and a 'tree' list")
        return _Dump()

    codec = leaf_codec(encoding)
    values: list[tuple[Any, ...] | None] = []
    tree_indices: list[Any] = []
    for i, entry in enumerate(raw_values):
        if not isinstance(entry, Mapping) or "value" not in entry:
            b.fail(code, f"{file_name} values[{i}] has no 'value'")
            values.append(None)
            tree_indices.append(None)
            continue
        try:
            values.append(codec.normalize(entry["value"]))
        except MerkleTreeError as exc:
            b.fail(f"{what}.value", f"{file_name} values[{i}] does not fit the schema: {exc}")
            values.append(None)
        tree_indices.append(entry.get("treeIndex"))

    nodes: list[bytes] = []
    for i, node in enumerate(raw_tree):
        try:
            nodes.append(to_node(node, f"{file_name} tree[{i}]"))
        except MerkleTreeError as exc:
            b.fail(code, str(exc))
            break
    tree: list[bytes] | None = nodes if len(nodes) == len(raw_tree) else None
    count = len(raw_values)
    if tree is not None and len(tree) != 2 * count - 1:
        b.fail(
            code,
            f"{file_name} tree has {len(tree)} nodes; {count} values need {2 * count - 1}",
        )
        tree = None

    # Each value's leaf hash, computed once (None for an unreadable value).
    hashes: list[bytes | None] = [None if v is None else codec.leaf_hash(v) for v in values]

    def label(i: int) -> str:
        return f"{describe(values[i])} at {file_name} values[{i}]"

    tree_consistent = tree is not None
    if tree is not None:
        first_leaf = len(tree) - count
        seen: dict[int, int] = {}
        for i, tree_index in enumerate(tree_indices):
            if hashes[i] is None:
                continue
            if (
                isinstance(tree_index, bool)
                or not isinstance(tree_index, int)
                or not first_leaf <= tree_index < len(tree)
            ):
                b.fail(f"{what}.tree_index", f"{label(i)} has treeIndex {tree_index!r}, not a leaf")
                continue
            if tree_index in seen:
                b.fail(
                    f"{what}.tree_index",
                    f"{label(i)} has the same treeIndex {tree_index} as values[{seen[tree_index]}]",
                )
            seen[tree_index] = i
            if tree[tree_index] != hashes[i]:
                b.fail(
                    f"{what}.leaf",
                    f"{label(i)} does not hash to tree node {tree_index}: the value was changed "
                    f"or its treeIndex points at another leaf",
                )
        for i in range(first_leaf - 1, -1, -1):
            if tree[i] != standard_node_hash(tree[2 * i + 1], tree[2 * i + 2]):
                tree_consistent = False
                b.fail(
                    f"{what}.node",
                    f"{file_name} tree node {i} is not the hash of its children "
                    f"{2 * i + 1} and {2 * i + 2}",
                )

    complete = [v for v in values if v is not None]
    leaf_hashes = [h for h in hashes if h is not None]
    if len(complete) != len(values):
        return _Dump()
    by_hash: dict[bytes, int] = {}
    for i, leaf_hash in enumerate(leaf_hashes):
        if leaf_hash in by_hash:
            b.fail(
                f"{what}.duplicate",
                f"{file_name} values[{by_hash[leaf_hash]}] and values[{i}] are the same leaf "
                f"({describe(complete[i])})",
            )
        by_hash.setdefault(leaf_hash, i)
    ordered = sorted(leaf_hashes)
    if tree is not None and tree_consistent and tree[len(tree) - count :] == ordered[::-1]:
        # The dump's tree is consistent and holds exactly the sorted leaves: it IS the
        # rebuilt tree, no need to hash it again.
        rebuilt = to_hex(tree[0])
    else:
        rebuilt = to_hex(make_merkle_tree(ordered)[0])
    if tree is not None and to_hex(tree[0]) != rebuilt:
        b.fail(
            f"{what}.root",
            f"{file_name} tree root {to_hex(tree[0])} is not the root {rebuilt} rebuilt from "
            f"its values (sorted leaves, as StandardMerkleTree.of builds)",
        )
    return _Dump(values=complete, rebuilt_root=rebuilt)


def _check_root(
    b: _Batch, what: str, file_name: str, rebuilt: str | None, stated: str, chain: str | None
) -> None:
    label = f"{what}Root"
    if rebuilt is not None and not _same_hash(rebuilt, stated):
        b.fail(
            f"{what}.root",
            f"batch.json {label} {stated} is not the root {rebuilt} rebuilt from {file_name}",
        )
    if chain is None:
        return
    if rebuilt is not None and not _same_hash(rebuilt, chain):
        b.fail(
            f"{what}.root",
            f"{what} root rebuilt from {file_name} ({rebuilt}) is not the on-chain {what} root "
            f"({chain}): the leaves differ from those settled",
        )
    if (rebuilt is None or not _same_hash(rebuilt, stated)) and not _same_hash(stated, chain):
        b.fail(
            f"{what}.root", f"batch.json {label} {stated} is not the on-chain {what} root {chain}"
        )


def _positions_table(
    b: _Batch, rows: Iterable[tuple[str, str, int]], where: str
) -> dict[tuple[str, str], int]:
    table: dict[tuple[str, str], int] = {}
    for who, currency, amount in rows:
        if (who, currency) in table:
            b.fail("positions.duplicate", f"{where} list {who} {currency} twice")
        table[(who, currency)] = table.get((who, currency), 0) + amount
    sums: defaultdict[str, int] = defaultdict(int)
    for (_, currency), amount in table.items():
        sums[currency] += amount
    for currency, total in sorted(sums.items()):
        if total:
            b.fail("positions.sum", f"{where} in {currency} sum to {total}, not zero")
    return table


def _check_order(b: _Batch, rows: Sequence[tuple[str, str, int]], where: str) -> None:
    try:
        keys = [position_sort_key(row) for row in rows]
    except ValueError as exc:
        b.fail("positions.invalid", f"{where}: {exc}")
        return
    for i, (before, after) in enumerate(itertools.pairwise(keys), start=1):
        if before >= after:
            b.fail(
                "positions.order",
                f"{where} are not strictly ascending by (currency, participant address) at "
                f"index {i}, as the contract requires",
            )
            return


def _check_positions(
    b: _Batch,
    export: BatchExport,
    transfers: list[TransferLeaf] | None,
    chain: ChainBatch | None,
) -> None:
    participants = dict(export.participants)
    names_by_address: dict[str, str] = {to_checksum_address(a): p for p, a in participants.items()}

    def who(address: str) -> str:
        name = names_by_address.get(address)
        return f"{name} ({address})" if name else f"unknown participant {address}"

    exported = _positions_table(
        b,
        ((p.participant, p.currency, p.amount_minor) for p in export.net_positions),
        "batch.json net positions",
    )
    _check_order(b, [p.to_chain() for p in export.net_positions], "batch.json netPositions")
    for p in export.net_positions:
        mapped = participants.get(p.participant)
        if mapped is not None and to_checksum_address(p.participant_address) != mapped:
            b.fail(
                "positions.address",
                f"batch.json net position of {p.participant} {p.currency} names address "
                f"{p.participant_address}, but participants maps {p.participant} to {mapped}",
            )

    on_chain: dict[tuple[str, str], int] | None = None
    if chain is not None:
        rows = []
        for address, currency, amount in chain.positions:
            if not is_address(address):
                b.fail("positions.invalid", f"on-chain position address {address!r} is invalid")
                continue
            rows.append((to_checksum_address(address), currency, amount))
        on_chain = _positions_table(b, rows, "on-chain net positions")
        _check_order(b, rows, "on-chain net positions")

    if transfers is None:
        b.note("net positions not re-derived: the transfer leaves could not be read")
        return
    derived = net_amounts(transfers)
    for key in sorted(set(derived) | set(exported), key=lambda k: (k[1], k[0])):
        want, got = derived.get(key, 0), exported.get(key, 0)
        if want != got:
            b.fail(
                "positions.export",
                f"net position of {key[0]} {key[1]} is {got} in export, {want} derived from "
                "transfers",
            )
    if on_chain is None:
        return
    derived_by_address: dict[tuple[str, str], int] = {}
    for (participant, currency), amount in derived.items():
        mapped_address = participants.get(participant)
        if mapped_address is None:
            b.fail(
                "positions.address",
                f"participant {participant} has a net position in {currency} derived from "
                "transfers but no address in batch.json participants",
            )
            continue
        derived_by_address[(mapped_address, currency)] = amount
    for key in sorted(set(derived_by_address) | set(on_chain), key=lambda k: (k[1], k[0])):
        want, got = derived_by_address.get(key, 0), on_chain.get(key, 0)
        if want != got:
            b.fail(
                "positions.chain",
                f"net position of {who(key[0])} {key[1]} is {got} on chain, {want} derived "
                "from transfers",
            )


def _check_balances(
    b: _Batch,
    export: BatchExport,
    balances: list[BalanceLeaf] | None,
    transfers: list[TransferLeaf] | None,
) -> None:
    if balances is None:
        return
    seen: dict[tuple[str, str, str], int] = {}
    for i, leaf in enumerate(balances):
        key = (leaf.participant, leaf.wallet, leaf.currency)
        label = f"{_describe_balance(leaf.to_values())} at {BALANCES_FILE} values[{i}]"
        if leaf.batch_number != export.batch_number:
            b.fail(
                "balances.batch_number",
                f"{label} has batchNumber {leaf.batch_number}, not {export.batch_number}",
            )
        if key in seen:
            b.fail("balances.duplicate", f"{label} repeats values[{seen[key]}]")
        seen.setdefault(key, i)
    if transfers is None:
        return
    for t in transfers:
        for participant, wallet in (
            (t.debit_participant, t.debit_wallet),
            (t.credit_participant, t.credit_wallet),
        ):
            if (participant, wallet, t.currency) not in seen:
                b.fail(
                    "balances.missing",
                    f"wallet {participant}/{wallet} {t.currency} is touched by "
                    f"{_describe_transfer(t.to_values())} but has no balance leaf",
                )
                seen[(participant, wallet, t.currency)] = -1  # report each wallet once


def _check_transfers(b: _Batch, transfers: list[TransferLeaf]) -> None:
    by_seq: dict[int, TransferLeaf] = {}
    for t in transfers:
        if t.seq in by_seq:
            b.fail(
                "transfers.duplicate_seq",
                f"transfer seq {t.seq} appears twice (ids {by_seq[t.seq].transfer_id} and "
                f"{t.transfer_id})",
            )
        by_seq.setdefault(t.seq, t)


def _check_header_hash(b: _Batch, export: BatchExport, chain: ChainBatch | None) -> None:
    try:
        own = batch_hash(
            number=export.batch_number,
            transfers_root=export.transfers_root,
            balances_root=export.balances_root,
            prev_batch_hash=export.prev_batch_hash,
            transfer_count=export.transfer_count,
            positions=[p.to_chain() for p in export.net_positions],
        )
    except ValueError as exc:
        b.fail("batch_hash.export", f"batch.json header cannot be hashed: {exc}")
        own = None
    if own is not None and not _same_hash(own, export.batch_hash):
        b.fail(
            "batch_hash.export",
            f"batch.json batchHash {export.batch_hash} is not the hash {own} of its own header",
        )
    if chain is None:
        return
    if not _same_hash(export.batch_hash, chain.batch_hash):
        b.fail(
            "batch_hash.chain",
            f"batch.json batchHash {export.batch_hash} is not the on-chain batch hash "
            f"{chain.batch_hash}",
        )
    try:
        recomputed = batch_hash(
            number=chain.number,
            transfers_root=chain.transfers_root,
            balances_root=chain.balances_root,
            prev_batch_hash=chain.prev_batch_hash,
            transfer_count=chain.transfer_count,
            positions=chain.positions,
        )
    except ValueError as exc:
        b.fail("batch_hash.formula", f"on-chain header cannot be hashed: {exc}")
        return
    if not _same_hash(recomputed, chain.batch_hash):
        b.fail(
            "batch_hash.formula",
            f"on-chain batch hash {chain.batch_hash} is not the hash {recomputed} of the "
            "on-chain header: the verifier's batch_hash formula differs from the contract's",
        )
    if not _same_hash(export.prev_batch_hash, chain.prev_batch_hash):
        b.fail(
            "link.chain",
            f"batch.json prevBatchHash {export.prev_batch_hash} is not the on-chain previous "
            f"batch hash {chain.prev_batch_hash}",
        )


def _check_location(
    b: _Batch,
    export: BatchExport,
    chain: ChainBatch,
    chain_id: int | None,
    contract_address: str | None,
) -> None:
    if chain.tx_hash is not None and not _same_hash(export.chain_tx_hash, chain.tx_hash):
        b.fail(
            "location.tx",
            f"batch.json chainTxHash {export.chain_tx_hash} is not the settling transaction "
            f"{chain.tx_hash}",
        )
    if chain.block_number is not None and export.block_number != chain.block_number:
        b.fail(
            "location.block",
            f"batch.json blockNumber {export.block_number} is not the settling block "
            f"{chain.block_number}",
        )
    if chain_id is not None and export.chain_id != chain_id:
        b.fail("location.chain_id", f"batch.json chainId {export.chain_id} is not {chain_id}")
    if contract_address is not None and (
        export.contract_address is None
        or to_checksum_address(export.contract_address) != to_checksum_address(contract_address)
    ):
        b.fail(
            "location.contract",
            f"batch.json contractAddress {export.contract_address} is not "
            f"{to_checksum_address(contract_address)}",
        )


def _check_export(
    report: VerificationReport,
    export: BatchExport,
    chain: ChainBatch | None,
    chain_id: int | None,
    contract_address: str | None,
) -> None:
    b = _Batch(report, export.batch_number)
    if chain is None:
        b.fail("chain.missing", "not found on chain (no settled batch with this number given)")
    elif chain.number != export.batch_number:
        b.fail("chain.number", f"the on-chain batch supplied is number {chain.number}")

    transfers: list[TransferLeaf] | None = None
    balances: list[BalanceLeaf] | None = None
    if export.leaf_schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        b.fail(
            "schema.version",
            f"leaf schema version {export.leaf_schema_version} is not one this verifier knows "
            f"({sorted(SUPPORTED_SCHEMA_VERSIONS)}); trees not checked",
        )
    else:
        version = export.leaf_schema_version
        t_dump = _check_dump(
            b,
            TRANSFERS_FILE,
            export.transfers_dump,
            transfer_leaf_encoding(version),
            _describe_transfer,
        )
        bal_dump = _check_dump(
            b,
            BALANCES_FILE,
            export.balances_dump,
            balance_leaf_encoding(version),
            _describe_balance,
        )
        _check_root(
            b,
            "transfers",
            TRANSFERS_FILE,
            t_dump.rebuilt_root,
            export.transfers_root,
            chain.transfers_root if chain else None,
        )
        _check_root(
            b,
            "balances",
            BALANCES_FILE,
            bal_dump.rebuilt_root,
            export.balances_root,
            chain.balances_root if chain else None,
        )
        if t_dump.values is not None:
            transfers = [TransferLeaf(*v) for v in t_dump.values]
            report.transfers_checked += len(transfers)
            _check_transfers(b, transfers)
            if len(transfers) != export.transfer_count:
                b.fail(
                    "transfers.count",
                    f"batch.json transferCount is {export.transfer_count}, {TRANSFERS_FILE} "
                    f"has {len(transfers)} transfers",
                )
            if chain is not None and len(transfers) != chain.transfer_count:
                b.fail(
                    "transfers.count",
                    f"the chain records {chain.transfer_count} transfers, {TRANSFERS_FILE} "
                    f"has {len(transfers)}",
                )
        if bal_dump.values is not None:
            balances = [BalanceLeaf(*v) for v in bal_dump.values]
    if chain is not None and export.transfer_count != chain.transfer_count and transfers is None:
        b.fail(
            "transfers.count",
            f"batch.json transferCount is {export.transfer_count}, the chain records "
            f"{chain.transfer_count}",
        )
    _check_balances(b, export, balances, transfers)
    _check_positions(b, export, transfers, chain)
    _check_header_hash(b, export, chain)
    if chain is not None:
        _check_location(b, export, chain, chain_id, contract_address)
    b.close()


def _check_links(
    report: VerificationReport,
    exports: Mapping[int, BatchExport],
    chain: Mapping[int, ChainBatch],
) -> None:
    """Each batch's previous hash is batch n-1's hash (zero for batch 1)."""
    for number in sorted(exports):
        b = _Batch(report, number)
        export, here = exports[number], chain.get(number)
        stated = {"batch.json prevBatchHash": export.prev_batch_hash}
        if here is not None and not _same_hash(here.prev_batch_hash, export.prev_batch_hash):
            stated["on-chain previous batch hash"] = here.prev_batch_hash
        if number == FIRST_BATCH_NUMBER:
            expected: str | None = ZERO_HASH
            whose = "zero (batch 1 has no predecessor)"
        else:
            before_chain, before_export = chain.get(number - 1), exports.get(number - 1)
            expected = (
                before_chain.batch_hash
                if before_chain is not None
                else before_export.batch_hash
                if before_export is not None
                else None
            )
            whose = f"batch {number - 1}'s hash {expected}"
        if expected is None:
            b.note(f"link to batch {number - 1} not checked (batch {number - 1} not given)")
            continue
        for source, prev in stated.items():
            if not _same_hash(prev, expected):
                b.fail("link.previous", f"{source} {prev} is not {whose}")
        b.close()


def _chain_map(chain: Mapping[int, ChainBatch] | Iterable[ChainBatch]) -> dict[int, ChainBatch]:
    if isinstance(chain, Mapping):
        return dict(chain)
    return {c.number: c for c in chain}


def verify_exports(
    exports: Sequence[BatchExport],
    chain: Mapping[int, ChainBatch] | Iterable[ChainBatch],
    *,
    chain_id: int | None = None,
    contract_address: str | None = None,
) -> VerificationReport:
    """Checks batch exports against the chain's batches (and each other's hash links).

    ``chain`` may hold more batches than ``exports`` (e.g. the batch before the first
    export, so its link can be checked). ``chain_id``/``contract_address``, when given,
    are what the exports must name.
    """
    report = VerificationReport()
    chain_by_number = _chain_map(chain)
    by_number: dict[int, BatchExport] = {}
    for export in exports:
        if export.batch_number in by_number:
            _Batch(report, export.batch_number).fail(
                "export.duplicate", "exported twice in the set given"
            )
            continue
        by_number[export.batch_number] = export
    for number in sorted(by_number):
        report.batches.append(number)
        _check_export(
            report, by_number[number], chain_by_number.get(number), chain_id, contract_address
        )
    _check_links(
        report,
        by_number,
        {n: c for n, c in chain_by_number.items() if n in by_number or n + 1 in by_number},
    )
    return report


def verify_export_dirs(
    directories: Iterable[str | os.PathLike[str]],
    chain: Mapping[int, ChainBatch] | Iterable[ChainBatch],
    *,
    chain_id: int | None = None,
    contract_address: str | None = None,
) -> VerificationReport:
    """``verify_exports`` over export directories; unreadable ones are mismatches."""
    exports = []
    unreadable = []
    for directory in directories:
        try:
            exports.append(read_batch_export(directory))
        except ExportError as exc:
            unreadable.append(Mismatch(None, exc.code, f"export {Path(directory)}: {exc.message}"))
    report = verify_exports(exports, chain, chain_id=chain_id, contract_address=contract_address)
    report.mismatches[:0] = unreadable
    return report


# ----------------------------------------------------------------------------- single proofs


def verify_transfer_proof(
    leaf: TransferLeaf | TransferProof,
    proof: Sequence[str] | None = None,
    batch_number: int | None = None,
    chain: ChainBatch | Mapping[int, ChainBatch] | None = None,
) -> VerificationReport:
    """Checks one transfer leaf and its proof against the on-chain transfers root.

    Either ``verify_transfer_proof(leaf, proof, batch_number, chain)`` or
    ``verify_transfer_proof(transfer_proof, chain=chain)``. ``chain`` is the on-chain
    batch (or a map of them by number).
    """
    if isinstance(leaf, TransferProof):
        proof, batch_number, leaf = leaf.proof, leaf.batch_number, leaf.leaf
    if proof is None or batch_number is None or chain is None:
        raise TypeError("verify_transfer_proof needs a leaf, a proof, a batch number and chain")
    return _verify_single(
        "transfers",
        transfer_leaf_encoding(1),
        leaf.to_values(),
        _describe_transfer(leaf.to_values()),
        proof,
        batch_number,
        chain,
    )


def verify_balance_proof(
    leaf: BalanceLeaf,
    proof: Sequence[str],
    chain: ChainBatch | Mapping[int, ChainBatch],
) -> VerificationReport:
    """Checks one balance leaf and its proof against its batch's on-chain balances root."""
    return _verify_single(
        "balances",
        balance_leaf_encoding(1),
        leaf.to_values(),
        _describe_balance(leaf.to_values()),
        proof,
        leaf.batch_number,
        chain,
    )


def _verify_single(
    what: str,
    encoding: tuple[str, ...],
    values: tuple[Any, ...],
    label: str,
    proof: Sequence[str],
    batch_number: int,
    chain: ChainBatch | Mapping[int, ChainBatch],
) -> VerificationReport:
    report = VerificationReport(batches=[batch_number])
    b = _Batch(report, batch_number)
    batch = chain.get(batch_number) if isinstance(chain, Mapping) else chain
    if batch is None or batch.number != batch_number:
        b.fail("chain.missing", "not found on chain (no settled batch with this number given)")
        return report
    root = batch.transfers_root if what == "transfers" else batch.balances_root
    report.proofs_checked = 1
    try:
        included = StandardMerkleTree.verify(root, encoding, values, proof)
    except MerkleTreeError as exc:
        b.fail("proof.malformed", f"proof of {label} is malformed: {exc.message}")
        return report
    if not included:
        b.fail("proof.not_included", f"{label} not in on-chain {what} root {root}")
    return report
