"""Audit against the real embedded chain: batches read from the chain alone, proofs checked
three ways, tampered exports named by the verifier, tampered database rows named by
reconciliation."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from api.cli_settlement import run_verify
from api.context import Corridor
from api.routers.audit import proof_document, settled_export, stamped_export
from settlement.audit.chain_reader import read_all_batches, read_chain_batch, read_chain_batches
from settlement.audit.export import (
    BatchExport,
    TransferProof,
    transfer_proofs,
    write_batch_export,
)
from settlement.audit.leaves import NetPosition
from settlement.audit.verify import verify_transfer_proof
from settlement.batches import get_window
from settlement.chain import open_gateway
from settlement.db import write_transaction
from settlement.ledger.tables import entries, transfers
from settlement.reconcile import reconcile
from tests.settlement.conftest import open_corridor
from tests.settlement.world import World, build_world, edit_transfer_amount


@dataclass
class Settled:
    corridor: Corridor
    world: World
    contract: str
    exports: dict[int, BatchExport]


@pytest.fixture(scope="module")
def settled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settled]:
    """One settled two-batch history shared by the read-only tests of this module."""
    base = tmp_path_factory.mktemp("audit")
    corridor = open_corridor(base / "data", f"sqlite:///{base / 'ledger.sqlite3'}")
    world = build_world(corridor)
    gateway = corridor.chain()
    deployment = gateway.deployment()
    assert deployment is not None
    exports = {}
    for number in world.batches:
        window = get_window(corridor.engine, number)
        assert window is not None
        exports[number] = stamped_export(corridor.engine, window, gateway)
    yield Settled(corridor, world, deployment.address, exports)
    corridor.close()


# ---------------------------------------------------------------------- chain reader


def test_chain_reader_reads_what_was_settled(settled: Settled) -> None:
    corridor = settled.corridor
    batches = read_all_batches(corridor.chain())
    assert [b.number for b in batches] == [1, 2]
    for batch in batches:
        window = get_window(corridor.engine, batch.number)
        export = settled.exports[batch.number]
        assert window is not None
        assert (batch.transfers_root, batch.balances_root, batch.batch_hash) == (
            window.transfers_root,
            window.balances_root,
            window.batch_hash,
        )
        assert (batch.tx_hash, batch.block_number) == (window.tx_hash, window.block_number)
        assert batch.transfer_count == window.transfer_count
        assert list(batch.positions) == [p.to_chain() for p in export.net_positions]
    assert batches[0].prev_batch_hash == "0x" + "00" * 32
    assert batches[1].prev_batch_hash == batches[0].batch_hash
    assert read_chain_batch(corridor.chain(), 3) is None
    assert read_chain_batches(corridor.chain(), [2, 9]).keys() == {2}


def test_chain_reader_through_a_read_only_gateway_without_index(settled: Settled) -> None:
    """The auditor's gateway: read-only, no event index, beside the running writer."""
    config = replace(settled.corridor.chain_config, read_only=True, index_events=False)
    with open_gateway(config) as reader:
        reader.ensure_deployed()
        assert read_all_batches(reader) == read_all_batches(settled.corridor.chain())


# -------------------------------------------------------------------------- proofs

REPO = Path(__file__).resolve().parents[2]


def _js_missing() -> str | None:
    from tests.audit.test_oz_node import _missing

    return _missing()


def test_proofs_verify_three_ways(settled: Settled) -> None:
    corridor, world = settled.corridor, settled.world
    gateway = corridor.chain()
    chain = {b.number: b for b in read_all_batches(gateway)}
    documents = []
    for name in ("a1", "b1", "local", "cash_bolt", "b2"):
        transfer = corridor.ledger.get_transfer(world.transfers[name])
        proof, document = proof_document(corridor.engine, transfer, gateway)
        assert document["transferId"] == transfer.id
        assert document["leaf"][1] == transfer.id
        assert document["chainTxHash"] == chain[proof.batch_number].tx_hash
        # 1. Corridor's verifier, against the root read from the chain.
        assert verify_transfer_proof(TransferProof.from_json(document), chain=chain).ok
        # 2. The contract's own view.
        assert document["verifiedOnChain"] is True
        documents.append(document)
    # A proof of one transfer does not prove another's leaf.
    forged = copy.deepcopy(documents[0])
    forged["leaf"][7] = str(int(forged["leaf"][7]) + 1)
    report = verify_transfer_proof(TransferProof.from_json(forged), chain=chain)
    assert report.codes() == ["proof.not_included"]
    forged_proof = TransferProof.from_json(forged)
    assert not gateway.verify_transfer(
        forged_proof.batch_number,
        bytes.fromhex(forged_proof.leaf_hash[2:]),
        [bytes.fromhex(p[2:]) for p in forged_proof.proof],
    )

    # 3. @openzeppelin/merkle-tree in Node, on the whole batch and every proof of it.
    reason = _js_missing()
    if reason is not None:
        pytest.skip(f"JS check skipped: {reason}")
    from tests.audit.test_oz_node import _run_js

    export = settled.exports[1]
    proofs = transfer_proofs(export, [leaf.transfer_id for leaf in export.transfer_leaves()])
    by_values = {tuple(p.leaf.to_json_values()): list(p.proof) for p in proofs}
    dump = json.loads(json.dumps(dict(export.transfers_dump)))
    case = {"dump": dump, "proofs": [by_values[tuple(v["value"])] for v in dump["values"]]}
    (result,) = _run_js([case])["results"]
    assert "error" not in result, result
    assert result["root"] == chain[1].transfers_root
    assert all(result["givenProofsVerify"])


