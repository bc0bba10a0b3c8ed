"""Exchange rates as values, and the rules that choose one: priority, staleness, cross rates.

Plain Python, no I/O: the service hands in the latest stored rate of every source and
pair, the ordered source policies and the time; `select_rate` answers with the rate a
quote may use or a typed error saying why there is none.

A rate says how many major units of `quote` one major unit of `base` buys (the ECB's
EUR/USD 1.1172 means 1 EUR = 1.1172 USD). Rates are `Decimal`, always positive, never
floats. Rates derived here (inverse, cross) are rounded to `RATE_DIGITS` significant
digits half-even: a mid rate is a reference, not money; the pricing rules round every
amount toward the house afterwards.
"""

from __future__ import annotations

import decimal
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fx.errors import InvalidRate, NoFreshRate, UnsupportedPair

# Significant digits kept by rates derived here. ECB rates carry 5 or 6; 12 keeps a cross
# rate's rounding error far below one minor unit of any amount up to AMOUNT_MINOR_MAX.
RATE_DIGITS = 12
# Bounds on a single rate: the widest real pair (IDR per KWD, or its inverse) fits easily.
# Digits accepted from a source as published (ECB: 5-6; JSON APIs: up to 17).
SOURCE_RATE_DIGITS_MAX = 24
RATE_MIN = Decimal("1e-9")
RATE_MAX = Decimal("1e9")
# Currencies a cross rate may go through, in order of preference.
PIVOTS_DEFAULT: tuple[str, ...] = ("EUR", "USD")
PIVOTS_MAX = 3  # paths tried grow factorially with the pivots
# Stale candidates named in a no_fresh_rate error (the rest are counted).
STALE_REPORTED_MAX = 3

# Enough precision that products of bounded amounts and rates are exact; the rounding
# mode of each operation is still chosen explicitly where it matters.
_CONTEXT = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


@dataclass(frozen=True, slots=True)
class Rate:
    """One rate with its provenance: where it came from and the time it describes."""

    base: str
    quote: str
    rate: Decimal
    source: str
    as_of: datetime
    # The pivots of a cross rate, comma-separated in path order ("EUR" for base->EUR->quote,
    # "EUR,USD" for base->EUR->USD->quote); None for a quoted pair.
    via: str | None = None

    def __post_init__(self) -> None:
        assert isinstance(self.rate, Decimal), "rates are Decimal, never float"
        assert self.rate.is_finite() and self.rate > 0, f"rate must be positive: {self.rate}"
        assert self.as_of.tzinfo is not None, "as_of must be timezone-aware"

    @property
    def pair(self) -> tuple[str, str]:
        return (self.base, self.quote)

    def inverse(self) -> Rate:
        """The same rate seen from the other side (quote/base), same provenance."""
        return replace(
            self,
            base=self.quote,
            quote=self.base,
            rate=round_significant(_CONTEXT.divide(Decimal(1), self.rate)),
        )


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """A source's place in the priority order and how old its rates may be."""

    name: str
    max_age: timedelta


def round_significant(
    value: Decimal, digits: int = RATE_DIGITS, rounding: str = decimal.ROUND_HALF_EVEN
) -> Decimal:
    """`value` rounded to `digits` significant digits, without trailing zeros."""
    assert value.is_finite() and value > 0
    exponent = value.adjusted() - digits + 1
    if exponent <= value.as_tuple().exponent:  # type: ignore[operator]
        return canonical(value)  # already short enough: nothing to round
    rounded = value.quantize(Decimal(1).scaleb(exponent), rounding=rounding, context=_CONTEXT)
    return canonical(rounded)


def canonical(value: Decimal) -> Decimal:
    """Trailing zeros removed, but never exponent notation for whole numbers (100, not 1E+2)."""
    normal = value.normalize(_CONTEXT)
    if normal.as_tuple().exponent > 0:  # type: ignore[operator]
        return normal.quantize(Decimal(1), context=_CONTEXT)
    return normal


def parse_rate(value: object) -> Decimal:
    """A rate given by a person (Decimal, int or decimal string), checked; floats refused.

    Refuses rather than rounds: more than RATE_DIGITS significant digits, zero, negative,
    non-finite, or outside RATE_MIN..RATE_MAX.
    """
    if isinstance(value, bool | float):
        raise InvalidRate("a rate must be a decimal string or Decimal, never a float")
    if isinstance(value, int):
        value = Decimal(value)
    elif isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise InvalidRate(f"{value!r} is not a decimal number") from None
    if not isinstance(value, Decimal):
        raise InvalidRate(f"a rate must be a Decimal, not {type(value).__name__}")
    if not value.is_finite() or value <= 0:
        raise InvalidRate(f"a rate must be a positive finite number, not {value}")
    if not RATE_MIN <= value <= RATE_MAX:
        raise InvalidRate(f"rate {value} is outside the accepted range {RATE_MIN}..{RATE_MAX}")
    if len(value.normalize(_CONTEXT).as_tuple().digits) > RATE_DIGITS:
        raise InvalidRate(f"rate {value} has more than {RATE_DIGITS} significant digits")
    return canonical(value)


