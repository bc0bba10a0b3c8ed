"""Request and response bodies of the HTTP API (pydantic), apart from the domain types.

Amounts travel as decimal strings in major units with their currency; the conversion to
integer minor units happens in `Money.minor()`, which refuses anything ambiguous.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from api.stepup_deps import StepUpIn
from fx.currency import to_major, to_minor
from settlement.ledger.model import (
    BATCH_TRANSFERS_MAX,
    CLIENT_ID_LENGTH_MAX,
    MEMO_LENGTH_MAX,
    BatchResult,
    Participant,
    StatementLine,
    Transfer,
    Wallet,
)

T = TypeVar("T")


_ZERO = re.compile(r"0(\.0+)?")


def to_minor_or_zero(amount: str, currency: str) -> int:
    """Like to_minor, but accepts zero: for caps, limits and fees, not for moving money."""
    return 0 if _ZERO.fullmatch(amount) else to_minor(amount, currency)


def to_iso(us: int | None) -> datetime | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Money(Strict):
    amount: StrictStr = Field(
        description="Decimal string in major units, at most the currency's decimal places",
        examples=["12.34"],
    )
    currency: StrictStr = Field(description="ISO 4217 code", examples=["USD"])

    def minor(self) -> int:
        return to_minor(self.amount, self.currency)

    @classmethod
    def of(cls, amount_minor: int, currency: str) -> Money:
        return cls(amount=to_major(amount_minor, currency), currency=currency)


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        description="Pass as `after` to get the next page; null on the last page"
    )


class ProblemOut(BaseModel):
    """RFC 9457 problem details; `code` is stable and machine-readable."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


# ------------------------------------------------------------------------ participants


class ParticipantIn(Strict):
    id: StrictStr | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_-]{1,62}$", examples=["acme-wallet"]
    )
    name: StrictStr = Field(min_length=1, max_length=200, examples=["Acme Wallet PH"])
    kind: Literal["partner", "liquidity"] = "partner"
    settlement_address: StrictStr | None = Field(
        None, pattern=r"^0x[0-9a-fA-F]{40}$", description="The participant's address on chain"
    )


class ParticipantOut(BaseModel):
    id: str
    name: str
    kind: str
    settlement_address: str | None
    created_at: datetime

    @classmethod
    def of(cls, p: Participant) -> ParticipantOut:
        return cls(
            id=p.id,
            name=p.name,
            kind=p.kind.value,
            settlement_address=p.settlement_address,
            created_at=to_iso(p.created_at_us),  # type: ignore[arg-type]
        )


# ----------------------------------------------------------------------------- wallets


class WalletIn(Strict):
    participant_id: StrictStr | None = Field(
        None, description="Operator keys only: the participant that owns the wallet"
    )
    kyc_tier: StrictStr = Field("basic", examples=["basic", "standard", "enhanced"])
    label: StrictStr | None = Field(None, max_length=200)
    aliases: list[StrictStr] = Field(
        default_factory=list, max_length=4, examples=[["+639171234567", "@maria.santos"]]
    )


class WalletPatch(Strict):
    kyc_tier: StrictStr


class AliasIn(Strict):
    alias: StrictStr = Field(examples=["+639171234567"])


class BalanceOut(BaseModel):
    currency: str
    balance: str
    held: str
    available: str


class WalletOut(BaseModel):
    id: str
    participant_id: str
    kind: str
    kyc_tier: str
    label: str | None
    aliases: list[str]
    balances: list[BalanceOut]
    created_at: datetime

    @classmethod
    def of(cls, w: Wallet) -> WalletOut:
        return cls(
            id=w.id,
            participant_id=w.participant_id,
            kind=w.kind.value,
            kyc_tier=w.kyc_tier,
            label=w.label,
            aliases=list(w.aliases),
            balances=[
                BalanceOut(
                    currency=b.currency,
                    balance=to_major(b.balance_minor, b.currency),
                    held=to_major(b.held_minor, b.currency),
                    available=to_major(b.available_minor, b.currency),
                )
                for b in w.balances
            ],
            created_at=to_iso(w.created_at_us),  # type: ignore[arg-type]
        )


class BalancesAtOut(BaseModel):
    wallet_id: str
    at: datetime
    balances: list[Money]


