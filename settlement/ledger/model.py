"""Plain domain types of the ledger: no database, no web framework."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from enum import StrEnum

from eth_utils import keccak, to_checksum_address

from fx.currency import currency
from settlement.errors import LedgerError

# TigerBeetle's batch size: the most transfers one request may post at once.
BATCH_TRANSFERS_MAX = 8190
# A pending transfer can hold funds for at most a week before it voids itself.
PENDING_TIMEOUT_S_MAX = 7 * 24 * 3600
PENDING_TIMEOUT_S_DEFAULT = 3600
CLIENT_ID_LENGTH_MAX = 128
MEMO_LENGTH_MAX = 200
# Larger than any real payment, small enough that sums of 8,190 fit in a signed 64-bit column.
AMOUNT_MINOR_MAX = 10**15


class ParticipantKind(StrEnum):
    PARTNER = "partner"
    OPERATOR = "operator"
    LIQUIDITY = "liquidity"


class WalletKind(StrEnum):
    CUSTOMER = "customer"
    # The participant's mirror of money held outside the ledger: cash-in debits it.
    FUNDING = "funding"
    # The operator's fee income.
    REVENUE = "revenue"
    # An FX liquidity provider's inventory in each currency.
    LIQUIDITY = "liquidity"

    @property
    def may_go_negative(self) -> bool:
        return self is WalletKind.FUNDING


class TransferKind(StrEnum):
    TRANSFER = "transfer"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    PAYMENT = "payment"


class TransferStatus(StrEnum):
    POSTED = "posted"
    PENDING = "pending"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """One movement a participant asks for, as it asked for it.

    `to_alias` is resolved inside the ledger's transaction; the idempotency hash covers the
    request as sent, so a replay with the same alias matches even if the alias moved.
    """

    client_id: str
    from_wallet: str
    currency: str
    amount_minor: int
    to_wallet: str | None = None
    to_alias: str | None = None
    kind: TransferKind = TransferKind.TRANSFER
    pending: bool = False
    timeout_s: int | None = None
    # TigerBeetle-style chain: this item succeeds only together with the next one.
    linked: bool = False
    memo: str | None = None
    request_hash: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not self.client_id or len(self.client_id) > CLIENT_ID_LENGTH_MAX:
            raise LedgerError(
                "invalid_id", f"id must be 1 to {CLIENT_ID_LENGTH_MAX} characters long"
            )
        currency(self.currency)  # raises CurrencyError for unknown codes
        if type(self.amount_minor) is not int or not 0 < self.amount_minor <= AMOUNT_MINOR_MAX:
            raise LedgerError(
                "invalid_amount", "amount must be a positive whole number of minor units"
            )
        if (self.to_wallet is None) == (self.to_alias is None):
            raise LedgerError("invalid_recipient", "give exactly one of to_wallet and to_alias")
        if self.timeout_s is not None:
            if not self.pending:
                raise LedgerError("invalid_timeout", "timeout_s applies only to pending transfers")
            if not 0 < self.timeout_s <= PENDING_TIMEOUT_S_MAX:
                raise LedgerError(
                    "invalid_timeout", f"timeout_s must be between 1 and {PENDING_TIMEOUT_S_MAX}"
                )
        if self.memo is not None and len(self.memo) > MEMO_LENGTH_MAX:
            raise LedgerError("invalid_memo", f"memo is longer than {MEMO_LENGTH_MAX} characters")
        body = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("client_id", "request_hash")
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        object.__setattr__(self, "request_hash", hashlib.sha256(canonical.encode()).hexdigest())

    @property
    def effective_timeout_s(self) -> int:
        return self.timeout_s if self.timeout_s is not None else PENDING_TIMEOUT_S_DEFAULT


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str
    client_id: str
    participant_id: str
    kind: TransferKind
    status: TransferStatus
    debit_wallet_id: str
    credit_wallet_id: str
    debit_participant_id: str
    credit_participant_id: str
    currency: str
    amount_minor: int
    created_at_us: int
    timeout_at_us: int | None
    resolved_at_us: int | None
    group_id: str | None
    memo: str | None
    seq: int
    window_number: int | None = None


class BatchOutcome(StrEnum):
    CREATED = "created"
    EXISTS = "exists"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The result of one item of a batch post: created, already there, or why it failed."""

    index: int
    outcome: BatchOutcome
    transfer: Transfer | None = None
    error: LedgerError | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Outgoing limits of one wallet in one currency; None means no limit."""

    per_transfer_max_minor: int | None
    daily_max_minor: int | None


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    kind: ParticipantKind
    settlement_address: str | None
    created_at_us: int


@dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    balance_minor: int
    held_minor: int

    @property
    def available_minor(self) -> int:
        return self.balance_minor - self.held_minor


@dataclass(frozen=True, slots=True)
class Wallet:
    id: str
    participant_id: str
    kind: WalletKind
    kyc_tier: str
    label: str | None
    created_at_us: int
    balances: tuple[Balance, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StatementLine:
    entry_id: int
    transfer_id: str
    kind: TransferKind
    currency: str
    delta_minor: int
    balance_after_minor: int
    posted_at_us: int
    counterparty_wallet_id: str
    memo: str | None


def derive_settlement_address(participant_id: str) -> str:
    """A participant's on-chain identity when it brings none of its own.

    The contract only books balances against addresses; nobody needs this address's key.
    Derived, so every Corridor process (and an auditor) finds the same one.
    """
    digest = keccak(b"corridor.participant:" + participant_id.encode())
    return str(to_checksum_address(digest[12:]))