def source_rate(value: Decimal) -> Decimal | None:
    """A rate as published by a source, or None when it is unusable (skipped, not fixed)."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return None
    if not RATE_MIN <= value <= RATE_MAX:
        return None
    if len(value.as_tuple().digits) > SOURCE_RATE_DIGITS_MAX:
        return None  # no real source publishes this; it would not fit the store either
    return value


def ecb_as_of(day: date) -> datetime:
    """The time an ECB reference rate describes: the daily concertation, 14:10 CET/CEST.

    The ECB publishes the rates around 16:00; the rates are those of the 14:10
    concertation between central banks, so that is their as-of time.
    """
    return datetime.combine(day, time(14, 10), tzinfo=_frankfurt()).astimezone(UTC)


def _frankfurt() -> tzinfo:
    try:
        return ZoneInfo("Europe/Berlin")
    except ZoneInfoNotFoundError:  # no tz database here: CET, one hour off in summer at most
        return timezone(timedelta(hours=1), "CET")


def age(rate: Rate, now: datetime) -> timedelta:
    """How old a rate is at `now`; a rate dated in the future counts as brand new."""
    return max(now - rate.as_of, timedelta(0))


def is_fresh(rate: Rate, max_age: timedelta, now: datetime) -> bool:
    return age(rate, now) <= max_age


def cross(legs: Sequence[Rate]) -> Rate:
    """Chained legs (base->p1, p1->p2, ..., ->quote) as one rate, as old as its oldest leg."""
    assert len(legs) >= 2, "a cross rate has at least two legs"
    for first, second in itertools.pairwise(legs):
        assert first.quote == second.base, "legs must meet at the pivots"
    product = Decimal(1)
    for leg in legs:
        product = _CONTEXT.multiply(product, leg.rate)  # exact at 60 digits
    return Rate(
        base=legs[0].base,
        quote=legs[-1].quote,
        rate=round_significant(product),
        source="+".join(dict.fromkeys(leg.source for leg in legs)),
        as_of=min(leg.as_of for leg in legs),
        via=",".join(leg.quote for leg in legs[:-1]),
    )


def select_rate(
    base: str,
    quote: str,
    candidates: Iterable[Rate],
    policies: Sequence[SourcePolicy],
    now: datetime,
    pivots: Sequence[str] = PIVOTS_DEFAULT,
) -> Rate:
    """The best fresh rate for base->quote, or NoFreshRate / UnsupportedPair.

    `candidates` holds the latest rate of each source and quoted pair. Order of choice:
    1. the pair as quoted (or its inverse) from the first source, in priority order, whose
       rate is fresh;
    2. a cross rate through the pivots: first through one pivot (in the order given), then
       through two (e.g. JPY->EUR->USD->NGN when only EUR rates and an operator's USD/NGN
       exist), and so on; each leg chosen by rule 1.
    Rates from sources without a policy are ignored. A rate older than its source's
    max_age is never used.
    """
    assert now.tzinfo is not None
    assert len(pivots) <= PIVOTS_MAX, f"at most {PIVOTS_MAX} pivot currencies"
    if base == quote:
        return Rate(base=base, quote=quote, rate=Decimal(1), source="identity", as_of=now)
    by_key = {(r.source, r.base, r.quote): r for r in candidates}
    stale: dict[Rate, timedelta] = {}
    legs: dict[tuple[str, str], Rate | None] = {}

    def leg(a: str, b: str) -> Rate | None:
        if (a, b) in legs:
            return legs[(a, b)]
        chosen = None
        for policy in policies:
            for key, flip in (((policy.name, a, b), False), ((policy.name, b, a), True)):
                found = by_key.get(key)
                if found is None:
                    continue
                if is_fresh(found, policy.max_age, now):
                    chosen = found.inverse() if flip else found
                    break
                stale[found] = policy.max_age
            if chosen is not None:
                break
        legs[(a, b)] = chosen
        return chosen

    direct = leg(base, quote)
    if direct is not None:
        return direct
    usable = [p for p in pivots if p not in (base, quote)]
    for hops in range(1, len(usable) + 1):
        for path in itertools.permutations(usable, hops):
            # Every leg is looked at (memoized), so a refusal can name every stale one.
            chain = [leg(a, b) for a, b in itertools.pairwise([base, *path, quote])]
            complete = [found for found in chain if found is not None]
            if len(complete) == len(chain):
                return cross(complete)
    if not stale:
        raise UnsupportedPair(
            f"no rate source covers {base}/{quote}, directly or through "
            f"{', '.join(pivots)}; an operator can set a rate for it"
        )
    described = "; ".join(
        f"{r.source} {r.base}/{r.quote} as of {r.as_of:%Y-%m-%d %H:%M} UTC "
        f"(older than its max age of {format_duration(max_age)})"
        for r, max_age in list(stale.items())[:STALE_REPORTED_MAX]
    )
    more = len(stale) - STALE_REPORTED_MAX
    if more > 0:
        described += f"; and {more} more"
    raise NoFreshRate(f"no fresh rate for {base}/{quote}: {described}")


def format_duration(span: timedelta) -> str:
    """A duration for people: '45 days', '24 hours', '90 seconds'."""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def latest_per_source_and_pair(rates: Iterable[Rate]) -> list[Rate]:
    """Only the newest rate of each (source, base, quote)."""
    newest: dict[tuple[str, str, str], Rate] = {}
    for r in rates:
        key = (r.source, r.base, r.quote)
        if key not in newest or r.as_of > newest[key].as_of:
            newest[key] = r
    return list(newest.values())


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; naive datetimes are a programming error here."""
    assert moment.tzinfo is not None, "datetimes in fx are timezone-aware"
    return moment.astimezone(UTC)
