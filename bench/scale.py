"""Scale: how the fast path and settlement cost grow with the ledger (issue 8).

    python -m bench --only scale.            10^4 -> 10^6 transfers (--quick: -> 10^5)

One Corridor on the embedded defaults (SQLite file, embedded chain, in a temporary
folder), 20 partners, grown in levels:

    level   payment transfers in the ledger   customer wallets
    1e4     10,000                            1,000
    1e5     100,000                           10,000
    1e6     1,000,000 (full run only)         100,000

At each level the new wallets are added and funded (their deposits settled in a window of
their own, not measured), then the transfers that bring the ledger to the level are
posted, from a random wallet of one partner to a random wallet of any partner:

* fastpath: `Ledger.post_batch` of FILL_BATCH (5,000: two per window) across the level's
  wallets; throughput over the level's postings, p50/p99 per batch;
* settle: every 10,000 transfers (CORRIDOR_SETTLEMENT_MAX_TRANSFERS' default) the window is
  closed, built and settled on chain (bench/settlement.py's steps), so windows stay the
  size the service uses while the tables under them grow; p50/p99 per window, the split
  close/build/submit in the notes.

The same fast path on PostgreSQL (a fresh schema, no chain) at 1e4 only: it posts at
about half SQLite's speed, and growing it to 1e5 would add minutes to the run.
Targets (printed, not asserted): batch posting >= 10,000 transfers/s (issue 2) and
< 50 gas per settled transfer in windows of 10,000.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from bench.common import (
    CpuMeter,
    Result,
    matches,
    peak_rss_mb,
    print_result,
    reset_peak_rss,
    skipped,
)
from bench.settlement import (
    PARTICIPANTS,
    TARGET_GAS_PER_TRANSFER_MAX,
    LedgerWorld,
    WindowFigures,
)

# Two batches per window of WINDOW_TRANSFERS: windows of exactly the service's default
# size (per transfer, a batch of 5,000 costs about what one of 8,190 does).
FILL_BATCH = 5_000
WINDOW_TRANSFERS = 10_000
TARGET_BATCH_TPS = 10_000.0


@dataclass(frozen=True)
class Level:
    label: str
    transfers: int
    wallets: int


LEVELS = (
    Level("1e4", 10_000, 1_000),
    Level("1e5", 100_000, 10_000),
    Level("1e6", 1_000_000, 100_000),
)
LEVELS_QUICK = LEVELS[:2]
# PostgreSQL posts at about half SQLite's speed here: 1e5 would add minutes to the run.
POSTGRES_LEVELS = ("1e4",)
POSTGRES_LEVELS_QUICK = ("1e4",)
# A guard against a machine far slower than expected: a level projected (from the one
# before it, per transfer) to end after this many seconds of the module is not started.
BUDGET_S = float(os.environ.get("CORRIDOR_BENCH_SCALE_BUDGET_S", "1500"))


def scenario_names() -> list[str]:
    names = []
    for level in LEVELS:
        names += [f"scale.sqlite.fastpath-{level.label}", f"scale.sqlite.settle-{level.label}"]
    names += [f"scale.postgres.fastpath-{label}" for label in POSTGRES_LEVELS]
    return names


@dataclass
class Phase:
    """Postings (or windows) of one level, with this process's CPU and peak RSS."""

    transfers: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    windows: list[WindowFigures] = field(default_factory=list)

    def add_meter(self, meter: CpuMeter) -> None:
        self.cpu_s += meter.own_s
        self.other_cpu_s += meter.other_s or 0.0
        self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb() or 0.0)

    def record(self, result: Result) -> None:
        if result.transfers:
            result.cpu_ms_per_transfer = 1000 * self.cpu_s / result.transfers
        if result.elapsed_s > 0:
            result.other_cpu_pct = 100 * self.other_cpu_s / result.elapsed_s
        result.peak_rss_mb = self.peak_rss_mb or None


