"""/v1/settlement and /v1/audit through a real uvicorn server, on SQLite and PostgreSQL,
with the real embedded chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth_store import Role
from settlement.audit.chain_reader import read_all_batches, read_chain_batch
from settlement.audit.export import TransferProof, parse_batch_header
from settlement.audit.verify import verify_exports, verify_transfer_proof
from settlement.leader import LeaderLock
from tests.settlement.conftest import open_corridor
from tests.settlement.live import Server, serve
from tests.settlement.world import edit_transfer_amount

PROBLEM = "application/problem+json"


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    corridor = open_corridor(tmp_path / "data", database_url)
    try:
        with serve(corridor) as running:
            yield running
    finally:
        corridor.close()


def _usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def test_settlement_and_audit_over_http(server: Server) -> None:
    corridor = server.corridor
    op = server.client(server.operator_key)
    for pid in ("acme", "bolt", "cove"):
        assert op.post("/v1/participants", json={"id": pid, "name": pid}).status_code == 201
    acme = server.client(server.key(Role.PARTICIPANT, "acme"))
    bolt = server.client(server.key(Role.PARTICIPANT, "bolt"))
    cove = server.client(server.key(Role.PARTICIPANT, "cove"))
    auditor = server.client(server.key(Role.AUDITOR))

    # Prefunding: only the process leading settlement may write to the embedded chain.
    funding = {"id": "f-1", "participant_id": "acme", "amount": _usd("1000.00")}
    elsewhere = LeaderLock(corridor.engine, corridor.settings.data_dir)
    assert elsewhere.try_acquire()
    busy = op.post("/v1/settlement/funding", json=funding)
    assert _problem(busy, 503, "chain_busy") and busy.headers["Retry-After"] == "5"
    elsewhere.release()
    funded = op.post("/v1/settlement/funding", json=funding)
    assert funded.status_code == 200, funded.text
    assert funded.json()["settlement_balance"] == _usd("1000.00")
    replay = op.post("/v1/settlement/funding", json=funding)
    assert replay.json()["settlement_balance"] == _usd("1000.00"), "funded once"
    _problem(acme.post("/v1/settlement/funding", json=funding), 403, "forbidden")
    unknown = {**funding, "participant_id": "nobody"}
    _problem(op.post("/v1/settlement/funding", json=unknown), 404, "participant_not_found")
    bad = {**funding, "id": "f-2", "amount": _usd("1.001")}
    _problem(op.post("/v1/settlement/funding", json=bad), 422, "invalid_amount")

    alice = acme.post("/v1/wallets", json={}).json()["id"]
    bob = bolt.post("/v1/wallets", json={}).json()["id"]
    deposit = {"id": "cash", "wallet_id": alice, "amount": _usd("500.00")}
    assert acme.post("/v1/deposits", json=deposit).status_code == 201
    sent = acme.post(
        "/v1/transfers",
        json={"id": "t-1", "from_wallet": alice, "to_wallet": bob, "amount": _usd("300.00")},
    )
    assert sent.status_code == 201, sent.text
    transfer_id = sent.json()["id"]

    status = acme.get(f"/v1/settlement/transfers/{transfer_id}").json()
    assert status == {
        "transfer_id": transfer_id,
        "window": 1,
        "status": "open",
        "batch": None,
        "tx_hash": None,
        "block_number": None,
    }
    _problem(cove.get(f"/v1/settlement/transfers/{transfer_id}"), 404, "transfer_not_found")
    _problem(acme.get(f"/v1/audit/transfers/{transfer_id}/proof"), 409, "not_settled")
    (open_window,) = op.get("/v1/settlement/windows").json()["data"]
    assert (open_window["number"], open_window["status"]) == (1, "open")
    assert open_window["transfer_count"] == 2

    _problem(acme.post("/v1/settlement/windows/close"), 403, "forbidden")
    closed = op.post("/v1/settlement/windows/close")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed" and closed.json()["close_reason"] == "demand"
    _problem(op.post("/v1/settlement/windows/close"), 409, "window_empty")
    assert acme.get(f"/v1/settlement/transfers/{transfer_id}").json()["status"] == "closed"
    _problem(op.get("/v1/settlement/batches/1"), 409, "not_settled")
    _problem(auditor.get("/v1/audit/batches/1/export"), 409, "not_settled")

    assert corridor.leader.try_acquire()
    assert [w.number for w in corridor.settler().settle_due().settled] == [1]
    # Read the chain from here on as a process that is not the leader would: read-only.
    corridor.leader.release()
    chain = {b.number: b for b in read_all_batches(corridor.chain())}

    settled = acme.get(f"/v1/settlement/transfers/{transfer_id}").json()
    assert settled["status"] == "settled" and settled["batch"] == 1
    assert settled["tx_hash"] == chain[1].tx_hash
    assert settled["block_number"] == chain[1].block_number

    page = op.get("/v1/settlement/windows", params={"limit": 1}).json()
    assert [w["number"] for w in page["data"]] == [2] and page["next_cursor"] == "2"
    older = op.get("/v1/settlement/windows", params={"limit": 1, "after": "2"}).json()
    assert older["data"][0]["status"] == "settled" and older["next_cursor"] == "1"
    assert op.get("/v1/settlement/windows/1").json()["tx_hash"] == chain[1].tx_hash
    _problem(op.get("/v1/settlement/windows/9"), 404, "window_not_found")
    _problem(op.get("/v1/settlement/batches/9"), 404, "batch_not_found")

    batch = op.get("/v1/settlement/batches/1").json()
    assert batch["batch_hash"] == chain[1].batch_hash and batch["transfer_count"] == 2
    positions = {p["participant_id"]: p["amount"] for p in batch["positions"]}
    assert positions == {"acme": _usd("-300.00"), "bolt": _usd("300.00")}
    assert [p["participant_address"] for p in batch["positions"]] == [
        address for address, _, _ in chain[1].positions
    ]
    own = bolt.get("/v1/settlement/batches/1").json()["positions"]
    assert [p["participant_id"] for p in own] == ["bolt"]

    # Proofs: the sender, the recipient and the auditor; nobody else.
    for client in (acme, bolt, auditor, op):
        proof = client.get(f"/v1/audit/transfers/{transfer_id}/proof")
        assert proof.status_code == 200, proof.text
        document = proof.json()
        assert document["verifiedOnChain"] is True
        assert document["transfersRoot"] == chain[1].transfers_root
        assert document["chainTxHash"] == chain[1].tx_hash
        assert verify_transfer_proof(TransferProof.from_json(document), chain=chain).ok
    _problem(cove.get(f"/v1/audit/transfers/{transfer_id}/proof"), 404, "transfer_not_found")
    _problem(auditor.get("/v1/audit/transfers/tr_nope/proof"), 404, "transfer_not_found")

    exported = auditor.get("/v1/audit/batches/1/export")
    assert exported.status_code == 200, exported.text
    body = exported.json()
    export = parse_batch_header(body["batch"], body["transfers"], body["balances"])
    deployment = corridor.chain().deployment()
    assert deployment is not None
    report = verify_exports(
        [export], chain, chain_id=deployment.chain_id, contract_address=deployment.address
    )
    assert report.ok, str(report)
    _problem(acme.get("/v1/audit/batches/1/export"), 403, "forbidden")

    reconciliation = auditor.get("/v1/settlement/reconciliation")
    assert reconciliation.status_code == 200, reconciliation.text
    assert reconciliation.json()["ok"] is True and reconciliation.json()["batches"] == [1]
    _problem(acme.get("/v1/settlement/reconciliation"), 403, "forbidden")
    bad_range = op.get("/v1/settlement/reconciliation", params={"first": 5, "last": 2})
    _problem(bad_range, 422, "invalid_range")
    edit_transfer_amount(corridor, transfer_id, 300_01)
    tampered = op.get("/v1/settlement/reconciliation").json()
    assert tampered["ok"] is False
    codes = {d["code"] for d in tampered["differences"]}
    assert {"ledger.postings", "transfers.root", "positions"} <= codes
    assert read_chain_batch(corridor.chain(), 1) == chain[1], "the chain did not change"
