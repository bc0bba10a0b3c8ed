"""The same audit over JSON-RPC: settled on anvil, read back and verified through the
auditor's read-only RPC gateway (no data dir, no event index)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli_settlement import run_verify
from api.context import Corridor
from api.routers.audit import proof_document, stamped_export
from api.settings import Settings
from node_config.anvil import AnvilNode, find_anvil
from node_config.chain import KEYSTORE_PASSPHRASE_DEV
from settlement.audit.chain_reader import read_all_batches
from settlement.audit.export import write_batch_export
from settlement.batches import get_window
from settlement.chain import ChainConfig
from settlement.chain.keys import keystore_path, load_or_create_operator_key
from settlement.reconcile import reconcile
from tests.settlement.conftest import SCRYPT_N_TEST
from tests.settlement.world import build_world, edit_transfer_amount

OPERATOR_FUNDS_WEI = 10**24

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(find_anvil() is None, reason="anvil not installed: npm ci in contracts/"),
]


def test_verify_over_rpc(tmp_path: Path) -> None:
    anvil = AnvilNode.start()
    data_dir = tmp_path / "data"
    try:
        account, _ = load_or_create_operator_key(
            keystore_path(data_dir), KEYSTORE_PASSPHRASE_DEV, scrypt_n=SCRYPT_N_TEST
        )
        anvil.set_balance(account.address, OPERATOR_FUNDS_WEI)
        chain_config = ChainConfig(
            transport="rpc",
            rpc_urls=(anvil.url,),
            data_dir=data_dir,
            keystore_scrypt_n=SCRYPT_N_TEST,
            poll_interval_s=0.02,
        )
        settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{tmp_path / 'l.sqlite3'}")
        corridor = Corridor.open(settings, chain_config=chain_config)
        try:
            world = build_world(corridor)
            gateway = corridor.chain()
            deployment = gateway.deployment()
            assert deployment is not None
            indexed = read_all_batches(gateway)  # through the event index in the ledger DB
            dirs = []
            for number in world.batches:
                window = get_window(corridor.engine, number)
                assert window is not None
                export = stamped_export(corridor.engine, window, gateway)
                dirs.append(write_batch_export(export, tmp_path / f"batch-{number}"))
            transfer = corridor.ledger.get_transfer(world.transfers["a1"])
            _, document = proof_document(corridor.engine, transfer, gateway)
            assert document["verifiedOnChain"] is True
            proof_file = tmp_path / "proof.json"
            proof_file.write_text(json.dumps(document))

            outcome = run_verify(
                contract=deployment.address,
                rpc=anvil.url,
                export_dirs=dirs,
                proof_files=[proof_file],
            )
            assert outcome.report.ok, str(outcome.report)
            assert outcome.chain["transport"] == "rpc" and outcome.report.batches == [1, 2]
            chain_only = run_verify(contract=deployment.address, rpc=anvil.url)
            assert chain_only.report.ok and chain_only.chain["last_batch"] == 2
            assert [b.number for b in indexed] == [1, 2]
            assert (
                indexed[1].tx_hash
                == json.loads((dirs[1] / "batch.json").read_text())["chainTxHash"]
            )

            edit_transfer_amount(corridor, transfer.id, transfer.amount_minor + 1)
            assert "transfers.root" in reconcile(corridor.engine, gateway).codes()
        finally:
            corridor.close()
    finally:
        anvil.stop()
