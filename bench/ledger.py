"""Ledger throughput and latency: single and batch transfers, in-process and over HTTP,
on SQLite and PostgreSQL (issue 2).

Every backend gets a fresh database (a temporary SQLite file; a new PostgreSQL schema,
dropped afterwards) seeded through the public API with one participant, many customer
wallets on the `enhanced` tier (no limits) and a large USD balance in each. Transfers go
between random pairs of those wallets, so concurrent requests touch different accounts as
real traffic would, and every transfer has its own id. The scenarios of one backend share
its database in the order listed in SCENARIOS; after each, the number of transfers
written is checked against the database.

The `-xpartner` scenario adds three more partners with their own wallets and sends
transfers between random wallets of all four, each by the sender's partner with its own
API key: about three in four cross partners, so they also update both partners' net
positions in the open settlement window (net debit caps are set high enough).

Targets (printed beside the figures, never asserted): batch posting >= 10,000 transfers/s;
single transfers over HTTP >= 1,000/s with p99 <= 100 ms, on a 2-core machine.
"""

from __future__ import annotations

import os
import random
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from api.auth_store import KeyStore, Role
from api.database import open_database
from bench.common import (
    RESULTS_DIR,
    CpuMeter,
    Result,
    matches,
    peak_rss_mb,
    print_result,
    reset_peak_rss,
    skipped,
)
from bench.http_load import LoadOutcome, ServerProcess, drive, encode_post, uvicorn_server
from settlement.ledger.model import (
    BATCH_TRANSFERS_MAX,
    BatchOutcome,
    TransferKind,
    TransferRequest,
)
from settlement.ledger.service import Ledger, now_us
from settlement.ledger.tables import transfers

