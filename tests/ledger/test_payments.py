"""Cross-currency payments: the recipient gets exactly the quote, all legs or none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from fx.errors import FxError
from fx.service import FxService
from settlement.errors import LedgerError
from settlement.ledger.model import ParticipantKind, TransferStatus, WalletKind
from settlement.ledger.service import Ledger
from settlement.payments import PaymentRequest, Payments
from tests.helpers import allow_settlement_debits

LP = "fx-liquidity"


class FxClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fx_clock() -> FxClock:
    return FxClock()


@pytest.fixture
def setup(engine: Engine, fx_clock: FxClock) -> tuple[Ledger, FxService, Payments, str, str]:
    ledger = Ledger(engine)
    ledger.create_participant("Hub", ParticipantKind.OPERATOR, "operator")
    ledger.create_participant("LP", ParticipantKind.LIQUIDITY, LP)
    ledger.create_participant("Acme US", participant_id="acme")
    ledger.create_participant("Bolt PH", participant_id="bolt")
    allow_settlement_debits(ledger, ["acme", "bolt", LP, "operator"], ["USD", "PHP"])
    fx = FxService(engine, clock=fx_clock)
    payments = Payments(ledger, fx, LP, "operator")
    sender = ledger.create_wallet("acme", kyc_tier="standard").id
    recipient = ledger.create_wallet("bolt", aliases_raw=["+639171234567"]).id
    ledger.deposit("acme", "fund", sender, "USD", 1_000_00)
    lp_wallet = ledger.system_wallet_id(LP, WalletKind.LIQUIDITY)
    ledger.deposit(LP, "inventory", lp_wallet, "PHP", 1_000_000_00)
    return ledger, fx, payments, sender, recipient


def _balances(ledger: Ledger, wallet_id: str) -> dict[str, int]:
    return {b.currency: b.balance_minor for b in ledger.get_wallet(wallet_id).balances}


def test_payment_delivers_exactly_the_quote(setup: tuple) -> None:  # type: ignore[type-arg]
    ledger, fx, payments, sender, recipient = setup
    quote = fx.create_quote("acme", "USD", "PHP", sell_amount_minor=100_00)
    assert quote.rate_source  # priced from real ECB data with provenance
    payment, created = payments.pay(
        "acme", PaymentRequest("pay-1", quote.id, sender, to_alias="+639171234567")
    )
    assert created and payment.to_wallet_id == recipient
    assert payment.mid_rate == quote.mid_rate and payment.customer_rate == quote.customer_rate
    assert _balances(ledger, sender)["USD"] == 1_000_00 - quote.sell_amount_minor - quote.fee_minor
    assert _balances(ledger, recipient) == {"PHP": quote.buy_amount_minor}
    lp = _balances(ledger, ledger.system_wallet_id(LP, WalletKind.LIQUIDITY))
    assert lp == {"USD": quote.sell_amount_minor, "PHP": 1_000_000_00 - quote.buy_amount_minor}
    revenue = _balances(ledger, ledger.system_wallet_id("operator", WalletKind.REVENUE))
    assert revenue == {"USD": quote.fee_minor}
    for currency, (total, _) in ledger.totals().items():
        assert total == 0, f"{currency} is conserved"
    legs = [ledger.get_transfer(t) for t in (payment.sell_transfer_id, payment.buy_transfer_id)]
    assert all(leg.status is TransferStatus.POSTED for leg in legs)
    assert legs[0].group_id == legs[1].group_id is not None

    replay, again = payments.pay(
        "acme", PaymentRequest("pay-1", quote.id, sender, to_alias="+639171234567")
    )
    assert not again and replay == payment
    assert _balances(ledger, recipient) == {"PHP": quote.buy_amount_minor}


def test_buy_amount_quote_delivers_the_asked_amount(setup: tuple) -> None:  # type: ignore[type-arg]
    ledger, fx, payments, sender, recipient = setup
    quote = fx.create_quote("acme", "USD", "PHP", buy_amount_minor=5_000_00)
    payments.pay("acme", PaymentRequest("p", quote.id, sender, to_wallet=recipient))
    assert _balances(ledger, recipient) == {"PHP": 5_000_00}


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("expired", "quote_expired"),
        ("used", "quote_used"),
        ("foreign", "quote_foreign"),
        ("unknown", "quote_not_found"),
        ("mismatch", "quote_mismatch"),
        ("liquidity", "insufficient_liquidity"),
        ("funds", "insufficient_funds"),
    ],
)
def test_refused_payments_move_nothing(
    setup: tuple,  # type: ignore[type-arg]
    fx_clock: FxClock,
    case: str,
    code: str,
) -> None:
    ledger, fx, payments, sender, recipient = setup
    amount = {"liquidity": 900_00, "funds": 999_00}.get(case, 100_00)
    if case == "liquidity":
        ledger.withdraw(
            LP, "drain", ledger.system_wallet_id(LP, WalletKind.LIQUIDITY), "PHP", 999_000_00
        )
    quote = fx.create_quote("acme", "USD", "PHP", sell_amount_minor=amount)
    request = PaymentRequest("p", quote.id, sender, to_wallet=recipient)
    if case == "expired":
        fx_clock.now += timedelta(seconds=31)
    elif case == "used":
        payments.pay("acme", PaymentRequest("first", quote.id, sender, to_wallet=recipient))
    elif case == "unknown":
        request = PaymentRequest("p", "no-such-quote", sender, to_wallet=recipient)
    elif case == "mismatch":
        request = PaymentRequest(
            "p", quote.id, sender, to_wallet=recipient, buy_amount_minor=quote.buy_amount_minor + 1
        )
    elif case == "funds":
        ledger.withdraw("acme", "spend", sender, "USD", 500_00)
    before = {w: _balances(ledger, w) for w in (sender, recipient)}
    who = "bolt" if case == "foreign" else "acme"
    with pytest.raises((LedgerError, FxError)) as refused:
        payments.pay(who, request)
    assert refused.value.code == code
    assert {w: _balances(ledger, w) for w in (sender, recipient)} == before
    if case not in ("used", "unknown", "expired", "foreign"):
        # The refusal rolled the quote back: it is still usable once the problem is gone.
        assert fx.get_quote(quote.id, "acme").used_at is None
