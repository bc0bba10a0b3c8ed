"""Default outgoing limits per KYC tier, seeded into the database at its creation.

The operator changes them per tier and currency, and overrides them per wallet, through the
API; these are only the starting values. Amounts are in minor units: a tier's limits are
set per currency because one number cannot mean the same in JPY and in KWD.
"""

from __future__ import annotations

from settlement.ledger.model import Limits

TIER_DEFAULT = "basic"

# tier -> currency -> limits. "enhanced" customers have passed full due diligence and have
# no limits unless the operator sets some.
DEFAULT_TIER_LIMITS: dict[str, dict[str, Limits]] = {
    "basic": {
        "USD": Limits(per_transfer_max_minor=1_000_00, daily_max_minor=2_000_00),
        "EUR": Limits(per_transfer_max_minor=1_000_00, daily_max_minor=2_000_00),
        "GBP": Limits(per_transfer_max_minor=800_00, daily_max_minor=1_600_00),
        "PHP": Limits(per_transfer_max_minor=50_000_00, daily_max_minor=100_000_00),
        "JPY": Limits(per_transfer_max_minor=150_000, daily_max_minor=300_000),
        "MXN": Limits(per_transfer_max_minor=20_000_00, daily_max_minor=40_000_00),
        "INR": Limits(per_transfer_max_minor=80_000_00, daily_max_minor=160_000_00),
    },
    "standard": {
        "USD": Limits(per_transfer_max_minor=10_000_00, daily_max_minor=25_000_00),
        "EUR": Limits(per_transfer_max_minor=10_000_00, daily_max_minor=25_000_00),
        "GBP": Limits(per_transfer_max_minor=8_000_00, daily_max_minor=20_000_00),
        "PHP": Limits(per_transfer_max_minor=500_000_00, daily_max_minor=1_250_000_00),
        "JPY": Limits(per_transfer_max_minor=1_500_000, daily_max_minor=3_750_000),
        "MXN": Limits(per_transfer_max_minor=200_000_00, daily_max_minor=500_000_00),
        "INR": Limits(per_transfer_max_minor=800_000_00, daily_max_minor=2_000_000_00),
    },
    "enhanced": {},
}
