"""FxService end to end on a real database: the embedded default, refresh, staleness,
operator rates, corridor pricing and the life of a quote."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import requests
from sqlalchemy import Engine

from fx.errors import FxError
from fx.pricing import PRICING_DEFAULT, CorridorPricing
from fx.rates import round_significant
from fx.service import FxService
from fx.sources import (
    EcbDailyFeedSource,
    EcbEmbeddedSource,
    ForexPythonSource,
    OperatorSource,
    RateSource,
    default_sources,
)
from tests.fx.conftest import TODAY, FakeClock

FIXTURE = Path(__file__).parent / "fixtures" / "eurofxref-daily.xml"
ECB_DAY = datetime(2026, 10, 30, 13, 10, tzinfo=UTC)


def service(
    engine: Engine, clock: FakeClock, sources: list[RateSource], **kwargs: object
) -> FxService:
    return FxService(engine, sources, clock=clock, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def fx(fx_engine: Engine, clock: FakeClock, embedded: EcbEmbeddedSource) -> FxService:
    return service(fx_engine, clock, [OperatorSource(), embedded])


def code_of(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(FxError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value.code


# -- rates -------------------------------------------------------------------------------


def test_the_embedded_default_prices_today_without_network_or_set_up(fx: FxService) -> None:
    eur_usd = fx.rate("EUR", "USD")
    assert (eur_usd.rate, eur_usd.source, eur_usd.as_of) == (
        Decimal("1.1172"),
        "ecb_embedded",
        ECB_DAY,
    )
    usd_php = fx.rate("USD", "PHP")
    assert usd_php.via == "EUR"
    assert usd_php.rate == round_significant(Decimal("71.143") / Decimal("1.1172"))
    listed = fx.rates()
    assert {(item.rate.base, item.rate.quote) for item in listed} >= {
        ("EUR", "USD"),
        ("EUR", "PHP"),
    }
    assert all(item.fresh and item.best for item in listed)
    everything = fx.rates(all_sources=True)
    rub = next(item for item in everything if item.rate.quote == "RUB")
    assert not rub.fresh and not rub.best  # the ECB stopped quoting RUB in 2022
    assert "RUB" not in {item.rate.quote for item in listed}


def test_rates_older_than_the_max_age_refuse_quotes_with_the_reason(
    fx: FxService, clock: FakeClock
) -> None:
    clock.now = ECB_DAY + timedelta(days=45, seconds=1)
    with pytest.raises(FxError) as caught:
        fx.create_quote("p-1", "USD", "PHP", sell_amount_minor=10_000)
    assert caught.value.code == "no_fresh_rate"
    assert "ecb_embedded EUR/USD as of 2026-10-30 13:10 UTC" in caught.value.detail
    assert "45 days" in caught.value.detail
    assert fx.rates() == []


def test_unknown_currencies_and_uncovered_pairs(fx: FxService) -> None:
    assert code_of(fx.rate, "USD", "usd") == "unknown_currency"
    assert code_of(fx.rate, "USD", "XYZ") == "unknown_currency"
    assert code_of(fx.rate, "USD", "NGN") == "unsupported_pair"


def test_operator_rates_cover_new_corridors_and_expire(fx: FxService, clock: FakeClock) -> None:
    assert code_of(fx.set_operator_rate, "USD", "NGN", 1530.5) == "invalid_rate"
    assert code_of(fx.set_operator_rate, "USD", "USD", "1") == "unsupported_pair"
    stored = fx.set_operator_rate("USD", "NGN", "1530.5", set_by="ops")
    assert (stored.source, stored.as_of) == ("operator", TODAY)

    direct = fx.rate("USD", "NGN")
    assert (direct.rate, direct.source) == (Decimal("1530.5"), "operator")
    via_usd = fx.rate("EUR", "NGN")  # ECB EUR/USD x operator USD/NGN
    assert (via_usd.source, via_usd.via) == ("ecb_embedded+operator", "USD")
    assert via_usd.as_of == ECB_DAY  # as old as its oldest leg
    assert fx.rate("JPY", "NGN").via == "EUR,USD"

    clock.advance(hours=24, seconds=1)  # the operator's default max age is 24 hours
    assert code_of(fx.rate, "USD", "NGN") == "no_fresh_rate"
    assert [r.rate for r, _ in fx.operator_rates()] == [Decimal("1530.5")]
    assert [h.rate.source for h in fx.history("NGN", "USD")] == ["operator"]


def test_operator_rate_takes_priority_over_public_sources(fx: FxService) -> None:
    fx.set_operator_rate("EUR", "USD", Decimal("1.2"))
    assert fx.rate("EUR", "USD").source == "operator"
    best = {(i.rate.base, i.rate.quote): i for i in fx.rates()}
    assert best[("EUR", "USD")].rate.source == "operator"
    assert len([i for i in fx.rates(all_sources=True) if i.rate.pair == ("EUR", "USD")]) == 2


def test_without_an_operator_source_operator_rates_are_refused(
    fx_engine: Engine, clock: FakeClock, embedded: EcbEmbeddedSource
) -> None:
    only_ecb = service(fx_engine, clock, [embedded])
    assert code_of(only_ecb.set_operator_rate, "USD", "NGN", "1500") == "operator_rates_disabled"


def test_refresh_stores_history_and_reports_each_source(
    fx_engine: Engine, clock: FakeClock, embedded: EcbEmbeddedSource
) -> None:
    def offline(base: str) -> Mapping[str, object]:
        raise requests.exceptions.ConnectionError("Name or service not known")

    ecb_feed = EcbDailyFeedSource(
        transport=httpx.MockTransport(
            lambda request: httpx.Response(200, content=FIXTURE.read_bytes())
        )
    )
    fx = service(
        fx_engine,
        clock,
        [OperatorSource(), ecb_feed, ForexPythonSource(get_rates=offline), embedded],
    )
    clock.now = ECB_DAY + timedelta(days=1)  # the fixture's day is fresh for the live feed
    statuses = {s.source: s for s in fx.refresh()}
    assert set(statuses) == {"ecb_daily", "forex_python", "ecb_embedded"}  # operator: nothing
    assert (statuses["ecb_daily"].ok, statuses["ecb_daily"].fetched) == (True, 29)
    assert statuses["ecb_daily"].stored == 29
    assert statuses["ecb_daily"].latest_as_of == ECB_DAY
    forex = statuses["forex_python"]
    assert (forex.ok, forex.error_code, forex.stored) == (False, "source_unavailable", 0)
    assert "ConnectionError" in forex.detail
    assert statuses["ecb_embedded"].ok

    clock.advance(minutes=10)
    again = {s.source: s for s in fx.refresh(["ecb_daily"])}
    assert list(again) == ["ecb_daily"] and again["ecb_daily"].stored == 0  # nothing new

    # The live feed ranks before the embedded data for the same rates...
    assert fx.rate("EUR", "USD").source == "ecb_daily"
    # ...until it is older than its 5 days: then the embedded data (45 days) takes over.
    clock.now = ECB_DAY + timedelta(days=5, seconds=1)
    assert fx.rate("EUR", "USD").source == "ecb_embedded"
    history = fx.history("EUR", "USD")
    assert {(h.rate.source, h.rate.as_of) for h in history} == {
        ("ecb_daily", ECB_DAY),
        ("ecb_embedded", ECB_DAY),
    }


def test_refresh_offline_never_raises(fx_engine: Engine, clock: FakeClock) -> None:
    closed = "http://127.0.0.1:9/eurofxref-daily.xml"
    fx = service(fx_engine, clock, [OperatorSource(), EcbDailyFeedSource(closed, timeout_s=2.0)])
    [status] = fx.refresh()
    assert (status.source, status.ok, status.error_code) == (
        "ecb_daily",
        False,
        "source_unavailable",
    )
    assert code_of(fx.rate, "EUR", "USD") == "unsupported_pair"


def test_default_sources_order() -> None:
    names = [s.name for s in default_sources()]
    assert names == ["operator", "ecb_daily", "forex_python", "ecb_embedded"]


# -- pricing and quotes -------------------------------------------------------------------


def test_sell_quote_records_everything_the_payment_needs(fx: FxService) -> None:
    quote = fx.create_quote("p-1", "USD", "PHP", sell_amount_minor=10_000)
    mid = round_significant(Decimal("71.143") / Decimal("1.1172"))
    assert quote.mid_rate == mid
    assert quote.customer_rate <= mid * Decimal("0.995")
    assert (quote.spread_bps, quote.fee_bps, quote.fixed_fee_minor) == (50, 10, 0)
    assert quote.sell_amount_minor == 10_000
    assert quote.fee_minor == 10  # 0.1 % of 100.00 USD
    assert quote.total_debit_minor == 10_010
    assert quote.buy_amount_minor == int(Decimal("100") * quote.customer_rate * 100)
    assert (quote.rate_source, quote.rate_via, quote.rate_as_of) == ("ecb_embedded", "EUR", ECB_DAY)
    assert (quote.created_at, quote.expires_at) == (TODAY, TODAY + timedelta(seconds=30))
    assert quote.used_at is None and quote.fixed_side == "sell"
    assert fx.get_quote(quote.id, "p-1") == quote


def test_buy_quote_delivers_exactly_the_amount(fx: FxService) -> None:
    quote = fx.create_quote("p-1", "JPY", "EUR", buy_amount_minor=50_000)  # 500.00 EUR
    assert quote.buy_amount_minor == 50_000 and quote.fixed_side == "buy"
    paid_value = Decimal(quote.sell_amount_minor) * quote.customer_rate  # JPY has no decimals
    assert paid_value >= Decimal("500")
    assert Decimal(quote.sell_amount_minor - 1) * quote.customer_rate < Decimal("500")


def test_corridor_pricing_is_configured_per_direction(fx: FxService) -> None:
    assert fx.corridor_pricing("USD", "PHP") == PRICING_DEFAULT
    pricing = fx.set_corridor_pricing("USD", "PHP", spread_bps=25, fee_bps=0, fixed_fee_minor=99)
    assert fx.corridor_pricing("USD", "PHP") == pricing == CorridorPricing(25, 0, 99)
    assert fx.corridor_pricing("PHP", "USD") == PRICING_DEFAULT
    quote = fx.create_quote("p-1", "USD", "PHP", sell_amount_minor=10_000)
    assert (quote.spread_bps, quote.fee_minor) == (25, 99)
    assert [r.sell_currency for r in fx.list_corridor_pricing()] == ["USD"]
    negative = {"spread_bps": -1, "fee_bps": 0, "fixed_fee_minor": 0}
    assert code_of(fx.set_corridor_pricing, "USD", "PHP", **negative) == "invalid_pricing"


def test_quote_requests_are_checked(fx: FxService) -> None:
    create = fx.create_quote
    assert code_of(create, "p-1", "USD", "USD", sell_amount_minor=100) == "unsupported_pair"
    assert code_of(create, "p-1", "USD", "PHP") == "invalid_amount"
    assert code_of(create, "p-1", "USD", "PHP", sell_amount_minor=1, buy_amount_minor=1) == (
        "invalid_amount"
    )
    assert code_of(create, "p-1", "USD", "PHP", sell_amount_minor=0) == "invalid_amount"
    assert code_of(create, "p-1", "KRW", "USD", sell_amount_minor=1) == "invalid_amount"  # < 1 ¢
    assert code_of(create, "p-1", "USD", "ABC", sell_amount_minor=1) == "unknown_currency"
    too_long = fx.quote_lifetime_max_s + 1
    assert code_of(create, "p-1", "USD", "PHP", sell_amount_minor=1, lifetime_s=too_long) == (
        "lifetime_too_long"
    )
    assert code_of(create, "p-1", "USD", "PHP", sell_amount_minor=1, lifetime_s=0) == (
        "invalid_lifetime"
    )
    longest = create("p-1", "USD", "PHP", sell_amount_minor=1_00, lifetime_s=too_long - 1)
    assert longest.expires_at - longest.created_at == timedelta(seconds=120)


def test_a_quote_is_firm_until_it_expires_belongs_to_its_owner_and_is_used_once(
    fx: FxService, fx_engine: Engine, clock: FakeClock
) -> None:
    quote = fx.create_quote("p-1", "EUR", "USD", sell_amount_minor=10_000, lifetime_s=60)
    assert code_of(fx.get_quote, quote.id, "p-2") == "quote_foreign"
    assert code_of(fx.get_quote, "no-such-quote", "p-1") == "quote_not_found"

    def consume(participant: str, **expect: object) -> object:
        with fx_engine.begin() as conn:
            return fx.consume_quote(conn, quote.id, participant, **expect)  # type: ignore[arg-type]

    assert code_of(consume, "p-2") == "quote_foreign"
    assert code_of(consume, "p-1", sell_amount_minor=9_999) == "quote_mismatch"
    clock.advance(seconds=59)
    used = consume("p-1", sell_amount_minor=10_000, buy_amount_minor=quote.buy_amount_minor)
    assert used.used_at == clock.now  # type: ignore[attr-defined]
    assert code_of(consume, "p-1") == "quote_used"
    assert fx.get_quote(quote.id, "p-1").used_at == clock.now

    late = fx.create_quote("p-1", "EUR", "USD", sell_amount_minor=10_000)
    clock.advance(seconds=30)
    with pytest.raises(FxError) as caught, fx_engine.begin() as conn:
        fx.consume_quote(conn, late.id, "p-1")
    assert caught.value.code == "quote_expired"
