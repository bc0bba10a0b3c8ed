"""The ledger's unit of work: loads what a request touches, applies the rules, writes back.

Every money-moving method runs in one database transaction that locks the accounts it
touches (PostgreSQL: SELECT ... FOR UPDATE in account-id order, so concurrent requests
cannot deadlock; SQLite: BEGIN IMMEDIATE, so writers take turns). A request either commits
completely or changes nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from settlement.db import (
    COPY_ROWS_MIN,
    insert_rows,
    is_postgres,
    read_transaction,
    write_transaction,
)
from settlement.errors import LedgerError
from settlement.ledger import rules
from settlement.ledger.aliases import normalize_alias
from settlement.ledger.events import event_row, transfer_event_rows, write_events
from settlement.ledger.group_commit import GroupCommit, WithinPosting
from settlement.ledger.limits import TIER_DEFAULT
from settlement.ledger.model import (
    BATCH_TRANSFERS_MAX,
    Balance,
    BatchOutcome,
    BatchResult,
    Limits,
    Participant,
    ParticipantKind,
    StatementLine,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferStatus,
    Wallet,
    WalletKind,
    derive_settlement_address,
)
from settlement.ledger.rules import AccountState, NetState
from settlement.ledger.tables import (
    accounts,
    aliases,
    entries,
    participants,
    settlement_accounts,
    settlement_windows,
    tier_limits,
    transfers,
    wallet_limits,
    wallets,
)

PAGE_SIZE_MAX = 500
# Concurrent first-time inserts (a new account, the same idempotency key) or a deadlock
# victim on PostgreSQL are retried from scratch; the retry sees the winner's rows.
WRITE_ATTEMPTS_MAX = 5
EXPIRE_PENDING_MAX = 1000
# SQLite limits bound parameters per statement; IN lists are chunked below this.
IN_CHUNK_MAX = 900
LINKED_CHAIN_OPEN = "the last item of a batch cannot be linked"
NEXT_TRANSFER_SEQS = text(
    "SELECT nextval(pg_get_serial_sequence('transfers', 'seq')) FROM generate_series(1, :count)"
)

T = TypeVar("T")


def now_us() -> int:
    return time.time_ns() // 1000


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), IN_CHUNK_MAX):
        yield items[start : start + IN_CHUNK_MAX]


@dataclass(slots=True)
class _WalletInfo:
    id: str
    participant_id: str
    kind: WalletKind
    kyc_tier: str


@dataclass(slots=True)
class _Entry:
    account: AccountState
    item: int
    delta_minor: int
    balance_after_minor: int


class _Accounts:
    """The accounts one request touches, keyed by (wallet, currency), locked for writing.

    Accounts that do not exist yet get a negative placeholder id; they are inserted only if
    the request actually moves money into them.
    """

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], AccountState] = {}
        self._placeholder = 0

    def get(self, wallet_id: str, currency: str) -> AccountState | None:
        return self.by_key.get((wallet_id, currency))

    def get_or_placeholder(self, wallet: _WalletInfo, currency: str) -> AccountState:
        found = self.by_key.get((wallet.id, currency))
        if found is None:
            self._placeholder -= 1
            found = AccountState(
                id=self._placeholder,
                wallet_id=wallet.id,
                participant_id=wallet.participant_id,
                currency=currency,
                balance_minor=0,
                held_minor=0,
                allow_negative=wallet.kind.may_go_negative,
            )
            self.by_key[(wallet.id, currency)] = found
        return found


def retrying(fn: Callable[[], T]) -> T:
    for attempt in range(1, WRITE_ATTEMPTS_MAX + 1):
        try:
            return fn()
        except IntegrityError:
            if attempt == WRITE_ATTEMPTS_MAX:
                raise
        except DBAPIError as exc:
            # 40P01 deadlock, 40001 serialization failure: safe to run again from scratch.
            if getattr(exc.orig, "sqlstate", None) not in {"40P01", "40001"}:
                raise
            if attempt == WRITE_ATTEMPTS_MAX:
                raise
    raise AssertionError("unreachable")


def transfer_from_row(row: Row[Any]) -> Transfer:
    return Transfer(
        id=row.id,
        client_id=row.client_id,
        participant_id=row.participant_id,
        kind=TransferKind(row.kind),
        status=TransferStatus(row.status),
        debit_wallet_id=row.debit_wallet_id,
        credit_wallet_id=row.credit_wallet_id,
        debit_participant_id=row.debit_participant_id,
        credit_participant_id=row.credit_participant_id,
        currency=row.currency,
        amount_minor=row.amount_minor,
        created_at_us=row.created_at_us,
        timeout_at_us=row.timeout_at_us,
        resolved_at_us=row.resolved_at_us,
        group_id=row.group_id,
        memo=row.memo,
        seq=row.seq,
        window_number=row.window_number,
    )


class Ledger:
    """The off-chain double-entry ledger: participants, wallets, transfers, statements."""

    def __init__(self, engine: Engine, clock: Callable[[], int] = now_us) -> None:
        self.engine = engine
        self.clock = clock
        self._group_commit = GroupCommit(self.post_for)

    # ----------------------------------------------------------------- participants, wallets

    def create_participant(
        self,
        name: str,
        kind: ParticipantKind = ParticipantKind.PARTNER,
        participant_id: str | None = None,
        settlement_address: str | None = None,
    ) -> Participant:
        """A new participant with its system wallets (funding; plus revenue or liquidity)."""
        pid = participant_id or new_id("p")
        address = settlement_address or derive_settlement_address(pid)
        now = self.clock()
        system_kinds = [WalletKind.FUNDING]
        if kind is ParticipantKind.OPERATOR:
            system_kinds.append(WalletKind.REVENUE)
        if kind is ParticipantKind.LIQUIDITY:
            system_kinds.append(WalletKind.LIQUIDITY)
        with write_transaction(self.engine) as conn:
            if conn.execute(select(participants.c.id).where(participants.c.id == pid)).first():
                raise LedgerError("participant_exists", f"participant {pid} already exists")
            conn.execute(
                insert(participants).values(
                    id=pid,
                    name=name,
                    kind=kind.value,
                    settlement_address=address,
                    created_at_us=now,
                )
            )
            for wallet_kind in system_kinds:
                conn.execute(
                    insert(wallets).values(
                        id=f"{pid}.{wallet_kind.value}",
                        participant_id=pid,
                        kind=wallet_kind.value,
                        kyc_tier="system",
                        label=f"{name} {wallet_kind.value}",
                        created_at_us=now,
                    )
                )
        return Participant(pid, name, kind, address, now)

    def get_participant(self, participant_id: str) -> Participant:
        with read_transaction(self.engine) as conn:
            row = conn.execute(
                select(participants).where(participants.c.id == participant_id)
            ).first()
        if row is None:
            raise LedgerError("participant_not_found", f"no participant {participant_id}")
        return Participant(
            row.id, row.name, ParticipantKind(row.kind), row.settlement_address, row.created_at_us
        )

    def list_participants(self, after: str | None = None, limit: int = 100) -> list[Participant]:
        query = select(participants).order_by(participants.c.id).limit(_page(limit))
        if after is not None:
            query = query.where(participants.c.id > after)
        with read_transaction(self.engine) as conn:
            rows = conn.execute(query).all()
        return [
            Participant(
                r.id, r.name, ParticipantKind(r.kind), r.settlement_address, r.created_at_us
            )
            for r in rows
        ]

    def set_settlement_address(self, participant_id: str, address: str) -> None:
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                update(participants)
                .where(participants.c.id == participant_id)
                .values(settlement_address=address)
            )
            if done.rowcount != 1:
                raise LedgerError("participant_not_found", f"no participant {participant_id}")

    def system_wallet_id(self, participant_id: str, kind: WalletKind) -> str:
        return f"{participant_id}.{kind.value}"

    def create_wallet(
        self,
        participant_id: str,
        kyc_tier: str = TIER_DEFAULT,
        label: str | None = None,
        aliases_raw: Sequence[str] = (),
    ) -> Wallet:
        normalized = [normalize_alias(raw) for raw in aliases_raw]
        wallet_id = new_id("w")
        now = self.clock()
        with write_transaction(self.engine) as conn:
            self._require_participant(conn, participant_id)
            self._require_tier(conn, kyc_tier)
            conn.execute(
                insert(wallets).values(
                    id=wallet_id,
                    participant_id=participant_id,
                    kind=WalletKind.CUSTOMER.value,
                    kyc_tier=kyc_tier,
                    label=label,
                    created_at_us=now,
                )
            )
            for kind, alias in normalized:
                self._insert_alias(conn, wallet_id, kind.value, alias)
        return self.get_wallet(wallet_id)

    def get_wallet(self, wallet_id: str) -> Wallet:
        with read_transaction(self.engine) as conn:
            return self._load_wallet(conn, wallet_id)

    def list_wallets(
        self, participant_id: str, after: str | None = None, limit: int = 100
    ) -> list[Wallet]:
        query = (
            select(wallets.c.id)
            .where(wallets.c.participant_id == participant_id)
            .order_by(wallets.c.id)
            .limit(_page(limit))
        )
        if after is not None:
            query = query.where(wallets.c.id > after)
        with read_transaction(self.engine) as conn:
            ids = conn.execute(query).scalars().all()
            return [self._load_wallet(conn, wallet_id) for wallet_id in ids]

    def set_wallet_tier(self, wallet_id: str, kyc_tier: str) -> Wallet:
        with write_transaction(self.engine) as conn:
            self._require_tier(conn, kyc_tier)
            done = conn.execute(
                update(wallets)
                .where(wallets.c.id == wallet_id, wallets.c.kind == WalletKind.CUSTOMER.value)
                .values(kyc_tier=kyc_tier)
            )
            if done.rowcount != 1:
                raise LedgerError("wallet_not_found", f"no customer wallet {wallet_id}")
        return self.get_wallet(wallet_id)

    def add_alias(self, wallet_id: str, raw: str) -> Wallet:
        kind, alias = normalize_alias(raw)
        with write_transaction(self.engine) as conn:
            self._load_wallet(conn, wallet_id)
            self._insert_alias(conn, wallet_id, kind.value, alias)
        return self.get_wallet(wallet_id)

    def resolve_alias(self, raw: str) -> str:
        _, alias = normalize_alias(raw)
        with read_transaction(self.engine) as conn:
            wallet_id = conn.execute(
                select(aliases.c.wallet_id).where(aliases.c.alias == alias)
            ).scalar()
        if wallet_id is None:
            raise LedgerError("alias_not_found", f"no wallet has the alias {alias}")
        return str(wallet_id)

    # ------------------------------------------------------------- settlement exposure

    def set_net_debit_cap(self, participant_id: str, currency: str, cap_minor: int | None) -> None:
        """The most a participant may owe others unsettled in a currency; None: its
        prefunded settlement balance."""
        if cap_minor is not None and cap_minor < 0:
            raise LedgerError("invalid_limit", "a net debit cap cannot be negative")
        with write_transaction(self.engine) as conn:
            self._require_participant(conn, participant_id)
            (state,) = load_net_states(conn, [(participant_id, currency)]).values()
            state.cap_minor = cap_minor
            state.dirty = True
            write_net_states(conn, [state])

    def record_prefunding(self, participant_id: str, currency: str, delta_minor: int) -> None:
        """Mirror a change of the participant's prefunded balance on chain."""
        with write_transaction(self.engine) as conn:
            self._require_participant(conn, participant_id)
            (state,) = load_net_states(conn, [(participant_id, currency)]).values()
            state.prefunded_minor += delta_minor
            state.dirty = True
            write_net_states(conn, [state])

    def settlement_exposure(self, participant_id: str) -> list[NetState]:
        with read_transaction(self.engine) as conn:
            self._require_participant(conn, participant_id)
            rows = conn.execute(
                select(settlement_accounts)
                .where(settlement_accounts.c.participant_id == participant_id)
                .order_by(settlement_accounts.c.currency)
            )
            return [
                NetState(
                    r.participant_id,
                    r.currency,
                    r.prefunded_minor,
                    r.unsettled_minor,
                    r.cap_minor,
                    True,
                )
                for r in rows
            ]

    # ------------------------------------------------------------------------------ limits

    def set_tier_limits(self, tier: str, currency: str, limits: Limits) -> None:
        _check_limits(limits)
        with write_transaction(self.engine) as conn:
            conn.execute(
                tier_limits.delete().where(
                    tier_limits.c.tier == tier, tier_limits.c.currency == currency
                )
            )
            conn.execute(
                insert(tier_limits).values(
                    tier=tier,
                    currency=currency,
                    per_transfer_max_minor=limits.per_transfer_max_minor,
                    daily_max_minor=limits.daily_max_minor,
                )
            )

    def set_wallet_limits(self, wallet_id: str, currency: str, limits: Limits) -> None:
        """Override a wallet's tier limits in one currency; None keeps the tier's value."""
        _check_limits(limits)
        with write_transaction(self.engine) as conn:
            self._load_wallet(conn, wallet_id)
            conn.execute(
                wallet_limits.delete().where(
                    wallet_limits.c.wallet_id == wallet_id, wallet_limits.c.currency == currency
                )
            )
            conn.execute(
                insert(wallet_limits).values(
                    wallet_id=wallet_id,
                    currency=currency,
                    per_transfer_max_minor=limits.per_transfer_max_minor,
                    daily_max_minor=limits.daily_max_minor,
                )
            )

    def effective_limits(self, wallet_id: str, currency: str) -> Limits | None:
        with read_transaction(self.engine) as conn:
            wallet = self._load_wallet(conn, wallet_id)
            return _load_limits(conn, [(wallet_id, wallet.kyc_tier, currency)]).get(
                (wallet_id, currency)
            )

    # ------------------------------------------------------------------------ moving money

    def deposit(
        self,
        participant_id: str,
        client_id: str,
        wallet_id: str,
        currency: str,
        amount_minor: int,
        memo: str | None = None,
    ) -> tuple[Transfer, bool]:
        """Cash-in: money the partner received outside the ledger reaches a wallet."""
        request = TransferRequest(
            client_id=client_id,
            from_wallet=self.system_wallet_id(participant_id, WalletKind.FUNDING),
            to_wallet=wallet_id,
            currency=currency,
            amount_minor=amount_minor,
            kind=TransferKind.DEPOSIT,
            memo=memo,
        )
        return self.transfer(participant_id, request)

    def withdraw(
        self,
        participant_id: str,
        client_id: str,
        wallet_id: str,
        currency: str,
        amount_minor: int,
        memo: str | None = None,
    ) -> tuple[Transfer, bool]:
        """Cash-out: money leaves a wallet to be paid out by the partner outside the ledger."""
        request = TransferRequest(
            client_id=client_id,
            from_wallet=wallet_id,
            to_wallet=self.system_wallet_id(participant_id, WalletKind.FUNDING),
            currency=currency,
            amount_minor=amount_minor,
            kind=TransferKind.WITHDRAWAL,
            memo=memo,
        )
        return self.transfer(participant_id, request)

    def transfer(
        self, participant_id: str, request: TransferRequest, within: WithinPosting | None = None
    ) -> tuple[Transfer, bool]:
        """Post one transfer. Returns it and whether it was created now (False: a replay).

        Concurrent callers' transfers share a transaction (group commit, see group_commit).
        """
        _refuse_lone_link(request)
        return _single(self._group_commit.post(participant_id, request, within))

    async def transfer_async(
        self, participant_id: str, request: TransferRequest, within: WithinPosting | None = None
    ) -> tuple[Transfer, bool]:
        """`transfer` for the event loop: it waits for its group commit without a thread."""
        _refuse_lone_link(request)
        return _single(await self._group_commit.post_async(participant_id, request, within))

    def post_batch(
        self,
        participant_id: str,
        requests: Sequence[TransferRequest],
        within: WithinPosting | None = None,
    ) -> list[BatchResult]:
        """Post up to BATCH_TRANSFERS_MAX transfers in one durable transaction.

        Each item gets its own result; a failed item does not stop the others, except that
        items chained with `linked` succeed or fail together.

        `within(conn, results)` runs in the same transaction after the items are written
        (step-up confirmation records its nonces there); if it raises, nothing is posted.
        """
        if not 0 < len(requests) <= BATCH_TRANSFERS_MAX:
            raise LedgerError(
                "invalid_batch", f"a batch holds 1 to {BATCH_TRANSFERS_MAX} transfers"
            )

        return self.post_for([participant_id] * len(requests), requests, within)

    def post_for(
        self,
        owners: Sequence[str],
        requests: Sequence[TransferRequest],
        within: WithinPosting | None = None,
    ) -> list[BatchResult]:
        """post_batch for several participants at once: requests[i] acts for owners[i].

        Group commit posts concurrent callers' transfers this way, in one transaction.
        """

        def attempt() -> list[BatchResult]:
            with write_transaction(self.engine) as conn:
                results = Posting(conn, self.clock()).run(requests, owners)
                if within is not None:
                    within(conn, results)
                return results

        results = retrying(attempt)
        self._record_limit_refusals(owners, requests, results)
        return results

    def _record_limit_refusals(
        self,
        owners: Sequence[str],
        requests: Sequence[TransferRequest],
        results: Sequence[BatchResult],
    ) -> None:
        """Tell the participant (and so its customer) when a limit stopped a transfer.

        The refusal changed nothing, so this is written in a transaction of its own.
        """
        rows = [
            event_row(
                owners[r.index],
                "limit.refused",
                requests[r.index].client_id,
                {
                    "client_id": requests[r.index].client_id,
                    "from_wallet": requests[r.index].from_wallet,
                    "detail": r.error.detail,
                    **r.error.extra,
                },
                self.clock(),
                requests[r.index].from_wallet,
            )
            for r in results
            if r.error is not None and r.error.code == "limit_exceeded"
        ]
        if rows:
            with write_transaction(self.engine) as conn:
                write_events(conn, rows)

    def post_pending(self, participant_id: str, transfer_id: str) -> Transfer:
        """Complete a pending transfer: the held funds reach the recipient."""
        return self._resolve_pending(participant_id, transfer_id, TransferStatus.POSTED)

    def void_pending(self, participant_id: str, transfer_id: str) -> Transfer:
        """Cancel a pending transfer: its hold is released and nothing moves."""
        return self._resolve_pending(participant_id, transfer_id, TransferStatus.VOIDED)

    def expire_pending(self) -> int:
        """Void pending transfers whose timeout has passed; returns how many."""
        now = self.clock()
        with read_transaction(self.engine) as conn:
            due = (
                conn.execute(
                    select(transfers.c.id)
                    .where(
                        transfers.c.status == TransferStatus.PENDING.value,
                        transfers.c.timeout_at_us <= now,
                    )
                    .order_by(transfers.c.seq)
                    .limit(EXPIRE_PENDING_MAX)
                )
                .scalars()
                .all()
            )
        expired = 0
        for transfer_id in due:
            with write_transaction(self.engine) as conn:
                expired += (
                    _resolve(conn, transfer_id, None, TransferStatus.EXPIRED, now) is not None
                )
        return expired

    # ------------------------------------------------------------------------------- reads

    def get_transfer(self, transfer_id: str) -> Transfer:
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(transfers).where(transfers.c.id == transfer_id)).first()
        if row is None:
            raise LedgerError("transfer_not_found", f"no transfer {transfer_id}")
        return transfer_from_row(row)

    def list_transfers(
        self,
        participant_id: str | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[Transfer]:
        """Transfers in acceptance order; those a participant sent or received, if given."""
        query = select(transfers).order_by(transfers.c.seq).limit(_page(limit))
        if participant_id is not None:
            query = query.where(
                or_(
                    transfers.c.debit_participant_id == participant_id,
                    transfers.c.credit_participant_id == participant_id,
                )
            )
        if after_seq is not None:
            query = query.where(transfers.c.seq > after_seq)
        with read_transaction(self.engine) as conn:
            return [transfer_from_row(row) for row in conn.execute(query)]

    def statement(
        self,
        wallet_id: str,
        currency: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        after_entry: int | None = None,
        limit: int = 100,
    ) -> list[StatementLine]:
        """A wallet's posted movements, oldest first, each with the balance right after it."""
        counterparty = func.coalesce(
            func.nullif(transfers.c.debit_wallet_id, wallet_id), transfers.c.credit_wallet_id
        )
        query = (
            select(
                entries.c.id,
                entries.c.delta_minor,
                entries.c.balance_after_minor,
                entries.c.posted_at_us,
                accounts.c.currency,
                transfers.c.id.label("transfer_id"),
                transfers.c.kind,
                transfers.c.memo,
                counterparty.label("counterparty"),
            )
            .join(accounts, accounts.c.id == entries.c.account_id)
            .join(transfers, transfers.c.seq == entries.c.transfer_seq)
            .where(accounts.c.wallet_id == wallet_id)
            .order_by(entries.c.id)
            .limit(_page(limit))
        )
        if currency is not None:
            query = query.where(accounts.c.currency == currency)
        if since_us is not None:
            query = query.where(entries.c.posted_at_us >= since_us)
        if until_us is not None:
            query = query.where(entries.c.posted_at_us < until_us)
        if after_entry is not None:
            query = query.where(entries.c.id > after_entry)
        with read_transaction(self.engine) as conn:
            self._load_wallet(conn, wallet_id)
            return [
                StatementLine(
                    entry_id=row.id,
                    transfer_id=row.transfer_id,
                    kind=TransferKind(row.kind),
                    currency=row.currency,
                    delta_minor=row.delta_minor,
                    balance_after_minor=row.balance_after_minor,
                    posted_at_us=row.posted_at_us,
                    counterparty_wallet_id=row.counterparty,
                    memo=row.memo,
                )
                for row in conn.execute(query)
            ]

    def balances_at(self, wallet_id: str, at_us: int) -> dict[str, int]:
        """Each currency's posted balance of a wallet as it stood at a past instant."""
        latest = (
            select(entries.c.account_id, func.max(entries.c.id).label("entry_id"))
            .join(accounts, accounts.c.id == entries.c.account_id)
            .where(accounts.c.wallet_id == wallet_id, entries.c.posted_at_us <= at_us)
            .group_by(entries.c.account_id)
            .subquery()
        )
        query = (
            select(accounts.c.currency, entries.c.balance_after_minor)
            .join(latest, latest.c.entry_id == entries.c.id)
            .join(accounts, accounts.c.id == entries.c.account_id)
        )
        with read_transaction(self.engine) as conn:
            self._load_wallet(conn, wallet_id)
            return {row.currency: row.balance_after_minor for row in conn.execute(query)}

    def totals(self) -> dict[str, tuple[int, int]]:
        """Per currency: (sum of all balances, net external funds recorded).

        The first is zero in a consistent double-entry ledger; the second is what customers
        and system wallets other than funding hold: deposits minus withdrawals.
        """
        query = (
            select(
                accounts.c.currency,
                func.sum(accounts.c.balance_minor),
                func.sum(accounts.c.balance_minor).filter(
                    wallets.c.kind == WalletKind.FUNDING.value
                ),
            )
            .join(wallets, wallets.c.id == accounts.c.wallet_id)
            .group_by(accounts.c.currency)
        )
        with read_transaction(self.engine) as conn:
            return {row[0]: (int(row[1] or 0), -int(row[2] or 0)) for row in conn.execute(query)}

    # ---------------------------------------------------------------------------- helpers

    def _resolve_pending(
        self, participant_id: str, transfer_id: str, status: TransferStatus
    ) -> Transfer:
        now = self.clock()
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                select(
                    transfers.c.participant_id, transfers.c.status, transfers.c.timeout_at_us
                ).where(transfers.c.id == transfer_id)
            ).first()
            if row is None or row.participant_id != participant_id:
                raise LedgerError("transfer_not_found", f"no transfer {transfer_id}")
            current = TransferStatus(row.status)
            expired_now = (
                current is TransferStatus.PENDING
                and row.timeout_at_us is not None
                and row.timeout_at_us <= now
            )
            if expired_now:
                _resolve(conn, transfer_id, participant_id, TransferStatus.EXPIRED, now)
            elif current is TransferStatus.PENDING:
                _resolve(conn, transfer_id, participant_id, status, now)
        if expired_now:
            raise LedgerError(
                "pending_expired", f"transfer {transfer_id} passed its timeout and was voided"
            )
        if current is not TransferStatus.PENDING and current is not status:
            raise LedgerError(
                "transfer_not_pending", f"transfer {transfer_id} is {current.value}, not pending"
            )
        return self.get_transfer(transfer_id)

    def _require_participant(self, conn: Connection, participant_id: str) -> None:
        found = conn.execute(
            select(participants.c.id).where(participants.c.id == participant_id)
        ).first()
        if found is None:
            raise LedgerError("participant_not_found", f"no participant {participant_id}")

    def _require_tier(self, conn: Connection, tier: str) -> None:
        found = conn.execute(select(tier_limits.c.tier).where(tier_limits.c.tier == tier)).first()
        if found is None and tier != "enhanced":
            raise LedgerError("unknown_tier", f"no KYC tier {tier!r} is configured")

    def _insert_alias(self, conn: Connection, wallet_id: str, kind: str, alias: str) -> None:
        taken = conn.execute(select(aliases.c.wallet_id).where(aliases.c.alias == alias)).first()
        if taken is not None:
            raise LedgerError("alias_taken", f"the alias {alias} already belongs to a wallet")
        conn.execute(insert(aliases).values(alias=alias, kind=kind, wallet_id=wallet_id))

    def _load_wallet(self, conn: Connection, wallet_id: str) -> Wallet:
        row = conn.execute(select(wallets).where(wallets.c.id == wallet_id)).first()
        if row is None:
            raise LedgerError("wallet_not_found", f"no wallet {wallet_id}")
        balance_rows = conn.execute(
            select(accounts.c.currency, accounts.c.balance_minor, accounts.c.held_minor)
            .where(accounts.c.wallet_id == wallet_id)
            .order_by(accounts.c.currency)
        )
        alias_rows = conn.execute(
            select(aliases.c.alias)
            .where(aliases.c.wallet_id == wallet_id)
            .order_by(aliases.c.alias)
        )
        return Wallet(
            id=row.id,
            participant_id=row.participant_id,
            kind=WalletKind(row.kind),
            kyc_tier=row.kyc_tier,
            label=row.label,
            created_at_us=row.created_at_us,
            balances=tuple(
                Balance(r.currency, r.balance_minor, r.held_minor) for r in balance_rows
            ),
            aliases=tuple(alias_rows.scalars()),
        )


