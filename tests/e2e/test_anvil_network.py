"""End to end on a real JSON-RPC node: `corridor network dev` (anvil), the rpc transport,
three batches with a restart in between, and `corridor verify` against the node's RPC."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from api.context import Corridor
from api.settings import Settings
from node_config.anvil import find_anvil
from settlement.batches import CloseReason, close_window
from settlement.chain import ChainConfig
from settlement.ledger.model import TransferRequest

REPO = Path(__file__).resolve().parents[2]
CORRIDOR = [sys.executable, "-c", "from api.cli import main; main()"]

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(find_anvil() is None, reason="anvil missing: `npm ci` in contracts/"),
]


def _open(data_dir: Path, database_url: str, rpc_url: str) -> Corridor:
    settings = Settings(data_dir=data_dir, database_url=database_url)
    chain = ChainConfig(transport="rpc", data_dir=data_dir, rpc_urls=(rpc_url,))
    return Corridor.open(settings, chain_config=chain)


def _settle_one(corridor: Corridor, wallets: dict[str, str], n: int) -> None:
    corridor.ledger.transfer(
        "acme",
        TransferRequest(f"t{n}", wallets["acme"], "USD", 10_00 * n, to_wallet=wallets["bolt"]),
    )
    assert close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND) is not None
    outcome = corridor.settler().settle_due()
    assert outcome.failed is None and [w.number for w in outcome.settled] == [n]


def test_three_batches_on_anvil_with_a_restart_verified_by_rpc(
    tmp_path: Path, sqlite_url: str
) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CORRIDOR_DATA_DIR": str(data_dir)}
    node = subprocess.Popen(
        [*CORRIDOR, "network", "dev", "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert node.stdout is not None
        started = json.loads(node.stdout.readline())
        rpc_url = started["rpc_url"]

        corridor = _open(data_dir, sqlite_url, rpc_url)
        wallets = {}
        for pid in ("acme", "bolt"):
            corridor.ledger.create_participant(pid, participant_id=pid)
            corridor.settler().fund(pid, "USD", 1_000_00, client_id="prefund")
            wallets[pid] = corridor.ledger.create_wallet(pid).id
        corridor.ledger.deposit("acme", "cash", wallets["acme"], "USD", 500_00)
        _settle_one(corridor, wallets, 1)
        _settle_one(corridor, wallets, 2)
        contract = corridor.chain().ensure_deployed().address
        corridor.close()

        restarted = _open(data_dir, sqlite_url, rpc_url)
        assert restarted.chain().ensure_deployed().address == contract, "the contract is reused"
        _settle_one(restarted, wallets, 3)
        assert restarted.chain().last_batch_number() == 3
        restarted.close()

        cli_env = {
            **env,
            "CORRIDOR_DATABASE_URL": sqlite_url,
            "CORRIDOR_CHAIN": "rpc",
            "CORRIDOR_CHAIN_RPC_URLS": rpc_url,
        }
        exports = []
        for n in (1, 2, 3):
            out = tmp_path / f"batch-{n}"
            done = subprocess.run(
                [*CORRIDOR, "audit", "export", str(n), "--out", str(out)],
                cwd=REPO,
                env=cli_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            exports.append(str(out))
        auditor_env = {k: v for k, v in env.items() if not k.startswith("CORRIDOR_")}
        verified = subprocess.run(
            [*CORRIDOR, "verify", "--rpc", rpc_url, "--contract", contract, *exports],
            cwd=tmp_path,
            env=auditor_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr

        batch = json.loads((Path(exports[1]) / "batch.json").read_text())
        batch["netPositions"][0]["amountMinor"] = str(
            int(batch["netPositions"][0]["amountMinor"]) + 1
        )
        (Path(exports[1]) / "batch.json").write_text(json.dumps(batch))
        tampered = subprocess.run(
            [*CORRIDOR, "verify", "--rpc", rpc_url, "--contract", contract, *exports],
            cwd=tmp_path,
            env=auditor_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert tampered.returncode == 1
        assert "batch 2" in tampered.stdout
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=30)
