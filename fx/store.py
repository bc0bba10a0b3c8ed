"""FX storage at the edge: SQLAlchemy Core tables on `fx_metadata`, functions on a Connection.

Every function takes a `Connection` and runs inside the caller's transaction, so the
ledger can consume a quote in the same transaction that posts the payment: if the
payment fails and rolls back, the quote is unused again.

Portable across SQLite and PostgreSQL: rates are stored as decimal text (exact on every
backend), times as UTC (aware datetimes in, aware UTC datetimes out).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

from fx.errors import QuoteForeign, QuoteNotFound, QuoteUsed
from fx.pricing import CorridorPricing
from fx.quotes import Quote, check_consumable
from fx.rates import Rate, utc
from fx.sources import OPERATOR

HISTORY_PAGE_MAX = 1_000

# Same constraint naming as the ledger's metadata, so migrations can name constraints.
fx_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class DecimalText(TypeDecorator[Decimal]):
    """A Decimal stored as its exact decimal text (SQLite has no exact numeric type)."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        assert isinstance(value, Decimal) and value.is_finite(), "exact decimals only"
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as UTC; read back as aware UTC on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = utc(value)
        # SQLite keeps no offset: store naive UTC text, which also compares correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only

rate_history = Table(
    "fx_rate_history",
    fx_metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("base", String(3), nullable=False),
    Column("quote", String(3), nullable=False),
    Column("rate", DecimalText(), nullable=False),
    Column("as_of", UtcDateTime(), nullable=False),
    Column("fetched_at", UtcDateTime(), nullable=False),
    # A source states one rate per pair and as-of time; re-fetching it stores nothing new.
    UniqueConstraint("source", "base", "quote", "as_of"),
)
Index(
    "ix_fx_rate_history_base_quote_as_of",
    rate_history.c.base,
    rate_history.c.quote,
    rate_history.c.as_of,
)

operator_rates = Table(
    "fx_operator_rates",
    fx_metadata,
    Column("base", String(3), primary_key=True),
    Column("quote", String(3), primary_key=True),
    Column("rate", DecimalText(), nullable=False),
    Column("set_at", UtcDateTime(), nullable=False),
    Column("set_by", String(64), nullable=True),
)

