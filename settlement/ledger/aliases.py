"""Wallet aliases: an E.164 phone number or a @handle, unique across the hub."""

from __future__ import annotations

import re
from enum import StrEnum

import phonenumbers

from settlement.errors import LedgerError

_HANDLE = re.compile(r"@[a-z0-9_.]{3,30}")


class AliasKind(StrEnum):
    PHONE = "phone"
    HANDLE = "handle"


def normalize_alias(raw: str) -> tuple[AliasKind, str]:
    """The canonical form of an alias: "+639171234567" or "@maria.santos".

    Phone numbers must be written in international form and be valid numbers for their
    country (checked with Google's libphonenumber data); handles are lower-cased.
    """
    text = raw.strip()
    if text.startswith("+"):
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException as exc:
            raise LedgerError("invalid_alias", f"{raw!r} is not a phone number: {exc}") from None
        if not phonenumbers.is_valid_number(number):
            raise LedgerError("invalid_alias", f"{raw!r} is not a valid phone number")
        return AliasKind.PHONE, phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.E164
        )
    handle = text.lower()
    if _HANDLE.fullmatch(handle):
        return AliasKind.HANDLE, handle
    raise LedgerError(
        "invalid_alias",
        f"{raw!r} is neither an international phone number (+...) nor a handle "
        "(@ then 3 to 30 of a-z, 0-9, _ and .)",
    )
