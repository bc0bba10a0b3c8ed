"""Group commit: concurrent single transfers share a transaction, each answered on its own.

The first tests drive GroupCommit with a recording stand-in for the ledger (the rules of
rounds); the last ones run it on the real ledger, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, func, select

from api.database import open_database
from settlement.errors import LedgerError
from settlement.ledger.group_commit import GroupCommit, WithinPosting
from settlement.ledger.model import (
    BatchOutcome,
    BatchResult,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferStatus,
)
from settlement.ledger.service import Ledger
from settlement.ledger.tables import transfers
from tests.helpers import allow_settlement_debits

WAIT_S = 10.0


def _request(client_id: str, amount_minor: int = 1_00) -> TransferRequest:
    return TransferRequest(client_id, "w-from", "USD", amount_minor, to_wallet="w-to")


def _created(index: int, owner: str, request: TransferRequest) -> BatchResult:
    transfer = Transfer(
        id=f"tr-{owner}-{request.client_id}",
        client_id=request.client_id,
        participant_id=owner,
        kind=TransferKind.TRANSFER,
        status=TransferStatus.POSTED,
        debit_wallet_id=request.from_wallet,
        credit_wallet_id=request.to_wallet or "",
        debit_participant_id=owner,
        credit_participant_id=owner,
        currency=request.currency,
        amount_minor=request.amount_minor,
        created_at_us=0,
        timeout_at_us=None,
        resolved_at_us=0,
        group_id=None,
        memo=None,
        seq=index + 1,
    )
    return BatchResult(index, BatchOutcome.CREATED, transfer)


class Recorder:
    """Stands in for Ledger.post_for: records each round; the first waits for a gate."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.rounds: list[list[tuple[str, str]]] = []
        self.gate = threading.Event()
        self.first_round_started = threading.Event()
        self.fail_on = fail_on

    def __call__(
        self,
        owners: Sequence[str],
        requests: Sequence[TransferRequest],
        within: WithinPosting | None,
    ) -> list[BatchResult]:
        if not self.rounds:
            self.first_round_started.set()
            assert self.gate.wait(WAIT_S)
        self.rounds.append([(o, r.client_id) for o, r in zip(owners, requests, strict=True)])
        if self.fail_on is not None and any(r.client_id == self.fail_on for r in requests):
            raise RuntimeError(f"cannot store {self.fail_on}")
        results = [
            _created(i, owner, request)
            for i, (owner, request) in enumerate(zip(owners, requests, strict=True))
        ]
        if within is not None:
            within(_NO_CONNECTION, results)
        return results


_NO_CONNECTION: Any = None


def _post_all(
    group: GroupCommit,
    recorder: Recorder,
    calls: Sequence[tuple[str, TransferRequest, WithinPosting | None]],
) -> list[BatchResult | BaseException]:
    """The first call alone, the rest queued behind it while its round is held."""

    def post(call: tuple[str, TransferRequest, WithinPosting | None]) -> Any:
        try:
            return group.post(*call)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        first = pool.submit(post, calls[0])
        assert recorder.first_round_started.wait(WAIT_S)
        rest = [pool.submit(post, call) for call in calls[1:]]
        _wait_until(lambda: len(group._queue) == len(calls) - 1)
        recorder.gate.set()
        return [first.result(WAIT_S), *(f.result(WAIT_S) for f in rest)]


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "callers did not queue"
        time.sleep(0.001)


def test_callers_waiting_together_share_one_round_and_each_gets_its_own_result() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder)
    calls = [(f"p{n % 3}", _request(f"t{n}"), None) for n in range(12)]

    results = _post_all(group, recorder, calls)

    assert len(recorder.rounds) == 2  # the first caller alone, then everyone who waited
    assert sorted(recorder.rounds[1]) == sorted((o, r.client_id) for o, r, _ in calls[1:])
    for (owner, request, _), result in zip(calls, results, strict=True):
        assert isinstance(result, BatchResult)
        assert result.index == 0  # each caller's own single-item batch
        assert result.transfer is not None
        assert (result.transfer.participant_id, result.transfer.client_id) == (
            owner,
            request.client_id,
        )


def test_a_repeated_id_never_shares_a_round_with_its_first_use() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder)
    calls = [
        ("p1", _request("first"), None),
        ("p1", _request("same"), None),
        ("p1", _request("same"), None),
        ("p2", _request("same"), None),  # another participant's id space
        ("p1", _request("other"), None),
    ]

    _post_all(group, recorder, calls)

    for round_ in recorder.rounds:
        assert len(round_) == len(set(round_))
    assert sum(round_.count(("p1", "same")) for round_ in recorder.rounds) == 2
    assert len(recorder.rounds) == 3