# -------------------------------------------------------------------- tampered exports


def _write(settled: Settled, tmp_path: Path, number: int, export: BatchExport) -> Path:
    return write_batch_export(export, tmp_path / f"batch-{number}")


def _verify(settled: Settled, dirs: list[Path]) -> Any:
    return run_verify(
        contract=settled.contract, data_dir=settled.corridor.settings.data_dir, export_dirs=dirs
    ).report


def _edit_dump(export: BatchExport, edit: Any) -> BatchExport:
    dump = copy.deepcopy(dict(export.transfers_dump))
    edit(dump)
    return replace(export, transfers_dump=dump)


def test_clean_exports_verify_against_the_chain(settled: Settled, tmp_path: Path) -> None:
    dirs = [_write(settled, tmp_path, n, e) for n, e in settled.exports.items()]
    report = _verify(settled, dirs)
    assert report.ok, str(report)
    assert report.batches == [1, 2]
    assert report.transfers_checked == 7
    assert report.notes == []


def _amount_plus_one(dump: dict[str, Any]) -> None:
    value = dump["values"][2]["value"]
    value[7] = str(int(value[7]) + 1)


def _drop_one(dump: dict[str, Any]) -> None:
    del dump["values"][1]


def _swap_leaves(dump: dict[str, Any]) -> None:
    # Not two siblings: their parent hashes the sorted pair, so swapping siblings changes
    # nothing a proof depends on.
    first = dump["values"][0]
    second = next(
        v for v in dump["values"][1:] if (v["treeIndex"] - 1) // 2 != (first["treeIndex"] - 1) // 2
    )
    first["treeIndex"], second["treeIndex"] = second["treeIndex"], first["treeIndex"]
    tree = dump["tree"]
    tree[first["treeIndex"]], tree[second["treeIndex"]] = (
        tree[second["treeIndex"]],
        tree[first["treeIndex"]],
    )


@pytest.mark.parametrize(
    ("edit", "codes", "words"),
    [
        (_amount_plus_one, {"transfers.leaf", "transfers.root"}, "does not hash to tree node"),
        (_drop_one, {"transfers.count", "transfers.dump"}, "the chain records 6 transfers"),
        (_swap_leaves, {"transfers.node"}, "is not the hash of its children"),
    ],
    ids=["amount", "drop", "reorder"],
)
def test_a_tampered_transfers_dump_is_named(
    settled: Settled, tmp_path: Path, edit: Any, codes: set[str], words: str
) -> None:
    tampered = _edit_dump(settled.exports[1], edit)
    report = _verify(settled, [_write(settled, tmp_path, 1, tampered)])
    assert not report.ok
    assert codes <= set(report.codes()), str(report)
    assert words in str(report)
    assert all(m.batch == 1 for m in report.mismatches)


def test_reordering_values_alone_is_harmless(settled: Settled, tmp_path: Path) -> None:
    """OZ dumps may list values in any order: each names its tree index."""
    reordered = _edit_dump(settled.exports[1], lambda d: d["values"].reverse())
    assert _verify(settled, [_write(settled, tmp_path, 1, reordered)]).ok


def test_an_altered_net_position_is_named(settled: Settled, tmp_path: Path) -> None:
    export = settled.exports[1]
    first = export.net_positions[0]
    changed = NetPosition(
        first.participant, first.participant_address, first.currency, first.amount_minor + 100
    )
    tampered = replace(export, net_positions=(changed, *export.net_positions[1:]))
    report = _verify(settled, [_write(settled, tmp_path, 1, tampered)])
    assert {"positions.export", "positions.sum", "batch_hash.export"} <= set(report.codes())
    assert f"net position of {first.participant} {first.currency}" in str(report)


