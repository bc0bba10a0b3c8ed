"""Rate sources: the embedded ECB data, the ECB XML feed, forex-python, all failing cleanly."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from forex_python.converter import CurrencyRates, RatesNotAvailableError

from fx.errors import SourceUnavailable
from fx.rates import Rate
from fx.sources import (
    RESPONSE_BYTES_MAX,
    EcbDailyFeedSource,
    EcbEmbeddedSource,
    ForexPythonSource,
    parse_ecb_xml,
)

FIXTURE = Path(__file__).parent / "fixtures" / "eurofxref-daily.xml"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# A local port nobody listens on: connecting fails at once, like a machine offline.
CLOSED_URL = "http://127.0.0.1:9/eurofxref-daily.xml"


def by_quote(rates: list[Rate]) -> dict[str, Rate]:
    return {r.quote: r for r in rates}


# -- embedded ECB data -------------------------------------------------------------------


def test_embedded_source_serves_the_real_ecb_rates_with_their_date(
    embedded: EcbEmbeddedSource,
) -> None:
    rates = by_quote(embedded.fetch(NOW))
    assert len(rates) >= 29  # about 30 currencies against EUR
    usd = rates["USD"]
    assert (usd.base, usd.rate, usd.source) == ("EUR", Decimal("1.1172"), "ecb_embedded")
    assert usd.as_of == datetime(2026, 10, 30, 13, 10, tzinfo=UTC)  # 14:10 CET
    assert rates["JPY"].rate == Decimal("175.68") and rates["PHP"].rate == Decimal("71.143")
    assert all(isinstance(r.rate, Decimal) for r in rates.values())
    # A currency the ECB stopped quoting keeps its last real date: it is stale, never moved.
    assert rates["RUB"].as_of.date() < date(2022, 12, 31)


def test_embedded_source_matches_the_ecb_feed_of_the_same_day(
    embedded: EcbEmbeddedSource,
) -> None:
    feed = parse_ecb_xml(FIXTURE.read_bytes())[date(2026, 10, 30)]
    shipped = {r.quote: r.rate for r in embedded.fetch(NOW) if r.as_of.date() == date(2026, 10, 30)}
    assert shipped == feed


def test_embedded_source_with_an_unreadable_file_is_unavailable(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    with pytest.raises(SourceUnavailable):
        EcbEmbeddedSource(currency_file=str(broken)).fetch(NOW)


# -- ECB XML feed ------------------------------------------------------------------------


def test_parse_the_ecb_daily_format() -> None:
    days = parse_ecb_xml(FIXTURE.read_bytes())
    assert list(days) == [date(2026, 10, 30)]
    rates = days[date(2026, 10, 30)]
    assert len(rates) == 29
    assert rates["USD"] == Decimal("1.1172")
    assert rates["GBP"] == Decimal("0.83380")  # digits kept exactly as published
    assert rates["IDR"] == Decimal("20275.17")


def test_parse_several_days_and_skip_what_cannot_hold_money() -> None:
    document = b"""<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"
  xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <Cube>
    <Cube time="2026-10-30"><Cube currency="USD" rate="1.1172"/><Cube currency="XAU" rate="1"/>
      <Cube currency="JPY" rate="-3"/><Cube currency="CHF" rate="abc"/></Cube>
    <Cube time="2026-10-29"><Cube currency="USD" rate="1.113"/></Cube>
  </Cube>
