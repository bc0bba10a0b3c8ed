"""Batch export files: written, read back, and readable by OZ's loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from settlement.audit.commitment import ZERO_HASH, batch_hash
from settlement.audit.export import (
    BATCH_FORMAT,
    ExportError,
    TransferProof,
    build_batch_export,
    read_batch_export,
    transfer_proofs,
    write_batch_export,
)
from settlement.audit.leaves import transfer_leaf_encoding
from settlement.merkle import StandardMerkleTree
from tests.audit.batches import PARTICIPANTS, make_balances, make_history, make_transfers


def test_write_then_read_gives_the_same_export(tmp_path: Path) -> None:
    exports, _ = make_history(batches=2)
    for export in exports:
        out = write_batch_export(export, tmp_path / f"batch-{export.batch_number}")
        assert read_batch_export(out) == export


def test_files_are_oz_dumps_and_a_header(tmp_path: Path) -> None:
    export = make_history(batches=1)[0][0]
    out = write_batch_export(export, tmp_path)
    transfers = StandardMerkleTree.load((out / "transfers.json").read_text("utf-8"))
    balances = StandardMerkleTree.load((out / "balances.json").read_text("utf-8"))
    header = json.loads((out / "batch.json").read_text("utf-8"))
    assert header["format"] == BATCH_FORMAT
    assert header["transfersRoot"] == transfers.root
    assert header["balancesRoot"] == balances.root
    assert header["transferCount"] == len(transfers) == 40
    assert list(transfers.leaf_encoding) == list(transfer_leaf_encoding(1))
    assert header["prevBatchHash"] == ZERO_HASH
    assert header["chainId"] == 1337 and header["blockNumber"] == 101
    assert set(header["participants"]) == set(PARTICIPANTS)
    for p in header["netPositions"]:
        assert isinstance(p["amountMinor"], str)  # JSON numbers lose precision past 2**53
    assert header["batchHash"] == batch_hash(
        number=1,
        transfers_root=transfers.root,
        balances_root=balances.root,
        prev_batch_hash=ZERO_HASH,
        transfer_count=40,
        positions=[
            (p["participantAddress"], p["currency"], int(p["amountMinor"]))
            for p in header["netPositions"]
        ],
    )
    assert not list(out.glob(".*")), "no temporary files left behind"


def test_build_refuses_balances_of_another_batch() -> None:
    transfers = make_transfers(1, 5, 1)
    with pytest.raises(ExportError) as err:
        build_batch_export(
            batch_number=2,
            transfers=transfers,
            balances=make_balances(transfers, 1),
            prev_batch_hash=ZERO_HASH,
            participant_addresses=PARTICIPANTS,
        )
    assert err.value.code == "export.balance_batch_mismatch"


def test_transfer_proofs_verify_and_round_trip_as_json() -> None:
    export = make_history(batches=1)[0][0]
    leaf = export.transfer_leaves()[7]
    (proof,) = transfer_proofs(export, [leaf.transfer_id])
    assert proof.leaf == leaf
    assert StandardMerkleTree.verify(
        export.transfers_root, transfer_leaf_encoding(1), leaf.to_values(), proof.proof
    )
    doc = json.loads(json.dumps(proof.to_json()))
    assert doc["leafHash"] == export.transfers_tree().leaf_hash(leaf.to_values())
    assert TransferProof.from_json(doc) == proof
    with pytest.raises(ExportError):
        TransferProof.from_json({"batchNumber": 1})


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda d: (d / "balances.json").unlink(), "export.missing_file"),
        (lambda d: (d / "batch.json").write_text("{", "utf-8"), "export.invalid_json"),
        (lambda d: _edit_header(d, format="other"), "export.invalid_header"),
        (lambda d: _edit_header(d, transfersRoot="0x12"), "export.invalid_header"),
        (lambda d: _edit_header(d, batchNumber=-1), "export.invalid_header"),
        (lambda d: _edit_header(d, participants={"p": "nope"}), "export.invalid_header"),
        (lambda d: _edit_header(d, netPositions=[{"participant": "p"}]), "export.invalid_header"),
    ],
)
def test_unreadable_exports_are_typed_errors(tmp_path: Path, damage: object, code: str) -> None:
    write_batch_export(make_history(batches=1)[0][0], tmp_path)
    damage(tmp_path)  # type: ignore[operator]
    with pytest.raises(ExportError) as err:
        read_batch_export(tmp_path)
    assert err.value.code == code


def _edit_header(directory: Path, **changes: object) -> None:
    path = directory / "batch.json"
    header = json.loads(path.read_text("utf-8"))
    header.update(changes)
    path.write_text(json.dumps(header), "utf-8")
