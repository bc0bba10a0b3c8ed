"""Typed FX errors with stable codes.

Every expected failure of the `fx` package is an `FxError` whose `.code` is a stable
snake_case string (the API maps it to problem+json, the CLI prints it) and whose
`.detail` is one human sentence. Broken invariants are assertions, not FxErrors.
"""

from __future__ import annotations

from typing import ClassVar

from fx.currency import CurrencyError


class FxError(Exception):
    """An expected FX failure: `.code` is stable, `.detail` is for people."""

    code: str

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.detail!r})"


class _CodedFxError(FxError):
    """An FxError whose subclass fixes the code."""

    CODE: ClassVar[str]

    def __init__(self, detail: str) -> None:
        super().__init__(self.CODE, detail)


class UnknownCurrency(_CodedFxError):
    CODE = "unknown_currency"


class InvalidAmount(_CodedFxError):
    CODE = "invalid_amount"


class InvalidRate(_CodedFxError):
    CODE = "invalid_rate"


class InvalidPricing(_CodedFxError):
    CODE = "invalid_pricing"


class InvalidLifetime(_CodedFxError):
    CODE = "invalid_lifetime"


class LifetimeTooLong(_CodedFxError):
    CODE = "lifetime_too_long"


class UnsupportedPair(_CodedFxError):
    CODE = "unsupported_pair"


class NoFreshRate(_CodedFxError):
    CODE = "no_fresh_rate"


class SourceUnavailable(_CodedFxError):
    CODE = "source_unavailable"


class OperatorRatesDisabled(_CodedFxError):
    CODE = "operator_rates_disabled"


class QuoteNotFound(_CodedFxError):
    CODE = "quote_not_found"


class QuoteExpired(_CodedFxError):
    CODE = "quote_expired"


class QuoteUsed(_CodedFxError):
    CODE = "quote_used"


class QuoteForeign(_CodedFxError):
    CODE = "quote_foreign"


class QuoteMismatch(_CodedFxError):
    CODE = "quote_mismatch"


ERROR_CODES: tuple[str, ...] = tuple(cls.CODE for cls in _CodedFxError.__subclasses__())


def from_currency_error(error: CurrencyError) -> FxError:
    """The same failure as an FxError, so callers of `fx` catch one exception type."""
    if error.code == "unknown_currency":
        return UnknownCurrency(error.detail)
    if error.code == "invalid_amount":
        return InvalidAmount(error.detail)
    return FxError(error.code, error.detail)
