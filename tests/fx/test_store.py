"""The fx store on a real database: rate history, operator rates, pricing, quote consumption."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from fx import store
from fx.errors import FxError, QuoteUsed
from fx.pricing import CorridorPricing
from fx.quotes import Quote
from fx.rates import Rate

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def rate(base: str, quote: str, value: str, source: str, as_of: datetime = NOW) -> Rate:
    return Rate(base, quote, Decimal(value), source, as_of)


def make_quote(quote_id: str = "q-1", participant_id: str = "p-1", **changes: object) -> Quote:
    fields: dict[str, object] = {
        "id": quote_id,
        "participant_id": participant_id,
        "sell_currency": "USD",
        "buy_currency": "PHP",
        "sell_amount_minor": 10_000,
        "fee_minor": 10,
        "buy_amount_minor": 633_613,
        "mid_rate": Decimal("63.6797350519"),
        "customer_rate": Decimal("63.3613363766"),
        "spread_bps": 50,
        "fee_bps": 10,
        "fixed_fee_minor": 0,
        "fixed_side": "sell",
        "rate_source": "ecb_embedded",
        "rate_via": "EUR",
        "rate_as_of": datetime(2026, 10, 30, 13, 10, tzinfo=UTC),
        "created_at": NOW,
        "expires_at": NOW + timedelta(seconds=30),
        "used_at": None,
    }
    fields.update(changes)
    return Quote(**fields)  # type: ignore[arg-type]


def test_rate_history_keeps_provenance_exactly_and_once(fx_engine: Engine) -> None:
    older = NOW - timedelta(days=1)
    batch = [
        rate("EUR", "USD", "1.1172", "ecb_daily", older),
        rate("EUR", "GBP", "0.83380", "ecb_daily", older),
    ]
    with fx_engine.begin() as conn:
        assert store.insert_rates(conn, batch, fetched_at=NOW) == 2
        assert store.insert_rates(conn, batch, fetched_at=NOW + timedelta(hours=1)) == 0
        store.insert_rates(conn, [rate("EUR", "USD", "1.12", "ecb_daily", NOW)], fetched_at=NOW)
        store.insert_rates(conn, [rate("EUR", "USD", "1.1", "ecb_embedded", older)], NOW)
    with fx_engine.connect() as conn:
        history = store.rate_history_of(conn, "USD", "EUR", source="ecb_daily")
        latest = store.latest_rates(conn, ["ecb_daily"])
        only_usd = store.latest_rates(conn, ["ecb_daily", "ecb_embedded"], {"EUR", "USD"})
    assert [(h.rate.rate, h.rate.as_of, h.fetched_at) for h in history] == [
        (Decimal("1.12"), NOW, NOW),
        (Decimal("1.1172"), older, NOW),
    ]
    assert {(r.quote, r.rate) for r in latest} == {
        ("USD", Decimal("1.12")),
        ("GBP", Decimal("0.8338")),
    }
    assert str(next(r for r in latest if r.quote == "GBP").rate) == "0.83380"  # exact text kept
    assert {(r.source, r.rate) for r in only_usd} == {
        ("ecb_daily", Decimal("1.12")),
        ("ecb_embedded", Decimal("1.1")),
    }
    assert all(r.as_of.tzinfo is not None for r in latest)


def test_operator_rate_is_replaced_and_recorded_in_history(fx_engine: Engine) -> None:
    with fx_engine.begin() as conn:
        store.set_operator_rate(conn, "USD", "NGN", Decimal("1530"), NOW, "ops@hub")
        store.set_operator_rate(conn, "USD", "NGN", Decimal("1531.5"), NOW + timedelta(hours=1))
    with fx_engine.connect() as conn:
        current = store.list_operator_rates(conn)
        history = store.rate_history_of(conn, "USD", "NGN")
    assert [(r.rate, r.as_of, who) for r, who in current] == [
        (Decimal("1531.5"), NOW + timedelta(hours=1), None)
    ]
    assert [h.rate.rate for h in history] == [Decimal("1531.5"), Decimal("1530")]
    assert {h.rate.source for h in history} == {"operator"}


def test_corridor_pricing_upsert(fx_engine: Engine) -> None:
    with fx_engine.begin() as conn:
        assert store.get_corridor_pricing(conn, "USD", "PHP") is None
        store.set_corridor_pricing(conn, "USD", "PHP", CorridorPricing(40, 5, 25), NOW)
        store.set_corridor_pricing(conn, "USD", "PHP", CorridorPricing(30, 5, 25), NOW)
        assert store.get_corridor_pricing(conn, "USD", "PHP") == CorridorPricing(30, 5, 25)
        assert store.get_corridor_pricing(conn, "PHP", "USD") is None  # corridors are directed
        assert [r.pricing for r in store.list_corridor_pricing(conn)] == [
            CorridorPricing(30, 5, 25)
        ]


def test_quote_round_trips(fx_engine: Engine) -> None:
    quote = make_quote()
    with fx_engine.begin() as conn:
        store.insert_quote(conn, quote)
    with fx_engine.connect() as conn:
        assert store.load_quote(conn, "q-1") == quote
        assert store.get_quote(conn, "q-1", None) == quote
        with pytest.raises(FxError) as caught:
            store.get_quote(conn, "q-1", "p-2")
        assert caught.value.code == "quote_foreign"
        with pytest.raises(FxError) as caught:
            store.get_quote(conn, "nope", "p-1")
        assert caught.value.code == "quote_not_found"


def consume_code(
    engine: Engine, quote_id: str, participant: str, now: datetime, **kw: object
) -> str:
    with pytest.raises(FxError) as caught, engine.begin() as conn:
        store.consume_quote(conn, quote_id, participant, now, **kw)  # type: ignore[arg-type]
    return caught.value.code


def test_consume_refusals_have_stable_codes_and_change_nothing(fx_engine: Engine) -> None:
    with fx_engine.begin() as conn:
        store.insert_quote(conn, make_quote())
    assert consume_code(fx_engine, "unknown", "p-1", NOW) == "quote_not_found"
    assert consume_code(fx_engine, "q-1", "p-2", NOW) == "quote_foreign"
    expiry = NOW + timedelta(seconds=30)
    assert consume_code(fx_engine, "q-1", "p-1", expiry) == "quote_expired"
    for mismatch in (
        {"sell_amount_minor": 10_001},
        {"buy_amount_minor": 633_614},
        {"fee_minor": 0},
        {"sell_currency": "EUR"},
        {"buy_currency": "JPY"},
    ):
        assert consume_code(fx_engine, "q-1", "p-1", NOW, **mismatch) == "quote_mismatch"
    with fx_engine.connect() as conn:
        assert store.load_quote(conn, "q-1") == make_quote()  # still unused

    with fx_engine.begin() as conn:
        used = store.consume_quote(
            conn, "q-1", "p-1", NOW, sell_amount_minor=10_000, buy_amount_minor=633_613
        )
    assert used.used_at == NOW
    assert consume_code(fx_engine, "q-1", "p-1", NOW) == "quote_used"


def test_a_rolled_back_payment_leaves_the_quote_unused(fx_engine: Engine) -> None:
    with fx_engine.begin() as conn:
        store.insert_quote(conn, make_quote())
    with pytest.raises(RuntimeError), fx_engine.begin() as conn:
        store.consume_quote(conn, "q-1", "p-1", NOW)
        raise RuntimeError("the ledger refused the payment")
    with fx_engine.begin() as conn:
        assert store.consume_quote(conn, "q-1", "p-1", NOW).used_at == NOW


def test_the_guarded_update_refuses_a_consumer_that_read_before_another_committed(
    fx_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fx_engine.begin() as conn:
        store.insert_quote(conn, make_quote())
    with fx_engine.begin() as conn:
        store.consume_quote(conn, "q-1", "p-1", NOW)
    # The second consumer read the quote before the first committed: it saw it unused.
    monkeypatch.setattr(store, "load_quote", lambda conn, quote_id: make_quote())
    with pytest.raises(QuoteUsed, match="another request"), fx_engine.begin() as conn:
        store.consume_quote(conn, "q-1", "p-1", NOW)


@pytest.mark.postgres
def test_concurrent_consumers_on_postgres_exactly_one_wins(fx_engine: Engine) -> None:
    if fx_engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers; the race is exercised on PostgreSQL")
    with fx_engine.begin() as conn:
        store.insert_quote(conn, make_quote())
    contenders = 6
    barrier = threading.Barrier(contenders)
    outcomes: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        with fx_engine.connect() as conn:
            barrier.wait()
            try:
                with conn.begin():
                    store.consume_quote(conn, "q-1", "p-1", NOW)
                outcome = "ok"
            except FxError as error:
                outcome = error.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=consume) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["ok"] + ["quote_used"] * (contenders - 1)
    with fx_engine.connect() as conn:
        used = conn.execute(
            select(func.count())
            .select_from(store.quotes)
            .where(store.quotes.c.used_at.is_not(None))
        ).scalar_one()
    assert used == 1