def test_an_export_of_a_tampered_database_fails_verification(
    settled: Settled, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Edit a settled transfer in the database: its re-export no longer matches the chain,
    and reconciliation names the transfer. (Restored afterwards: the fixture is shared.)"""
    corridor, world = settled.corridor, settled.world
    transfer = corridor.ledger.get_transfer(world.transfers["a1"])
    edit_transfer_amount(corridor, transfer.id, transfer.amount_minor + 1)
    try:
        window = get_window(corridor.engine, 1)
        assert window is not None
        rebuilt = settled_export(corridor.engine, window, cached=False).with_chain(
            chain_id=int(settled.exports[1].chain_id or 0),
            contract_address=settled.contract,
            chain_tx_hash=str(window.tx_hash),
            block_number=int(window.block_number or 0),
        )
        report = _verify(settled, [_write(settled, tmp_path, 1, rebuilt)])
        assert "transfers.root" in report.codes()
        assert "positions.chain" in report.codes()
        assert "not the on-chain transfers root" in str(report)
        with caplog.at_level(logging.ERROR, logger="corridor.reconcile"):
            recon = reconcile(corridor.engine, corridor.chain())
        assert not recon.ok
        assert f"transfer {transfer.id} (seq {transfer.seq}) is for" in str(recon)
        assert any("reconciliation: batch 1" in r.message for r in caplog.records)
    finally:
        edit_transfer_amount(corridor, transfer.id, transfer.amount_minor)
    assert reconcile(corridor.engine, corridor.chain()).ok


def test_proof_files_and_chain_only_checks(settled: Settled, tmp_path: Path) -> None:
    corridor = settled.corridor
    transfer = corridor.ledger.get_transfer(settled.world.transfers["b2"])
    _, document = proof_document(corridor.engine, transfer, corridor.chain())
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(document))
    forged = copy.deepcopy(document)
    forged["leaf"][7] = "1"
    bad.write_text(json.dumps({"proofs": [forged]}))
    data_dir = corridor.settings.data_dir
    ok = run_verify(contract=settled.contract, data_dir=data_dir, proof_files=[good])
    assert ok.report.ok and ok.report.proofs_checked == 1
    failed = run_verify(contract=settled.contract, data_dir=data_dir, proof_files=[bad])
    assert failed.report.codes() == ["proof.not_included"]
    chain_only = run_verify(contract=settled.contract, data_dir=data_dir)
    assert chain_only.report.ok and chain_only.report.batches == [1, 2]


# ------------------------------------------------------------------- reconciliation


def test_reconciliation_agrees_then_names_each_tampering(
    corridor: Corridor, caplog: pytest.LogCaptureFixture
) -> None:
    world = build_world(corridor)
    gateway = corridor.chain()
    clean = reconcile(corridor.engine, gateway)
    assert clean.ok, str(clean)
    assert clean.batches == [1, 2] and clean.chain_last_batch == 2

    # An amount changed in place: the transfer, the roots, the hash and positions differ.
    a1 = corridor.ledger.get_transfer(world.transfers["a1"])
    edit_transfer_amount(corridor, a1.id, a1.amount_minor + 5)
    with caplog.at_level(logging.ERROR, logger="corridor.reconcile"):
        report = reconcile(corridor.engine, gateway)
    codes = set(report.codes())
    assert {"ledger.postings", "transfers.root", "batch_hash", "positions"} <= codes
    assert all(d.batch == 1 for d in report.differences), str(report)
    text = str(report)
    assert f"transfer {a1.id}" in text
    assert "net position of acme" in text and "net position of bolt" in text
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == len(report.differences)
    edit_transfer_amount(corridor, a1.id, a1.amount_minor)

    # A balance moved: only the balances root differs.
    with write_transaction(corridor.engine) as conn:
        last = conn.execute(select(entries.c.id).order_by(entries.c.id.desc()).limit(1)).scalar()
        conn.execute(
            update(entries)
            .where(entries.c.id == last)
            .values(balance_after_minor=entries.c.balance_after_minor + 1)
        )
    moved = reconcile(corridor.engine, gateway)
    assert {d.code for d in moved.differences} == {"balances.root", "batch_hash", "window.header"}
    assert {d.batch for d in moved.differences} == {2}

    # A transfer moved out of its settled window: the count differs.
    with write_transaction(corridor.engine) as conn:
        conn.execute(
            update(entries)
            .where(entries.c.id == last)
            .values(balance_after_minor=entries.c.balance_after_minor - 1)
        )
        conn.execute(
            update(transfers)
            .where(transfers.c.id == world.transfers["local"])
            .values(window_number=2)
        )
    shuffled = reconcile(corridor.engine, gateway)
    assert "transfers.count" in shuffled.codes()
    assert {d.batch for d in shuffled.differences} == {1, 2}