def _page(limit: int) -> int:
    if not 0 < limit <= PAGE_SIZE_MAX:
        raise LedgerError("invalid_limit", f"limit must be between 1 and {PAGE_SIZE_MAX}")
    return limit


def _check_limits(limits: Limits) -> None:
    for value in (limits.per_transfer_max_minor, limits.daily_max_minor):
        if value is not None and value < 0:
            raise LedgerError("invalid_limit", "limits cannot be negative")


def _load_limits(
    conn: Connection, keys: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str], Limits]:
    """Effective limits per (wallet, currency): the wallet's override, else its tier's."""
    if not keys:
        return {}
    tiers = {(tier, cur) for _, tier, cur in keys}
    wallet_ids = sorted({wallet_id for wallet_id, _, _ in keys})
    tier_rows: dict[tuple[str, str], Row[Any]] = {}
    for tier, cur in tiers:
        row = conn.execute(
            select(tier_limits).where(tier_limits.c.tier == tier, tier_limits.c.currency == cur)
        ).first()
        if row is not None:
            tier_rows[(tier, cur)] = row
    override_rows: dict[tuple[str, str], Row[Any]] = {}
    for chunk in _chunks(wallet_ids):
        for row in conn.execute(select(wallet_limits).where(wallet_limits.c.wallet_id.in_(chunk))):
            override_rows[(row.wallet_id, row.currency)] = row
    result: dict[tuple[str, str], Limits] = {}
    for wallet_id, tier, cur in keys:
        tier_row = tier_rows.get((tier, cur))
        override = override_rows.get((wallet_id, cur))
        per_transfer = daily = None
        if tier_row is not None:
            per_transfer, daily = tier_row.per_transfer_max_minor, tier_row.daily_max_minor
        if override is not None:
            if override.per_transfer_max_minor is not None:
                per_transfer = override.per_transfer_max_minor
            if override.daily_max_minor is not None:
                daily = override.daily_max_minor
        if per_transfer is not None or daily is not None:
            result[(wallet_id, cur)] = Limits(per_transfer, daily)
    return result


