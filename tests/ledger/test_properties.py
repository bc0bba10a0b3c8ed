"""Property tests: random sequences of ledger operations keep every rule of money.

A reference model (plain dicts) predicts each balance; the real ledger on a SQLite file must
agree after every step, and the invariants are checked directly against the database.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from api.database import open_database
from settlement.errors import LedgerError
from settlement.ledger.model import BatchOutcome, TransferRequest, TransferStatus
from settlement.ledger.service import Ledger
from tests.helpers import allow_settlement_debits

CURRENCIES = ["USD", "JPY", "KWD"]
WALLETS = 4
amounts = st.integers(min_value=1, max_value=50_000)
wallet_index = st.integers(min_value=0, max_value=WALLETS - 1)
currencies = st.sampled_from(CURRENCIES)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        engine = open_database(f"sqlite:///{Path(self.tmp.name) / 'l.sqlite3'}")
        self.ledger = Ledger(engine)
        for participant in ("acme", "bolt"):
            self.ledger.create_participant(participant, participant_id=participant)
        allow_settlement_debits(self.ledger, ["acme", "bolt"], CURRENCIES)
        self.owner = ["acme", "bolt", "acme", "bolt"]
        self.wallets = [
            self.ledger.create_wallet(self.owner[i], kyc_tier="enhanced").id for i in range(WALLETS)
        ]
        # Reference model: posted balance and held amount per (wallet index, currency).
        self.balance = {(w, c): 0 for w in range(WALLETS) for c in CURRENCIES}
        self.held = dict.fromkeys(self.balance, 0)
        self.external = dict.fromkeys(CURRENCIES, 0)
        self.pending: dict[str, tuple[int, int, str, int]] = {}
        self.done: list[tuple[str, TransferRequest, str]] = []
        self.counter = 0

    def teardown(self) -> None:
        self.ledger.engine.dispose()
        self.tmp.cleanup()

    def _id(self) -> str:
        self.counter += 1
        return f"op{self.counter}"

    def _available(self, w: int, c: str) -> int:
        return self.balance[(w, c)] - self.held[(w, c)]

    @rule(w=wallet_index, c=currencies, amount=amounts)
    def deposit(self, w: int, c: str, amount: int) -> None:
        self.ledger.deposit(self.owner[w], self._id(), self.wallets[w], c, amount)
        self.balance[(w, c)] += amount
        self.external[c] += amount

    @rule(w=wallet_index, c=currencies, amount=amounts)
    def withdraw(self, w: int, c: str, amount: int) -> None:
        try:
            self.ledger.withdraw(self.owner[w], self._id(), self.wallets[w], c, amount)
        except LedgerError as error:
            assert error.code == "insufficient_funds"
            assert self._available(w, c) < amount
            return
        self.balance[(w, c)] -= amount
        self.external[c] -= amount

    @rule(src=wallet_index, dst=wallet_index, c=currencies, amount=amounts, pending=st.booleans())
    def transfer(self, src: int, dst: int, c: str, amount: int, pending: bool) -> None:
        request = TransferRequest(
            self._id(), self.wallets[src], c, amount, to_wallet=self.wallets[dst], pending=pending
        )
        try:
            transfer, _ = self.ledger.transfer(self.owner[src], request)
        except LedgerError as error:
            if src == dst:
                assert error.code == "same_wallet"
            else:
                assert error.code == "insufficient_funds"
                assert self._available(src, c) < amount
            return
        assert src != dst and self._available(src, c) >= amount
        if pending:
            self.held[(src, c)] += amount
            self.pending[transfer.id] = (src, dst, c, amount)
        else:
            self.balance[(src, c)] -= amount
            self.balance[(dst, c)] += amount
        self.done.append((self.owner[src], request, transfer.id))

    @rule(
        items=st.lists(
            st.tuples(wallet_index, wallet_index, currencies, amounts, st.booleans()),
            min_size=1,
            max_size=12,
        )
    )
    def batch(self, items: list[tuple[int, int, str, int, bool]]) -> None:
        # One participant's batch: its own wallets as senders, any wallet as recipient.
        senders = [0, 2]
        requests = [
            TransferRequest(
                self._id(),
                self.wallets[senders[src % 2]],
                c,
                amount,
                to_wallet=self.wallets[dst],
                linked=linked,
            )
            for src, dst, c, amount, linked in items
        ]
        results = self.ledger.post_batch("acme", requests)
        chain: list[int] = []
        for index, (request, result) in enumerate(zip(requests, results, strict=True)):
            chain.append(index)
            if request.linked and index + 1 < len(requests):
                continue
            outcomes = {results[i].outcome for i in chain}
            assert len(outcomes) == 1, "a linked chain succeeds or fails as a whole"
            if result.outcome is BatchOutcome.CREATED:
                for i in chain:
                    src, dst, c, amount, _ = items[i]
                    self.balance[(senders[src % 2], c)] -= amount
                    self.balance[(dst, c)] += amount
            chain = []

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), post=st.booleans())
    def resolve(self, data: st.DataObject, post: bool) -> None:
        transfer_id = data.draw(st.sampled_from(sorted(self.pending)))
        src, dst, c, amount = self.pending.pop(transfer_id)
        if post:
            result = self.ledger.post_pending(self.owner[src], transfer_id)
            assert result.status is TransferStatus.POSTED
            self.balance[(src, c)] -= amount
            self.balance[(dst, c)] += amount
        else:
            self.ledger.void_pending(self.owner[src], transfer_id)
        self.held[(src, c)] -= amount

    @precondition(lambda self: bool(self.done))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        owner, request, transfer_id = data.draw(st.sampled_from(self.done))
        transfer, created = self.ledger.transfer(owner, request)
        assert not created and transfer.id == transfer_id

    @invariant()
    def balances_match_the_model(self) -> None:
        for w, wallet_id in enumerate(self.wallets):
            actual = {
                b.currency: (b.balance_minor, b.held_minor)
                for b in self.ledger.get_wallet(wallet_id).balances
            }
            for c in CURRENCIES:
                assert actual.get(c, (0, 0)) == (self.balance[(w, c)], self.held[(w, c)])
                assert self.balance[(w, c)] - self.held[(w, c)] >= 0

    @invariant()
    def money_is_conserved(self) -> None:
        for c, (total, external) in self.ledger.totals().items():
            assert total == 0
            assert external == self.external[c]


LedgerMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
test_ledger_rules_hold_under_random_operations = LedgerMachine.TestCase
