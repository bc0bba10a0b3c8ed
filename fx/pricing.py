"""Pricing rules: spread, fee and the rounding of every amount toward the house.

Plain Python, no I/O. Amounts are integers in minor units; rates are Decimal. Each
rounding is explicit and favours the liquidity provider, so rounding never creates money:

- customer rate = mid * (1 - spread), rounded down (RATE_DIGITS significant digits);
- given the sell amount: buy = floor(sell * customer rate), to the buy currency's minor unit;
- given the buy amount: sell = ceil(buy / customer rate), so exactly `buy` is delivered;
- fee = fixed + ceil(sell * fee_bps / 10 000), in the sell currency's minor unit.

The customer pays sell + fee; the recipient side receives buy.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from fx.currency import CurrencyError, currency
from fx.errors import InvalidAmount, InvalidPricing, from_currency_error
from fx.rates import RATE_DIGITS, round_significant

BPS = 10_000
# Limits on what an operator may configure (TIGER_STYLE: a limit on everything).
SPREAD_BPS_MAX = 1_000  # 10 %
FEE_BPS_MAX = 1_000  # 10 %
FIXED_FEE_MINOR_MAX = 10**9
# The largest amount one quote may carry, in minor units of either currency.
AMOUNT_MINOR_MAX = 10**15

# Directed-rounding contexts. With 60 digits the products of bounded amounts and rates
# are exact; when a quotient is not, rounding it in the same direction as the final
# integer rounding keeps floor/ceil of the result equal to floor/ceil of the exact value.
_FLOOR = decimal.Context(prec=60, rounding=decimal.ROUND_FLOOR, traps=[decimal.InvalidOperation])
_CEILING = decimal.Context(
    prec=60, rounding=decimal.ROUND_CEILING, traps=[decimal.InvalidOperation]
)

Side = Literal["sell", "buy"]


@dataclass(frozen=True, slots=True)
class CorridorPricing:
    """What the house charges on one corridor (sell currency -> buy currency)."""

    spread_bps: int
    fee_bps: int
    fixed_fee_minor: int

    def __post_init__(self) -> None:
        for name, value, maximum in (
            ("spread_bps", self.spread_bps, SPREAD_BPS_MAX),
            ("fee_bps", self.fee_bps, FEE_BPS_MAX),
            ("fixed_fee_minor", self.fixed_fee_minor, FIXED_FEE_MINOR_MAX),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidPricing(f"{name} must be an integer, not {value!r}")
            if not 0 <= value <= maximum:
                raise InvalidPricing(f"{name} must be between 0 and {maximum}, not {value}")


# Defaults for corridors the operator has not configured: 0.5 % spread, 0.1 % fee, no
# fixed fee (a fixed fee is only meaningful in a given sell currency's minor unit).
PRICING_DEFAULT = CorridorPricing(spread_bps=50, fee_bps=10, fixed_fee_minor=0)


@dataclass(frozen=True, slots=True)
class Priced:
    """The amounts and rates of a quote, before it gets an id and a lifetime."""

    sell_currency: str
    buy_currency: str
    sell_amount_minor: int
    buy_amount_minor: int
    fee_minor: int
    mid_rate: Decimal
    customer_rate: Decimal
    pricing: CorridorPricing
    fixed_side: Side

    @property
    def total_debit_minor(self) -> int:
        """What the customer pays, in the sell currency: the amount converted plus the fee."""
        return self.sell_amount_minor + self.fee_minor


def customer_rate(mid_rate: Decimal, spread_bps: int) -> Decimal:
    """mid * (1 - spread), rounded down: the customer never gets more than the mid rate."""
    assert isinstance(mid_rate, Decimal) and mid_rate.is_finite() and mid_rate > 0
    assert 0 <= spread_bps < BPS
    exact = _FLOOR.divide(_FLOOR.multiply(mid_rate, Decimal(BPS - spread_bps)), Decimal(BPS))
    return round_significant(exact, RATE_DIGITS, decimal.ROUND_FLOOR)


def fee_minor(sell_amount_minor: int, pricing: CorridorPricing) -> int:
    """fixed + ceil(sell * fee_bps / 10 000), exact integer arithmetic."""
    assert sell_amount_minor > 0
    percentage = -(-sell_amount_minor * pricing.fee_bps // BPS)  # ceiling division
    return pricing.fixed_fee_minor + percentage


def buy_for_sell(sell_amount_minor: int, rate: Decimal, sell_exp: int, buy_exp: int) -> int:
    """floor(sell * rate) in the buy currency's minor unit."""
    exact = _FLOOR.multiply(Decimal(sell_amount_minor), rate).scaleb(buy_exp - sell_exp, _FLOOR)
    return int(exact.to_integral_value(rounding=decimal.ROUND_FLOOR))