corridor_pricing = Table(
    "fx_corridor_pricing",
    fx_metadata,
    Column("sell_currency", String(3), primary_key=True),
    Column("buy_currency", String(3), primary_key=True),
    Column("spread_bps", Integer(), nullable=False),
    Column("fee_bps", Integer(), nullable=False),
    Column("fixed_fee_minor", BigInteger(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    CheckConstraint("spread_bps >= 0", name="spread_bps_not_negative"),
    CheckConstraint("fee_bps >= 0", name="fee_bps_not_negative"),
    CheckConstraint("fixed_fee_minor >= 0", name="fixed_fee_not_negative"),
)

quotes = Table(
    "fx_quotes",
    fx_metadata,
    Column("id", String(36), primary_key=True),
    Column("participant_id", String(64), nullable=False, index=True),
    Column("sell_currency", String(3), nullable=False),
    Column("buy_currency", String(3), nullable=False),
    Column("sell_amount_minor", BigInteger(), nullable=False),
    Column("fee_minor", BigInteger(), nullable=False),
    Column("buy_amount_minor", BigInteger(), nullable=False),
    Column("mid_rate", DecimalText(), nullable=False),
    Column("customer_rate", DecimalText(), nullable=False),
    Column("spread_bps", Integer(), nullable=False),
    Column("fee_bps", Integer(), nullable=False),
    Column("fixed_fee_minor", BigInteger(), nullable=False),
    Column("fixed_side", String(4), nullable=False),
    Column("rate_source", String(100), nullable=False),
    Column("rate_via", String(16), nullable=True),
    Column("rate_as_of", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
    CheckConstraint("sell_amount_minor > 0", name="sell_amount_positive"),
    CheckConstraint("buy_amount_minor > 0", name="buy_amount_positive"),
    CheckConstraint("fee_minor >= 0", name="fee_not_negative"),
    CheckConstraint("fixed_side IN ('sell', 'buy')", name="fixed_side_known"),
    CheckConstraint("expires_at > created_at", name="expires_after_created"),
)


@dataclass(frozen=True, slots=True)
class RateRecord:
    """A stored rate with the time Corridor fetched it."""

    rate: Rate
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class CorridorPricingRecord:
    sell_currency: str
    buy_currency: str
    pricing: CorridorPricing
    updated_at: datetime


def _insert_ignoring_duplicates(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping those that hit a unique constraint; returns how many went in."""
    if not rows:
        return 0
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        dialect_insert = sqlite.insert if name == "sqlite" else postgresql.insert
        # RETURNING counts the rows really inserted (executemany row counts are unreliable).
        statement = dialect_insert(table).on_conflict_do_nothing().returning(table.c.id)
        return len(conn.execute(statement, rows).all())
    stored = 0  # other backends: check first (this path does not guard concurrent inserts)
    for row in rows:
        exists = conn.execute(
            select(func.count())
            .select_from(table)
            .where(
                and_(
                    table.c.source == row["source"],
                    table.c.base == row["base"],
                    table.c.quote == row["quote"],
                    table.c.as_of == row["as_of"],
                )
            )
        ).scalar_one()
        if not exists:
            conn.execute(insert(table), [row])
            stored += 1
    return stored


def insert_rates(conn: Connection, rates: Iterable[Rate], fetched_at: datetime) -> int:
    """Record fetched rates in the history with their provenance; returns the new rows.

    A rate the history already holds (same source, pair and as-of) is not stored twice.
    """
    rates = list(rates)
    for r in rates:
        assert r.via is None, "only quoted pairs are stored; cross rates are derived"
    rows = [
        {
            "source": r.source,
            "base": r.base,
            "quote": r.quote,
            "rate": r.rate,
            "as_of": r.as_of,
            "fetched_at": fetched_at,
        }
        for r in rates
    ]
    return _insert_ignoring_duplicates(conn, rate_history, rows)


def _rate_from_row(row: Any) -> Rate:
    return Rate(base=row.base, quote=row.quote, rate=row.rate, source=row.source, as_of=row.as_of)


def latest_rates(
    conn: Connection, sources: Collection[str], currencies: Collection[str] | None = None
) -> list[Rate]:
    """The newest stored rate of each (source, base, quote), for the given sources.

    With `currencies`, only pairs whose both sides are among them.
    """
    if not sources:
        return []
    h = rate_history
    conditions = [h.c.source.in_(list(sources))]
    if currencies is not None:
        conditions += [h.c.base.in_(list(currencies)), h.c.quote.in_(list(currencies))]
    newest = (
        select(h.c.source, h.c.base, h.c.quote, func.max(h.c.as_of).label("as_of"))
        .where(*conditions)
        .group_by(h.c.source, h.c.base, h.c.quote)
        .subquery()
    )
    rows = conn.execute(
        select(h.c.source, h.c.base, h.c.quote, h.c.rate, h.c.as_of).join(
            newest,
            and_(
                h.c.source == newest.c.source,
                h.c.base == newest.c.base,
                h.c.quote == newest.c.quote,
                h.c.as_of == newest.c.as_of,
            ),
        )
    )
    return [_rate_from_row(row) for row in rows]


def rate_history_of(
    conn: Connection,
    base: str,
    quote: str,
    *,
    source: str | None = None,
    limit: int = 100,
) -> list[RateRecord]:
    """Stored rates of one quoted pair (either direction), newest first."""
    assert 0 < limit <= HISTORY_PAGE_MAX, f"limit must be within 1..{HISTORY_PAGE_MAX}"
    h = rate_history
    query = select(h).where(
        ((h.c.base == base) & (h.c.quote == quote)) | ((h.c.base == quote) & (h.c.quote == base))
    )
    if source is not None:
        query = query.where(h.c.source == source)
    query = query.order_by(h.c.as_of.desc(), h.c.id.desc()).limit(limit)
    return [
        RateRecord(rate=_rate_from_row(row), fetched_at=row.fetched_at)
        for row in conn.execute(query)
    ]


def _upsert(conn: Connection, table: Table, keys: dict[str, Any], values: dict[str, Any]) -> None:
    updated = conn.execute(
        update(table).where(*(table.c[k] == v for k, v in keys.items())).values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(insert(table).values(**keys, **values))


def set_operator_rate(
    conn: Connection,
    base: str,
    quote: str,
    rate: Decimal,
    set_at: datetime,
    set_by: str | None = None,
) -> Rate:
    """Set (or replace) the operator's rate for base/quote, and record it in the history."""
    _upsert(
        conn,
        operator_rates,
        {"base": base, "quote": quote},
        {"rate": rate, "set_at": set_at, "set_by": set_by},
    )
    stored = Rate(base=base, quote=quote, rate=rate, source=OPERATOR, as_of=utc(set_at))
    insert_rates(conn, [stored], fetched_at=set_at)
    return stored


def list_operator_rates(conn: Connection) -> list[tuple[Rate, str | None]]:
    """The operator's current rates with who set them."""
    rows = conn.execute(
        select(operator_rates).order_by(operator_rates.c.base, operator_rates.c.quote)
    )
    return [
        (
            Rate(base=r.base, quote=r.quote, rate=r.rate, source=OPERATOR, as_of=r.set_at),
            r.set_by,
        )
        for r in rows
    ]


def set_corridor_pricing(
    conn: Connection,
    sell_currency: str,
    buy_currency: str,
    pricing: CorridorPricing,
    updated_at: datetime,
) -> None:
    _upsert(
        conn,
        corridor_pricing,
        {"sell_currency": sell_currency, "buy_currency": buy_currency},
        {
            "spread_bps": pricing.spread_bps,
            "fee_bps": pricing.fee_bps,
            "fixed_fee_minor": pricing.fixed_fee_minor,
            "updated_at": updated_at,
        },
    )


def get_corridor_pricing(
    conn: Connection, sell_currency: str, buy_currency: str
) -> CorridorPricing | None:
    """The operator's pricing for this corridor, or None (the defaults apply)."""
    c = corridor_pricing.c
    row = conn.execute(
        select(corridor_pricing).where(
            c.sell_currency == sell_currency, c.buy_currency == buy_currency
        )
    ).first()
    if row is None:
        return None
    return CorridorPricing(
        spread_bps=row.spread_bps, fee_bps=row.fee_bps, fixed_fee_minor=row.fixed_fee_minor
    )


def list_corridor_pricing(conn: Connection) -> list[CorridorPricingRecord]:
    c = corridor_pricing.c
    rows = conn.execute(select(corridor_pricing).order_by(c.sell_currency, c.buy_currency))
    return [
        CorridorPricingRecord(
            sell_currency=r.sell_currency,
            buy_currency=r.buy_currency,
            pricing=CorridorPricing(
                spread_bps=r.spread_bps, fee_bps=r.fee_bps, fixed_fee_minor=r.fixed_fee_minor
            ),
            updated_at=r.updated_at,
        )
        for r in rows
    ]


_QUOTE_FIELDS = (
    "id",
    "participant_id",
    "sell_currency",
    "buy_currency",
    "sell_amount_minor",
    "fee_minor",
    "buy_amount_minor",
    "mid_rate",
    "customer_rate",
    "spread_bps",
    "fee_bps",
    "fixed_fee_minor",
    "fixed_side",
    "rate_source",
    "rate_via",
    "rate_as_of",
    "created_at",
    "expires_at",
    "used_at",
)


def insert_quote(conn: Connection, quote: Quote) -> None:
    conn.execute(insert(quotes).values(**{f: getattr(quote, f) for f in _QUOTE_FIELDS}))


def load_quote(conn: Connection, quote_id: str) -> Quote | None:
    """The quote as stored, whoever owns it, or None."""
    row = conn.execute(select(quotes).where(quotes.c.id == quote_id)).first()
    if row is None:
        return None
    return Quote(**{f: getattr(row, f) for f in _QUOTE_FIELDS})


def get_quote(conn: Connection, quote_id: str, participant_id: str | None) -> Quote:
    """The quote if `participant_id` owns it (None: the operator sees every quote).

    Raises quote_not_found or quote_foreign.
    """
    quote = load_quote(conn, quote_id)
    if quote is None:
        raise QuoteNotFound(f"no quote {quote_id}")
    if participant_id is not None and quote.participant_id != participant_id:
        raise QuoteForeign(f"quote {quote_id} belongs to another participant")
    return quote


def consume_quote(
    conn: Connection,
    quote_id: str,
    participant_id: str,
    now: datetime,
    *,
    sell_currency: str | None = None,
    buy_currency: str | None = None,
    sell_amount_minor: int | None = None,
    buy_amount_minor: int | None = None,
    fee_minor: int | None = None,
) -> Quote:
    """Mark the quote used, inside the caller's transaction, and return it (used_at = now).

    Raises quote_not_found, quote_foreign, quote_used, quote_expired or quote_mismatch
    (the optional expectations are the payment's own figures) and changes nothing then.
    The UPDATE is guarded by `used_at IS NULL` and its row count checked, so of two
    concurrent consumers exactly one succeeds.
    """
    now = utc(now)
    quote = load_quote(conn, quote_id)
    if quote is None:
        raise QuoteNotFound(f"no quote {quote_id}")
    check_consumable(
        quote,
        participant_id,
        now,
        sell_currency=sell_currency,
        buy_currency=buy_currency,
        sell_amount_minor=sell_amount_minor,
        buy_amount_minor=buy_amount_minor,
        fee_minor=fee_minor,
    )
    marked = conn.execute(
        update(quotes)
        .where(
            quotes.c.id == quote_id,
            quotes.c.participant_id == participant_id,
            quotes.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    if marked.rowcount != 1:
        raise QuoteUsed(f"quote {quote_id} was used by another request just now")
    return Quote(**{**{f: getattr(quote, f) for f in _QUOTE_FIELDS}, "used_at": now})
