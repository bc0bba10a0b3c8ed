"""FX: rates with provenance, corridor pricing, firm quotes, and cross-currency payments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, StrictInt, StrictStr

from api.auth import CorridorDep, Operator, Participant, Reader
from api.routers.common import IdempotencyKey, client_id, mark_replay
from api.schemas import Money, Strict, TransferOut, to_iso, to_minor_or_zero
from api.stepup_deps import StepUpIn, payment_check, prepared
from fx.currency import currency as check_currency
from fx.currency import to_major, to_minor
from fx.quotes import Quote
from fx.rates import Rate
from settlement.errors import LedgerError
from settlement.ledger.model import WalletKind
from settlement.payments import Payment, PaymentRequest

router = APIRouter(prefix="/v1", tags=["fx"])
Code = Annotated[str, Path(pattern=r"^[A-Z]{3}$", examples=["USD"])]


class RateOut(BaseModel):
    base: str
    quote: str
    rate: str = Field(description="Units of quote per unit of base, exact decimal")
    source: str
    as_of: datetime
    via: str | None = Field(description="Pivot currencies of a cross rate")

    @classmethod
    def of(cls, rate: Rate) -> RateOut:
        return cls(
            base=rate.base,
            quote=rate.quote,
            rate=str(rate.rate),
            source=rate.source,
            as_of=rate.as_of,
            via=rate.via,
        )


class RateListingOut(RateOut):
    fresh: bool
    age_s: int
    max_age_s: int
    best: bool


class OperatorRateIn(Strict):
    rate: StrictStr = Field(description="Decimal string, never a float", examples=["58.1234"])


class PricingIn(Strict):
    spread_bps: StrictInt = Field(ge=0, examples=[50])
    fee_bps: StrictInt = Field(ge=0, examples=[10])
    fixed_fee: StrictStr = Field("0", description="In the sell currency", examples=["0.50"])


class PricingOut(BaseModel):
    sell_currency: str
    buy_currency: str
    spread_bps: int
    fee_bps: int
    fixed_fee: Money


class QuoteIn(Strict):
    sell_currency: StrictStr = Field(examples=["USD"])
    buy_currency: StrictStr = Field(examples=["PHP"])
    sell_amount: StrictStr | None = Field(None, examples=["100.00"])
    buy_amount: StrictStr | None = Field(None, examples=[None])
    lifetime_s: StrictInt | None = Field(None, description="Capped by the configured maximum")


class QuoteOut(BaseModel):
    id: str
    sell: Money = Field(description="Converted into `buy` at `customer_rate`")
    fee: Money = Field(description="Charged on top of `sell`, in the sell currency")
    total_debit: Money = Field(description="What leaves the sender's wallet: sell + fee")
    buy: Money = Field(description="Exactly what the recipient receives")
    mid_rate: str
    customer_rate: str
    spread_bps: int
    rate_source: str
    rate_as_of: datetime
    rate_via: str | None
    created_at: datetime
    expires_at: datetime
    used: bool

    @classmethod
    def of(cls, q: Quote) -> QuoteOut:
        return cls(
            id=q.id,
            sell=Money.of(q.sell_amount_minor, q.sell_currency),
            fee=Money.of(q.fee_minor, q.sell_currency),
            total_debit=Money.of(q.total_debit_minor, q.sell_currency),
            buy=Money.of(q.buy_amount_minor, q.buy_currency),
            mid_rate=str(q.mid_rate),
            customer_rate=str(q.customer_rate),
            spread_bps=q.spread_bps,
            rate_source=q.rate_source,
            rate_as_of=q.rate_as_of,
            rate_via=q.rate_via,
            created_at=q.created_at,
            expires_at=q.expires_at,
            used=q.used_at is not None,
        )


class PaymentIn(Strict):
    id: StrictStr | None = Field(None, min_length=1, max_length=128)
    quote_id: StrictStr
    from_wallet: StrictStr
    to_wallet: StrictStr | None = None
    to_alias: StrictStr | None = Field(None, examples=["+639171234567"])
    sell: Money | None = Field(None, description="If given, must equal the quote's sell amount")
    buy: Money | None = Field(None, description="If given, must equal the quote's buy amount")
    step_up: StepUpIn | None = Field(
        None,
        description="Above the wallet's threshold: EIP-712 signature of the order, whose "
        "amount is the quote's total_debit and whose quote is quote_id",
    )


class PaymentOut(BaseModel):
    id: str
    client_id: str
    quote_id: str
    from_wallet: str
    to_wallet: str
    sell: Money
    fee: Money
    buy: Money
    mid_rate: str
    customer_rate: str
    rate_source: str
    rate_as_of: datetime
    transfer_ids: list[str] = Field(description="The ledger legs: sell, fee (if any), buy")
    created_at: datetime

    @classmethod
    def of(cls, p: Payment) -> PaymentOut:
        legs = [p.sell_transfer_id, p.fee_transfer_id, p.buy_transfer_id]
        return cls(
            id=p.id,
            client_id=p.client_id,
            quote_id=p.quote_id,
            from_wallet=p.from_wallet_id,
            to_wallet=p.to_wallet_id,
            sell=Money.of(p.sell_amount_minor, p.sell_currency),
            fee=Money.of(p.fee_minor, p.sell_currency),
            buy=Money.of(p.buy_amount_minor, p.buy_currency),
            mid_rate=str(p.mid_rate),
            customer_rate=str(p.customer_rate),
            rate_source=p.rate_source,
            rate_as_of=to_iso(p.rate_as_of_us),  # type: ignore[arg-type]
            transfer_ids=[leg for leg in legs if leg is not None],
            created_at=to_iso(p.created_at_us),  # type: ignore[arg-type]
        )


class LiquidityIn(Strict):
    id: StrictStr | None = Field(None, min_length=1, max_length=128)
    amount: Money


@router.get("/rates", response_model=list[RateListingOut])
def list_rates(who: Reader, corridor: CorridorDep) -> list[RateListingOut]:
    """The newest rate of every pair from every source, with its age and freshness."""
    return [
        RateListingOut(
            **RateOut.of(listing.rate).model_dump(),
            fresh=listing.fresh,
            age_s=int(listing.age.total_seconds()),
            max_age_s=int(listing.max_age.total_seconds()),
            best=listing.best,
        )
        for listing in corridor.fx.rates()
    ]


@router.get("/rates/{base}/{quote}", response_model=RateOut)
def get_rate(base: Code, quote: Code, who: Reader, corridor: CorridorDep) -> RateOut:
    """The rate quotes would use now: best fresh source, or a cross rate through a pivot."""
    return RateOut.of(corridor.fx.rate(base, quote))


@router.put("/rates/{base}/{quote}", response_model=RateOut)
def set_rate(
    base: Code, quote: Code, body: OperatorRateIn, who: Operator, corridor: CorridorDep
) -> RateOut:
    """Set an operator rate, for corridors the public sources do not cover."""
    return RateOut.of(corridor.fx.set_operator_rate(base, quote, body.rate, set_by=who.key.id))


@router.put("/fx/pricing/{sell}/{buy}", response_model=PricingOut)
def set_pricing(
    sell: Code, buy: Code, body: PricingIn, who: Operator, corridor: CorridorDep
) -> PricingOut:
    """Spread and fees of one corridor (direction matters)."""
    check_currency(sell)
    fixed = to_minor_or_zero(body.fixed_fee, sell)
    pricing = corridor.fx.set_corridor_pricing(
        sell, buy, spread_bps=body.spread_bps, fee_bps=body.fee_bps, fixed_fee_minor=fixed
    )
    return PricingOut(
        sell_currency=sell,
        buy_currency=buy,
        spread_bps=pricing.spread_bps,
        fee_bps=pricing.fee_bps,
        fixed_fee=Money(amount=to_major(pricing.fixed_fee_minor, sell), currency=sell),
    )


@router.post("/quotes", status_code=201, response_model=QuoteOut)
def create_quote(body: QuoteIn, who: Participant, corridor: CorridorDep) -> QuoteOut:
    """A firm quote: give the sell amount or the buy amount. Valid once, until it expires."""
    sell_minor = (
        None if body.sell_amount is None else to_minor(body.sell_amount, body.sell_currency)
    )
    buy_minor = None if body.buy_amount is None else to_minor(body.buy_amount, body.buy_currency)
    quote = corridor.fx.create_quote(
        who.acting_participant(),
        body.sell_currency,
        body.buy_currency,
        sell_amount_minor=sell_minor,
        buy_amount_minor=buy_minor,
        lifetime_s=body.lifetime_s,
    )
    return QuoteOut.of(quote)


@router.get("/quotes/{quote_id}", response_model=QuoteOut)
def get_quote(quote_id: str, who: Reader, corridor: CorridorDep) -> QuoteOut:
    return QuoteOut.of(corridor.fx.get_quote(quote_id, who.participant_id))


@router.post("/payments", status_code=201, response_model=PaymentOut)
def create_payment(
    body: PaymentIn,
    response: Response,
    who: Participant,
    corridor: CorridorDep,
    idempotency_key: IdempotencyKey = None,
) -> PaymentOut:
    """Pay across currencies with a quote: the recipient gets exactly the quoted amount."""
    request = PaymentRequest(
        client_id=client_id(body.id, idempotency_key),
        quote_id=body.quote_id,
        from_wallet=body.from_wallet,
        to_wallet=body.to_wallet,
        to_alias=body.to_alias,
        sell_amount_minor=body.sell.minor() if body.sell else None,
        buy_amount_minor=body.buy.minor() if body.buy else None,
    )
    participant = who.acting_participant()
    quote = corridor.fx.get_quote(body.quote_id, participant)
    order = prepared(
        request.client_id,
        body.from_wallet,
        body.to_wallet if body.to_wallet is not None else body.to_alias or "",
        quote.total_debit_minor,
        quote.sell_currency,
        quote.id,
        body.step_up,
    )
    check = payment_check(participant, order, corridor.clock)
    payment, created = corridor.payments.pay(participant, request, check)
    mark_replay(response, created)
    return PaymentOut.of(payment)


@router.get("/payments/{payment_id}", response_model=PaymentOut)
def get_payment(payment_id: str, who: Reader, corridor: CorridorDep) -> PaymentOut:
    payment = corridor.payments.get(payment_id)
    if who.participant_id is not None and who.participant_id != payment.participant_id:
        recipient = corridor.ledger.get_wallet(payment.to_wallet_id).participant_id
        if recipient != who.participant_id:
            raise LedgerError("payment_not_found", f"no payment {payment_id}")
    return PaymentOut.of(payment)


@router.post("/liquidity/deposits", status_code=201, response_model=TransferOut, tags=["liquidity"])
def fund_liquidity(
    body: LiquidityIn,
    response: Response,
    who: Operator,
    corridor: CorridorDep,
    idempotency_key: IdempotencyKey = None,
) -> TransferOut:
    """Add inventory to the FX liquidity provider's wallet in one currency."""
    provider = corridor.settings.fx_liquidity_participant
    transfer, created = corridor.ledger.deposit(
        provider,
        client_id(body.id, idempotency_key),
        corridor.ledger.system_wallet_id(provider, WalletKind.LIQUIDITY),
        body.amount.currency,
        body.amount.minor(),
    )
    mark_replay(response, created)
    return TransferOut.of(transfer)


@router.post(
    "/liquidity/withdrawals", status_code=201, response_model=TransferOut, tags=["liquidity"]
)
def drain_liquidity(
    body: LiquidityIn,
    response: Response,
    who: Operator,
    corridor: CorridorDep,
    idempotency_key: IdempotencyKey = None,
) -> TransferOut:
    """Take inventory out of the FX liquidity provider's wallet."""
    provider = corridor.settings.fx_liquidity_participant
    transfer, created = corridor.ledger.withdraw(
        provider,
        client_id(body.id, idempotency_key),
        corridor.ledger.system_wallet_id(provider, WalletKind.LIQUIDITY),
        body.amount.currency,
        body.amount.minor(),
    )
    mark_replay(response, created)
    return TransferOut.of(transfer)