def test_a_refusing_check_takes_only_its_own_caller_out() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder)
    checked: list[str] = []

    def refuse(conn: Connection, results: Sequence[BatchResult]) -> None:
        assert [r.index for r in results] == [0]
        raise LedgerError("step_up_required", "needs a signature")

    def accept(conn: Connection, results: Sequence[BatchResult]) -> None:
        assert results[0].transfer is not None
        checked.append(results[0].transfer.client_id)

    calls: list[tuple[str, TransferRequest, WithinPosting | None]] = [
        ("p1", _request("lead"), None),
        ("p1", _request("a"), accept),
        ("p1", _request("refused"), refuse),
        ("p1", _request("b"), None),
    ]

    results = _post_all(group, recorder, calls)

    refused = results[2]
    assert isinstance(refused, LedgerError) and refused.code == "step_up_required"
    assert all(isinstance(r, BatchResult) for i, r in enumerate(results) if i != 2)
    # Rolled back and posted again without the refused caller.
    assert [c for _, c in recorder.rounds[-1]] == ["a", "b"]
    assert checked[-1] == "a"


def test_a_round_that_fails_is_posted_again_one_caller_at_a_time() -> None:
    recorder = Recorder(fail_on="poison")
    group = GroupCommit(recorder)
    calls = [(f"p{n}", _request(f"t{n}"), None) for n in range(4)]
    calls.insert(2, ("p9", _request("poison"), None))

    results = _post_all(group, recorder, calls)

    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and "poison" in str(failed[0])
    assert sum(isinstance(r, BatchResult) for r in results) == len(calls) - 1
    assert all(len(round_) == 1 for round_ in recorder.rounds[2:])


def test_a_lone_caller_posts_in_its_own_thread() -> None:
    threads: list[str] = []

    def post_round(
        owners: Sequence[str], requests: Sequence[TransferRequest], within: WithinPosting | None
    ) -> list[BatchResult]:
        threads.append(threading.current_thread().name)
        return [_created(i, o, r) for i, (o, r) in enumerate(zip(owners, requests, strict=True))]

    group = GroupCommit(post_round)
    for n in range(3):
        assert group.post("p1", _request(f"t{n}")).transfer is not None
    assert threads == [threading.current_thread().name] * 3
    assert group._writer is None, "no hand-over to a writer thread for sequential calls"


def test_callers_on_an_event_loop_are_answered_there() -> None:
    recorder = Recorder()
    recorder.gate.set()
    group = GroupCommit(recorder)

    async def post_many() -> list[BatchResult]:
        return await asyncio.gather(*(group.post_async("p1", _request(f"t{n}")) for n in range(50)))

    results = asyncio.run(post_many())

    assert [r.transfer.client_id for r in results if r.transfer] == [f"t{n}" for n in range(50)]
    assert sum(len(round_) for round_ in recorder.rounds) == 50
    assert len(recorder.rounds) < 50  # queued while the writer was busy: shared rounds


# ------------------------------------------------------------------ on the real ledger

CALLERS = 24
TRANSFERS_PER_CALLER = 10


def test_concurrent_single_transfers_move_money_exactly_once(database_url: str) -> None:
    setup = Ledger(open_database(database_url))
    partners = ["acme", "bolt"]
    for pid in partners:
        setup.create_participant(pid.title(), participant_id=pid)
    allow_settlement_debits(setup, partners)
    wallets = {
        pid: [setup.create_wallet(pid, kyc_tier="enhanced").id for _ in range(4)]
        for pid in partners
    }
    for pid, ids in wallets.items():
        for wallet in ids:
            setup.deposit(pid, f"fund-{wallet}", wallet, "USD", 1_000_00)
    ledger = Ledger(open_database(database_url))

    def send(caller: int) -> list[tuple[str, bool]]:
        owner = partners[caller % 2]
        outcomes = []
        for n in range(TRANSFERS_PER_CALLER):
            # Callers 2k and 2k+2 send the same ids: one posts, the other gets the replay.
            client_id = f"c{caller // 4}-{n}"
            source = wallets[owner][n % 4]
            target = wallets[partners[(caller + n) % 2]][(n + 1) % 4]
            request = TransferRequest(client_id, source, "USD", 1_00 + n, to_wallet=target)
            transfer, created = ledger.transfer(owner, request)
            assert transfer.client_id == client_id and transfer.participant_id == owner
            outcomes.append((f"{owner}/{client_id}", created))
        return outcomes

    with ThreadPoolExecutor(CALLERS) as pool:
        outcomes = [o for batch in pool.map(send, range(CALLERS)) for o in batch]

    created = [key for key, was_created in outcomes if was_created]
    assert len(created) == len(set(created)) == len({key for key, _ in outcomes})
    with setup.engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).select_from(transfers).where(transfers.c.kind == "transfer")
        ).scalar_one()
    assert stored == len(created)
    # Conservation: every transfer moved money between customer wallets only.
    assert setup.totals()["USD"] == (0, 8 * 1_000_00)
    customer_total = sum(
        b.balance_minor
        for ids in wallets.values()
        for w in ids
        for b in setup.get_wallet(w).balances
    )
    assert customer_total == 8 * 1_000_00