class Grower:
    """Grows one world level by level, settling every WINDOW_TRANSFERS if it has a chain."""

    def __init__(self, world: LedgerWorld) -> None:
        self.world = world
        self.open_transfers = 0  # payment transfers in the open window

    def add_wallets(self, wallets: int) -> float:
        started = time.perf_counter()
        world = self.world
        if not world.all_wallets:
            world.setup(wallets)
        else:
            world.add_wallets(wallets - len(world.all_wallets))
            if world.chain:
                # The deposits alone, so that measured windows hold payments only.
                assert self.open_transfers == 0
                world.settle_window()
                world.windows.pop()
        return time.perf_counter() - started

    def post(self, count: int, batch_size: int, phase: Phase, settled: Phase) -> None:
        """Post `count` transfers; settle each window when it reaches WINDOW_TRANSFERS."""
        world = self.world
        while count > 0:
            room = WINDOW_TRANSFERS - self.open_transfers if world.chain else count
            size = min(batch_size, count, room)
            reset_peak_rss()
            meter = CpuMeter()
            posted = world.post(size, size)
            meter.stop()
            phase.transfers += posted.transfers
            phase.elapsed_s += posted.elapsed_s
            phase.latencies_s += posted.latencies_s
            phase.add_meter(meter)
            count -= posted.transfers
            self.open_transfers += posted.transfers
            if world.chain and self.open_transfers >= WINDOW_TRANSFERS:
                self.settle(settled)

    def settle(self, settled: Phase) -> None:
        if self.open_transfers == 0:
            return
        figures = self.world.settle_window()
        self.open_transfers = 0
        settled.windows.append(figures)
        settled.transfers += figures.transfers
        settled.elapsed_s += figures.total_s
        settled.latencies_s.append(figures.total_s)
        settled.cpu_s += figures.cpu_s
        settled.other_cpu_s += figures.other_cpu_s or 0.0
        settled.peak_rss_mb = max(settled.peak_rss_mb, figures.peak_rss_mb or 0.0)


def _post_row(
    name: str, backend: str, level: Level, phase: Phase, batch: int, start: int, seed_s: float
) -> dict[str, Any]:
    result = Result(
        name=name,
        backend=backend,
        workload=(
            f"in-process Ledger.post_batch of {batch:,}, ledger at {start:,} -> "
            f"{start + phase.transfers:,} payment transfers, {level.wallets:,} wallets of "
            f"{PARTICIPANTS} partners (19 in 20 cross partners)"
        ),
        transfers=phase.transfers,
        elapsed_s=phase.elapsed_s,
        latencies_s=phase.latencies_s,
        latency_of=f"batch of {batch:,}",
        target=f">= {TARGET_BATCH_TPS:,.0f}/s",
        target_tps_min=TARGET_BATCH_TPS,
        notes=[f"wallets added and funded beforehand in {seed_s:.1f} s (not timed)"]
        if seed_s
        else [],
        extra={"level": level.label, "wallets": level.wallets},
    )
    phase.record(result)
    return result.as_dict()


def _settle_row(name: str, level: Level, settled: Phase) -> dict[str, Any]:
    windows = settled.windows
    gas_per = sum(w.gas_used for w in windows) / settled.transfers
    ledger_from = windows[0].ledger_transfers - windows[0].transfers
    result = Result(
        name=name,
        backend="sqlite+embedded",
        workload=(
            f"close -> build -> settleBatch receipt, {len(windows)} window(s) of "
            f"{WINDOW_TRANSFERS:,} while the ledger grows {ledger_from:,} -> "
            f"{windows[-1].ledger_transfers:,} transfers, {level.wallets:,} wallets: "
            f"{gas_per:,.1f} gas per settled transfer"
        ),
        transfers=settled.transfers,
        elapsed_s=settled.elapsed_s,
        latencies_s=settled.latencies_s,
        latency_of=f"window of {WINDOW_TRANSFERS:,}",
        target=f"< {TARGET_GAS_PER_TRANSFER_MAX:.0f} gas/transfer",
        notes=[
            f"per window (median): close {median(w.close_s for w in windows):.3f} s, build "
            f"{median(w.build_s for w in windows):.3f} s, chain submit "
            f"{median(w.submit_s for w in windows):.3f} s; last window: build "
            f"{windows[-1].build_s:.3f} s, {windows[-1].balance_leaves:,} balance leaves"
        ],
        extra={
            "level": level.label,
            "wallets": level.wallets,
            "build_s_median": round(median(w.build_s for w in windows), 4),
            "submit_s_median": round(median(w.submit_s for w in windows), 4),
            "gas_per_transfer": round(gas_per, 2),
        },
    )
    settled.record(result)
    row = result.as_dict()
    row["target_met"] = gas_per < TARGET_GAS_PER_TRANSFER_MAX
    return row


