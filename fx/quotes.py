"""Firm quotes: the value, its lifetime rule and the rules for consuming one.

A quote is firm until `expires_at`, belongs to the participant that asked for it, and can
be used once. Plain Python: the store applies these rules inside the ledger's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from fx.errors import (
    InvalidLifetime,
    LifetimeTooLong,
    QuoteExpired,
    QuoteForeign,
    QuoteMismatch,
    QuoteUsed,
)
from fx.pricing import Side

QUOTE_LIFETIME_DEFAULT_S = 30
QUOTE_LIFETIME_MAX_S = 120
# The configured maximum itself may not exceed this: a quote is a short promise.
QUOTE_LIFETIME_CEILING_S = 3_600
PARTICIPANT_ID_LENGTH_MAX = 64


@dataclass(frozen=True, slots=True)
class Quote:
    """A firm price for converting sell_currency into buy_currency.

    The customer pays `sell_amount_minor + fee_minor` in the sell currency;
    `sell_amount_minor` is converted at `customer_rate` into `buy_amount_minor`.
    """

    id: str
    participant_id: str
    sell_currency: str
    buy_currency: str
    sell_amount_minor: int
    fee_minor: int
    buy_amount_minor: int
    mid_rate: Decimal
    customer_rate: Decimal
    spread_bps: int
    fee_bps: int
    fixed_fee_minor: int
    # Which amount the participant asked for: "sell" or "buy" (the other was computed).
    fixed_side: Side
    rate_source: str
    # The pivots when the mid rate is a cross rate ("EUR", "EUR,USD"), else None.
    rate_via: str | None
    rate_as_of: datetime
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    @property
    def total_debit_minor(self) -> int:
        """What the customer pays in the sell currency: the converted amount plus the fee."""
        return self.sell_amount_minor + self.fee_minor

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def resolve_lifetime_s(requested_s: object, default_s: int, max_s: int) -> int:
    """The lifetime a new quote gets: the default, or the request if within the maximum."""
    if requested_s is None:
        return default_s
    if isinstance(requested_s, bool) or not isinstance(requested_s, int):
        raise InvalidLifetime("a quote lifetime is a whole number of seconds")
    if requested_s <= 0:
        raise InvalidLifetime("a quote lifetime must be at least 1 second")
    if requested_s > max_s:
        raise LifetimeTooLong(f"a quote lives at most {max_s} seconds; {requested_s} asked")
    return requested_s


def check_participant_id(participant_id: object) -> str:
    if (
        not isinstance(participant_id, str)
        or not participant_id
        or len(participant_id) > PARTICIPANT_ID_LENGTH_MAX
    ):
        raise ValueError(
            f"participant_id must be a non-empty string of at most "
            f"{PARTICIPANT_ID_LENGTH_MAX} characters"
        )
    return participant_id


def check_consumable(
    quote: Quote,
    participant_id: str,
    now: datetime,
    *,
    sell_currency: str | None = None,
    buy_currency: str | None = None,
    sell_amount_minor: int | None = None,
    buy_amount_minor: int | None = None,
    fee_minor: int | None = None,
) -> None:
    """Raise why `participant_id` may not use `quote` at `now`, or return.

    The optional expectations are what the payment request says; any that differ from the
    quote refuse it (quote_mismatch), so a payment moves exactly what was quoted.
    Order: foreign, used, expired, mismatch.
    """
    if quote.participant_id != participant_id:
        raise QuoteForeign(f"quote {quote.id} belongs to another participant")
    if quote.used_at is not None:
        raise QuoteUsed(f"quote {quote.id} was already used at {quote.used_at.isoformat()}")
    if quote.is_expired(now):
        raise QuoteExpired(f"quote {quote.id} expired at {quote.expires_at.isoformat()}")
    expected = {
        "sell currency": (sell_currency, quote.sell_currency),
        "buy currency": (buy_currency, quote.buy_currency),
        "sell amount": (sell_amount_minor, quote.sell_amount_minor),
        "buy amount": (buy_amount_minor, quote.buy_amount_minor),
        "fee": (fee_minor, quote.fee_minor),
    }
    for name, (given, quoted) in expected.items():
        if given is not None and given != quoted:
            raise QuoteMismatch(
                f"the payment's {name} ({given}) does not match quote {quote.id} ({quoted})"
            )