def sell_for_buy(buy_amount_minor: int, rate: Decimal, sell_exp: int, buy_exp: int) -> int:
    """ceil(buy / rate) in the sell currency's minor unit: the least sell that delivers buy."""
    exact = _CEILING.divide(Decimal(buy_amount_minor), rate).scaleb(sell_exp - buy_exp, _CEILING)
    return int(exact.to_integral_value(rounding=decimal.ROUND_CEILING))


def check_amount(name: str, amount_minor: object) -> int:
    """A positive integer amount in minor units, within AMOUNT_MINOR_MAX."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise InvalidAmount(f"{name} must be an integer number of minor units")
    if not 0 < amount_minor <= AMOUNT_MINOR_MAX:
        raise InvalidAmount(f"{name} must be between 1 and {AMOUNT_MINOR_MAX} minor units")
    return amount_minor


def price(
    sell_currency: str,
    buy_currency: str,
    mid_rate: Decimal,
    pricing: CorridorPricing,
    *,
    sell_amount_minor: int | None = None,
    buy_amount_minor: int | None = None,
) -> Priced:
    """Price a conversion from exactly one of the sell amount or the buy amount.

    `mid_rate` is buy-currency major units per sell-currency major unit.
    """
    try:
        sell_exp = currency(sell_currency).exponent
        buy_exp = currency(buy_currency).exponent
    except CurrencyError as error:
        raise from_currency_error(error) from None
    if (sell_amount_minor is None) == (buy_amount_minor is None):
        raise InvalidAmount("give exactly one of the sell amount or the buy amount")
    rate = customer_rate(mid_rate, pricing.spread_bps)

    side: Side
    if sell_amount_minor is not None:
        side = "sell"
        sell = check_amount("sell amount", sell_amount_minor)
        buy = buy_for_sell(sell, rate, sell_exp, buy_exp)
        if buy <= 0:
            raise InvalidAmount(
                f"selling {sell} minor units of {sell_currency} buys less than one minor "
                f"unit of {buy_currency}"
            )
    else:
        side = "buy"
        buy = check_amount("buy amount", buy_amount_minor)
        sell = sell_for_buy(buy, rate, sell_exp, buy_exp)
        # The least sell amount delivers at least `buy`, and one unit less would not.
        assert buy_for_sell(sell, rate, sell_exp, buy_exp) >= buy
        assert sell == 1 or buy_for_sell(sell - 1, rate, sell_exp, buy_exp) < buy

    fee = fee_minor(sell, pricing)
    for name, value in (("buy amount", buy), ("sell amount plus fee", sell + fee)):
        if value > AMOUNT_MINOR_MAX:
            raise InvalidAmount(f"the {name} would exceed {AMOUNT_MINOR_MAX} minor units")
    return Priced(
        sell_currency=sell_currency,
        buy_currency=buy_currency,
        sell_amount_minor=sell,
        buy_amount_minor=buy,
        fee_minor=fee,
        mid_rate=mid_rate,
        customer_rate=rate,
        pricing=pricing,
        fixed_side=side,
    )
