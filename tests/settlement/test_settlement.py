"""Windows settle as batches on the real embedded chain with the real compiled contract."""

from __future__ import annotations

import pytest

from api.context import Corridor
from settlement.batches import CloseReason, WindowStatus, close_reason, close_window, get_window
from settlement.errors import LedgerError
from settlement.ledger.model import TransferRequest


def _onboard(corridor: Corridor) -> dict[str, str]:
    ledger = corridor.ledger
    settler = corridor.settler()
    wallets = {}
    for pid in ("acme", "bolt"):
        ledger.create_participant(pid.title(), participant_id=pid)
        settler.fund(pid, "USD", 1_000_00, client_id=f"prefund-{pid}")
        wallets[pid] = ledger.create_wallet(pid, kyc_tier="enhanced").id
        ledger.deposit(pid, f"cash-{pid}", wallets[pid], "USD", 5_000_00)
    wallets["acme2"] = ledger.create_wallet("acme").id
    return wallets


def test_window_settles_on_chain_and_moves_prefunding(corridor: Corridor) -> None:
    w = _onboard(corridor)
    ledger, chain = corridor.ledger, corridor.chain()
    ledger.transfer("acme", TransferRequest("a1", w["acme"], "USD", 300_00, to_wallet=w["bolt"]))
    ledger.transfer("bolt", TransferRequest("b1", w["bolt"], "USD", 100_00, to_wallet=w["acme"]))
    ledger.transfer("acme", TransferRequest("a2", w["acme"], "USD", 50_00, to_wallet=w["acme2"]))
    # Prefunding bounds what acme may owe: 1,000.00 minus the 200.00 it owes now.
    with pytest.raises(LedgerError) as refused:
        ledger.transfer(
            "acme", TransferRequest("a3", w["acme"], "USD", 800_01, to_wallet=w["bolt"])
        )
    assert refused.value.code == "net_debit_cap_exceeded"

    closed = close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND)
    assert closed is not None and closed.number == 1
    # The fast path goes on in window 2 while window 1 settles.
    late, _ = ledger.transfer(
        "bolt", TransferRequest("b2", w["bolt"], "USD", 10_00, to_wallet=w["acme"])
    )
    assert late.window_number == 2

    outcome = corridor.settler().settle_due()
    assert outcome.failed is None and [b.number for b in outcome.settled] == [1]
    batch = get_window(corridor.engine, 1)
    assert batch is not None and batch.status is WindowStatus.SETTLED
    # deposits (2), the three posted transfers: all provable; the refused one is not there.
    assert batch.transfer_count == 5
    header = chain.batch(1)
    assert header is not None
    assert "0x" + header.batch_hash.hex() == batch.batch_hash
    assert "0x" + header.transfers_root.hex() == batch.transfers_root
    assert header.prev_batch_hash == bytes(32)

    acme_address = ledger.get_participant("acme").settlement_address
    bolt_address = ledger.get_participant("bolt").settlement_address
    assert acme_address and bolt_address
    assert chain.settlement_balance(acme_address, "USD") == 800_00
    assert chain.settlement_balance(bolt_address, "USD") == 1_200_00
    exposure = {
        s.participant_id: s for p in ("acme", "bolt") for s in ledger.settlement_exposure(p)
    }
    assert (exposure["acme"].prefunded_minor, exposure["acme"].unsettled_minor) == (800_00, 10_00)
    assert (exposure["bolt"].prefunded_minor, exposure["bolt"].unsettled_minor) == (
        1_200_00,
        -10_00,
    )

    assert close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND) is not None
    second = corridor.settler().settle_due()
    assert [b.number for b in second.settled] == [2]
    header2 = chain.batch(2)
    assert header2 is not None and header2.prev_batch_hash == header.batch_hash
    assert corridor.settler().settle_due().settled == [], "each batch settles exactly once"
    assert chain.last_batch_number() == 2


def test_empty_window_does_not_close(corridor: Corridor) -> None:
    assert close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND) is None
    assert close_reason(10**9, 0, 0, 1, 1) is None
    assert close_reason(10**9, 0, 5, 60, 5) is CloseReason.COUNT
    assert close_reason(61_000_000, 0, 1, 60, 5) is CloseReason.TIME
    assert close_reason(59_000_000, 0, 1, 60, 5) is None


def test_funding_is_idempotent(corridor: Corridor) -> None:
    corridor.ledger.create_participant("Acme", participant_id="acme")
    settler = corridor.settler()
    assert settler.fund("acme", "USD", 500_00, client_id="f1") == 500_00
    assert settler.fund("acme", "USD", 500_00, client_id="f1") == 500_00
    assert settler.fund("acme", "USD", 1_00, client_id="f2") == 501_00
    (usd,) = corridor.ledger.settlement_exposure("acme")
    assert usd.prefunded_minor == 501_00