def _lock_accounts(conn: Connection, account_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """Read (and on PostgreSQL lock, in id order) the given accounts."""
    found: dict[int, Row[Any]] = {}
    for chunk in _chunks(sorted(account_ids)):
        query = select(accounts).where(accounts.c.id.in_(chunk)).order_by(accounts.c.id)
        if is_postgres(conn):
            query = query.with_for_update()
        for row in conn.execute(query):
            found[row.id] = row
    return found


def open_window_number(conn: Connection) -> int:
    """The open settlement window, locked against closing until this transaction ends.

    On PostgreSQL a closer that got the row first makes this SELECT find nothing (the row
    it re-checks is now closed); the window it opened is then read on the next try.
    """
    query = select(settlement_windows.c.number).where(settlement_windows.c.status == "open")
    if is_postgres(conn):
        query = query.with_for_update(read=True)
    for _ in range(WRITE_ATTEMPTS_MAX):
        number = conn.execute(query).scalar()
        if number is not None:
            return int(number)
    raise AssertionError("no open settlement window")


def load_net_states(
    conn: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], NetState]:
    """Settlement exposure rows for (participant, currency), locked in key order."""
    states: dict[tuple[str, str], NetState] = {}
    for participant_id, cur in sorted(set(keys)):
        query = select(settlement_accounts).where(
            settlement_accounts.c.participant_id == participant_id,
            settlement_accounts.c.currency == cur,
        )
        if is_postgres(conn):
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            states[(participant_id, cur)] = NetState(participant_id, cur, 0, 0, None, False)
        else:
            states[(participant_id, cur)] = NetState(
                participant_id, cur, row.prefunded_minor, row.unsettled_minor, row.cap_minor, True
            )
    return states


