"""A small settled history on a real Corridor (ledger + embedded chain), for the audit tests.

Two partners in two countries, the FX liquidity provider and the hub: deposits, same- and
cross-participant transfers in USD and PHP, prefunding on chain, two settled batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import update

from api.context import Corridor
from settlement.batches import CloseReason, close_window
from settlement.db import write_transaction
from settlement.ledger.model import TransferRequest
from settlement.ledger.tables import transfers
from tests.helpers import allow_settlement_debits


@dataclass
class World:
    wallets: dict[str, str]
    # transfer ids by a short name: "a1" (acme -> bolt USD), "local" (acme -> acme2), ...
    transfers: dict[str, str] = field(default_factory=dict)
    batches: list[int] = field(default_factory=list)


def build_world(corridor: Corridor, *, settle_second: bool = True) -> World:
    ledger = corridor.ledger
    settler = corridor.settler()
    wallets: dict[str, str] = {}
    for pid in ("acme", "bolt"):
        ledger.create_participant(pid.title(), participant_id=pid)
        wallets[pid] = ledger.create_wallet(pid, kyc_tier="enhanced").id
    allow_settlement_debits(ledger, ["acme", "bolt"], ["USD", "PHP"])
    settler.fund("acme", "USD", 2_000_00, client_id="prefund-acme")
    settler.fund("bolt", "PHP", 5_000_00, client_id="prefund-bolt")
    wallets["acme2"] = ledger.create_wallet("acme").id
    world = World(wallets)
    t = world.transfers
    t["cash_acme"] = ledger.deposit("acme", "cash-acme", wallets["acme"], "USD", 5_000_00)[0].id
    t["cash_bolt"] = ledger.deposit("bolt", "cash-bolt", wallets["bolt"], "PHP", 90_000_00)[0].id
    moves = [
        ("a1", "acme", wallets["acme"], wallets["bolt"], "USD", 300_00),
        ("b1", "bolt", wallets["bolt"], wallets["acme"], "PHP", 1_500_00),
        ("a2", "acme", wallets["acme"], wallets["bolt"], "USD", 12_34),
        ("local", "acme", wallets["acme"], wallets["acme2"], "USD", 50_00),
    ]
    for name, pid, src, dst, currency, amount in moves:
        request = TransferRequest(f"c-{name}", src, currency, amount, to_wallet=dst)
        t[name] = ledger.transfer(pid, request)[0].id
    closed = close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND)
    assert closed is not None
    outcome = settler.settle_due()
    assert outcome.failed is None, outcome.failed
    world.batches.append(closed.number)
    if settle_second:
        request = TransferRequest("c-b2", wallets["bolt"], "USD", 10_00, to_wallet=wallets["acme"])
        t["b2"] = ledger.transfer("bolt", request)[0].id
        closed = close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND)
        assert closed is not None
        assert settler.settle_due().failed is None
        world.batches.append(closed.number)
    return world


def edit_transfer_amount(corridor: Corridor, transfer_id: str, amount_minor: int) -> None:
    """What a rogue DBA would do: change a settled transfer's amount in place."""
    with write_transaction(corridor.engine) as conn:
        done = conn.execute(
            update(transfers).where(transfers.c.id == transfer_id).values(amount_minor=amount_minor)
        )
        assert done.rowcount == 1
