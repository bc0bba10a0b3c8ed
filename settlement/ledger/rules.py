"""The rules of money for posting, over in-memory account states.

The service loads the accounts a request touches (locked), runs these rules in request
order, and writes back the states they leave. Nothing here knows about SQL, so the rules
are tested directly and by property tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from fx.currency import to_major
from settlement.errors import LedgerError
from settlement.ledger.model import Limits

DAY_US = 24 * 3600 * 1_000_000


@dataclass(slots=True)
class AccountState:
    id: int
    wallet_id: str
    participant_id: str
    currency: str
    balance_minor: int
    held_minor: int
    allow_negative: bool
    # Set only for accounts whose outgoing transfers are limited (customer wallets).
    limits: Limits | None = None
    # Outgoing total (posted and pending) in the rolling 24 hours before the request.
    spent_24h_minor: int = 0
    dirty: bool = False

    @property
    def available_minor(self) -> int:
        return self.balance_minor - self.held_minor

    def snapshot(self) -> tuple[int, int, int, bool]:
        return (self.balance_minor, self.held_minor, self.spent_24h_minor, self.dirty)

    def restore(self, saved: tuple[int, int, int, bool]) -> None:
        self.balance_minor, self.held_minor, self.spent_24h_minor, self.dirty = saved


def check_debit(debit: AccountState, amount_minor: int) -> None:
    """Refuse a debit the account cannot afford or that breaks one of its limits."""
    if debit.limits is not None:
        check_limits(debit, amount_minor)
    if not debit.allow_negative and debit.available_minor < amount_minor:
        raise LedgerError(
            "insufficient_funds",
            f"wallet {debit.wallet_id} has {to_major(debit.available_minor, debit.currency)} "
            f"{debit.currency} available; the transfer needs "
            f"{to_major(amount_minor, debit.currency)}",
            available=to_major(debit.available_minor, debit.currency),
            currency=debit.currency,
        )


def check_limits(debit: AccountState, amount_minor: int) -> None:
    assert debit.limits is not None
    cur = debit.currency
    per_transfer = debit.limits.per_transfer_max_minor
    if per_transfer is not None and amount_minor > per_transfer:
        excess = amount_minor - per_transfer
        raise LedgerError(
            "limit_exceeded",
            f"the per-transfer limit of wallet {debit.wallet_id} is {to_major(per_transfer, cur)} "
            f"{cur}; this transfer exceeds it by {to_major(excess, cur)} {cur}",
            limit="per_transfer",
            limit_amount=to_major(per_transfer, cur),
            excess_amount=to_major(excess, cur),
            currency=cur,
        )
    daily = debit.limits.daily_max_minor
    if daily is not None and debit.spent_24h_minor + amount_minor > daily:
        excess = debit.spent_24h_minor + amount_minor - daily
        raise LedgerError(
            "limit_exceeded",
            f"the 24-hour outgoing limit of wallet {debit.wallet_id} is {to_major(daily, cur)} "
            f"{cur} and {to_major(debit.spent_24h_minor, cur)} is already used; this transfer "
            f"exceeds it by {to_major(excess, cur)} {cur}",
            limit="daily",
            limit_amount=to_major(daily, cur),
            excess_amount=to_major(excess, cur),
            currency=cur,
        )


def post(debit: AccountState, credit: AccountState, amount_minor: int) -> None:
    """Move money now. Callers have run check_debit in the same request."""
    assert debit.currency == credit.currency and debit.id != credit.id
    debit.balance_minor -= amount_minor
    credit.balance_minor += amount_minor
    debit.spent_24h_minor += amount_minor
    debit.dirty = credit.dirty = True


def hold(debit: AccountState, amount_minor: int) -> None:
    """Reserve funds for a pending transfer: unavailable to spend, not yet moved."""
    debit.held_minor += amount_minor
    debit.spent_24h_minor += amount_minor
    debit.dirty = True


def post_held(debit: AccountState, credit: AccountState, amount_minor: int) -> None:
    """Complete a pending transfer: the held funds move to the credit account."""
    assert debit.held_minor >= amount_minor, "a pending transfer's hold is missing"
    debit.held_minor -= amount_minor
    debit.balance_minor -= amount_minor
    credit.balance_minor += amount_minor
    debit.dirty = credit.dirty = True


def release_held(debit: AccountState, amount_minor: int) -> None:
    """Void a pending transfer: the hold is released and nothing moves."""
    assert debit.held_minor >= amount_minor, "a pending transfer's hold is missing"
    debit.held_minor -= amount_minor
    debit.dirty = True


@dataclass(slots=True)
class NetState:
    """A participant's settlement exposure in one currency (see settlement_accounts)."""

    participant_id: str
    currency: str
    prefunded_minor: int
    unsettled_minor: int
    cap_minor: int | None
    exists: bool
    dirty: bool = False

    @property
    def debit_cap_minor(self) -> int:
        """How far the unsettled position may go below zero."""
        return self.cap_minor if self.cap_minor is not None else self.prefunded_minor

    def snapshot(self) -> tuple[int, bool]:
        return (self.unsettled_minor, self.dirty)

    def restore(self, saved: tuple[int, bool]) -> None:
        self.unsettled_minor, self.dirty = saved


def check_net_debit(payer: NetState, amount_minor: int) -> None:
    """Refuse an inter-participant transfer that takes the payer past its net debit cap.

    Everything a participant owes others and has not yet settled on chain counts; the cap
    defaults to its prefunded settlement balance, so a settled batch can always be paid.
    """
    after = payer.unsettled_minor - amount_minor
    cap = payer.debit_cap_minor
    if after < -cap:
        cur = payer.currency
        raise LedgerError(
            "net_debit_cap_exceeded",
            f"participant {payer.participant_id} may owe at most {to_major(cap, cur)} {cur} "
            f"unsettled; this transfer would make it {to_major(-after, cur)} {cur}",
            cap_amount=to_major(cap, cur),
            excess_amount=to_major(-after - cap, cur),
            currency=cur,
        )


def net(payer: NetState, payee: NetState, amount_minor: int) -> None:
    payer.unsettled_minor -= amount_minor
    payee.unsettled_minor += amount_minor
    payer.dirty = payee.dirty = True