def write_net_states(conn: Connection, states: Iterable[NetState]) -> None:
    """Write back changed exposure rows (read and locked by load_net_states)."""
    for state in states:
        if not state.dirty:
            continue
        if state.exists:
            conn.execute(
                update(settlement_accounts)
                .where(
                    settlement_accounts.c.participant_id == state.participant_id,
                    settlement_accounts.c.currency == state.currency,
                )
                .values(
                    prefunded_minor=state.prefunded_minor,
                    unsettled_minor=state.unsettled_minor,
                    cap_minor=state.cap_minor,
                )
            )
        else:
            conn.execute(
                insert(settlement_accounts).values(
                    participant_id=state.participant_id,
                    currency=state.currency,
                    prefunded_minor=state.prefunded_minor,
                    unsettled_minor=state.unsettled_minor,
                    cap_minor=state.cap_minor,
                )
            )
            state.exists = True


def _resolve(
    conn: Connection,
    transfer_id: str,
    participant_id: str | None,
    status: TransferStatus,
    now: int,
) -> Transfer | None:
    """Move a pending transfer to posted, voided or expired; None if it was not pending."""
    row = conn.execute(select(transfers).where(transfers.c.id == transfer_id)).first()
    if row is None or row.status != TransferStatus.PENDING.value:
        return None
    assert participant_id is None or row.participant_id == participant_id
    window = open_window_number(conn) if status is TransferStatus.POSTED else None
    locked = _lock_accounts(conn, [row.debit_account_id, row.credit_account_id])
    # Re-read under the account locks: a concurrent resolver may have won on PostgreSQL.
    current = conn.execute(
        select(transfers.c.status).where(transfers.c.id == transfer_id)
    ).scalar_one()
    if current != TransferStatus.PENDING.value:
        return None
    debit_row, credit_row = locked[row.debit_account_id], locked[row.credit_account_id]
    debit = AccountState(
        debit_row.id,
        "",
        "",
        row.currency,
        debit_row.balance_minor,
        debit_row.held_minor,
        debit_row.allow_negative,
    )
    credit = AccountState(
        credit_row.id,
        "",
        "",
        row.currency,
        credit_row.balance_minor,
        credit_row.held_minor,
        credit_row.allow_negative,
    )
    if status is TransferStatus.POSTED:
        if row.debit_participant_id != row.credit_participant_id:
            nets = load_net_states(
                conn,
                [
                    (row.debit_participant_id, row.currency),
                    (row.credit_participant_id, row.currency),
                ],
            )
            payer = nets[(row.debit_participant_id, row.currency)]
            rules.check_net_debit(payer, row.amount_minor)
            rules.net(payer, nets[(row.credit_participant_id, row.currency)], row.amount_minor)
            write_net_states(conn, nets.values())
        rules.post_held(debit, credit, row.amount_minor)
        conn.execute(
            insert(entries),
            [
                {
                    "account_id": debit.id,
                    "transfer_seq": row.seq,
                    "delta_minor": -row.amount_minor,
                    "balance_after_minor": debit.balance_minor,
                    "posted_at_us": now,
                },
                {
                    "account_id": credit.id,
                    "transfer_seq": row.seq,
                    "delta_minor": row.amount_minor,
                    "balance_after_minor": credit.balance_minor,
                    "posted_at_us": now,
                },
            ],
        )
    else:
        rules.release_held(debit, row.amount_minor)
    for state in (debit, credit):
        conn.execute(
            update(accounts)
            .where(accounts.c.id == state.id)
            .values(balance_minor=state.balance_minor, held_minor=state.held_minor)
        )
    conn.execute(
        update(transfers)
        .where(transfers.c.id == transfer_id)
        .values(status=status.value, resolved_at_us=now, window_number=window)
    )
    resolved = transfer_from_row(
        conn.execute(select(transfers).where(transfers.c.id == transfer_id)).one()
    )
    event_type = "transfer.posted" if status is TransferStatus.POSTED else "transfer.voided"
    write_events(conn, transfer_event_rows(resolved, event_type, now))
    return resolved


