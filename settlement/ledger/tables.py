"""SQL tables of the off-chain ledger (SQLAlchemy Core).

Times are integer microseconds since the Unix epoch (UTC) in columns ending `_us`: exact,
ordered and identical on SQLite and PostgreSQL. Amounts are integers in minor units in
columns ending `_minor`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
)

from settlement.db import metadata

participants = Table(
    "participants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    # partner: a wallet platform or remittance company; operator: the hub itself;
    # liquidity: an FX liquidity provider (settles like a partner).
    Column("kind", String(16), nullable=False),
    Column("settlement_address", String(42), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
)

wallets = Table(
    "wallets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("participant_id", String(64), ForeignKey("participants.id"), nullable=False),
    # customer wallets obey limits and never go negative; system wallets (funding,
    # revenue, liquidity) belong to participants and the operator.
    Column("kind", String(16), nullable=False),
    Column("kyc_tier", String(32), nullable=False),
    Column("label", String(200), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_wallets_participant", "participant_id", "id"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("wallet_id", String(64), ForeignKey("wallets.id"), nullable=False),
    Column("currency", String(3), nullable=False),
    # Posted balance; `held_minor` is reserved by pending outgoing transfers, so the
    # spendable amount is balance_minor - held_minor.
    Column("balance_minor", BigInteger, nullable=False),
    Column("held_minor", BigInteger, nullable=False),
    Column("allow_negative", Boolean, nullable=False),
    UniqueConstraint("wallet_id", "currency"),
    CheckConstraint("held_minor >= 0", name="held_not_negative"),
    CheckConstraint("allow_negative OR balance_minor - held_minor >= 0", name="no_overdraft"),
)

aliases = Table(
    "aliases",
    metadata,
    # "+639171234567" (E.164) or "@handle"; unique across the hub.
    Column("alias", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("wallet_id", String(64), ForeignKey("wallets.id"), nullable=False),
    Index("ix_aliases_wallet", "wallet_id"),
)

transfers = Table(
    "transfers",
    metadata,
    # Global acceptance order; statements, leaves and netting follow it.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    # Who submitted it, and the id it gave: the idempotency key.
    Column("participant_id", String(64), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("debit_account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("credit_account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("debit_wallet_id", String(64), nullable=False),
    Column("credit_wallet_id", String(64), nullable=False),
    Column("debit_participant_id", String(64), nullable=False),
    Column("credit_participant_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    # Transfers accepted together atomically (linked batch items, payment legs).
    Column("group_id", String(40), nullable=True),
    Column("memo", String(200), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Column("timeout_at_us", BigInteger, nullable=True),
    Column("resolved_at_us", BigInteger, nullable=True),
    # The settlement window the transfer was posted in (None while pending or if voided).
    Column("window_number", Integer, nullable=True),
    UniqueConstraint("participant_id", "client_id"),
    CheckConstraint("amount_minor > 0", name="amount_positive"),
    CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
    Index("ix_transfers_debit_recent", "debit_account_id", "created_at_us"),
    Index("ix_transfers_pending_timeout", "status", "timeout_at_us"),
    Index("ix_transfers_window", "window_number", "seq"),
    # A participant's transfers, sent or received, page by page (GET /v1/transfers).
    Index("ix_transfers_debit_participant", "debit_participant_id", "seq"),
    Index("ix_transfers_credit_participant", "credit_participant_id", "seq"),
)

entries = Table(
    "entries",
    metadata,
    # One row per account touched by a posted movement, with the balance right after it:
    # statements with running balances and balances as of a past instant read from here.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("transfer_seq", Integer, ForeignKey("transfers.seq"), nullable=False),
    Column("delta_minor", BigInteger, nullable=False),
    Column("balance_after_minor", BigInteger, nullable=False),
    Column("posted_at_us", BigInteger, nullable=False),
    Index("ix_entries_account_time", "account_id", "posted_at_us", "id"),
    # Batches gather the entries of their window's transfers.
    Index("ix_entries_transfer", "transfer_seq"),
)

tier_limits = Table(
    "tier_limits",
    metadata,
    Column("tier", String(32), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("per_transfer_max_minor", BigInteger, nullable=True),
    Column("daily_max_minor", BigInteger, nullable=True),
)

wallet_limits = Table(
    "wallet_limits",
    metadata,
    Column("wallet_id", String(64), ForeignKey("wallets.id"), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("per_transfer_max_minor", BigInteger, nullable=True),
    Column("daily_max_minor", BigInteger, nullable=True),
)

payments = Table(
    "payments",
    metadata,
    # A cross-currency payment: its legs are transfers of kind "payment"; this row keeps
    # the price it was made at, immutably.
    Column("id", String(40), primary_key=True),
    Column("participant_id", String(64), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("quote_id", String(64), nullable=False, unique=True),
    Column("from_wallet_id", String(64), nullable=False),
    Column("to_wallet_id", String(64), nullable=False),
    Column("sell_currency", String(3), nullable=False),
    Column("sell_amount_minor", BigInteger, nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("buy_currency", String(3), nullable=False),
    Column("buy_amount_minor", BigInteger, nullable=False),
    # Decimal rates as exact text: never a float, identical on every backend.
    Column("mid_rate", String(40), nullable=False),
    Column("customer_rate", String(40), nullable=False),
    Column("rate_source", String(100), nullable=False),
    Column("rate_as_of_us", BigInteger, nullable=False),
    Column("sell_transfer_id", String(40), nullable=False),
    Column("buy_transfer_id", String(40), nullable=False),
    Column("fee_transfer_id", String(40), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    UniqueConstraint("participant_id", "client_id"),
)


settlement_windows = Table(
    "settlement_windows",
    metadata,
    # Window n becomes batch n on chain. Exactly one window is open at any time.
    Column("number", Integer, primary_key=True, autoincrement=False),
    # open -> closed -> submitted -> settled; failed (retried with backoff) from closed
    # or submitted. Every step is persisted before the next is taken.
    Column("status", String(16), nullable=False),
    Column("opened_at_us", BigInteger, nullable=False),
    Column("closed_at_us", BigInteger, nullable=True),
    Column("close_reason", String(16), nullable=True),
    # Filled when the batch is built from the frozen window (hex strings, 0x-prefixed).
    Column("transfer_count", Integer, nullable=True),
    Column("transfers_root", String(66), nullable=True),
    Column("balances_root", String(66), nullable=True),
    Column("prev_batch_hash", String(66), nullable=True),
    Column("batch_hash", String(66), nullable=True),
    Column("tx_hash", String(66), nullable=True),
    Column("block_number", BigInteger, nullable=True),
    Column("gas_used", BigInteger, nullable=True),
    Column("settled_at_us", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(500), nullable=True),
    Column("next_attempt_at_us", BigInteger, nullable=True),
    Index("ix_settlement_windows_status", "status", "number"),
)

batch_positions = Table(
    "batch_positions",
    metadata,
    # The multilateral net positions of a closed window, as sent to the contract.
    Column("window_number", Integer, ForeignKey("settlement_windows.number"), primary_key=True),
    Column("participant_id", String(64), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("participant_address", String(42), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
)

settlement_accounts = Table(
    "settlement_accounts",
    metadata,
    # Per participant and currency: the prefunded settlement balance on chain (mirrored),
    # the net position of all windows not yet settled, and the operator's net debit cap
    # (None: the prefunded balance is the cap).
    Column("participant_id", String(64), ForeignKey("participants.id"), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("prefunded_minor", BigInteger, nullable=False),
    Column("unsettled_minor", BigInteger, nullable=False),
    Column("cap_minor", BigInteger, nullable=True),
)

events = Table(
    "events",
    metadata,
    # The outbox: written in the same transaction as the change it reports, so no event
    # is lost or invented when a process dies; delivered later (webhooks, streams).
    Column("id", Integer, primary_key=True, autoincrement=True),
    # The participant notified; a transfer between two participants notifies both.
    Column("participant_id", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    # Events of one wallet are delivered in order.
    Column("wallet_id", String(64), nullable=True),
    Column("subject_id", String(64), nullable=False),
    Column("payload", String, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Index("ix_events_participant", "participant_id", "id"),
)


settlement_fundings = Table(
    "settlement_fundings",
    metadata,
    # Prefunding requests, recorded before the chain is asked: a retry with the same id
    # and body is a replay, a different body under the same id is refused.
    Column("participant_id", String(64), ForeignKey("participants.id"), primary_key=True),
    Column("client_id", String(128), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)
