"""The FX facade the API, the CLI and the ledger call: rates, refresh, pricing, quotes.

Dependencies are explicit (engine, ordered sources, pricing defaults, quote lifetimes,
clock). Rates are read from the store (the rate history), so every process sees what any
process fetched; `refresh()` fetches the sources and records what they answered. Local
sources (the embedded ECB data) are loaded on first use, so the embedded default works
with no set-up and no network.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, Engine

from fx import store
from fx.currency import CurrencyError, currency
from fx.errors import (
    FxError,
    OperatorRatesDisabled,
    SourceUnavailable,
    UnsupportedPair,
    from_currency_error,
)
from fx.pricing import PRICING_DEFAULT, CorridorPricing, price
from fx.quotes import (
    QUOTE_LIFETIME_CEILING_S,
    QUOTE_LIFETIME_DEFAULT_S,
    QUOTE_LIFETIME_MAX_S,
    Quote,
    check_participant_id,
    resolve_lifetime_s,
)
from fx.rates import (
    PIVOTS_DEFAULT,
    Rate,
    SourcePolicy,
    age,
    is_fresh,
    parse_rate,
    select_rate,
)
from fx.sources import OPERATOR, RateSource, default_sources

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What one source did on a refresh."""

    source: str
    ok: bool
    fetched: int  # rates the source answered
    stored: int  # of those, new in the history
    latest_as_of: datetime | None
    error_code: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class RateListing:
    """A stored rate as `corridor fx rates` and GET /v1/rates show it."""

    rate: Rate
    age: timedelta
    max_age: timedelta
    fresh: bool
    # Place of its source in the priority order (0 = first).
    priority: int
    # True for the rate `rate(base, quote)` would use for this quoted pair now.
    best: bool


