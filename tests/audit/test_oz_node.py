"""Python-written dumps checked by the real @openzeppelin/merkle-tree in Node.js."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from settlement.audit.leaves import (
    BalanceLeaf,
    TransferLeaf,
    build_balances_tree,
    build_transfers_tree,
)
from settlement.merkle import StandardMerkleTree

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "contracts" / "node_modules"
CHECK_SCRIPT = Path(__file__).parent / "js" / "check_dumps.js"


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (NODE_MODULES / "@openzeppelin" / "merkle-tree" / "package.json").exists():
        return f"{NODE_MODULES}/@openzeppelin/merkle-tree is missing (cd contracts && npm ci)"
    return None


pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
]


def _run_js(cases: list[dict[str, Any]]) -> dict[str, Any]:
    done = subprocess.run(
        ["node", str(CHECK_SCRIPT)],
        input=json.dumps({"cases": cases}),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _trees() -> list[StandardMerkleTree]:
    rng = random.Random(4)
    parts = ["p_acme", "p_beta", "p_fxlp", "p_ünï"]
    transfers = [
        TransferLeaf(
            seq=1000 + i,
            transfer_id=f"tr_{rng.getrandbits(64):016x}",
            debit_participant=rng.choice(parts),
            debit_wallet=f"w_{rng.randrange(50)}",
            credit_participant=rng.choice(parts),
            credit_wallet=f"w_{rng.randrange(50)}" * rng.randrange(1, 6),
            currency=rng.choice(["USD", "PHP", "EUR"]),
            amount_minor=rng.randrange(1, 10**20),
            posted_at_ms=1_767_225_600_000 + i,
        )
        for i in range(257)
    ]
    balances = [
        BalanceLeaf(p, f"w_{i}", c, rng.randrange(-(10**12), 10**12), 7)
        for i, (p, c) in enumerate((p, c) for p in parts for c in ["USD", "PHP", "EUR"])
    ]
    mixed = StandardMerkleTree.of(
        [
            [bytes([i + 1] * 20), -(2**255) + i, i % 2 == 0, bytes([i] * 32), bytes(i), "s" * i]
            for i in range(6)
        ],
        ["address", "int256", "bool", "bytes32", "bytes", "string"],
    )
    return [
        build_transfers_tree(transfers),
        build_transfers_tree(transfers[:1]),
        build_balances_tree(balances),
        mixed,
    ]


def test_js_loads_our_dumps_and_agrees_on_roots_and_proofs() -> None:
    trees = _trees()
    cases = [
        {"dump": json.loads(t.dumps()), "proofs": [t.get_proof(i) for i in range(len(t))]}
        for t in trees
    ]
    result = _run_js(cases)
    assert result["version"] == "1.0.8"
    for tree, got in zip(trees, result["results"], strict=True):
        assert "error" not in got, got.get("error")
        assert got["root"] == tree.root
        assert got["proofs"] == [tree.get_proof(i) for i in range(len(tree))]
        assert all(got["givenProofsVerify"])
        # JS building from the same values gives the same tree, the same dump.
        assert got["rebuiltRoot"] == tree.root
        assert got["rebuiltDump"] == tree.dump()


def test_js_refuses_a_tampered_dump_as_we_do() -> None:
    tree = _trees()[0]
    dump = json.loads(tree.dumps())
    dump["values"][5]["value"][7] = str(int(dump["values"][5]["value"][7]) + 1)
    result = _run_js([{"dump": dump}])
    assert "does not contain the expected value" in result["results"][0]["error"]


def test_js_reproduces_the_roots_of_an_export_directory(tmp_path: Path) -> None:
    from settlement.audit.export import write_batch_export
    from tests.audit.batches import make_history

    export = make_history(batches=1, transfers_per_batch=60)[0][0]
    out = write_batch_export(export, tmp_path)
    header = json.loads((out / "batch.json").read_text("utf-8"))
    dumps = [
        json.loads((out / name).read_text("utf-8")) for name in ("transfers.json", "balances.json")
    ]
    result = _run_js([{"dump": d} for d in dumps])
    transfers, balances = result["results"]
    assert transfers["root"] == header["transfersRoot"] == transfers["rebuiltRoot"]
    assert balances["root"] == header["balancesRoot"] == balances["rebuiltRoot"]
