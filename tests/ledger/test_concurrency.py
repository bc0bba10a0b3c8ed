"""Many workers spending from one wallet at once: no lost update, no overdraft, no deadlock."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from api.database import open_database
from settlement.errors import LedgerError
from settlement.ledger.model import Limits, TransferRequest
from settlement.ledger.service import Ledger
from tests.helpers import allow_settlement_debits

WORKERS = 16
ATTEMPTS = 120
AMOUNT_MINOR = 7_00
FUNDS_MINOR = 500_00  # affords exactly 71 transfers of 7.00


@pytest.mark.parametrize(
    "url_fixture", ["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.postgres)]
)
def test_concurrent_debits_of_one_wallet(url_fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(url_fixture)
    setup = Ledger(open_database(url))
    setup.create_participant("Acme", participant_id="acme")
    setup.create_participant("Bolt", participant_id="bolt")
    allow_settlement_debits(setup, ["acme", "bolt"])
    payer = setup.create_wallet("acme", kyc_tier="enhanced").id
    payees = [setup.create_wallet("bolt").id for _ in range(4)]
    setup.set_wallet_limits(payer, "USD", Limits(None, None))
    setup.deposit("acme", "fund", payer, "USD", FUNDS_MINOR)

    # Each worker thread uses its own pool connection, as API workers do.
    ledger = Ledger(open_database(url))

    def attempt(n: int) -> str:
        transfer = TransferRequest(f"t{n}", payer, "USD", AMOUNT_MINOR, to_wallet=payees[n % 4])
        try:
            ledger.transfer("acme", transfer)
            return "ok"
        except LedgerError as error:
            return error.code

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(attempt, range(ATTEMPTS)))

    affordable = FUNDS_MINOR // AMOUNT_MINOR
    assert outcomes.count("ok") == affordable
    assert outcomes.count("insufficient_funds") == ATTEMPTS - affordable
    balances = {w: setup.get_wallet(w).balances for w in [payer, *payees]}
    assert balances[payer][0].balance_minor == FUNDS_MINOR - affordable * AMOUNT_MINOR >= 0
    received = sum(b[0].balance_minor for w, b in balances.items() if w != payer and b)
    assert received == affordable * AMOUNT_MINOR
    assert setup.totals()["USD"] == (0, FUNDS_MINOR)


@pytest.mark.postgres
def test_concurrent_transfers_in_both_directions_do_not_deadlock(postgres_url: str) -> None:
    setup = Ledger(open_database(postgres_url))
    setup.create_participant("Acme", participant_id="acme")
    wallets = [setup.create_wallet("acme", kyc_tier="enhanced").id for _ in range(2)]
    for wallet in wallets:
        setup.deposit("acme", f"fund-{wallet}", wallet, "USD", 1_000_00)
    ledger = Ledger(open_database(postgres_url))

    def attempt(n: int) -> None:
        source, target = (wallets[0], wallets[1]) if n % 2 else (wallets[1], wallets[0])
        ledger.transfer("acme", TransferRequest(f"x{n}", source, "USD", 1_00, to_wallet=target))

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(attempt, range(200)))
    assert sum(setup.get_wallet(w).balances[0].balance_minor for w in wallets) == 2_000_00
    assert setup.totals()["USD"] == (0, 2_000_00)


@pytest.mark.parametrize(
    "url_fixture", ["sqlite_url", pytest.param("postgres_url", marks=pytest.mark.postgres)]
)
def test_concurrent_retries_of_one_id_move_money_once(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(url_fixture)
    setup = Ledger(open_database(url))
    setup.create_participant("Acme", participant_id="acme")
    payer, payee = (setup.create_wallet("acme").id for _ in range(2))
    setup.deposit("acme", "fund", payer, "USD", 100_00)
    ledger = Ledger(open_database(url))
    same = TransferRequest("retry-me", payer, "USD", 10_00, to_wallet=payee)

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda _: ledger.transfer("acme", same), range(40)))

    assert len({transfer.id for transfer, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert setup.get_wallet(payee).balances[0].balance_minor == 10_00


@pytest.mark.postgres
def test_the_same_large_batch_posted_twice_at_once_moves_money_once(postgres_url: str) -> None:
    """Large batches are written with COPY on PostgreSQL: the loser of a race on the same
    ids still gets a duplicate key, retries and answers every item as already there."""
    setup = Ledger(open_database(postgres_url))
    setup.create_participant("Acme", participant_id="acme")
    senders = [setup.create_wallet("acme", kyc_tier="enhanced").id for _ in range(4)]
    receiver = setup.create_wallet("acme").id
    # Every account exists already, so the race is lost on the transfers' ids.
    for wallet in [*senders, receiver]:
        setup.deposit("acme", f"fund-{wallet}", wallet, "USD", 1_000_00)
    requests = [
        TransferRequest(f"big-{n}", senders[n % 4], "USD", 1_00, to_wallet=receiver)
        for n in range(2_000)
    ]
    start = threading.Barrier(2)

    def hold_locks(conn: object, results: object) -> None:
        # The first to write keeps its locks a while: the other has read the ids as
        # unused by then and waits on the same accounts, then collides on insert.
        time.sleep(0.3)

    def post() -> list[str]:
        ledger = Ledger(open_database(postgres_url))
        start.wait()
        return [r.outcome.value for r in ledger.post_batch("acme", requests, hold_locks)]

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: post(), range(2)))

    assert sorted(tuple(sorted(set(o))) for o in outcomes) == [("created",), ("exists",)]
    assert setup.get_wallet(receiver).balances[0].balance_minor == 1_000_00 + 2_000 * 1_00
    assert setup.totals()["USD"] == (0, 5 * 1_000_00)