</gesmes:Envelope>"""
    days = parse_ecb_xml(document)
    assert days == {
        date(2026, 10, 30): {"USD": Decimal("1.1172")},
        date(2026, 10, 29): {"USD": Decimal("1.113")},
    }


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"<html>maintenance</html>",
        b"<gesmes:Envelope",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
        b'<e xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube>'
        b'<Cube time="yesterday"><Cube currency="USD" rate="1.1"/></Cube></Cube></e>',
        b'<e xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube/></e>',
    ],
)
def test_parse_refuses_what_is_not_the_ecb_format(document: bytes) -> None:
    with pytest.raises(ValueError):
        parse_ecb_xml(document)


def feed(handler: Any) -> EcbDailyFeedSource:
    return EcbDailyFeedSource(transport=httpx.MockTransport(handler), timeout_s=1.0)


def test_feed_source_fetches_and_parses() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=FIXTURE.read_bytes())

    rates = by_quote(feed(handler).fetch(NOW))
    assert str(seen[0].url) == "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
    assert rates["USD"].rate == Decimal("1.1172")
    assert rates["USD"].source == "ecb_daily"
    assert rates["USD"].as_of == datetime(2026, 10, 30, 13, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("Name or service not known"),
        httpx.ReadTimeout("timed out"),
        httpx.Response(503, content=b"busy"),
        httpx.Response(200, content=b"<html>not the feed</html>"),
        httpx.Response(200, content=b"<" + b"x" * (RESPONSE_BYTES_MAX + 1)),
    ],
)
def test_feed_source_failures_are_source_unavailable(failure: object) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(failure, Exception):
            raise failure
        assert isinstance(failure, httpx.Response)
        return failure

    with pytest.raises(SourceUnavailable) as caught:
        feed(handler).fetch(NOW)
    assert caught.value.code == "source_unavailable"


def test_feed_source_offline_for_real_is_source_unavailable() -> None:
    with pytest.raises(SourceUnavailable) as caught:
        EcbDailyFeedSource(CLOSED_URL, timeout_s=2.0).fetch(NOW)
    assert "cannot be reached" in caught.value.detail


# -- forex-python ------------------------------------------------------------------------


def forex(get_rates: Any, **kwargs: Any) -> ForexPythonSource:
    return ForexPythonSource(get_rates=get_rates, **kwargs)


def test_forex_python_rates_are_decimal_with_the_fetch_time_as_of() -> None:
    answers: dict[str, Mapping[str, object]] = {
        "EUR": {"USD": Decimal("1.1172"), "JPY": 175, "XAU": Decimal("0.0003"), "EUR": 1},
        "USD": {"PHP": Decimal("63.68"), "GBP": 0.75, "BAD": "x"},
    }
    rates = forex(lambda base: answers[base]).fetch(NOW)
    got = {(r.base, r.quote): r.rate for r in rates}
    # floats (already imprecise) and unknown or same currencies are skipped, never used
    assert got == {
        ("EUR", "JPY"): Decimal(175),
        ("EUR", "USD"): Decimal("1.1172"),
        ("USD", "PHP"): Decimal("63.68"),
    }
    assert {r.as_of for r in rates} == {NOW}
    assert {r.source for r in rates} == {"forex_python"}


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ConnectionError("Max retries exceeded"),
        requests.exceptions.Timeout("read timed out"),
        RatesNotAvailableError("Currency Rates Source Not Ready"),
        ValueError("Expecting value: line 1 column 1"),
    ],
)
def test_forex_python_failures_are_source_unavailable(error: Exception) -> None:
    def get_rates(base: str) -> Mapping[str, object]:
        raise error

    with pytest.raises(SourceUnavailable) as caught:
        forex(get_rates).fetch(NOW)
    assert type(error).__name__ in caught.value.detail


def test_forex_python_call_is_abandoned_after_the_timeout_and_bounded() -> None:
    release = threading.Event()
    calls = []

    def hanging(base: str) -> Mapping[str, object]:
        calls.append(base)
        release.wait(10)
        return {}

    source = forex(hanging, timeout_s=0.05, bases=("EUR",))
    for _ in range(ForexPythonSource.CALLS_IN_FLIGHT_MAX):
        with pytest.raises(SourceUnavailable, match="did not answer within"):
            source.fetch(NOW)
    # Hung calls are not piled up without limit: the next one is refused at once.
    with pytest.raises(SourceUnavailable, match="still hanging"):
        source.fetch(NOW)
    assert len(calls) == ForexPythonSource.CALLS_IN_FLIGHT_MAX
    release.set()


def test_forex_python_stops_at_the_first_failing_base() -> None:
    calls = []

    def get_rates(base: str) -> Mapping[str, object]:
        calls.append(base)
        raise requests.exceptions.ConnectionError("offline")

    with pytest.raises(SourceUnavailable):
        forex(get_rates, bases=("EUR", "USD")).fetch(NOW)
    assert calls == ["EUR"]


def test_the_real_forex_python_library_offline_is_source_unavailable() -> None:
    class Unreachable(CurrencyRates):  # the real library, pointed at a closed local port
        def _source_url(self) -> str:
            return "http://127.0.0.1:9/api/"

    def get_rates(base: str) -> Mapping[str, object]:
        answer: Mapping[str, object] = Unreachable(force_decimal=True).get_rates(base)
        return answer

    with pytest.raises(SourceUnavailable) as caught:
        forex(get_rates, timeout_s=5.0).fetch(NOW)
    assert "ConnectionError" in caught.value.detail
