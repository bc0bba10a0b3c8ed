"""Kill the settlement process at every step; after a restart each batch is settled once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from settlement.batches import CloseReason, WindowStatus, close_window, get_window
from settlement.ledger.model import TransferRequest
from tests.settlement.conftest import open_corridor
from tests.settlement.crash_runner import KILLED

REPO = Path(__file__).resolve().parents[2]
STEPS = ["after_build", "before_send", "after_send_before_receipt", "after_receipt_before_record"]


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_each_step_settles_exactly_once(
    step: str, tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    corridor = open_corridor(data_dir, database_url)
    ledger = corridor.ledger
    for pid in ("acme", "bolt"):
        ledger.create_participant(pid, participant_id=pid)
        corridor.settler().fund(pid, "USD", 1_000_00, client_id="prefund")
    payer = ledger.create_wallet("acme", kyc_tier="enhanced").id
    payee = ledger.create_wallet("bolt").id
    ledger.deposit("acme", "cash", payer, "USD", 500_00)
    ledger.transfer("acme", TransferRequest("t", payer, "USD", 120_00, to_wallet=payee))
    assert close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND) is not None
    corridor.close()

    crashed = subprocess.run(
        [sys.executable, "-m", "tests.settlement.crash_runner", str(data_dir), database_url, step],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == KILLED, crashed.stderr

    restarted = open_corridor(data_dir, database_url)
    try:
        outcome = restarted.settler().settle_due()
        assert outcome.failed is None
        window = get_window(restarted.engine, 1)
        assert window is not None and window.status is WindowStatus.SETTLED
        chain = restarted.chain()
        assert chain.last_batch_number() == 1, "no gap, no second batch"
        header = chain.batch(1)
        assert header is not None and "0x" + header.batch_hash.hex() == window.batch_hash
        acme = ledger.get_participant("acme").settlement_address
        assert acme is not None
        # The positions were applied once: on chain and in the mirror alike.
        assert chain.settlement_balance(acme, "USD") == 1_000_00 - 120_00
        (usd,) = restarted.ledger.settlement_exposure("acme")
        assert (usd.prefunded_minor, usd.unsettled_minor) == (880_00, 0)
        assert restarted.settler().settle_due().settled == []
    finally:
        restarted.close()