class StatementLineOut(BaseModel):
    entry_id: int
    transfer_id: str
    kind: str
    amount: Money = Field(description="Signed: negative for money leaving the wallet")
    balance_after: Money
    posted_at: datetime
    counterparty_wallet_id: str
    memo: str | None

    @classmethod
    def of(cls, line: StatementLine) -> StatementLineOut:
        return cls(
            entry_id=line.entry_id,
            transfer_id=line.transfer_id,
            kind=line.kind.value,
            amount=Money.of(line.delta_minor, line.currency),
            balance_after=Money.of(line.balance_after_minor, line.currency),
            posted_at=to_iso(line.posted_at_us),  # type: ignore[arg-type]
            counterparty_wallet_id=line.counterparty_wallet_id,
            memo=line.memo,
        )


class LimitsIn(Strict):
    per_transfer_max: StrictStr | None = Field(None, examples=["1000.00"])
    daily_max: StrictStr | None = Field(None, examples=["2500.00"])


class LimitsOut(BaseModel):
    currency: str
    per_transfer_max: str | None
    daily_max: str | None


# --------------------------------------------------------------------------- transfers


class MoneyMovementIn(Strict):
    id: StrictStr | None = Field(
        None,
        min_length=1,
        max_length=CLIENT_ID_LENGTH_MAX,
        description="Your id for this request; or send it as the Idempotency-Key header",
        examples=["payout-2026-11-25-0001"],
    )
    amount: Money
    memo: StrictStr | None = Field(None, max_length=MEMO_LENGTH_MAX)


class DepositIn(MoneyMovementIn):
    wallet_id: StrictStr


class WithdrawalIn(MoneyMovementIn):
    wallet_id: StrictStr


class TransferIn(MoneyMovementIn):
    from_wallet: StrictStr
    to_wallet: StrictStr | None = None
    to_alias: StrictStr | None = Field(None, examples=["+639171234567"])
    pending: StrictBool = Field(False, description="Hold the funds; post or void later")
    timeout_s: StrictInt | None = Field(
        None, description="Pending only: seconds after which the transfer voids itself"
    )
    step_up: StepUpIn | None = Field(
        None, description="EIP-712 signature by the wallet's signing key, above its threshold"
    )


class BatchTransferIn(TransferIn):
    linked: StrictBool = Field(
        False, description="Succeeds only together with the next item (all or none)"
    )


class BatchIn(Strict):
    transfers: list[BatchTransferIn] = Field(min_length=1, max_length=BATCH_TRANSFERS_MAX)


class TransferOut(BaseModel):
    id: str
    client_id: str
    kind: str
    status: str
    from_wallet: str
    to_wallet: str
    from_participant: str
    to_participant: str
    amount: Money
    memo: str | None
    group_id: str | None
    created_at: datetime
    timeout_at: datetime | None
    resolved_at: datetime | None
    settlement_window: int | None = Field(
        description="The window (and batch) it settles in; see /v1/settlement/transfers/{id}"
    )

    @classmethod
    def of(cls, t: Transfer) -> TransferOut:
        return cls(
            id=t.id,
            client_id=t.client_id,
            kind=t.kind.value,
            status=t.status.value,
            from_wallet=t.debit_wallet_id,
            to_wallet=t.credit_wallet_id,
            from_participant=t.debit_participant_id,
            to_participant=t.credit_participant_id,
            amount=Money.of(t.amount_minor, t.currency),
            memo=t.memo,
            group_id=t.group_id,
            created_at=to_iso(t.created_at_us),  # type: ignore[arg-type]
            timeout_at=to_iso(t.timeout_at_us),
            resolved_at=to_iso(t.resolved_at_us),
            settlement_window=t.window_number,
        )


class ItemError(BaseModel):
    code: str
    detail: str


class BatchItemOut(BaseModel):
    index: int
    result: Literal["created", "exists", "failed"]
    transfer: TransferOut | None = None
    error: ItemError | None = None

    @classmethod
    def of(cls, r: BatchResult) -> BatchItemOut:
        return cls(
            index=r.index,
            result=r.outcome.value,
            transfer=TransferOut.of(r.transfer) if r.transfer else None,
            error=ItemError(code=r.error.code, detail=r.error.detail) if r.error else None,
        )


class BatchOut(BaseModel):
    created: int
    exists: int
    failed: int
    results: list[BatchItemOut]


# -------------------------------------------------------------------------------- keys


class KeyIn(Strict):
    role: Literal["operator", "participant", "auditor"]
    participant_id: StrictStr | None = None
    label: StrictStr | None = Field(None, max_length=200)


class KeyOut(BaseModel):
    id: str
    role: str
    participant_id: str | None
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class KeyCreatedOut(KeyOut):
    secret: str = Field(description="The full API key. Shown once; store it now.")


class RotateIn(Strict):
    overlap_s: StrictInt = Field(
        3600, ge=0, le=30 * 86_400, description="How long the old key keeps working"
    )