class FxService:
    """Rates with provenance, corridor pricing and firm quotes."""

    def __init__(
        self,
        engine: Engine,
        sources: Sequence[RateSource] | None = None,
        *,
        pricing_default: CorridorPricing = PRICING_DEFAULT,
        quote_lifetime_default_s: int = QUOTE_LIFETIME_DEFAULT_S,
        quote_lifetime_max_s: int = QUOTE_LIFETIME_MAX_S,
        clock: Clock = utc_now,
        pivots: Sequence[str] = PIVOTS_DEFAULT,
    ) -> None:
        self.engine = engine
        self.sources: tuple[RateSource, ...] = tuple(
            default_sources() if sources is None else sources
        )
        names = [s.name for s in self.sources]
        assert len(names) == len(set(names)), f"source names must be unique: {names}"
        assert 0 < quote_lifetime_max_s <= QUOTE_LIFETIME_CEILING_S
        assert 0 < quote_lifetime_default_s <= quote_lifetime_max_s
        self.policies = tuple(SourcePolicy(s.name, s.max_age) for s in self.sources)
        self.pricing_default = pricing_default
        self.quote_lifetime_default_s = quote_lifetime_default_s
        self.quote_lifetime_max_s = quote_lifetime_max_s
        self.pivots = tuple(pivots)
        self._clock = clock
        self._local_lock = threading.Lock()
        self._local_loaded: set[str] = set()

    # -- time and input ------------------------------------------------------------------

    def now(self) -> datetime:
        moment = self._clock()
        assert moment.tzinfo is not None, "the clock must return aware datetimes"
        return moment.astimezone(UTC)

    @staticmethod
    def _code(code: object) -> str:
        try:
            return currency(code).code
        except CurrencyError as error:
            raise from_currency_error(error) from None

    def _pair(self, base: object, quote: object) -> tuple[str, str]:
        return self._code(base), self._code(quote)

    # -- rates ---------------------------------------------------------------------------

    def refresh(self, source_names: Collection[str] | None = None) -> list[SourceStatus]:
        """Fetch every fetchable source (or the named ones) and record their rates.

        Never raises for a source that is down: its status says why (source_unavailable).
        """
        statuses = []
        for source in self.sources:
            if not source.fetchable:
                continue
            if source_names is not None and source.name not in source_names:
                continue
            statuses.append(self._refresh_one(source))
        return statuses

    def _refresh_one(self, source: RateSource) -> SourceStatus:
        fetched_at = self.now()
        try:
            rates = source.fetch(fetched_at)
        except SourceUnavailable as error:
            return SourceStatus(source.name, False, 0, 0, None, error.code, error.detail)
        with self.engine.begin() as conn:
            stored = store.insert_rates(conn, rates, fetched_at)
        latest = max((r.as_of for r in rates), default=None)
        return SourceStatus(
            source.name,
            True,
            len(rates),
            stored,
            latest,
            None,
            f"{len(rates)} rates, {stored} new",
        )

    def _ensure_local_sources(self) -> None:
        """Load the local sources (embedded data) once per process, before the first read."""
        with self._local_lock:
            for source in self.sources:
                if not source.fetchable or source.network or source.name in self._local_loaded:
                    continue
                if self._refresh_one(source).ok:
                    self._local_loaded.add(source.name)

    def _candidates(self, conn: Connection, currencies: Collection[str] | None) -> list[Rate]:
        return store.latest_rates(conn, [p.name for p in self.policies], currencies)

    def _select(self, conn: Connection, base: str, quote: str, now: datetime) -> Rate:
        wanted = {base, quote, *self.pivots}
        return select_rate(
            base, quote, self._candidates(conn, wanted), self.policies, now, self.pivots
        )

    def rate(self, base: str, quote: str) -> Rate:
        """The best fresh rate base->quote with its provenance (a cross rate if need be).

        Raises unknown_currency, unsupported_pair or no_fresh_rate.
        """
        base, quote = self._pair(base, quote)
        self._ensure_local_sources()
        now = self.now()
        with self.engine.connect() as conn:
            return self._select(conn, base, quote, now)

    def rates(self, *, all_sources: bool = False) -> list[RateListing]:
        """Stored quoted pairs: by default the rate each pair would use now (fresh only);
        with all_sources, every source's latest rate for every pair, fresh or stale."""
        self._ensure_local_sources()
        now = self.now()
        with self.engine.connect() as conn:
            candidates = self._candidates(conn, None)
        priority = {p.name: i for i, p in enumerate(self.policies)}
        max_age = {p.name: p.max_age for p in self.policies}
        best: dict[tuple[str, str], str] = {}
        for r in sorted(candidates, key=lambda r: priority[r.source]):
            if is_fresh(r, max_age[r.source], now):
                best.setdefault(r.pair, r.source)
        listings = [
            RateListing(
                rate=r,
                age=age(r, now),
                max_age=max_age[r.source],
                fresh=is_fresh(r, max_age[r.source], now),
                priority=priority[r.source],
                best=best.get(r.pair) == r.source,
            )
            for r in candidates
        ]
        if not all_sources:
            listings = [item for item in listings if item.best]
        return sorted(listings, key=lambda i: (i.rate.base, i.rate.quote, i.priority))

    def history(
        self, base: str, quote: str, *, source: str | None = None, limit: int = 100
    ) -> list[store.RateRecord]:
        """Stored rates of a quoted pair (either direction), newest first."""
        base, quote = self._pair(base, quote)
        limit = max(1, min(limit, store.HISTORY_PAGE_MAX))
        with self.engine.connect() as conn:
            return store.rate_history_of(conn, base, quote, source=source, limit=limit)

    def set_operator_rate(
        self, base: str, quote: str, rate: Decimal | str, *, set_by: str | None = None
    ) -> Rate:
        """Set the operator's rate for base/quote (1 base = rate quote), as of now.

        Raises unknown_currency, unsupported_pair (same currency), invalid_rate, or
        operator_rates_disabled when no operator source is in the priority order.
        """
        base, quote = self._pair(base, quote)
        if base == quote:
            raise UnsupportedPair(f"{base}/{base} is always 1; no rate to set")
        value = parse_rate(rate)
        if all(s.name != OPERATOR for s in self.sources):
            raise OperatorRatesDisabled("operator rates are not among the configured sources")
        with self.engine.begin() as conn:
            return store.set_operator_rate(conn, base, quote, value, self.now(), set_by)

    def operator_rates(self) -> list[tuple[Rate, str | None]]:
        with self.engine.connect() as conn:
            return store.list_operator_rates(conn)

    # -- pricing -------------------------------------------------------------------------

    def set_corridor_pricing(
        self,
        sell_currency: str,
        buy_currency: str,
        *,
        spread_bps: int,
        fee_bps: int,
        fixed_fee_minor: int,
    ) -> CorridorPricing:
        """Configure one corridor (direction matters: USD->PHP is not PHP->USD).

        `fixed_fee_minor` is in the sell currency's minor unit. Raises invalid_pricing.
        """
        sell_currency, buy_currency = self._pair(sell_currency, buy_currency)
        if sell_currency == buy_currency:
            raise UnsupportedPair("a corridor converts between two different currencies")
        pricing = CorridorPricing(
            spread_bps=spread_bps, fee_bps=fee_bps, fixed_fee_minor=fixed_fee_minor
        )
        with self.engine.begin() as conn:
            store.set_corridor_pricing(conn, sell_currency, buy_currency, pricing, self.now())
        return pricing

    def corridor_pricing(self, sell_currency: str, buy_currency: str) -> CorridorPricing:
        """The pricing in force for a corridor: the operator's, or the defaults."""
        sell_currency, buy_currency = self._pair(sell_currency, buy_currency)
        with self.engine.connect() as conn:
            found = store.get_corridor_pricing(conn, sell_currency, buy_currency)
        return found or self.pricing_default

    def list_corridor_pricing(self) -> list[store.CorridorPricingRecord]:
        with self.engine.connect() as conn:
            return store.list_corridor_pricing(conn)

    # -- quotes --------------------------------------------------------------------------

    def create_quote(
        self,
        participant_id: str,
        sell_currency: str,
        buy_currency: str,
        *,
        sell_amount_minor: int | None = None,
        buy_amount_minor: int | None = None,
        lifetime_s: int | None = None,
    ) -> Quote:
        """A firm quote for `participant_id`, stored, valid for `lifetime_s` (or the default).

        Exactly one of sell_amount_minor / buy_amount_minor. Raises unknown_currency,
        unsupported_pair, invalid_amount, invalid_lifetime, lifetime_too_long,
        no_fresh_rate.
        """
        participant_id = check_participant_id(participant_id)
        sell_currency, buy_currency = self._pair(sell_currency, buy_currency)
        if sell_currency == buy_currency:
            raise UnsupportedPair(f"selling {sell_currency} for {buy_currency} needs no quote")
        lifetime = resolve_lifetime_s(
            lifetime_s, self.quote_lifetime_default_s, self.quote_lifetime_max_s
        )
        self._ensure_local_sources()
        now = self.now()
        with self.engine.begin() as conn:
            mid = self._select(conn, sell_currency, buy_currency, now)
            pricing = store.get_corridor_pricing(conn, sell_currency, buy_currency)
            priced = price(
                sell_currency,
                buy_currency,
                mid.rate,
                pricing or self.pricing_default,
                sell_amount_minor=sell_amount_minor,
                buy_amount_minor=buy_amount_minor,
            )
            quote = Quote(
                id=str(uuid.uuid4()),
                participant_id=participant_id,
                sell_currency=sell_currency,
                buy_currency=buy_currency,
                sell_amount_minor=priced.sell_amount_minor,
                fee_minor=priced.fee_minor,
                buy_amount_minor=priced.buy_amount_minor,
                mid_rate=priced.mid_rate,
                customer_rate=priced.customer_rate,
                spread_bps=priced.pricing.spread_bps,
                fee_bps=priced.pricing.fee_bps,
                fixed_fee_minor=priced.pricing.fixed_fee_minor,
                fixed_side=priced.fixed_side,
                rate_source=mid.source,
                rate_via=mid.via,
                rate_as_of=mid.as_of,
                created_at=now,
                expires_at=now + timedelta(seconds=lifetime),
                used_at=None,
            )
            store.insert_quote(conn, quote)
        return quote

    def get_quote(self, quote_id: str, participant_id: str | None) -> Quote:
        """The quote, if `participant_id` owns it (None: operator view).

        Raises quote_not_found or quote_foreign.
        """
        with self.engine.connect() as conn:
            return store.get_quote(conn, quote_id, participant_id)

    def consume_quote(
        self,
        conn: Connection,
        quote_id: str,
        participant_id: str,
        *,
        sell_currency: str | None = None,
        buy_currency: str | None = None,
        sell_amount_minor: int | None = None,
        buy_amount_minor: int | None = None,
        fee_minor: int | None = None,
    ) -> Quote:
        """Use the quote inside the caller's transaction `conn` (see store.consume_quote)."""
        return store.consume_quote(
            conn,
            quote_id,
            participant_id,
            self.now(),
            sell_currency=sell_currency,
            buy_currency=buy_currency,
            sell_amount_minor=sell_amount_minor,
            buy_amount_minor=buy_amount_minor,
            fee_minor=fee_minor,
        )


__all__ = ["FxError", "FxService", "RateListing", "SourceStatus", "utc_now"]
