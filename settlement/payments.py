"""Cross-currency payments: a firm FX quote turned into ledger legs, atomically.

The customer pays `sell + fee` in the sell currency; the recipient receives exactly the
quoted `buy` amount in the buy currency. The money goes through the FX liquidity
provider's own wallet, one currency per posting (TigerBeetle's currency-exchange recipe):

    sender  --sell-->  provider (sell currency)
    sender  --fee--->  operator revenue (sell currency)
    provider --buy-->  recipient (buy currency)

The quote is consumed, the legs posted and the payment recorded in one database
transaction: a refusal anywhere (quote expired or used, funds, limits, liquidity) leaves
the quote unused and moves nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from fx.currency import to_major
from fx.service import FxService
from settlement.db import write_transaction
from settlement.errors import LedgerError
from settlement.ledger.events import event_row, write_events
from settlement.ledger.model import (
    CLIENT_ID_LENGTH_MAX,
    BatchOutcome,
    TransferKind,
    TransferRequest,
    WalletKind,
)
from settlement.ledger.service import Ledger, Posting, new_id, retrying
from settlement.ledger.tables import payments


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    client_id: str
    quote_id: str
    from_wallet: str
    to_wallet: str | None = None
    to_alias: str | None = None
    # The amounts the sender saw, when it states them: a payment is refused if the quote
    # no longer says the same.
    sell_amount_minor: int | None = None
    buy_amount_minor: int | None = None
    request_hash: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not self.client_id or len(self.client_id) > CLIENT_ID_LENGTH_MAX:
            raise LedgerError(
                "invalid_id", f"id must be 1 to {CLIENT_ID_LENGTH_MAX} characters long"
            )
        if (self.to_wallet is None) == (self.to_alias is None):
            raise LedgerError("invalid_recipient", "give exactly one of to_wallet and to_alias")
        body = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("client_id", "request_hash")
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        object.__setattr__(self, "request_hash", hashlib.sha256(canonical.encode()).hexdigest())


@dataclass(frozen=True, slots=True)
class Payment:
    id: str
    participant_id: str
    client_id: str
    quote_id: str
    from_wallet_id: str
    to_wallet_id: str
    sell_currency: str
    sell_amount_minor: int
    fee_minor: int
    buy_currency: str
    buy_amount_minor: int
    mid_rate: Decimal
    customer_rate: Decimal
    rate_source: str
    rate_as_of_us: int
    sell_transfer_id: str
    buy_transfer_id: str
    fee_transfer_id: str | None
    created_at_us: int


def _payment_from_row(row: Row[Any]) -> Payment:
    values = row._asdict()
    del values["request_hash"]
    values["mid_rate"] = Decimal(values["mid_rate"])
    values["customer_rate"] = Decimal(values["customer_rate"])
    return Payment(**values)


def _us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Payments:
    def __init__(
        self,
        ledger: Ledger,
        fx: FxService,
        liquidity_participant_id: str,
        revenue_participant_id: str,
    ) -> None:
        self.ledger = ledger
        self.fx = fx
        self.liquidity_wallet = ledger.system_wallet_id(
            liquidity_participant_id, WalletKind.LIQUIDITY
        )
        self.revenue_wallet = ledger.system_wallet_id(revenue_participant_id, WalletKind.REVENUE)

    def pay(
        self,
        participant_id: str,
        request: PaymentRequest,
        within: Callable[[Connection], None] | None = None,
    ) -> tuple[Payment, bool]:
        """Make the payment; returns it and whether it was made now (False: a replay).

        `within(conn)` runs in the payment's transaction once it is written (step-up
        confirmation records its nonce there); if it raises, nothing is paid.
        """

        def attempt() -> tuple[Payment, bool]:
            with write_transaction(self.ledger.engine) as conn:
                prior = conn.execute(
                    select(payments).where(
                        payments.c.participant_id == participant_id,
                        payments.c.client_id == request.client_id,
                    )
                ).first()
                if prior is not None:
                    if prior.request_hash != request.request_hash:
                        raise LedgerError(
                            "idempotency_conflict",
                            f"id {request.client_id!r} was already used for a different payment",
                        )
                    return _payment_from_row(prior), False
                quote = self.fx.consume_quote(
                    conn,
                    request.quote_id,
                    participant_id,
                    sell_amount_minor=request.sell_amount_minor,
                    buy_amount_minor=request.buy_amount_minor,
                )
                payment_id = new_id("pay")
                legs = [
                    TransferRequest(
                        f"{payment_id}/sell",
                        request.from_wallet,
                        quote.sell_currency,
                        quote.sell_amount_minor,
                        to_wallet=self.liquidity_wallet,
                        kind=TransferKind.PAYMENT,
                        linked=True,
                    )
                ]
                if quote.fee_minor > 0:
                    legs.append(
                        TransferRequest(
                            f"{payment_id}/fee",
                            request.from_wallet,
                            quote.sell_currency,
                            quote.fee_minor,
                            to_wallet=self.revenue_wallet,
                            kind=TransferKind.PAYMENT,
                            linked=True,
                        )
                    )
                legs.append(
                    TransferRequest(
                        f"{payment_id}/buy",
                        self.liquidity_wallet,
                        quote.buy_currency,
                        quote.buy_amount_minor,
                        to_wallet=request.to_wallet,
                        to_alias=request.to_alias,
                        kind=TransferKind.PAYMENT,
                    )
                )
                now = self.ledger.clock()
                posting = Posting(conn, now, trusted_wallets=frozenset({self.liquidity_wallet}))
                results = posting.run(legs, [participant_id] * len(legs))
                for leg, result in zip(legs, results, strict=True):
                    error = result.error
                    if error is None or error.code == "linked_event_failed":
                        continue
                    if (
                        leg.from_wallet == self.liquidity_wallet
                        and error.code == "insufficient_funds"
                    ):
                        raise LedgerError(
                            "insufficient_liquidity",
                            f"the FX provider cannot deliver {quote.buy_currency} now",
                        )
                    raise error
                assert all(r.outcome is BatchOutcome.CREATED for r in results)
                transfer_ids = [r.transfer.id for r in results if r.transfer is not None]
                buy_leg = results[-1].transfer
                assert buy_leg is not None
                payment = Payment(
                    id=payment_id,
                    participant_id=participant_id,
                    client_id=request.client_id,
                    quote_id=quote.id,
                    from_wallet_id=request.from_wallet,
                    to_wallet_id=buy_leg.credit_wallet_id,
                    sell_currency=quote.sell_currency,
                    sell_amount_minor=quote.sell_amount_minor,
                    fee_minor=quote.fee_minor,
                    buy_currency=quote.buy_currency,
                    buy_amount_minor=quote.buy_amount_minor,
                    mid_rate=quote.mid_rate,
                    customer_rate=quote.customer_rate,
                    rate_source=quote.rate_source,
                    rate_as_of_us=_us(quote.rate_as_of),
                    sell_transfer_id=transfer_ids[0],
                    buy_transfer_id=transfer_ids[-1],
                    fee_transfer_id=transfer_ids[1] if quote.fee_minor > 0 else None,
                    created_at_us=now,
                )
                row = asdict(payment)
                row.update(
                    request_hash=request.request_hash,
                    mid_rate=str(quote.mid_rate),
                    customer_rate=str(quote.customer_rate),
                )
                conn.execute(insert(payments).values(**row))
                notice = {
                    "id": payment.id,
                    "client_id": payment.client_id,
                    "quote_id": payment.quote_id,
                    "from_wallet": payment.from_wallet_id,
                    "to_wallet": payment.to_wallet_id,
                    "sell": {
                        "amount": to_major(quote.sell_amount_minor, quote.sell_currency),
                        "currency": quote.sell_currency,
                    },
                    "fee": {
                        "amount": to_major(quote.fee_minor, quote.sell_currency),
                        "currency": quote.sell_currency,
                    },
                    "buy": {
                        "amount": to_major(quote.buy_amount_minor, quote.buy_currency),
                        "currency": quote.buy_currency,
                    },
                    "customer_rate": str(quote.customer_rate),
                }
                recipients = {(participant_id, request.from_wallet)}
                recipients.add((buy_leg.credit_participant_id, buy_leg.credit_wallet_id))
                write_events(
                    conn,
                    (
                        event_row(who, "payment.completed", payment.id, notice, now, wallet)
                        for who, wallet in sorted(recipients)
                    ),
                )
                if within is not None:
                    within(conn)
                return payment, True

        return retrying(attempt)

    def get(self, payment_id: str) -> Payment:
        with self.ledger.engine.connect() as conn:
            row = conn.execute(select(payments).where(payments.c.id == payment_id)).first()
        if row is None:
            raise LedgerError("payment_not_found", f"no payment {payment_id}")
        return _payment_from_row(row)
