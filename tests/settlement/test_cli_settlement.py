"""`corridor settle`, `audit proof|export`, `chain info` (in process) and `corridor verify`
(a real subprocess that reads only the embedded chain's data dir)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from api.cli_settlement import SettleResult, settle_now, settlement_app
from settlement.batches import WindowStatus, get_window
from settlement.ledger.model import TransferRequest
from tests.settlement.cli import finish, start
from tests.settlement.conftest import open_corridor
from tests.settlement.world import build_world

runner = CliRunner()


def _invoke(env: dict[str, str], *args: str) -> Any:
    result = runner.invoke(settlement_app(), list(args), env=env)
    return result


def _json(result: Any) -> Any:
    assert result.stdout, result.output
    return json.loads(result.stdout)


def test_settle_audit_and_verify_from_the_command_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    corridor = open_corridor(data_dir, url)
    world = build_world(corridor, settle_second=False)
    late, _ = corridor.ledger.transfer(
        "bolt",
        TransferRequest(
            "late", world.wallets["bolt"], "USD", 7_00, to_wallet=world.wallets["acme"]
        ),
    )
    deployment = corridor.chain().deployment()
    assert deployment is not None
    corridor.close()  # the commands below open it as other processes would
    env = {"CORRIDOR_DATA_DIR": str(data_dir), "CORRIDOR_DATABASE_URL": url}

    settled = _invoke(env, "settle", "--json")
    assert settled.exit_code == 0, settled.output
    body = _json(settled)
    assert body["ok"] and body["closed_window"] == 2 and body["settled_by"] == "this process"
    (batch,) = body["batches"]
    assert batch["batch"] == 2 and batch["status"] == "settled" and batch["transfer_count"] == 1
    assert batch["tx_hash"].startswith("0x") and batch["gas_used"] > 0
    again = _invoke(env, "settle")
    assert again.exit_code == 0 and "nothing to settle" in again.stdout

    info = _json(_invoke(env, "chain", "info", "--json"))
    assert info["transport"] == "embedded" and info["chain_id"] == 1337
    assert info["contract_address"] == deployment.address
    assert info["last_batch"] == 2 and info["last_batch_tx_hash"] == batch["tx_hash"]

    proof_file = tmp_path / "proof.json"
    proof = _invoke(env, "audit", "proof", late.id, "--json", "--out", str(proof_file))
    assert proof.exit_code == 0, proof.output
    document = _json(proof)
    assert document["batchNumber"] == 2 and document["verifiedOnChain"] is True
    assert json.loads(proof_file.read_text()) == document
    human = _invoke(env, "audit", "proof", late.id)
    assert "contract verifyTransfer: accepted" in human.stdout
    missing = _invoke(env, "audit", "proof", "tr_nope")
    assert missing.exit_code == 1 and "transfer_not_found" in missing.output

    out = tmp_path / "export-2"
    exported = _invoke(env, "audit", "export", "2", "--out", str(out), "--json")
    assert exported.exit_code == 0, exported.output
    assert sorted(p.name for p in out.iterdir()) == [
        "balances.json",
        "batch.json",
        "transfers.json",
    ]
    assert _invoke(env, "audit", "export", "3", "--out", str(tmp_path / "x")).exit_code == 1

    # The auditor's tool, as a real process with no database configured: clean, tampered.
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name in ("batch.json", "transfers.json", "balances.json"):
        (tampered / name).write_text((out / name).read_text())
    dump = json.loads((tampered / "transfers.json").read_text())
    dump["values"][0]["value"][7] = str(int(dump["values"][0]["value"][7]) * 2)
    (tampered / "transfers.json").write_text(json.dumps(dump))
    auditor_env = {"CORRIDOR_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    base = ["verify", "--data-dir", str(data_dir), "--contract", deployment.address]
    clean = start([*base, str(out), "--proof", str(proof_file), "--json"], auditor_env)
    bad = start([*base, str(tampered)], auditor_env)
    clean_done, bad_done = finish(clean), finish(bad)
    assert clean_done.returncode == 0, clean_done.stdout + clean_done.stderr
    report = json.loads(clean_done.stdout)
    assert report["ok"] and report["batches"] == [2] and report["proofsChecked"] == 1
    assert bad_done.returncode == 1, bad_done.stdout + bad_done.stderr
    assert "FAILED" in bad_done.stdout and "batch 2:" in bad_done.stdout
    assert "not the on-chain transfers root" in bad_done.stdout

    wrong = _invoke({}, "verify", "--data-dir", str(data_dir), "--contract", "0x" + "11" * 20)
    assert wrong.exit_code == 2 and "cannot read the chain" in wrong.output
    both = _invoke({}, "verify", "--contract", deployment.address)
    assert both.exit_code == 2


def test_settle_waits_for_the_leader(tmp_path: Path, database_url: str) -> None:
    """A process that cannot lead closes the window and waits for the leader to settle."""
    leader = open_corridor(tmp_path / "data", database_url)
    follower = open_corridor(tmp_path / "data", database_url)
    try:
        wallets = build_world(leader, settle_second=False).wallets
        assert leader.leader.try_acquire()
        leader.ledger.transfer(
            "acme", TransferRequest("x", wallets["acme"], "USD", 1_00, to_wallet=wallets["bolt"])
        )
        timed_out = settle_now(follower, timeout_s=0.3)
        assert timed_out.timed_out and not timed_out.ok and not timed_out.leader
        assert timed_out.closed == 2

        results: list[SettleResult] = []
        waiting = threading.Thread(target=lambda: results.append(settle_now(follower, 30)))
        waiting.start()
        time.sleep(0.3)
        assert [w.number for w in leader.settler().settle_due().settled] == [2]
        waiting.join(timeout=30)
        (result,) = results
        assert result.ok and not result.leader and result.closed is None
        assert [w.number for w in result.windows] == [2]
        window = get_window(leader.engine, 2)
        assert window is not None and window.status is WindowStatus.SETTLED
    finally:
        follower.close()
        leader.close()