POSTGRES_DSN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
PARTICIPANT_ID = "bench"
# The partners of the cross-partner scenario: PARTICIPANT_ID and these.
OTHER_PARTNERS = ("bench-b", "bench-c", "bench-d")
NET_DEBIT_CAP_MINOR = 10**15
CURRENCY = "USD"
# Enough that no random sequence of benchmark transfers can empty a wallet.
OPENING_BALANCE_MINOR = 10**12
TRANSFER_AMOUNT_MINOR_MAX = 10_000
BATCH_SIZE_MAX = BATCH_TRANSFERS_MAX
TARGET_BATCH_TPS = 10_000.0
TARGET_HTTP_SINGLE_TPS = 1_000.0
TARGET_HTTP_SINGLE_P99_MS = 100.0
PROFILE_INTERVAL_S = 0.0005
# The per-key rate limit (100/s by default) would measure the limiter, not the capacity:
# the benchmark sends everything with one key per partner. The servers do not close
# windows during a run: the earlier in-process scenarios leave a window of tens of
# thousands of transfers, whose settlement mid-run would be measured as fast-path latency
# (settlement has its own figures in bench/settlement.py).
SERVER_SETTINGS = {
    "CORRIDOR_RATE_LIMIT_PER_S": "0",
    "CORRIDOR_SETTLEMENT_INTERVAL_S": "86400",
    "CORRIDOR_SETTLEMENT_MAX_TRANSFERS": str(10**9),
}


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does; a time cap stops any scenario early."""

    wallets: int
    single: int
    batches_100: int
    batches_8190: int
    http_single: int
    http_batches_100: int
    http_concurrency: int
    http_batch_concurrency: int
    time_cap_s: float


# Sized so that the ledger's share of a full `python -m bench` stays near three minutes.
FULL = Sizes(
    wallets=1000,
    single=1200,
    batches_100=50,
    batches_8190=3,
    http_single=8000,
    http_batches_100=80,
    http_concurrency=32,
    http_batch_concurrency=4,
    time_cap_s=10.0,
)
QUICK = Sizes(
    wallets=200,
    single=300,
    batches_100=10,
    batches_8190=1,
    http_single=600,
    http_batches_100=20,
    http_concurrency=32,
    http_batch_concurrency=4,
    time_cap_s=6.0,
)


# ---------------------------------------------------------------------------- databases


def postgres_dsn() -> str:
    return os.environ.get(
        "CORRIDOR_BENCH_POSTGRES_DSN",
        os.environ.get("CORRIDOR_TEST_POSTGRES_DSN", POSTGRES_DSN_DEFAULT),
    )


def postgres_unavailable(dsn: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable at {dsn}: {str(exc).splitlines()[0]}"


@dataclass
class Fixture:
    """A seeded ledger database and what the scenarios need to use it."""

    backend: str
    url: str
    engine: Engine
    ledger: Ledger
    wallet_ids: list[str]
    api_key: str
    data_dir: Path
    sizes: Sizes
    profile: bool
    # Cross-partner scenario: every partner's wallets, owners and keys (seeded on demand).
    partner_wallets: list[str] | None = None
    owner: dict[str, str] | None = None
    api_keys: dict[str, str] | None = None

    def seed_partners(self) -> None:
        """Three more partners with as many wallets together as the first one has."""
        if self.partner_wallets is not None:
            return
        started = time.perf_counter()
        owner = dict.fromkeys(self.wallet_ids, PARTICIPANT_ID)
        keys = {PARTICIPANT_ID: self.api_key}
        per_partner = max(2, len(self.wallet_ids) // len(OTHER_PARTNERS))
        for partner in OTHER_PARTNERS:
            self.ledger.create_participant(f"Benchmark partner {partner}", participant_id=partner)
            wallet_ids = _funded_wallets(self.ledger, partner, per_partner)
            owner.update(dict.fromkeys(wallet_ids, partner))
            _, keys[partner] = KeyStore(self.engine).create(Role.PARTICIPANT, now_us(), partner)
        for partner in (PARTICIPANT_ID, *OTHER_PARTNERS):
            self.ledger.set_net_debit_cap(partner, CURRENCY, NET_DEBIT_CAP_MINOR)
        self.partner_wallets, self.owner, self.api_keys = list(owner), owner, keys
        print(
            f"  {self.backend}: seeded {len(OTHER_PARTNERS)} more partners with "
            f"{per_partner * len(OTHER_PARTNERS):,} wallets in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )

    def count_transfers(self, prefix: str) -> int:
        query = select(func.count()).where(
            transfers.c.participant_id.in_([PARTICIPANT_ID, *OTHER_PARTNERS]),
            transfers.c.client_id.startswith(prefix, autoescape=True),
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


@contextmanager
def database(backend: str) -> Iterator[tuple[str, Path]]:
    """A fresh, empty database URL and a scratch folder; both removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="corridor-bench-") as tmp:
        scratch = Path(tmp)
        if backend == "sqlite":
            yield f"sqlite:///{scratch / 'ledger.sqlite3'}", scratch
            return
        import psycopg

        dsn = postgres_dsn()
        schema = f"bench_{secrets.token_hex(6)}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        base = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
        separator = "&" if "?" in base else "?"
        try:
            yield f"{base}{separator}options=-csearch_path%3D{schema}", scratch
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


