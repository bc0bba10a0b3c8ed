"""The auditor's verifier: a clean history passes; each kind of tampering is named."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

from settlement.audit.commitment import batch_hash
from settlement.audit.export import BatchExport, transfer_proofs, write_batch_export
from settlement.audit.leaves import NetPosition, TransferLeaf
from settlement.audit.verify import (
    ChainBatch,
    VerificationReport,
    verify_balance_proof,
    verify_export_dirs,
    verify_exports,
    verify_transfer_proof,
)
from settlement.merkle import StandardMerkleTree
from tests.audit.batches import edited, make_history

EXPORTS, CHAIN = make_history(batches=3, transfers_per_batch=40)
CONTRACT = "0x" + "c0" * 20


def _verify(
    exports: list[BatchExport], chain: dict[int, ChainBatch] | None = None
) -> VerificationReport:
    return verify_exports(
        exports, CHAIN if chain is None else chain, chain_id=1337, contract_address=CONTRACT
    )


def _with(number: int, export: BatchExport) -> list[BatchExport]:
    return [export if e.batch_number == number else e for e in EXPORTS]


def _messages(report: VerificationReport) -> str:
    return "\n".join(m.message for m in report.mismatches)


def _rebuilt(export: BatchExport, values: list[list[str]]) -> BatchExport:
    """What a forger who rebuilds the tree (and batch.json's root) would produce."""
    tree = StandardMerkleTree.of(values, export.transfers_dump["leafEncoding"])
    return replace(
        export, transfers_dump=tree.dump(), transfers_root=tree.root, transfer_count=len(values)
    )


def _values(export: BatchExport) -> list[list[str]]:
    return [list(v["value"]) for v in copy.deepcopy(export.transfers_dump["values"])]


def test_clean_history_passes() -> None:
    report = _verify(EXPORTS)
    assert report.ok, str(report)
    assert report.batches == [1, 2, 3]
    assert report.transfers_checked == 120
    assert report.notes == []
    assert str(report).startswith("OK")


def test_clean_history_passes_from_files(tmp_path: Path) -> None:
    dirs = [write_batch_export(e, tmp_path / str(e.batch_number)) for e in EXPORTS]
    report = verify_export_dirs(dirs, CHAIN.values(), chain_id=1337, contract_address=CONTRACT)
    assert report.ok, str(report)


def test_changed_amount_in_the_dump_is_named_by_leaf() -> None:
    export = edited(EXPORTS[1])
    entry = export.transfers_dump["values"][5]
    leaf = TransferLeaf.from_values(entry["value"])
    entry["value"][7] = str(leaf.amount_minor + 100)
    report = _verify(_with(2, export))
    assert not report.ok
    text = _messages(report)
    assert (
        f"batch 2: transfer leaf seq {leaf.seq} (id {leaf.transfer_id}) at transfers.json "
        f"values[5] does not hash to tree node {entry['treeIndex']}" in text
    )
    assert "is not the on-chain transfers root" in text
    assert f"net position of {leaf.debit_participant} {leaf.currency} is" in text
    assert {"transfers.leaf", "transfers.root", "positions.chain"} <= set(report.codes())
    assert all(m.batch == 2 for m in report.mismatches)


def test_changed_amount_in_a_rebuilt_tree_is_caught_by_the_chain() -> None:
    values = _values(EXPORTS[1])
    leaf = TransferLeaf.from_values(values[3])
    assert leaf.debit_participant != leaf.credit_participant
    values[3][7] = str(leaf.amount_minor + 1)
    report = _verify(_with(2, _rebuilt(EXPORTS[1], values)))
    text = _messages(report)
    assert "transfers root rebuilt from transfers.json" in text
    assert "is not the on-chain transfers root" in text
    derived = [m for m in report.mismatches if m.code == "positions.chain"]
    assert any(
        f"net position of {leaf.credit_participant} (" in m.message
        and f") {leaf.currency} is " in m.message
        and "on chain" in m.message
        for m in derived
    )
    assert "batch_hash.export" in report.codes()  # the forger did not fix the batch hash


def test_dropped_transfer_fails_count_and_root() -> None:
    values = _values(EXPORTS[2])
    dropped = TransferLeaf.from_values(values.pop(11))
    export = _rebuilt(EXPORTS[2], values)
    report = _verify(_with(3, export))
    text = _messages(report)
    assert "batch 3: the chain records 40 transfers, transfers.json has 39" in text
    assert "is not the on-chain transfers root" in text
    if dropped.debit_participant != dropped.credit_participant:
        assert "positions.chain" in report.codes()


def test_reordered_values_with_their_tree_index_pass() -> None:
    export = edited(EXPORTS[0])
    export.transfers_dump["values"].reverse()
    export.balances_dump["values"].reverse()
    assert _verify(_with(1, export)).ok


def test_values_swapped_against_their_tree_index_fail() -> None:
    export = edited(EXPORTS[0])
    values = export.transfers_dump["values"]
    values[2]["value"], values[9]["value"] = values[9]["value"], values[2]["value"]
    report = _verify(_with(1, export))
    assert report.codes() == ["transfers.leaf", "transfers.leaf"]
    assert "at transfers.json values[2] does not hash to tree node" in _messages(report)
    assert "at transfers.json values[9] does not hash to tree node" in _messages(report)


def test_tampered_inner_node_is_named() -> None:
    export = edited(EXPORTS[0])
    export.transfers_dump["tree"][3] = "0x" + "ee" * 32
    report = _verify(_with(1, export))
    assert "transfers.json tree node 3 is not the hash of its children 7 and 8" in _messages(report)


def test_altered_net_position_in_export() -> None:
    export = EXPORTS[1]
    first = export.net_positions[0]
    changed = replace(first, amount_minor=first.amount_minor + 200)
    report = _verify(_with(2, replace(export, net_positions=(changed, *export.net_positions[1:]))))
    text = _messages(report)
    assert (
        f"batch 2: net position of {first.participant} {first.currency} is "
        f"{first.amount_minor + 200} in export, {first.amount_minor} derived from transfers"
    ) in text
    assert f"batch.json net positions in {first.currency} sum to 200, not zero" in text
    assert "batch_hash.export" in report.codes()


def test_on_chain_positions_that_differ_or_do_not_sum_to_zero() -> None:
    chain = dict(CHAIN)
    address, currency, amount = chain[3].positions[0]
    chain[3] = replace(
        chain[3], positions=[(address, currency, amount - 5), *chain[3].positions[1:]]
    )
    report = _verify(EXPORTS, chain)
    text = _messages(report)
    assert f"batch 3: on-chain net positions in {currency} sum to -5, not zero" in text
    assert f"is {amount - 5} on chain, {amount} derived from transfers" in text


def test_broken_hash_link_is_named() -> None:
    export = EXPORTS[1]
    forged_prev = "0x" + "99" * 32
    forged = replace(
        export,
        prev_batch_hash=forged_prev,
        batch_hash=batch_hash(
            number=2,
            transfers_root=export.transfers_root,
            balances_root=export.balances_root,
            prev_batch_hash=forged_prev,
            transfer_count=export.transfer_count,
            positions=[p.to_chain() for p in export.net_positions],
        ),
    )
    report = _verify(_with(2, forged))
    text = _messages(report)
    assert (
        f"batch 2: batch.json prevBatchHash {forged_prev} is not batch 1's hash "
        f"{EXPORTS[0].batch_hash}"
    ) in text
    assert "batch 2: batch.json prevBatchHash" in text and "is not the on-chain previous" in text
    assert "batch.json batchHash" in text and "is not the on-chain batch hash" in text
    # Batch 3 names batch 2's on-chain hash, which the forged export no longer carries.
    assert {"link.previous", "link.chain", "batch_hash.chain"} <= set(report.codes())


def test_broken_link_on_chain_side_is_named() -> None:
    chain = dict(CHAIN)
    chain[3] = replace(chain[3], prev_batch_hash="0x" + "77" * 32)
    report = _verify(EXPORTS, chain)
    assert (
        "batch 3: on-chain previous batch hash 0x" + "77" * 32 + " is not batch 2's hash"
    ) in _messages(report)
    assert "batch_hash.formula" in report.codes()  # chain header no longer hashes to its hash


def test_first_batch_must_link_to_zero() -> None:
    export = EXPORTS[0]
    chain = {1: replace(CHAIN[1], prev_batch_hash="0x" + "01" * 32)}
    report = _verify([export], chain)
    assert "is not zero (batch 1 has no predecessor)" in _messages(report)


def test_unchecked_link_is_a_note_not_a_pass_in_silence() -> None:
    report = verify_exports([EXPORTS[2]], {3: CHAIN[3]})
    assert report.ok
    assert report.notes == ["batch 3: link to batch 2 not checked (batch 2 not given)"]
    assert verify_exports([EXPORTS[2]], CHAIN).notes == []  # chain batch 2 suffices


def test_balance_leaf_of_another_batch_and_missing_wallet() -> None:
    export = edited(EXPORTS[0])
    values = [list(v["value"]) for v in export.balances_dump["values"]]
    values[0][4] = "7"
    gone = values.pop()
    tree = StandardMerkleTree.of(values, export.balances_dump["leafEncoding"])
    forged = replace(export, balances_dump=tree.dump(), balances_root=tree.root)
    report = _verify(_with(1, forged))
    text = _messages(report)
    assert f"balance leaf {values[0][0]}/{values[0][1]} {values[0][2]} at balances.json" in text
    assert "has batchNumber 7, not 1" in text
    assert f"wallet {gone[0]}/{gone[1]} {gone[2]} is touched by transfer leaf seq" in text
    assert "is not the on-chain balances root" in text


def test_missing_chain_batch_and_wrong_location() -> None:
    report = _verify(EXPORTS, {1: CHAIN[1], 2: CHAIN[2]})
    assert "batch 3: not found on chain" in _messages(report)
    chain = dict(CHAIN)
    chain[2] = replace(chain[2], tx_hash="0x" + "ab" * 32, block_number=7)
    text = _messages(_verify(EXPORTS, chain))
    assert (
        "batch 2: batch.json chainTxHash 0x" in text and "is not the settling transaction" in text
    )
    assert "batch 2: batch.json blockNumber 102 is not the settling block 7" in text
    other = verify_exports(EXPORTS, CHAIN, chain_id=1, contract_address="0x" + "c1" * 20)
    assert {"location.chain_id", "location.contract"} <= set(other.codes())


def test_unknown_schema_version_is_refused() -> None:
    report = _verify(_with(1, replace(EXPORTS[0], leaf_schema_version=9)))
    assert "batch 1: leaf schema version 9 is not one this verifier knows" in _messages(report)


def test_unreadable_export_directory_is_a_mismatch(tmp_path: Path) -> None:
    report = verify_export_dirs([tmp_path], CHAIN)
    assert not report.ok
    assert report.mismatches[0].code == "export.missing_file"


def test_many_mismatches_are_capped_and_counted() -> None:
    export = edited(EXPORTS[0])
    for entry in export.transfers_dump["values"]:
        entry["value"][8] = str(int(entry["value"][8]) + 1)
    report = _verify(_with(1, export))
    leaf_lines = [m for m in report.mismatches if m.code == "transfers.leaf"]
    assert len(leaf_lines) == 21
    assert leaf_lines[-1].message == "batch 1: ... and 20 more transfers.leaf mismatches"


# ----------------------------------------------------------------------------- single proofs


def test_single_transfer_proof_against_the_chain_root() -> None:
    export = EXPORTS[1]
    leaf = export.transfer_leaves()[4]
    (proof,) = transfer_proofs(export, [leaf.transfer_id])
    ok = verify_transfer_proof(leaf, proof.proof, 2, CHAIN[2])
    assert ok.ok and ok.proofs_checked == 1
    assert verify_transfer_proof(proof, chain=CHAIN).ok

    forged = replace(leaf, amount_minor=leaf.amount_minor + 1)
    report = verify_transfer_proof(forged, proof.proof, 2, CHAIN)
    assert [m.message for m in report.mismatches] == [
        f"batch 2: transfer leaf seq {leaf.seq} (id {leaf.transfer_id}) not in on-chain "
        f"transfers root {CHAIN[2].transfers_root}"
    ]
    assert not verify_transfer_proof(leaf, proof.proof, 3, CHAIN).ok  # wrong batch
    malformed = verify_transfer_proof(leaf, ["0x12"], 2, CHAIN)
    assert malformed.codes() == ["proof.malformed"]
    missing = verify_transfer_proof(leaf, proof.proof, 9, CHAIN)
    assert missing.codes() == ["chain.missing"]


def test_single_balance_proof() -> None:
    export = EXPORTS[0]
    tree = export.balances_tree()
    leaf = export.balance_leaves()[2]
    assert verify_balance_proof(leaf, tree.get_proof(2), CHAIN).ok
    forged = replace(leaf, balance_minor=leaf.balance_minor + 1)
    report = verify_balance_proof(forged, tree.get_proof(2), CHAIN)
    assert report.codes() == ["proof.not_included"]
    assert "not in on-chain balances root" in _messages(report)


def test_position_for_participant_without_address() -> None:
    export = EXPORTS[0]
    participants = {k: v for k, v in export.participants.items() if k != "p_acme"}
    positions = tuple(p for p in export.net_positions if p.participant != "p_acme")
    report = _verify(_with(1, replace(export, participants=participants, net_positions=positions)))
    assert "participant p_acme has a net position in" in _messages(report)


def test_report_to_json() -> None:
    bad = replace(EXPORTS[0], net_positions=(NetPosition("p_acme", "0x" + "a1" * 20, "USD", 1),))
    doc = _verify([bad, *EXPORTS[1:]]).to_json()
    assert doc["ok"] is False
    assert doc["mismatches"][0]["batch"] == 1
    assert {"batch", "code", "message"} == set(doc["mismatches"][0])
