"""Pricing rules: spread, fee, and rounding that never creates money (unit and property tests)."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from fx.currency import currency
from fx.errors import FxError, InvalidAmount, InvalidPricing
from fx.pricing import (
    AMOUNT_MINOR_MAX,
    BPS,
    PRICING_DEFAULT,
    CorridorPricing,
    customer_rate,
    fee_minor,
    price,
)
from fx.rates import RATE_MAX, RATE_MIN

# Exponents 0 (JPY, ISK), 2 (USD, EUR, PHP), 3 (KWD, BHD) and 4 (CLF).
CODES = ["JPY", "ISK", "USD", "EUR", "PHP", "KWD", "BHD", "CLF"]


def major(amount_minor: int, code: str) -> Decimal:
    return Decimal(amount_minor).scaleb(-currency(code).exponent)


@st.composite
def rates(draw: st.DrawFn) -> Decimal:
    """Positive rates with up to 12 significant digits across RATE_MIN..RATE_MAX."""
    mantissa = draw(st.integers(min_value=1, max_value=10**12 - 1))
    exponent = draw(st.integers(min_value=-20, max_value=0))
    value = Decimal(mantissa).scaleb(exponent)
    assume(RATE_MIN <= value <= RATE_MAX)
    return value


pricings = st.builds(
    CorridorPricing,
    spread_bps=st.integers(min_value=0, max_value=1_000),
    fee_bps=st.integers(min_value=0, max_value=1_000),
    fixed_fee_minor=st.integers(min_value=0, max_value=10_000),
)
pairs = st.tuples(st.sampled_from(CODES), st.sampled_from(CODES)).filter(lambda p: p[0] != p[1])
amounts = st.integers(min_value=1, max_value=10**12)


@settings(max_examples=300, deadline=None)
@given(pair=pairs, mid=rates(), pricing=pricings, sell=amounts)
@example(pair=("USD", "JPY"), mid=Decimal("157.25"), pricing=PRICING_DEFAULT, sell=1)
@example(pair=("KWD", "JPY"), mid=Decimal("512.3"), pricing=PRICING_DEFAULT, sell=1)
def test_selling_never_creates_money(
    pair: tuple[str, str], mid: Decimal, pricing: CorridorPricing, sell: int
) -> None:
    sell_code, buy_code = pair
    try:
        priced = price(sell_code, buy_code, mid, pricing, sell_amount_minor=sell)
    except InvalidAmount:
        # Only when the amount converts to less than one minor unit, or beyond the maximum.
        with localcontext() as ctx:
            ctx.prec = 200
            buy_exact = major(sell, sell_code) * customer_rate(mid, pricing.spread_bps)
            assert (
                buy_exact < major(1, buy_code)
                or buy_exact > major(AMOUNT_MINOR_MAX, buy_code)
                or sell + fee_minor(sell, pricing) > AMOUNT_MINOR_MAX
            )
        return
    with localcontext() as ctx:
        ctx.prec = 200
        paid_at_mid = major(priced.sell_amount_minor, sell_code) * mid
        received = major(priced.buy_amount_minor, buy_code)
        at_customer_rate = major(priced.sell_amount_minor, sell_code) * priced.customer_rate
        # The recipient never gets more than the amount converted is worth at mid...
        assert received <= paid_at_mid
        # ...nor more than the customer rate gives; and at most one minor unit less.
        assert received <= at_customer_rate < received + major(1, buy_code)
    assert priced.sell_amount_minor == sell
    assert priced.buy_amount_minor >= 1
    assert priced.customer_rate <= mid
    assert priced.fee_minor >= pricing.fixed_fee_minor >= 0
    assert priced.total_debit_minor == sell + priced.fee_minor


@settings(max_examples=300, deadline=None)
@given(pair=pairs, mid=rates(), pricing=pricings, buy=amounts)
@example(pair=("JPY", "KWD"), mid=Decimal("0.001953"), pricing=PRICING_DEFAULT, buy=1)
@example(pair=("USD", "EUR"), mid=Decimal("1"), pricing=CorridorPricing(0, 0, 0), buy=100)
def test_buy_amount_quotes_deliver_exactly_the_amount_for_the_least_sell(
    pair: tuple[str, str], mid: Decimal, pricing: CorridorPricing, buy: int
) -> None:
    sell_code, buy_code = pair
    try:
        priced = price(sell_code, buy_code, mid, pricing, buy_amount_minor=buy)
    except InvalidAmount:
        # Only when what the customer would pay exceeds the maximum amount.
        with localcontext() as ctx:
            ctx.prec = 200
            sell_exact = major(buy, buy_code) / customer_rate(mid, pricing.spread_bps)
            needed = int(
                sell_exact.scaleb(currency(sell_code).exponent).to_integral_value(
                    rounding="ROUND_CEILING"
                )
            )
            assert needed + fee_minor(needed, pricing) > AMOUNT_MINOR_MAX
        return
    assert priced.buy_amount_minor == buy
    with localcontext() as ctx:
        ctx.prec = 200
        sell = priced.sell_amount_minor
        rate = priced.customer_rate
        # The sell amount covers the asked amount at the customer rate and at mid...
        assert major(sell, sell_code) * rate >= major(buy, buy_code)
        assert major(sell, sell_code) * mid >= major(buy, buy_code)
        # ...and is the least that does: one minor unit less would not.
        assert major(sell - 1, sell_code) * rate < major(buy, buy_code)
    assert priced.fee_minor >= 0


@settings(max_examples=300, deadline=None)
@given(sell=amounts, pricing=pricings)
def test_fee_is_fixed_plus_percentage_rounded_up(sell: int, pricing: CorridorPricing) -> None:
    fee = fee_minor(sell, pricing)
    percentage = fee - pricing.fixed_fee_minor
    assert percentage >= 0
    # Never charges less than the exact percentage, and less than one minor unit more.
    assert percentage * BPS >= sell * pricing.fee_bps > (percentage - 1) * BPS


@settings(max_examples=300, deadline=None)
@given(mid=rates(), spread=st.integers(min_value=0, max_value=1_000))
def test_customer_rate_is_mid_less_spread_rounded_down(mid: Decimal, spread: int) -> None:
    rate = customer_rate(mid, spread)
    with localcontext() as ctx:
        ctx.prec = 200
        exact = mid * (BPS - spread) / BPS
        assert rate <= exact
        assert rate > exact * (1 - Decimal("1e-11"))  # rounding at 12 significant digits


def test_worked_example_usd_to_php() -> None:
    pricing = CorridorPricing(spread_bps=50, fee_bps=10, fixed_fee_minor=25)
    priced = price("USD", "PHP", Decimal("57.5"), pricing, sell_amount_minor=10_000)
    assert priced.customer_rate == Decimal("57.2125")
    assert priced.buy_amount_minor == 572_125  # 100.00 USD -> 5 721.25 PHP
    assert priced.fee_minor == 25 + 10  # 0.25 USD fixed + 0.10 % of 100.00 USD
    assert priced.total_debit_minor == 10_035
    assert priced.fixed_side == "sell"


def test_worked_example_rounds_toward_the_house_across_exponents() -> None:
    none = CorridorPricing(spread_bps=0, fee_bps=0, fixed_fee_minor=0)
    # 1 JPY at 0.0061 USD is 0.61 cents: the customer gets 0 cents -> refused, not rounded up.
    with pytest.raises(InvalidAmount):
        price("JPY", "USD", Decimal("0.0061"), none, sell_amount_minor=1)
    # 3 JPY -> 1.83 cents -> 1 cent.
    assert price("JPY", "USD", Decimal("0.0061"), none, sell_amount_minor=3).buy_amount_minor == 1
    # Buying 1.000 KWD at 0.0019 KWD per JPY costs ceil(526.3...) = 527 JPY.
    kwd = price("JPY", "KWD", Decimal("0.0019"), none, buy_amount_minor=1000)
    assert kwd.sell_amount_minor == 527
    # 1.001 KWD at 3.2573 USD per KWD = 3.2605573 USD -> 3.26 USD.
    priced = price("KWD", "USD", Decimal("3.2573"), none, sell_amount_minor=1001)
    assert priced.buy_amount_minor == 326
    # Fee percentage rounds up to the next minor unit: 0.1 % of 0.01 USD is 1 cent.
    assert fee_minor(1, CorridorPricing(spread_bps=0, fee_bps=10, fixed_fee_minor=0)) == 1


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({}, "invalid_amount"),
        ({"sell_amount_minor": 1, "buy_amount_minor": 1}, "invalid_amount"),
        ({"sell_amount_minor": 0}, "invalid_amount"),
        ({"sell_amount_minor": -5}, "invalid_amount"),
        ({"sell_amount_minor": True}, "invalid_amount"),
        ({"sell_amount_minor": 1.5}, "invalid_amount"),
        ({"buy_amount_minor": AMOUNT_MINOR_MAX + 1}, "invalid_amount"),
    ],
)
def test_amounts_are_checked(kwargs: dict[str, object], code: str) -> None:
    with pytest.raises(FxError) as caught:
        price("USD", "PHP", Decimal("57.5"), PRICING_DEFAULT, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_unknown_currency_is_an_fx_error() -> None:
    with pytest.raises(FxError) as caught:
        price("USD", "XXX", Decimal("1"), PRICING_DEFAULT, sell_amount_minor=100)
    assert caught.value.code == "unknown_currency"


@pytest.mark.parametrize(
    "fields",
    [
        {"spread_bps": -1, "fee_bps": 0, "fixed_fee_minor": 0},
        {"spread_bps": 1_001, "fee_bps": 0, "fixed_fee_minor": 0},
        {"spread_bps": 0, "fee_bps": 1_001, "fixed_fee_minor": 0},
        {"spread_bps": 0, "fee_bps": 0, "fixed_fee_minor": -1},
        {"spread_bps": 0.5, "fee_bps": 0, "fixed_fee_minor": 0},
    ],
)
def test_pricing_limits(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidPricing):
        CorridorPricing(**fields)  # type: ignore[arg-type]
