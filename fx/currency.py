"""ISO 4217 currencies and conversions between major-unit decimal strings and minor units.

Amounts inside Corridor are always integers in the currency's minor unit (USD cents, JPY
yen, KWD fils). People and partner platforms write major units ("12.34"); this module is
the one place where one becomes the other, and it refuses anything ambiguous instead of
rounding it silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

import iso4217


class CurrencyError(ValueError):
    """An unknown currency code or an amount that is not valid for its currency."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency that can hold money: an ISO 4217 code with a minor-unit exponent."""

    code: str
    exponent: int
    name: str

    @property
    def minor_per_major(self) -> int:
        return 10**self.exponent


# Plain decimal notation only: no sign, no exponent, no thousands separators, no spaces.
_AMOUNT_PATTERN = re.compile(r"^(?P<whole>\d+)(?:\.(?P<fraction>\d+))?$")


@cache
def currency(code: str) -> Currency:
    """The currency for an ISO 4217 alphabetic code (upper case), or CurrencyError.

    Codes without a minor unit (gold, SDR, testing codes) are refused: they cannot hold
    an integer amount of money.
    """
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
        raise CurrencyError("unknown_currency", f"{code!r} is not an ISO 4217 currency code")
    try:
        entry = iso4217.Currency(code)
    except ValueError:
        raise CurrencyError(
            "unknown_currency", f"{code!r} is not an ISO 4217 currency code"
        ) from None
    if entry.exponent is None:
        raise CurrencyError("unknown_currency", f"{code} has no minor unit and cannot hold money")
    return Currency(code=code, exponent=entry.exponent, name=entry.currency_name)


def to_minor(amount: str, code: str) -> int:
    """Parse a positive major-unit decimal string ("12.34") into minor units (1234).

    Refuses negative, zero, exponent notation, and more decimals than the currency has.
    """
    cur = currency(code)
    if not isinstance(amount, str):
        raise CurrencyError("invalid_amount", 'amount must be a decimal string such as "12.34"')
    match = _AMOUNT_PATTERN.fullmatch(amount)
    if match is None:
        raise CurrencyError(
            "invalid_amount",
            f'amount {amount!r} is not a plain positive decimal such as "12.34"',
        )
    fraction = match.group("fraction") or ""
    if len(fraction) > cur.exponent:
        raise CurrencyError(
            "invalid_amount",
            f"{cur.code} allows {cur.exponent} decimal places; {amount!r} has {len(fraction)}",
        )
    minor = int(match.group("whole")) * cur.minor_per_major + int(
        fraction.ljust(cur.exponent, "0") or "0"
    )
    if minor <= 0:
        raise CurrencyError("invalid_amount", "amount must be greater than zero")
    return minor


def to_major(amount_minor: int, code: str) -> str:
    """Format minor units as a major-unit decimal string with the currency's exact places."""
    cur = currency(code)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), cur.minor_per_major)
    if cur.exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{cur.exponent}d}"


def minor_to_decimal(amount_minor: int, code: str) -> Decimal:
    """Minor units as an exact Decimal in major units (for pricing arithmetic)."""
    return Decimal(amount_minor).scaleb(-currency(code).exponent)