class Posting:
    """One batch post inside one transaction: load, evaluate in order, write.

    Each item acts for its own participant (`owners[i]`): group commit posts the transfers of
    several callers, possibly of several participants, in one transaction. An item may debit
    only its participant's wallets and its id is unique per participant.
    """

    def __init__(
        self,
        conn: Connection,
        now: int,
        trusted_wallets: frozenset[str] = frozenset(),
    ) -> None:
        self.conn = conn
        self.owners: Sequence[str] = ()
        self.now = now
        # Wallets of others this posting may debit: the FX provider's in a payment.
        self.trusted_wallets = trusted_wallets
        self.accounts = _Accounts()
        self.wallets: dict[str, _WalletInfo] = {}
        self.alias_wallet: dict[str, str] = {}
        self.entries: list[_Entry] = []
        self.nets: dict[tuple[str, str], NetState] = {}
        self.window = 0
        # While a linked chain is evaluated: id(state) -> (state, its state before the chain).
        self.undo: dict[int, tuple[AccountState | NetState, tuple[Any, ...]]] | None = None
        # Per item: the row to insert, with account placeholders resolved at write time.
        self.created: dict[int, tuple[TransferRequest, AccountState, AccountState, str | None]] = {}

    def run(self, requests: Sequence[TransferRequest], owners: Sequence[str]) -> list[BatchResult]:
        assert len(owners) == len(requests)
        self.owners = owners
        self.window = open_window_number(self.conn)
        existing = self._load_existing(requests)
        self._load_wallets(requests)
        self._load_accounts(requests)
        self._load_net_states(requests)
        results: list[BatchResult | None] = [None] * len(requests)
        seen: set[tuple[str, str]] = set()
        chain: list[int] = []
        for index, request in enumerate(requests):
            chain.append(index)
            if request.linked and index + 1 < len(requests):
                continue
            self._evaluate_chain(chain, requests, existing, seen, results)
            chain = []
        created_transfers = self._write()
        final: list[BatchResult] = []
        for index, result in enumerate(results):
            assert result is not None
            if result.outcome is BatchOutcome.CREATED:
                result = BatchResult(index, BatchOutcome.CREATED, created_transfers[index])
            final.append(result)
        return final

    # -- loading

    def _load_existing(
        self, requests: Sequence[TransferRequest]
    ) -> dict[tuple[str, str], Row[Any]]:
        """Transfers already posted under these ids, by (participant, id)."""
        ids_by_owner: dict[str, set[str]] = {}
        for owner, request in zip(self.owners, requests, strict=True):
            ids_by_owner.setdefault(owner, set()).add(request.client_id)
        found: dict[tuple[str, str], Row[Any]] = {}
        for owner, client_ids in sorted(ids_by_owner.items()):
            for chunk in _chunks(sorted(client_ids)):
                query = select(transfers).where(
                    transfers.c.participant_id == owner, transfers.c.client_id.in_(chunk)
                )
                for row in self.conn.execute(query):
                    found[(owner, row.client_id)] = row
        return found

    def _load_wallets(self, requests: Sequence[TransferRequest]) -> None:
        alias_names: set[str] = set()
        for request in requests:
            if request.to_alias is not None:
                # An invalid alias is reported for its own item during evaluation.
                with suppress(LedgerError):
                    alias_names.add(normalize_alias(request.to_alias)[1])
        for chunk in _chunks(sorted(alias_names)):
            for row in self.conn.execute(
                select(aliases.c.alias, aliases.c.wallet_id).where(aliases.c.alias.in_(chunk))
            ):
                self.alias_wallet[row.alias] = row.wallet_id
        wallet_ids = {r.from_wallet for r in requests}
        wallet_ids |= {r.to_wallet for r in requests if r.to_wallet is not None}
        wallet_ids |= set(self.alias_wallet.values())
        for chunk in _chunks(sorted(wallet_ids)):
            query = select(
                wallets.c.id, wallets.c.participant_id, wallets.c.kind, wallets.c.kyc_tier
            ).where(wallets.c.id.in_(chunk))
            for found in self.conn.execute(query):
                self.wallets[found.id] = _WalletInfo(
                    found.id, found.participant_id, WalletKind(found.kind), found.kyc_tier
                )

    def _load_accounts(self, requests: Sequence[TransferRequest]) -> None:
        wallet_ids = sorted(self.wallets)
        ids: list[int] = []
        for chunk in _chunks(wallet_ids):
            ids.extend(
                self.conn.execute(
                    select(accounts.c.id).where(accounts.c.wallet_id.in_(chunk))
                ).scalars()
            )
        locked = _lock_accounts(self.conn, ids)
        for row in locked.values():
            wallet = self.wallets[row.wallet_id]
            self.accounts.by_key[(row.wallet_id, row.currency)] = AccountState(
                id=row.id,
                wallet_id=row.wallet_id,
                participant_id=wallet.participant_id,
                currency=row.currency,
                balance_minor=row.balance_minor,
                held_minor=row.held_minor,
                allow_negative=row.allow_negative,
            )
        self._load_limits(requests)

    def _load_net_states(self, requests: Sequence[TransferRequest]) -> None:
        """Exposure rows of both sides of every transfer that may cross participants."""
        keys = []
        for request in requests:
            if request.pending:
                continue  # nets when it is posted
            payer = self.wallets.get(request.from_wallet)
            payees = [self.wallets.get(request.to_wallet or "")]
            if request.to_alias is not None:
                with suppress(LedgerError):
                    alias = normalize_alias(request.to_alias)[1]
                    payees.append(self.wallets.get(self.alias_wallet.get(alias, "")))
            for payee in payees:
                if (
                    payer is not None
                    and payee is not None
                    and payer.participant_id != payee.participant_id
                ):
                    keys.append((payer.participant_id, request.currency))
                    keys.append((payee.participant_id, request.currency))
        self.nets = load_net_states(self.conn, keys)

    def _load_limits(self, requests: Sequence[TransferRequest]) -> None:
        keys = {
            (r.from_wallet, self.wallets[r.from_wallet].kyc_tier, r.currency)
            for r in requests
            if r.from_wallet in self.wallets
            and self.wallets[r.from_wallet].kind is WalletKind.CUSTOMER
        }
        limits = _load_limits(self.conn, sorted(keys))
        if not limits:
            return
        limited: list[AccountState] = []
        for (wallet_id, cur), wallet_limits_ in limits.items():
            state = self.accounts.get(wallet_id, cur)
            if state is None:
                continue  # no account in that currency: nothing can be spent from it
            state.limits = wallet_limits_
            if wallet_limits_.daily_max_minor is not None:
                limited.append(state)
        since = self.now - rules.DAY_US
        for chunk in _chunks([s.id for s in limited]):
            query = (
                select(transfers.c.debit_account_id, func.sum(transfers.c.amount_minor))
                .where(
                    transfers.c.debit_account_id.in_(chunk),
                    transfers.c.created_at_us > since,
                    transfers.c.status.in_(
                        [TransferStatus.POSTED.value, TransferStatus.PENDING.value]
                    ),
                )
                .group_by(transfers.c.debit_account_id)
            )
            spent = {row[0]: int(row[1]) for row in self.conn.execute(query)}
            for state in limited:
                state.spent_24h_minor = spent.get(state.id, state.spent_24h_minor)

    # -- evaluation

    def _evaluate_chain(
        self,
        chain: list[int],
        requests: Sequence[TransferRequest],
        existing: dict[tuple[str, str], Row[Any]],
        seen: set[tuple[str, str]],
        results: list[BatchResult | None],
    ) -> None:
        # A lone item changes nothing before its last check passes; a linked chain keeps
        # the states its items change so that a failure further on can undo them.
        self.undo = {} if len(chain) > 1 else None
        entries_before = len(self.entries)
        group_id = new_id("g") if len(chain) > 1 else None
        failure: tuple[int, LedgerError] | None = None
        if requests[chain[-1]].linked:
            failure = (
                chain[-1],
                LedgerError("linked_chain_open", LINKED_CHAIN_OPEN),
            )
        for index in chain:
            if failure is not None:
                break
            request = requests[index]
            try:
                results[index] = self._evaluate(index, request, existing, seen, group_id)
            except LedgerError as refused:
                failure = (index, refused)
        if failure is None:
            return
        # All or nothing: undo the chain's effects and fail every item of it.
        for state, saved in (self.undo or {}).values():
            state.restore(saved)
        del self.entries[entries_before:]
        failed_index, error = failure
        for index in chain:
            self.created.pop(index, None)
            seen.discard((self.owners[index], requests[index].client_id))
            own = (
                error
                if index == failed_index
                else LedgerError(
                    "linked_event_failed",
                    f"not posted because item {failed_index} of its linked chain failed: "
                    f"{error.code}",
                )
            )
            results[index] = BatchResult(index, BatchOutcome.FAILED, error=own)

    def _evaluate(
        self,
        index: int,
        request: TransferRequest,
        existing: dict[tuple[str, str], Row[Any]],
        seen: set[tuple[str, str]],
        group_id: str | None,
    ) -> BatchResult:
        key = (self.owners[index], request.client_id)
        prior = existing.get(key)
        if prior is not None:
            if prior.request_hash != request.request_hash:
                raise LedgerError(
                    "idempotency_conflict",
                    f"id {request.client_id!r} was already used for a different request",
                )
            return BatchResult(index, BatchOutcome.EXISTS, transfer_from_row(prior))
        if key in seen:
            raise LedgerError(
                "duplicate_id", f"id {request.client_id!r} appears twice in this batch"
            )
        debit_wallet, credit_wallet = self._wallets_of(request, key[0])
        debit = self.accounts.get(debit_wallet.id, request.currency)
        if debit is None:
            if not debit_wallet.kind.may_go_negative:
                raise LedgerError(
                    "insufficient_funds",
                    f"wallet {debit_wallet.id} holds no {request.currency}",
                    available="0",
                    currency=request.currency,
                )
            debit = self.accounts.get_or_placeholder(debit_wallet, request.currency)
        credit = self.accounts.get_or_placeholder(credit_wallet, request.currency)
        rules.check_debit(debit, request.amount_minor)
        self._remember(debit, credit)
        if not request.pending and debit.participant_id != credit.participant_id:
            payer = self.nets[(debit.participant_id, request.currency)]
            rules.check_net_debit(payer, request.amount_minor)
            payee = self.nets[(credit.participant_id, request.currency)]
            self._remember(payer, payee)
            rules.net(payer, payee, request.amount_minor)
        if request.pending:
            rules.hold(debit, request.amount_minor)
        else:
            rules.post(debit, credit, request.amount_minor)
            self.entries.append(_Entry(debit, index, -request.amount_minor, debit.balance_minor))
            self.entries.append(_Entry(credit, index, request.amount_minor, credit.balance_minor))
        seen.add(key)
        self.created[index] = (request, debit, credit, group_id)
        return BatchResult(index, BatchOutcome.CREATED)

    def _remember(self, *states: AccountState | NetState) -> None:
        """Keep a state as it was before this linked chain first changed it."""
        if self.undo is None:
            return
        for state in states:
            if id(state) not in self.undo:
                self.undo[id(state)] = (state, state.snapshot())

    def _wallets_of(self, request: TransferRequest, owner: str) -> tuple[_WalletInfo, _WalletInfo]:
        debit_wallet = self.wallets.get(request.from_wallet)
        if debit_wallet is None or (
            debit_wallet.participant_id != owner and debit_wallet.id not in self.trusted_wallets
        ):
            # Another participant's wallet is reported exactly like a missing one.
            raise LedgerError("wallet_not_found", f"no wallet {request.from_wallet}")
        if request.to_alias is not None:
            alias = normalize_alias(request.to_alias)[1]
            if alias not in self.alias_wallet:
                raise LedgerError("alias_not_found", f"no wallet has the alias {alias}")
            to_wallet_id = self.alias_wallet[alias]
        else:
            assert request.to_wallet is not None
            to_wallet_id = request.to_wallet
        credit_wallet = self.wallets.get(to_wallet_id)
        if credit_wallet is None:
            raise LedgerError("wallet_not_found", f"no wallet {to_wallet_id}")
        if credit_wallet.id == debit_wallet.id:
            raise LedgerError("same_wallet", "a transfer needs two different wallets")
        _check_kinds(request.kind, debit_wallet, credit_wallet, owner)
        return debit_wallet, credit_wallet

    # -- writing

    def _write(self) -> dict[int, Transfer]:
        # A placeholder is inserted if a created transfer names it (a pending transfer's
        # recipient account exists before any money reaches it).
        referenced = {
            id(state) for _, debit, credit, _ in self.created.values() for state in (debit, credit)
        }
        new_accounts = [
            s for s in self.accounts.by_key.values() if s.id < 0 and id(s) in referenced
        ]
        if new_accounts:
            rows = self.conn.execute(
                insert(accounts).returning(accounts.c.id, sort_by_parameter_order=True),
                [
                    {
                        "wallet_id": s.wallet_id,
                        "currency": s.currency,
                        "balance_minor": s.balance_minor,
                        "held_minor": s.held_minor,
                        "allow_negative": s.allow_negative,
                    }
                    for s in new_accounts
                ],
            ).all()
            for state, row in zip(new_accounts, rows, strict=True):
                state.id = row.id
        inserted = {id(state) for state in new_accounts}
        updated = [s for s in self.accounts.by_key.values() if s.dirty and id(s) not in inserted]
        if updated:
            self.conn.execute(
                update(accounts)
                .where(accounts.c.id == bindparam("account_id"))
                .values(balance_minor=bindparam("new_balance"), held_minor=bindparam("new_held")),
                [
                    {"account_id": s.id, "new_balance": s.balance_minor, "new_held": s.held_minor}
                    for s in updated
                ],
            )
        write_net_states(self.conn, self.nets.values())
        if not self.created:
            return {}
        order = sorted(self.created)
        rows_in: list[dict[str, Any]] = []
        for index in order:
            request, debit, credit, group_id = self.created[index]
            status = TransferStatus.PENDING if request.pending else TransferStatus.POSTED
            rows_in.append(
                {
                    "id": new_id("tr"),
                    "participant_id": self.owners[index],
                    "client_id": request.client_id,
                    "request_hash": request.request_hash,
                    "kind": request.kind.value,
                    "status": status.value,
                    "debit_account_id": debit.id,
                    "credit_account_id": credit.id,
                    "debit_wallet_id": debit.wallet_id,
                    "credit_wallet_id": credit.wallet_id,
                    "debit_participant_id": debit.participant_id,
                    "credit_participant_id": credit.participant_id,
                    "currency": request.currency,
                    "amount_minor": request.amount_minor,
                    "group_id": group_id,
                    "memo": request.memo,
                    "created_at_us": self.now,
                    "timeout_at_us": (
                        self.now + request.effective_timeout_s * 1_000_000
                        if request.pending
                        else None
                    ),
                    "resolved_at_us": None if request.pending else self.now,
                    "window_number": None if request.pending else self.window,
                }
            )
        seq_of = dict(zip(order, self._insert_transfers(rows_in), strict=True))
        insert_rows(
            self.conn,
            entries,
            [
                {
                    "account_id": e.account.id,
                    "transfer_seq": seq_of[e.item],
                    "delta_minor": e.delta_minor,
                    "balance_after_minor": e.balance_after_minor,
                    "posted_at_us": self.now,
                }
                for e in self.entries
            ],
        )
        created = {
            index: Transfer(
                id=row["id"],
                client_id=row["client_id"],
                participant_id=self.owners[index],
                kind=self.created[index][0].kind,
                status=TransferStatus(row["status"]),
                debit_wallet_id=row["debit_wallet_id"],
                credit_wallet_id=row["credit_wallet_id"],
                debit_participant_id=row["debit_participant_id"],
                credit_participant_id=row["credit_participant_id"],
                currency=row["currency"],
                amount_minor=row["amount_minor"],
                created_at_us=self.now,
                timeout_at_us=row["timeout_at_us"],
                resolved_at_us=row["resolved_at_us"],
                group_id=row["group_id"],
                memo=row["memo"],
                seq=seq_of[index],
                window_number=row["window_number"],
            )
            for index, row in zip(order, rows_in, strict=True)
        }
        write_events(
            self.conn,
            (
                row
                for transfer in created.values()
                for row in transfer_event_rows(transfer, "transfer.created", self.now)
            ),
        )
        return created

    def _insert_transfers(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert the transfer rows; their seq numbers, in order."""
        if is_postgres(self.conn) and len(rows) >= COPY_ROWS_MIN:
            # COPY returns nothing: the numbers are drawn from the column's sequence first.
            seqs = self.conn.execute(NEXT_TRANSFER_SEQS, {"count": len(rows)}).scalars().all()
            for row, seq in zip(rows, seqs, strict=True):
                row["seq"] = seq
            insert_rows(self.conn, transfers, rows)
            return list(seqs)
        # Unsorted RETURNING lets the driver insert many rows per statement; rows are
        # matched back by their id.
        returned = self.conn.execute(
            insert(transfers).returning(transfers.c.id, transfers.c.seq), rows
        )
        seq_by_id = {row.id: row.seq for row in returned}
        return [seq_by_id[row["id"]] for row in rows]


def _refuse_lone_link(request: TransferRequest) -> None:
    if request.linked:
        raise LedgerError("linked_chain_open", LINKED_CHAIN_OPEN)


def _single(result: BatchResult) -> tuple[Transfer, bool]:
    """A single transfer's result: the transfer and whether it was created now, or its error."""
    if result.outcome is BatchOutcome.FAILED:
        assert result.error is not None
        raise result.error
    assert result.transfer is not None
    return result.transfer, result.outcome is BatchOutcome.CREATED


def _check_kinds(
    kind: TransferKind, debit: _WalletInfo, credit: _WalletInfo, participant_id: str
) -> None:
    """Which wallets each kind of transfer may connect."""
    if kind is TransferKind.TRANSFER:
        if debit.kind is not WalletKind.CUSTOMER or credit.kind is not WalletKind.CUSTOMER:
            raise LedgerError(
                "invalid_recipient", "transfers move money between customer wallets only"
            )
    elif kind in (TransferKind.DEPOSIT, TransferKind.WITHDRAWAL):
        # Cash moves in and out of customers' wallets, and of FX providers' inventory.
        holder = credit if kind is TransferKind.DEPOSIT else debit
        if (
            holder.kind not in (WalletKind.CUSTOMER, WalletKind.LIQUIDITY)
            or holder.participant_id != participant_id
        ):
            raise LedgerError("wallet_not_found", f"no wallet {holder.id}")
    elif kind is TransferKind.PAYMENT:
        legs = {
            (WalletKind.CUSTOMER, WalletKind.LIQUIDITY),
            (WalletKind.LIQUIDITY, WalletKind.CUSTOMER),
            (WalletKind.CUSTOMER, WalletKind.REVENUE),
        }
        if (debit.kind, credit.kind) not in legs:
            raise LedgerError("invalid_recipient", "payments pay customer wallets only")
