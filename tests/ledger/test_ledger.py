"""The ledger's rules of money, on a real SQLite file and on the real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from api.database import open_database
from settlement.errors import LedgerError
from settlement.ledger.model import (
    BATCH_TRANSFERS_MAX,
    BatchOutcome,
    Limits,
    TransferRequest,
    TransferStatus,
)
from settlement.ledger.service import Ledger
from settlement.ledger.tables import events
from tests.helpers import allow_settlement_debits

HOUR_US = 3600 * 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now_us = 1_790_000_000_000_000

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * 1_000_000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(engine: Engine, clock: Clock) -> Ledger:
    ledger = Ledger(engine, clock)
    ledger.create_participant("Acme Wallet", participant_id="acme")
    ledger.create_participant("Bolt Remit", participant_id="bolt")
    allow_settlement_debits(ledger, ["acme", "bolt"], ["USD", "EUR"])
    return ledger


def _funded_wallet(ledger: Ledger, participant: str, amount_minor: int, tier: str = "basic") -> str:
    wallet = ledger.create_wallet(participant, kyc_tier=tier)
    ledger.deposit(participant, f"fund-{wallet.id}", wallet.id, "USD", amount_minor)
    return wallet.id


def _balance(ledger: Ledger, wallet_id: str, currency: str = "USD") -> tuple[int, int]:
    for balance in ledger.get_wallet(wallet_id).balances:
        if balance.currency == currency:
            return balance.balance_minor, balance.held_minor
    return 0, 0


def test_deposit_transfer_withdraw_conserve_money(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    bob = ledger.create_wallet("bolt").id

    ledger.transfer("acme", TransferRequest("t1", alice, "USD", 30_00, to_wallet=bob))
    ledger.withdraw("bolt", "w1", bob, "USD", 10_00)

    assert _balance(ledger, alice) == (70_00, 0)
    assert _balance(ledger, bob) == (20_00, 0)
    total, external = ledger.totals()["USD"]
    assert total == 0, "every posting is balanced, so all balances sum to zero"
    assert external == 90_00, "customers hold exactly deposits minus withdrawals"


def test_replay_returns_original_and_moves_nothing(ledger: Ledger, database_url: str) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    bob = ledger.create_wallet("bolt").id
    request = TransferRequest("pay-1", alice, "USD", 25_00, to_wallet=bob)
    first, created = ledger.transfer("acme", request)
    assert created

    replay, created_again = ledger.transfer("acme", request)
    assert not created_again and replay == first

    # Across a restart too: a new process on the same database sees the same key.
    restarted = Ledger(open_database(database_url), ledger.clock)
    replay_after_restart, created_after = restarted.transfer("acme", request)
    assert not created_after and replay_after_restart.id == first.id
    assert _balance(ledger, alice) == (75_00, 0)


def test_same_id_different_body_is_refused(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    bob = ledger.create_wallet("bolt").id
    ledger.transfer("acme", TransferRequest("pay-1", alice, "USD", 25_00, to_wallet=bob))
    with pytest.raises(LedgerError) as refused:
        ledger.transfer("acme", TransferRequest("pay-1", alice, "USD", 26_00, to_wallet=bob))
    assert refused.value.code == "idempotency_conflict"
    assert _balance(ledger, alice) == (75_00, 0)


def test_ids_are_scoped_per_participant(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    carol = _funded_wallet(ledger, "bolt", 100_00)
    ledger.transfer("acme", TransferRequest("same", alice, "USD", 1_00, to_wallet=carol))
    _, created = ledger.transfer(
        "bolt", TransferRequest("same", carol, "USD", 1_00, to_wallet=alice)
    )
    assert created


def test_insufficient_funds_changes_nothing(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 10_00)
    bob = ledger.create_wallet("bolt").id
    with pytest.raises(LedgerError) as refused:
        ledger.transfer("acme", TransferRequest("t", alice, "USD", 10_01, to_wallet=bob))
    assert refused.value.code == "insufficient_funds"
    assert refused.value.extra["available"] == "10.00"
    assert _balance(ledger, alice) == (10_00, 0)
    assert ledger.get_wallet(bob).balances == (), "no account is created by a refused transfer"


def test_no_account_in_currency_is_insufficient_funds(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 10_00)
    bob = ledger.create_wallet("bolt").id
    with pytest.raises(LedgerError) as refused:
        ledger.transfer("acme", TransferRequest("t", alice, "EUR", 1, to_wallet=bob))
    assert refused.value.code == "insufficient_funds"


def test_cannot_move_another_participants_wallet(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 10_00)
    bob = ledger.create_wallet("bolt").id
    with pytest.raises(LedgerError) as refused:
        ledger.transfer("bolt", TransferRequest("steal", alice, "USD", 1_00, to_wallet=bob))
    assert refused.value.code == "wallet_not_found"
    with pytest.raises(LedgerError) as refused:
        ledger.withdraw("bolt", "steal-2", alice, "USD", 1_00)
    assert refused.value.code == "wallet_not_found"
    with pytest.raises(LedgerError) as refused:
        ledger.deposit("bolt", "mint", alice, "USD", 1_00)
    assert refused.value.code == "wallet_not_found"
    assert _balance(ledger, alice) == (10_00, 0)


def test_per_transfer_limit_says_which_and_by_how_much(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 5_000_00)
    bob = ledger.create_wallet("bolt").id
    with pytest.raises(LedgerError) as refused:
        ledger.transfer("acme", TransferRequest("t", alice, "USD", 1_000_01, to_wallet=bob))
    assert refused.value.code == "limit_exceeded"
    assert refused.value.extra["limit"] == "per_transfer"
    assert refused.value.extra["excess_amount"] == "0.01"


def test_rolling_daily_limit(ledger: Ledger, clock: Clock) -> None:
    alice = _funded_wallet(ledger, "acme", 5_000_00)
    bob = ledger.create_wallet("bolt").id
    ledger.set_wallet_limits(alice, "USD", Limits(None, 1_500_00))
    ledger.transfer("acme", TransferRequest("a", alice, "USD", 1_000_00, to_wallet=bob))
    clock.advance(12 * 3600)
    with pytest.raises(LedgerError) as refused:
        ledger.transfer("acme", TransferRequest("b", alice, "USD", 600_00, to_wallet=bob))
    assert refused.value.extra == {
        "limit": "daily",
        "limit_amount": "1500.00",
        "excess_amount": "100.00",
        "currency": "USD",
    }
    ledger.transfer("acme", TransferRequest("c", alice, "USD", 500_00, to_wallet=bob))
    clock.advance(12 * 3600 + 1)  # the first transfer has left the 24-hour window
    ledger.transfer("acme", TransferRequest("d", alice, "USD", 900_00, to_wallet=bob))


def test_tier_limits_and_overrides(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 5_000_00, tier="standard")
    assert ledger.effective_limits(alice, "USD") == Limits(10_000_00, 25_000_00)
    ledger.set_tier_limits("standard", "USD", Limits(2_000_00, 3_000_00))
    ledger.set_wallet_limits(alice, "USD", Limits(500_00, None))
    assert ledger.effective_limits(alice, "USD") == Limits(500_00, 3_000_00)
    enhanced = ledger.create_wallet("acme", kyc_tier="enhanced").id
    assert ledger.effective_limits(enhanced, "USD") is None
    with pytest.raises(LedgerError) as refused:
        ledger.create_wallet("acme", kyc_tier="platinum")
    assert refused.value.code == "unknown_tier"


def test_pending_hold_post_and_void(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    bob = ledger.create_wallet("bolt").id
    held, _ = ledger.transfer(
        "acme", TransferRequest("h1", alice, "USD", 60_00, to_wallet=bob, pending=True)
    )
    assert held.status is TransferStatus.PENDING
    assert _balance(ledger, alice) == (100_00, 60_00)
    with pytest.raises(LedgerError) as refused:
        ledger.transfer("acme", TransferRequest("t", alice, "USD", 50_00, to_wallet=bob))
    assert refused.value.code == "insufficient_funds", "held funds cannot be spent twice"

    posted = ledger.post_pending("acme", held.id)
    assert posted.status is TransferStatus.POSTED
    assert ledger.post_pending("acme", held.id).status is TransferStatus.POSTED  # idempotent
    assert _balance(ledger, alice) == (40_00, 0)
    assert _balance(ledger, bob) == (60_00, 0)
    with pytest.raises(LedgerError) as refused:
        ledger.void_pending("acme", held.id)
    assert refused.value.code == "transfer_not_pending"

    second, _ = ledger.transfer(
        "acme", TransferRequest("h2", alice, "USD", 40_00, to_wallet=bob, pending=True)
    )
    assert ledger.void_pending("acme", second.id).status is TransferStatus.VOIDED
    assert _balance(ledger, alice) == (40_00, 0)
    with pytest.raises(LedgerError) as refused:
        ledger.post_pending("bolt", second.id)
    assert refused.value.code == "transfer_not_found", "only the sender resolves its transfers"


def test_pending_times_out_and_voids_itself(ledger: Ledger, clock: Clock) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    bob = ledger.create_wallet("bolt").id
    held, _ = ledger.transfer(
        "acme",
        TransferRequest("h", alice, "USD", 60_00, to_wallet=bob, pending=True, timeout_s=60),
    )
    other, _ = ledger.transfer(
        "acme",
        TransferRequest("h2", alice, "USD", 10_00, to_wallet=bob, pending=True, timeout_s=60),
    )
    clock.advance(61)
    with pytest.raises(LedgerError) as refused:
        ledger.post_pending("acme", held.id)
    assert refused.value.code == "pending_expired"
    assert ledger.get_transfer(held.id).status is TransferStatus.EXPIRED
    assert ledger.expire_pending() == 1
    assert ledger.get_transfer(other.id).status is TransferStatus.EXPIRED
    assert _balance(ledger, alice) == (100_00, 0)


def test_aliases_resolve_within_the_hub(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    maria = ledger.create_wallet("bolt", aliases_raw=["+63 917 123 4567", "@Maria.Santos"])
    assert maria.aliases == ("+639171234567", "@maria.santos")
    ledger.transfer("acme", TransferRequest("a", alice, "USD", 1_00, to_alias="+639171234567"))
    ledger.transfer("acme", TransferRequest("b", alice, "USD", 2_00, to_alias="@maria.santos"))
    assert _balance(ledger, maria.id) == (3_00, 0)
    with pytest.raises(LedgerError) as refused:
        ledger.create_wallet("acme", aliases_raw=["@maria.santos"])
    assert refused.value.code == "alias_taken"
    for bad in ("+1 555", "maria", "@x"):
        with pytest.raises(LedgerError) as refused:
            ledger.create_wallet("acme", aliases_raw=[bad])
        assert refused.value.code == "invalid_alias"
    with pytest.raises(LedgerError) as refused:
        ledger.transfer("acme", TransferRequest("c", alice, "USD", 1, to_alias="@nobody"))
    assert refused.value.code == "alias_not_found"


def test_linked_chain_is_all_or_nothing(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    bob = ledger.create_wallet("bolt").id
    results = ledger.post_batch(
        "acme",
        [
            TransferRequest("a", alice, "USD", 50_00, to_wallet=bob, linked=True),
            TransferRequest("b", alice, "USD", 60_00, to_wallet=bob),  # cannot afford
            TransferRequest("c", alice, "USD", 10_00, to_wallet=bob),
        ],
    )
    assert [r.outcome for r in results] == [
        BatchOutcome.FAILED,
        BatchOutcome.FAILED,
        BatchOutcome.CREATED,
    ]
    assert results[0].error is not None and results[0].error.code == "linked_event_failed"
    assert results[1].error is not None and results[1].error.code == "insufficient_funds"
    assert _balance(ledger, alice) == (90_00, 0)
    # The failed ids were not consumed: a corrected retry can use them.
    retry = ledger.post_batch(
        "acme",
        [
            TransferRequest("a", alice, "USD", 50_00, to_wallet=bob, linked=True),
            TransferRequest("b", alice, "USD", 40_00, to_wallet=bob),
        ],
    )
    assert [r.outcome for r in retry] == [BatchOutcome.CREATED, BatchOutcome.CREATED]
    assert retry[0].transfer is not None and retry[1].transfer is not None
    assert retry[0].transfer.group_id == retry[1].transfer.group_id is not None


def test_batch_results_per_item(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    bob = ledger.create_wallet("bolt").id
    ledger.transfer("acme", TransferRequest("old", alice, "USD", 1_00, to_wallet=bob))
    results = ledger.post_batch(
        "acme",
        [
            TransferRequest("old", alice, "USD", 1_00, to_wallet=bob),
            TransferRequest("new", alice, "USD", 2_00, to_wallet=bob),
            TransferRequest("new", alice, "USD", 2_00, to_wallet=bob),
            TransferRequest("bad", alice, "USD", 2_00, to_wallet="w_missing"),
            TransferRequest("old", alice, "USD", 9_00, to_wallet=bob),
        ],
    )
    outcomes = [(r.outcome, r.error.code if r.error else None) for r in results]
    assert outcomes == [
        (BatchOutcome.EXISTS, None),
        (BatchOutcome.CREATED, None),
        (BatchOutcome.FAILED, "duplicate_id"),
        (BatchOutcome.FAILED, "wallet_not_found"),
        (BatchOutcome.FAILED, "idempotency_conflict"),
    ]
    assert _balance(ledger, alice) == (97_00, 0)


def test_full_batch_posts_in_one_transaction(ledger: Ledger) -> None:
    senders = [_funded_wallet(ledger, "acme", 1_000_00) for _ in range(10)]
    receivers = [ledger.create_wallet("bolt").id for _ in range(10)]
    requests = [
        TransferRequest(f"b{i}", senders[i % 10], "USD", 1 + i % 7, to_wallet=receivers[i % 9])
        for i in range(BATCH_TRANSFERS_MAX)
    ]
    results = ledger.post_batch("acme", requests)
    assert all(r.outcome is BatchOutcome.CREATED for r in results)
    assert sum(_balance(ledger, r)[0] for r in receivers) == sum(r.amount_minor for r in requests)
    assert ledger.totals()["USD"] == (0, 10_000_00)
    # What the batch answered is what was stored (PostgreSQL writes it through COPY).
    posted = [r.transfer for r in results if r.transfer is not None]
    assert len({t.seq for t in posted}) == len(posted)
    for transfer in posted[:: len(posted) // 50]:
        assert ledger.get_transfer(transfer.id) == transfer
    lines = ledger.statement(receivers[0], limit=500)
    expected = [t for t in posted if t.credit_wallet_id == receivers[0]][: len(lines)]
    assert [line.delta_minor for line in lines] == [t.amount_minor for t in expected]
    with pytest.raises(LedgerError) as refused:
        ledger.post_batch("acme", [*requests, requests[0]])
    assert refused.value.code == "invalid_batch"


def test_statement_and_balance_as_of(ledger: Ledger, clock: Clock) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    bob = ledger.create_wallet("bolt").id
    start = clock.now_us
    clock.advance(3600)
    ledger.transfer("acme", TransferRequest("a", alice, "USD", 10_00, to_wallet=bob, memo="rent"))
    middle = clock.now_us
    clock.advance(3600)
    ledger.transfer("acme", TransferRequest("b", alice, "USD", 5_00, to_wallet=bob))

    lines = ledger.statement(alice)
    assert [(line.delta_minor, line.balance_after_minor) for line in lines] == [
        (100_00, 100_00),
        (-10_00, 90_00),
        (-5_00, 85_00),
    ]
    assert lines[1].counterparty_wallet_id == bob and lines[1].memo == "rent"
    window = ledger.statement(alice, since_us=start + 1, until_us=middle + 1)
    assert [line.delta_minor for line in window] == [-10_00]
    page = ledger.statement(alice, after_entry=lines[0].entry_id, limit=1)
    assert page == [lines[1]]
    assert ledger.balances_at(alice, start) == {"USD": 100_00}
    assert ledger.balances_at(alice, middle) == {"USD": 90_00}
    assert ledger.balances_at(alice, start - 1) == {}


def test_net_debit_cap_bounds_unsettled_exposure(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 1_000_00)
    colleague = ledger.create_wallet("acme").id
    bob = ledger.create_wallet("bolt").id
    ledger.set_net_debit_cap("acme", "USD", None)  # back to the default: the prefunding
    ledger.record_prefunding("acme", "USD", 50_00)
    ledger.transfer("acme", TransferRequest("a", alice, "USD", 40_00, to_wallet=bob))
    with pytest.raises(LedgerError) as refused:
        ledger.transfer("acme", TransferRequest("b", alice, "USD", 10_01, to_wallet=bob))
    assert refused.value.code == "net_debit_cap_exceeded"
    assert refused.value.extra["excess_amount"] == "0.01"
    # Within one participant nothing is owed to anyone: no cap applies.
    ledger.transfer("acme", TransferRequest("c", alice, "USD", 500_00, to_wallet=colleague))
    # Money flowing back reduces the exposure.
    ledger.transfer("bolt", TransferRequest("d", bob, "USD", 20_00, to_wallet=alice))
    ledger.transfer("acme", TransferRequest("e", alice, "USD", 30_00, to_wallet=bob))
    exposure = {
        (s.participant_id, s.currency): s
        for p in ("acme", "bolt")
        for s in ledger.settlement_exposure(p)
    }
    usd = exposure[("acme", "USD")]
    assert (usd.prefunded_minor, usd.unsettled_minor) == (50_00, -50_00)
    assert exposure[("bolt", "USD")].unsettled_minor == 50_00, "positions sum to zero"


def test_pending_transfer_nets_when_posted(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 100_00)
    bob = ledger.create_wallet("bolt").id
    ledger.set_net_debit_cap("acme", "USD", 30_00)
    held, _ = ledger.transfer(
        "acme", TransferRequest("h", alice, "USD", 40_00, to_wallet=bob, pending=True)
    )
    assert held.window_number is None
    with pytest.raises(LedgerError) as refused:
        ledger.post_pending("acme", held.id)
    assert refused.value.code == "net_debit_cap_exceeded"
    assert ledger.get_transfer(held.id).status is TransferStatus.PENDING
    ledger.set_net_debit_cap("acme", "USD", 40_00)
    posted = ledger.post_pending("acme", held.id)
    assert posted.window_number == 1


def _events(ledger: Ledger) -> list[tuple[str, str, str]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(events).order_by(events.c.id)).all()
    return [(r.participant_id, r.type, r.subject_id) for r in rows]


def test_events_are_written_with_the_change_and_only_then(ledger: Ledger) -> None:
    alice = _funded_wallet(ledger, "acme", 5_000_00)
    bob = ledger.create_wallet("bolt").id
    before = _events(ledger)
    sent, _ = ledger.transfer("acme", TransferRequest("t", alice, "USD", 10_00, to_wallet=bob))
    held, _ = ledger.transfer(
        "acme", TransferRequest("h", alice, "USD", 5_00, to_wallet=bob, pending=True)
    )
    ledger.void_pending("acme", held.id)
    with pytest.raises(LedgerError):
        ledger.transfer("acme", TransferRequest("x", alice, "USD", 9_999_00, to_wallet=bob))
    with pytest.raises(LedgerError):
        ledger.transfer("acme", TransferRequest("y", alice, "USD", 1_00, to_wallet="w_none"))
    ledger.transfer("acme", TransferRequest("t", alice, "USD", 10_00, to_wallet=bob))  # replay
    assert _events(ledger)[len(before) :] == [
        ("acme", "transfer.created", sent.id),
        ("bolt", "transfer.created", sent.id),
        ("acme", "transfer.created", held.id),
        ("bolt", "transfer.created", held.id),
        ("acme", "transfer.voided", held.id),
        ("bolt", "transfer.voided", held.id),
        ("acme", "limit.refused", "x"),
    ]