def grow(
    backend: str,
    world: LedgerWorld,
    levels: Sequence[Level],
    only: Sequence[str] | None,
) -> list[dict[str, Any]]:
    """Every level in turn; rows for the scenarios `only` selects (all of them are run:
    a level needs the ones before it)."""
    grower = Grower(world)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    per_transfer_s = 0.0
    for level in levels:
        spent_s = time.perf_counter() - started
        projected_s = spent_s + per_transfer_s * (level.transfers - world.posted)
        if projected_s > BUDGET_S:
            reason = (
                f"not run: projected to end {projected_s:,.0f} s into the module, over "
                f"CORRIDOR_BENCH_SCALE_BUDGET_S={BUDGET_S:,.0f} (a busy or slow machine?)"
            )
            for kind in ("fastpath", "settle"):
                name = f"scale.{backend}.{kind}-{level.label}"
                if matches(name, only) and (world.chain or kind == "fastpath"):
                    rows.append(skipped(name, backend, reason))
                    print_result(rows[-1])
            break
        level_started = time.perf_counter()
        level_from = world.posted
        seed_s = grower.add_wallets(level.wallets)
        start = world.posted
        fill, settled = Phase(), Phase()
        grower.post(level.transfers - world.posted, FILL_BATCH, fill, settled)
        if world.chain:
            grower.settle(settled)
        level_rows = [
            _post_row(
                f"scale.{backend}.fastpath-{level.label}",
                backend,
                level,
                fill,
                FILL_BATCH,
                start,
                seed_s,
            )
        ]
        if world.chain:
            level_rows.append(_settle_row(f"scale.{backend}.settle-{level.label}", level, settled))
        for row in level_rows:
            if matches(row["name"], only):
                rows.append(row)
                print_result(row)
        per_transfer_s = (time.perf_counter() - level_started) / (world.posted - level_from)
    return rows


def run(quick: bool = False, only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    levels = LEVELS_QUICK if quick else LEVELS
    rows: list[dict[str, Any]] = []
    sqlite_names = [
        f"scale.sqlite.{kind}-{level.label}" for level in levels for kind in ("fastpath", "settle")
    ]
    selected = [n for n in sqlite_names if matches(n, only)]
    if selected:
        # A level needs the levels before it: grow up to the last one selected.
        last = max(i for i, level in enumerate(levels) if any(level.label in n for n in selected))
        world = LedgerWorld("scale")
        try:
            rows += grow("sqlite", world, levels[: last + 1], only)
        except Exception as exc:  # one broken scenario must not hide the others
            rows.append(skipped("scale.sqlite", "sqlite", f"failed: {type(exc).__name__}: {exc}"))
            print_result(rows[-1])
        finally:
            world.destroy()
    pg_labels = POSTGRES_LEVELS_QUICK if quick else POSTGRES_LEVELS
    pg_names = [f"scale.postgres.fastpath-{label}" for label in pg_labels]
    if any(matches(n, only) for n in pg_names):
        rows += _postgres([level for level in levels if level.label in pg_labels], pg_names, only)
    return rows


def _postgres(
    levels: Sequence[Level], names: Sequence[str], only: Sequence[str] | None
) -> list[dict[str, Any]]:
    from bench.ledger import database, postgres_dsn, postgres_unavailable

    reason = postgres_unavailable(postgres_dsn())
    if reason is not None:
        rows = [skipped(n, "postgres", reason) for n in names if matches(n, only)]
        for row in rows:
            print_result(row)
        return rows
    last = max(i for i, level in enumerate(levels) if matches(names[i], only))
    with database("postgres") as (url, _):
        world = LedgerWorld("scale-postgres", database_url=url, chain=False)
        try:
            return grow("postgres", world, levels[: last + 1], only)
        except Exception as exc:
            row = skipped("scale.postgres", "postgres", f"failed: {type(exc).__name__}: {exc}")
            print_result(row)
            return [row]
        finally:
            world.destroy()


if __name__ == "__main__":
    from bench.__main__ import main_for

    main_for("scale.")
