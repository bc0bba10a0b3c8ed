"""Rate selection: priority, fallback, staleness, inverse and cross rates (pure unit tests)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from fx.errors import InvalidRate, NoFreshRate, UnsupportedPair
from fx.rates import (
    Rate,
    SourcePolicy,
    canonical,
    cross,
    ecb_as_of,
    format_duration,
    parse_rate,
    round_significant,
    select_rate,
    source_rate,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICIES = [
    SourcePolicy("operator", timedelta(hours=24)),
    SourcePolicy("live", timedelta(days=5)),
    SourcePolicy("embedded", timedelta(days=45)),
]


def r(base: str, quote: str, rate: str, source: str, days_old: float = 0) -> Rate:
    return Rate(base, quote, Decimal(rate), source, NOW - timedelta(days=days_old))


def test_the_first_fresh_source_in_priority_order_wins() -> None:
    candidates = [
        r("EUR", "USD", "1.10", "embedded", days_old=26),
        r("EUR", "USD", "1.12", "live", days_old=1),
    ]
    chosen = select_rate("EUR", "USD", candidates, POLICIES, NOW)
    assert (chosen.rate, chosen.source, chosen.via) == (Decimal("1.12"), "live", None)


def test_a_stale_source_falls_back_to_the_next() -> None:
    candidates = [
        r("EUR", "USD", "1.12", "live", days_old=6),  # older than 5 days
        r("EUR", "USD", "1.10", "embedded", days_old=26),
    ]
    assert select_rate("EUR", "USD", candidates, POLICIES, NOW).source == "embedded"


def test_max_age_is_inclusive_and_then_refuses_with_the_reason() -> None:
    candidates = [r("EUR", "USD", "1.10", "embedded", days_old=45)]
    assert select_rate("EUR", "USD", candidates, POLICIES, NOW).rate == Decimal("1.10")
    later = NOW + timedelta(seconds=1)
    with pytest.raises(NoFreshRate) as caught:
        select_rate("EUR", "USD", candidates, POLICIES, later)
    assert caught.value.code == "no_fresh_rate"
    assert "embedded EUR/USD as of 2026-10-11 12:00 UTC" in caught.value.detail
    assert "45 days" in caught.value.detail


def test_the_inverse_of_a_quoted_pair_is_used() -> None:
    chosen = select_rate("USD", "EUR", [r("EUR", "USD", "1.1172", "live")], POLICIES, NOW)
    assert chosen.rate == Decimal("0.895094880057")  # 1 / 1.1172 to 12 significant digits
    assert (chosen.base, chosen.quote, chosen.source) == ("USD", "EUR", "live")


def test_cross_rate_through_eur_takes_the_older_leg_as_of() -> None:
    candidates = [
        r("EUR", "USD", "1.1172", "live", days_old=1),
        r("EUR", "PHP", "71.143", "live", days_old=2),
    ]
    chosen = select_rate("USD", "PHP", candidates, POLICIES, NOW)
    assert chosen.via == "EUR"
    assert chosen.source == "live"
    assert chosen.as_of == NOW - timedelta(days=2)
    assert chosen.rate == round_significant(Decimal("71.143") / Decimal("1.1172"))


def test_cross_rate_mixes_sources_and_pivots_for_operator_corridors() -> None:
    # Only EUR rates from the ECB, and the operator's USD/NGN: JPY -> EUR -> USD -> NGN.
    candidates = [
        r("EUR", "JPY", "175.68", "embedded", days_old=26),
        r("EUR", "USD", "1.1172", "embedded", days_old=26),
        r("USD", "NGN", "1530", "operator", days_old=0.5),
    ]
    chosen = select_rate("JPY", "NGN", candidates, POLICIES, NOW)
    assert chosen.via == "EUR,USD"
    assert chosen.source == "embedded+operator"
    assert chosen.as_of == NOW - timedelta(days=26)
    expected = Decimal("1.1172") * Decimal("1530") / Decimal("175.68")
    assert abs(chosen.rate - expected) / expected < Decimal("1e-11")


def test_a_direct_pair_beats_a_cross_rate_even_from_a_later_source() -> None:
    candidates = [
        r("EUR", "USD", "1.1172", "operator"),
        r("EUR", "PHP", "71.143", "operator"),
        r("USD", "PHP", "63.5", "embedded", days_old=3),
    ]
    chosen = select_rate("USD", "PHP", candidates, POLICIES, NOW)
    assert (chosen.rate, chosen.via) == (Decimal("63.5"), None)


def test_unknown_pair_is_unsupported_and_stale_pair_has_no_fresh_rate() -> None:
    with pytest.raises(UnsupportedPair):
        select_rate("USD", "NGN", [r("EUR", "USD", "1.1", "live")], POLICIES, NOW)
    stale_legs = [r("EUR", "USD", "1.1", "live", 9), r("EUR", "PHP", "71", "embedded", 90)]
    with pytest.raises(NoFreshRate) as caught:
        select_rate("USD", "PHP", stale_legs, POLICIES, NOW)
    assert "live EUR/USD" in caught.value.detail and "embedded EUR/PHP" in caught.value.detail


def test_sources_without_a_policy_are_ignored() -> None:
    with pytest.raises(UnsupportedPair):
        select_rate("EUR", "USD", [r("EUR", "USD", "1.1", "unknown")], POLICIES, NOW)


def test_same_currency_is_one() -> None:
    assert select_rate("USD", "USD", [], POLICIES, NOW).rate == Decimal(1)


def test_cross_needs_connected_legs() -> None:
    with pytest.raises(AssertionError):
        cross([r("EUR", "USD", "1.1", "live"), r("EUR", "PHP", "71", "live")])


def test_ecb_as_of_is_the_concertation_time_in_frankfurt() -> None:
    assert ecb_as_of(date(2026, 10, 30)) == datetime(2026, 10, 30, 13, 10, tzinfo=UTC)  # CET
    assert ecb_as_of(date(2026, 7, 1)) == datetime(2026, 7, 1, 12, 10, tzinfo=UTC)  # CEST


@pytest.mark.parametrize(
    ("given", "expected"),
    [("56.10", Decimal("56.1")), ("1500", Decimal("1500")), (2, Decimal("2"))],
)
def test_parse_rate_accepts_exact_values(given: object, expected: Decimal) -> None:
    assert parse_rate(given) == expected
    assert "E" not in str(parse_rate(given))


@pytest.mark.parametrize(
    "given", [1.5, "0", "-1", "abc", "NaN", "Infinity", "1e10", "1.23456789012345", None, True]
)
def test_parse_rate_refuses(given: object) -> None:
    with pytest.raises(InvalidRate):
        parse_rate(given)


def test_source_rates_that_cannot_be_real_are_skipped() -> None:
    assert source_rate(Decimal("0.83380")) == Decimal("0.83380")
    for unusable in ("0", "-1", "NaN", "1e12", "1." + "1" * 30):
        assert source_rate(Decimal(unusable)) is None


def test_rounding_helpers() -> None:
    assert canonical(Decimal("1.500")) == Decimal("1.5")
    assert str(canonical(Decimal("1E+2"))) == "100"
    assert round_significant(Decimal("1") / Decimal("3")) == Decimal("0.333333333333")
    assert round_significant(Decimal("2.5")) == Decimal("2.5")
    assert format_duration(timedelta(days=45)) == "45 days"
    assert format_duration(timedelta(hours=1)) == "1 hour"
    assert format_duration(timedelta(seconds=90)) == "90 seconds"
