"""Small set-up helpers shared by tests."""

from __future__ import annotations

from collections.abc import Iterable

from settlement.ledger.service import Ledger

# Large enough never to be the limit a test is not about.
GENEROUS_CAP_MINOR = 10**12


def allow_settlement_debits(
    ledger: Ledger,
    participant_ids: Iterable[str],
    currencies: Iterable[str] = ("USD",),
    cap_minor: int = GENEROUS_CAP_MINOR,
) -> None:
    """Give participants a net debit cap, as the operator does when onboarding them."""
    for participant_id in participant_ids:
        for currency in currencies:
            ledger.set_net_debit_cap(participant_id, currency, cap_minor)