def seed(backend: str, url: str, scratch: Path, sizes: Sizes, profile: bool) -> Fixture:
    """One participant, `sizes.wallets` funded customer wallets and a participant API key."""
    started = time.perf_counter()
    engine = open_database(url)
    ledger = Ledger(engine)
    ledger.create_participant("Benchmark partner", participant_id=PARTICIPANT_ID)
    wallet_ids = _funded_wallets(ledger, PARTICIPANT_ID, sizes.wallets)
    _, api_key = KeyStore(engine).create(Role.PARTICIPANT, now_us(), PARTICIPANT_ID)
    print(
        f"  {backend}: seeded {len(wallet_ids):,} funded wallets in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return Fixture(backend, url, engine, ledger, wallet_ids, api_key, scratch, sizes, profile)


def _funded_wallets(ledger: Ledger, participant_id: str, count: int) -> list[str]:
    """`count` new enhanced-tier customer wallets of a participant, each well funded."""
    wallet_ids = [
        ledger.create_wallet(participant_id, kyc_tier="enhanced").id for _ in range(count)
    ]
    funding = f"{participant_id}.funding"
    for start in range(0, len(wallet_ids), BATCH_SIZE_MAX):
        deposits = [
            TransferRequest(
                client_id=f"seed-{index}",
                from_wallet=funding,
                to_wallet=wallet_id,
                currency=CURRENCY,
                amount_minor=OPENING_BALANCE_MINOR,
                kind=TransferKind.DEPOSIT,
            )
            for index, wallet_id in enumerate(
                wallet_ids[start : start + BATCH_SIZE_MAX], start=start
            )
        ]
        results = ledger.post_batch(participant_id, deposits)
        assert all(r.outcome is BatchOutcome.CREATED for r in results), "seeding failed"
    return wallet_ids


# ----------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Move:
    client_id: str
    from_wallet: str
    to_wallet: str
    amount_minor: int


def moves(
    fx: Fixture, tag: str, count: int, seed: int, wallets: Sequence[str] | None = None
) -> list[Move]:
    """`count` transfers between random distinct wallets, with ids unique to this run."""
    rng = random.Random(seed)
    run = secrets.token_hex(4)
    wallets = fx.wallet_ids if wallets is None else wallets
    found = []
    for index in range(count):
        sender, recipient = rng.sample(range(len(wallets)), 2)
        found.append(
            Move(
                f"{tag}-{run}-{index}",
                wallets[sender],
                wallets[recipient],
                rng.randint(1, TRANSFER_AMOUNT_MINOR_MAX),
            )
        )
    return found


def as_request(move: Move) -> TransferRequest:
    return TransferRequest(
        client_id=move.client_id,
        from_wallet=move.from_wallet,
        to_wallet=move.to_wallet,
        currency=CURRENCY,
        amount_minor=move.amount_minor,
    )


def as_json(move: Move) -> dict[str, Any]:
    major, minor = divmod(move.amount_minor, 100)
    return {
        "id": move.client_id,
        "from_wallet": move.from_wallet,
        "to_wallet": move.to_wallet,
        "amount": {"amount": f"{major}.{minor:02d}", "currency": CURRENCY},
    }


def _chunked(items: Sequence[Move], size: int) -> list[Sequence[Move]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


@contextmanager
def profiled(fx: Fixture, name: str) -> Iterator[list[str]]:
    """With --profile: a pyinstrument profile of the block, written next to latest.json."""
    notes: list[str] = []
    if not fx.profile:
        yield notes
        return
    try:
        from pyinstrument import Profiler
    except ImportError:
        notes.append("--profile needs pyinstrument (pip install pyinstrument); not profiled")
        yield notes
        return
    profiler = Profiler(interval=PROFILE_INTERVAL_S)
    profiler.start()
    try:
        yield notes
    finally:
        profiler.stop()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        text_path = RESULTS_DIR / f"profile-{name}.txt"
        text_path.write_text(profiler.output_text(unicode=True, show_all=False), encoding="utf-8")
        (RESULTS_DIR / f"profile-{name}.html").write_text(profiler.output_html(), "utf-8")
        notes.append(f"profiled (timings inflated): {text_path}")


def _verify(fx: Fixture, result: Result, prefix: str, expected: int) -> None:
    """Count what reached the database: a benchmark that silently drops work is no use."""
    written = fx.count_transfers(prefix)
    if written != expected:
        result.errors += abs(expected - written)
        result.notes.append(f"expected {expected:,} transfers in the database, found {written:,}")


# ------------------------------------------------------------------ in-process scenarios


def inproc_single(fx: Fixture, name: str) -> Result:
    """Sequential `Ledger.transfer` calls, one transaction each."""
    sizes = fx.sizes
    warmup = [as_request(m) for m in moves(fx, f"{name}-warm", 20, seed=1)]
    for request in warmup:
        fx.ledger.transfer(PARTICIPANT_ID, request)
    tag = f"{name}-run"
    requests = [as_request(m) for m in moves(fx, tag, sizes.single, seed=2)]
    latencies: list[float] = []
    reset_peak_rss()
    with profiled(fx, name) as notes:
        meter = CpuMeter()
        started = time.perf_counter()
        deadline = started + sizes.time_cap_s
        for request in requests:
            before = time.perf_counter()
            fx.ledger.transfer(PARTICIPANT_ID, request)
            after = time.perf_counter()
            latencies.append(after - before)
            if after > deadline:
                break
        elapsed = time.perf_counter() - started
        meter.stop()
    result = Result(
        name=name,
        backend=fx.backend,
        workload=f"in-process Ledger.transfer, sequential, {len(fx.wallet_ids):,} wallets",
        transfers=len(latencies),
        elapsed_s=elapsed,
        latencies_s=latencies,
        latency_of="transfer",
        peak_rss_mb=peak_rss_mb(),
        notes=notes,
    )
    meter.record(result)
    _verify(fx, result, f"{tag}-", len(latencies))
    return result


def inproc_batch(fx: Fixture, name: str, batch_size: int, batches: int) -> Result:
    """Sequential `Ledger.post_batch` calls of `batch_size` transfers each."""
    sizes = fx.sizes
    warm = [as_request(m) for m in moves(fx, f"{name}-warm", min(batch_size, 100), seed=3)]
    fx.ledger.post_batch(PARTICIPANT_ID, warm)
    tag = f"{name}-run"
    chunks = [
        [as_request(m) for m in chunk]
        for chunk in _chunked(moves(fx, tag, batch_size * batches, seed=4), batch_size)
    ]
    latencies: list[float] = []
    posted = failed = 0
    reset_peak_rss()
    with profiled(fx, name) as notes:
        meter = CpuMeter()
        started = time.perf_counter()
        deadline = started + sizes.time_cap_s
        for chunk in chunks:
            before = time.perf_counter()
            results = fx.ledger.post_batch(PARTICIPANT_ID, chunk)
            after = time.perf_counter()
            latencies.append(after - before)
            created = sum(r.outcome is BatchOutcome.CREATED for r in results)
            posted += created
            failed += len(results) - created
            if after > deadline:
                break
        elapsed = time.perf_counter() - started
        meter.stop()
    result = Result(
        name=name,
        backend=fx.backend,
        workload=(
            f"in-process Ledger.post_batch, {len(latencies)} x {batch_size:,}, sequential, "
            f"{len(fx.wallet_ids):,} wallets"
        ),
        transfers=posted,
        elapsed_s=elapsed,
        latencies_s=latencies,
        latency_of=f"batch of {batch_size:,}",
        peak_rss_mb=peak_rss_mb(),
        target=f">= {TARGET_BATCH_TPS:,.0f}/s",
        target_tps_min=TARGET_BATCH_TPS,
        errors=failed,
        notes=notes,
    )
    meter.record(result)
    _verify(fx, result, f"{tag}-", posted)
    return result


# ------------------------------------------------------------------------ HTTP scenarios


def _measure(
    server: ServerProcess, requests: Sequence[bytes], concurrency: int, time_cap_s: float
) -> tuple[LoadOutcome, CpuMeter]:
    meter = CpuMeter(server.pid)
    outcome = drive(server, requests, concurrency, time_cap_s)
    return outcome, meter.stop()


def _http_figures(
    server: ServerProcess, outcome: LoadOutcome, meter: CpuMeter, result: Result
) -> None:
    result.peak_rss_mb = server.peak_rss_mb()
    result.errors += outcome.errors
    meter.record(result)
    client_pct = 100 * outcome.client_cpu_s / outcome.elapsed_s if outcome.elapsed_s else 0.0
    server_pct = 100 * outcome.server_cpu_s / outcome.elapsed_s if outcome.elapsed_s else 0.0
    cores = os.cpu_count() or 1
    result.extra.update(
        requests_sent=outcome.sent,
        requests_ok=outcome.ok,
        client_cpu_pct=round(client_pct, 1),
        server_cpu_pct=round(server_pct, 1),
        server_workers=server.workers,
        peak_rss_of="server processes",
    )
    result.notes.append(
        f"CPU: server {server_pct:.0f}%, load generator {client_pct:.0f}% "
        f"(100% = one core; {cores} cores); peak RSS is the server's"
    )
    result.notes.extend(outcome.error_samples)
    if outcome.errors:
        failures = [
            line.strip()
            for line in server.log_tail(400).splitlines()
            if "Error" in line or "Exception" in line
        ]
        if failures:
            result.notes.append(f"server log: {failures[-1][:300]}")


def http_single(fx: Fixture, name: str, workers: int, cross_partner: bool = False) -> Result:
    """POST /v1/transfers from `http_concurrency` keep-alive connections at once."""
    sizes = fx.sizes
    concurrency = sizes.http_concurrency
    wallets: Sequence[str] = fx.wallet_ids
    if cross_partner:
        fx.seed_partners()
        assert fx.partner_wallets is not None
        wallets = fx.partner_wallets
    with uvicorn_server(fx.url, fx.data_dir / name, workers, SERVER_SETTINGS) as server:

        def encode(move: Move) -> bytes:
            key = fx.api_key
            if fx.owner is not None and fx.api_keys is not None:
                key = fx.api_keys[fx.owner[move.from_wallet]]
            return encode_post(server.port, "/v1/transfers", key, as_json(move))

        warm = moves(fx, f"{name}-warm", 4 * concurrency, seed=5, wallets=wallets)
        drive(server, [encode(m) for m in warm], concurrency)
        tag = f"{name}-run"
        run_moves = moves(fx, tag, sizes.http_single, seed=6, wallets=wallets)
        outcome, meter = _measure(
            server, [encode(m) for m in run_moves], concurrency, sizes.time_cap_s
        )
        partners = (
            f"{1 + len(OTHER_PARTNERS)} partners, {len(wallets):,} wallets, "
            "~3/4 of transfers cross partners"
            if cross_partner
            else f"{len(wallets):,} wallets"
        )
        result = Result(
            name=name,
            backend=fx.backend,
            workload=(
                f"HTTP POST /v1/transfers, {concurrency} concurrent clients, "
                f"uvicorn x{workers} (rate limit off), {partners}"
            ),
            transfers=outcome.ok,
            elapsed_s=outcome.elapsed_s,
            latencies_s=outcome.latencies_s,
            latency_of="request",
            target=(
                f">= {TARGET_HTTP_SINGLE_TPS:,.0f}/s, p99 <= {TARGET_HTTP_SINGLE_P99_MS:.0f} ms"
            ),
            target_tps_min=TARGET_HTTP_SINGLE_TPS,
            target_p99_ms_max=TARGET_HTTP_SINGLE_P99_MS,
        )
        _http_figures(server, outcome, meter, result)
    _verify(fx, result, f"{tag}-", outcome.ok)
    return result


def http_batch(fx: Fixture, name: str, workers: int, batch_size: int = 100) -> Result:
    """POST /v1/transfers/batch of `batch_size` from a few concurrent connections."""
    sizes = fx.sizes
    concurrency = sizes.http_batch_concurrency
    with uvicorn_server(fx.url, fx.data_dir / name, workers, SERVER_SETTINGS) as server:

        def encode(chunk: Sequence[Move]) -> bytes:
            body = {"transfers": [as_json(m) for m in chunk]}
            return encode_post(server.port, "/v1/transfers/batch", fx.api_key, body)

        warm_moves = moves(fx, f"{name}-warm", batch_size * concurrency, seed=7)
        drive(server, [encode(c) for c in _chunked(warm_moves, batch_size)], concurrency)
        tag = f"{name}-run"
        run_moves = moves(fx, tag, batch_size * sizes.http_batches_100, seed=8)
        requests = [encode(c) for c in _chunked(run_moves, batch_size)]
        outcome, meter = _measure(server, requests, concurrency, sizes.time_cap_s)
        result = Result(
            name=name,
            backend=fx.backend,
            workload=(
                f"HTTP POST /v1/transfers/batch of {batch_size}, {concurrency} concurrent "
                f"clients, uvicorn x{workers} (rate limit off), {len(fx.wallet_ids):,} wallets"
            ),
            transfers=outcome.ok * batch_size,
            elapsed_s=outcome.elapsed_s,
            latencies_s=outcome.latencies_s,
            latency_of=f"batch of {batch_size}",
            target=f">= {TARGET_BATCH_TPS:,.0f}/s",
            target_tps_min=TARGET_BATCH_TPS,
        )
        _http_figures(server, outcome, meter, result)
    # Any item that failed inside an accepted batch shows up here as a missing transfer.
    _verify(fx, result, f"{tag}-", outcome.ok * batch_size)
    return result


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Scenario:
    name: str
    backend: str
    run: Callable[[Fixture, str], Result]


def _scenarios() -> list[Scenario]:
    found: list[Scenario] = []
    for backend in ("sqlite", "postgres"):
        prefix = f"ledger.{backend}"
        found += [
            Scenario(f"{prefix}.inproc-single", backend, inproc_single),
            Scenario(
                f"{prefix}.inproc-batch100",
                backend,
                lambda fx, name: inproc_batch(fx, name, 100, fx.sizes.batches_100),
            ),
            Scenario(
                f"{prefix}.inproc-batch8190",
                backend,
                lambda fx, name: inproc_batch(fx, name, BATCH_SIZE_MAX, fx.sizes.batches_8190),
            ),
            Scenario(f"{prefix}.http-single", backend, lambda fx, n: http_single(fx, n, 1)),
            Scenario(f"{prefix}.http-batch100", backend, lambda fx, n: http_batch(fx, n, 1)),
        ]
        # Several API processes share the database: the way to use the second core
        # (SQLite writers of all processes queue on one file lock).
        found += [
            Scenario(f"{prefix}.http-single-w2", backend, lambda fx, n: http_single(fx, n, 2)),
            Scenario(f"{prefix}.http-batch100-w2", backend, lambda fx, n: http_batch(fx, n, 2)),
            Scenario(
                f"{prefix}.http-single-xpartner-w2",
                backend,
                lambda fx, n: http_single(fx, n, 2, cross_partner=True),
            ),
        ]
    return found


SCENARIOS: list[Scenario] = _scenarios()


def scenario_names() -> list[str]:
    return [s.name for s in SCENARIOS]


def run(
    quick: bool = False, only: Sequence[str] | None = None, profile: bool = False
) -> list[dict[str, Any]]:
    """Run the selected scenarios; one dict per scenario (see bench.common.Result)."""
    sizes = QUICK if quick else FULL
    rows: list[dict[str, Any]] = []
    for backend in ("sqlite", "postgres"):
        selected = [s for s in SCENARIOS if s.backend == backend and matches(s.name, only)]
        if not selected:
            continue
        if backend == "postgres":
            reason = postgres_unavailable(postgres_dsn())
            if reason is not None:
                for scenario in selected:
                    rows.append(skipped(scenario.name, backend, reason))
                    print_result(rows[-1])
                continue
        with database(backend) as (url, scratch):
            fx = seed(backend, url, scratch, sizes, profile)
            try:
                for scenario in selected:
                    try:
                        row = scenario.run(fx, scenario.name).as_dict()
                    except Exception as exc:  # one broken scenario must not hide the others
                        row = skipped(
                            scenario.name, backend, f"failed: {type(exc).__name__}: {exc}"
                        )
                    rows.append(row)
                    print_result(row)
            finally:
                fx.engine.dispose()
    return rows


if __name__ == "__main__":
    from bench.__main__ import main_for

    main_for("ledger.")
