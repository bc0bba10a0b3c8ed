"""Settlement: from a closed window to the chain receipt, by batch size (issue 8).

    python -m bench --only settlement.            these scenarios only
    python -m bench --only settlement. --profile  plus a pyinstrument profile of the
                                                  largest batch's build (bench/results)

One Corridor on the embedded defaults (a SQLite file and the in-process py-evm chain, in a
temporary folder): 20 partners, 100 customer wallets each, every partner prefunded on
chain and allowed to owe the others. Transfers go from a random wallet of one partner to a
random wallet of any partner (19 in 20 cross partners), so each window carries realistic
multilateral net positions (one per partner). For each batch size, windows of exactly that
many transfers are posted, then timed from the close to the settleBatch receipt:

* close: `settlement.batches.close_window` (freeze the window, open the next);
* build: `settlement.batches.build_batch` (read the window's transfers and touched
  balances, build both Merkle trees, the net positions and the batch hash, persist them);
* submit: `Settler.settle_due` (the settleBatch transaction through the chain gateway,
  mined, its receipt, the settled state and events recorded, chain events indexed).

Figures: transfers settled per second (close to receipt), wall time per window (p50/p99
over the windows of one size), gas per settled transfer. Target: < 50 gas per settled
transfer at 10,000 per batch (one ERC-20 transfer costs ~50,000 gas).

Generating the ledger rows: `Ledger.post_batch` of 8,190 transfers (the largest batch),
each from one partner's wallets. Wallets are inserted in bulk with the row
`Ledger.create_wallet` writes (no aliases): one by one they cost a transaction each.

The ledger built here is shared with bench/audit.py in the same process (`shared_world`):
whichever of the two runs first posts and settles the windows, the other reuses them (the
figures were taken when they were settled, in this process).
"""

from __future__ import annotations

import atexit
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import insert

from api.context import Corridor
from api.settings import Settings
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
from settlement.batches import CloseReason, build_batch, close_window
from settlement.chain import ChainConfig
from settlement.ledger.model import (
    BATCH_TRANSFERS_MAX,
    BatchOutcome,
    TransferKind,
    TransferRequest,
    WalletKind,
)
from settlement.ledger.service import new_id
from settlement.ledger.tables import wallets as wallets_table

PARTICIPANTS = 20
WALLETS_PER_PARTICIPANT = 100
CURRENCY = "USD"
NET_DEBIT_CAP_MINOR = 10**15
PREFUNDING_MINOR = 10**13  # on chain, per partner: no net position can exhaust it
OPENING_BALANCE_MINOR = 10**12  # per customer wallet: no benchmark run can empty one
TRANSFER_AMOUNT_MINOR_MAX = 10_000
GENERATE_BATCH = BATCH_TRANSFERS_MAX
SEED_BATCH = BATCH_TRANSFERS_MAX
WALLET_INSERT_CHUNK = 5_000
SCRYPT_N_BENCH = 2**10  # keystore cost is not what is measured here
PROFILE_INTERVAL_S = 0.001

# Batch sizes, and how many windows of each are settled (p50/p99 over them).
WINDOW_SIZES = (100, 1_000, 10_000, 100_000)
WINDOW_SIZES_QUICK = (100, 1_000, 10_000)
REPEATS = {100: 5, 1_000: 3, 10_000: 2, 100_000: 1}
REPEATS_QUICK = {100: 3, 1_000: 2, 10_000: 1}
TARGET_SIZE = 10_000
TARGET_GAS_PER_TRANSFER_MAX = 50.0
ERC20_TRANSFER_GAS = 50_000  # approximate: what one ERC-20 transfer per payment would cost


# ------------------------------------------------------------------------------- world


@dataclass(frozen=True)
class WindowFigures:
    """One settled window: what it held and how long each step took."""

    number: int
    transfers: int
    close_s: float
    build_s: float
    submit_s: float
    gas_used: int
    positions: int
    balance_leaves: int
    peak_rss_mb: float | None
    ledger_transfers: int  # payment transfers in the whole ledger when it settled
    wallets: int
    cpu_s: float  # this process's CPU during the window's settlement
    other_cpu_s: float | None  # every other process's CPU meanwhile

    @property
    def total_s(self) -> float:
        return self.close_s + self.build_s + self.submit_s

    @property
    def gas_per_transfer(self) -> float:
        return self.gas_used / self.transfers


@dataclass
class Posted:
    """Transfers posted by one `LedgerWorld.post` call."""

    transfers: int = 0
    elapsed_s: float = 0.0  # inside Ledger.post_batch only
    latencies_s: list[float] = field(default_factory=list)  # one per batch


class LedgerWorld:
    """A Corridor in a temporary folder: partners, funded wallets, transfers, settlement.

    The Corridor (database engine, chain gateway) is opened on first use and can be
    released between scenarios (`release`) to give its memory back; the files stay until
    `destroy`.
    """

    def __init__(
        self,
        label: str,
        participants: int = PARTICIPANTS,
        seed: int = 8,
        database_url: str | None = None,
        chain: bool = True,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix=f"corridor-bench-{label}-")
        self.data_dir = Path(self._tmp.name)
        self.database_url = database_url
        self.chain = chain
        self.participants = [f"bank-{i:02d}" for i in range(participants)]
        self.wallets_of: dict[str, list[str]] = {p: [] for p in self.participants}
        self.all_wallets: list[str] = []
        self.rng = random.Random(seed)
        self.posted = 0  # payment transfers (seed deposits not counted)
        self.windows: list[WindowFigures] = []
        self.by_size: dict[int, list[WindowFigures]] = {}
        self._corridor: Corridor | None = None
        self._ready = False

    # -- lifetime

    @property
    def corridor(self) -> Corridor:
        if self._corridor is None:
            settings = Settings(data_dir=self.data_dir, database_url=self.database_url)
            chain = ChainConfig(data_dir=self.data_dir, keystore_scrypt_n=SCRYPT_N_BENCH)
            self._corridor = Corridor.open(settings, chain_config=chain)
        return self._corridor

    def release(self) -> None:
        """Close the database and the chain (their memory goes); the files stay."""
        if self._corridor is not None:
            self._corridor.close()
            self._corridor = None

    def destroy(self) -> None:
        self.release()
        self._tmp.cleanup()

    # -- seeding

    def setup(self, wallets: int) -> None:
        """Partners with net debit caps (prefunded on chain if it settles) and wallets."""
        if self._ready:
            return
        ledger = self.corridor.ledger
        for participant in self.participants:
            ledger.create_participant(f"Partner {participant}", participant_id=participant)
            ledger.set_net_debit_cap(participant, CURRENCY, NET_DEBIT_CAP_MINOR)
        if self.chain:
            settler = self.corridor.settler()
            for participant in self.participants:
                settler.fund(participant, CURRENCY, PREFUNDING_MINOR, f"prefund-{participant}")
        self.add_wallets(wallets)
        if self.chain:
            self.settle_window()  # the seed deposits: measured windows hold payments only
            self.windows.clear()
        self._ready = True

    def add_wallets(self, count: int) -> None:
        """`count` more customer wallets, spread over the partners, each funded."""
        now = self.corridor.clock()
        rows = []
        new: dict[str, list[str]] = {p: [] for p in self.participants}
        start = len(self.all_wallets)
        for index in range(start, start + count):
            participant = self.participants[index % len(self.participants)]
            wallet_id = new_id("w")
            rows.append(
                {
                    "id": wallet_id,
                    "participant_id": participant,
                    "kind": WalletKind.CUSTOMER.value,
                    "kyc_tier": "enhanced",  # no limits: limits are not what is measured
                    "label": None,
                    "created_at_us": now,
                }
            )
            new[participant].append(wallet_id)
        with self.corridor.engine.begin() as conn:
            for chunk in range(0, len(rows), WALLET_INSERT_CHUNK):
                conn.execute(insert(wallets_table), rows[chunk : chunk + WALLET_INSERT_CHUNK])
        ledger = self.corridor.ledger
        for participant, wallet_ids in new.items():
            for chunk in range(0, len(wallet_ids), SEED_BATCH):
                deposits = [
                    TransferRequest(
                        client_id=f"seed-{wallet_id}",
                        from_wallet=f"{participant}.funding",
                        to_wallet=wallet_id,
                        currency=CURRENCY,
                        amount_minor=OPENING_BALANCE_MINOR,
                        kind=TransferKind.DEPOSIT,
                    )
                    for wallet_id in wallet_ids[chunk : chunk + SEED_BATCH]
                ]
                results = ledger.post_batch(participant, deposits)
                assert all(r.outcome is BatchOutcome.CREATED for r in results), results[0]
            self.wallets_of[participant].extend(wallet_ids)
            self.all_wallets.extend(wallet_ids)

    # -- traffic

    def requests(self, count: int) -> tuple[str, list[TransferRequest]]:
        """One partner's batch: from its wallets to random wallets of any partner."""
        rng = self.rng
        participant = rng.choice(self.participants)
        senders = self.wallets_of[participant]
        everyone = self.all_wallets
        found = []
        for _ in range(count):
            sender = rng.choice(senders)
            recipient = rng.choice(everyone)
            while recipient == sender:
                recipient = rng.choice(everyone)
            self.posted += 1
            found.append(
                TransferRequest(
                    client_id=f"t-{self.posted}",
                    from_wallet=sender,
                    to_wallet=recipient,
                    currency=CURRENCY,
                    amount_minor=rng.randint(1, TRANSFER_AMOUNT_MINOR_MAX),
                )
            )
        return participant, found

    def post(self, count: int, batch_size: int = GENERATE_BATCH) -> Posted:
        """Post `count` transfers in batches of `batch_size`; only post_batch is timed."""
        ledger = self.corridor.ledger
        posted = Posted()
        while posted.transfers < count:
            participant, batch = self.requests(min(batch_size, count - posted.transfers))
            started = time.perf_counter()
            results = ledger.post_batch(participant, batch)
            latency = time.perf_counter() - started
            failed = [r for r in results if r.outcome is not BatchOutcome.CREATED]
            assert not failed, f"{len(failed)} transfers refused, first: {failed[0].error}"
            posted.transfers += len(batch)
            posted.elapsed_s += latency
            posted.latencies_s.append(latency)
        return posted

    # -- settlement

    def settle_window(self, profile_as: str | None = None) -> WindowFigures:
        """Close the open window, build its batch and settle it on chain; each step timed."""
        corridor = self.corridor
        settler = corridor.settler()
        reset_peak_rss()
        meter = CpuMeter()
        started = time.perf_counter()
        window = close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND)
        assert window is not None, "settle_window needs transfers in the open window"
        closed = time.perf_counter()
        with _profiled(profile_as):
            export = build_batch(corridor.engine, window.number)
        built = time.perf_counter()
        outcome = settler.settle_due()
        done = time.perf_counter()
        meter.stop()
        assert outcome.failed is None, f"window {window.number}: {outcome.failed}"
        settled = outcome.settled[-1]
        assert settled.number == window.number and settled.gas_used is not None
        figures = WindowFigures(
            number=window.number,
            transfers=export.transfer_count,
            close_s=closed - started,
            build_s=built - closed,
            submit_s=done - built,
            gas_used=settled.gas_used,
            positions=len(export.net_positions),
            balance_leaves=len(export.balances_dump.get("values", ())),
            peak_rss_mb=peak_rss_mb(),
            ledger_transfers=self.posted,
            wallets=len(self.all_wallets),
            cpu_s=meter.own_s,
            other_cpu_s=meter.other_s,
        )
        self.windows.append(figures)
        return figures

    def settled_windows(
        self, size: int, count: int, profile_as: str | None = None
    ) -> list[WindowFigures]:
        """At least `count` settled windows of exactly `size` transfers (made if missing)."""
        found = self.by_size.setdefault(size, [])
        while len(found) < count:
            posted = self.post(size)
            figures = self.settle_window(profile_as)
            found.append(figures)
            if size >= 10_000:
                print(
                    f"  posted {size:,} transfers at {size / posted.elapsed_s:,.0f}/s "
                    f"(batches of {GENERATE_BATCH:,}); window {figures.number} settled in "
                    f"{figures.total_s:.2f} s",
                    flush=True,
                )
        return found[:count]


@contextmanager
def _profiled(name: str | None) -> Iterator[None]:
    """With a name: a pyinstrument profile of the block into bench/results (if installed)."""
    if name is None:
        yield
        return
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("  --profile needs pyinstrument (pip install pyinstrument); not profiled")
        yield
        return
    profiler = Profiler(interval=PROFILE_INTERVAL_S)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"profile-{name}.txt"
        path.write_text(profiler.output_text(unicode=True, show_all=False), encoding="utf-8")
        (RESULTS_DIR / f"profile-{name}.html").write_text(profiler.output_html(), "utf-8")
        print(f"  profiled (timings inflated): {path}", flush=True)


_SHARED: dict[str, LedgerWorld] = {}


def shared_world() -> LedgerWorld:
    """The settlement ledger of this process (built on first use, removed at exit)."""
    world = _SHARED.get("settlement")
    if world is None:
        started = time.perf_counter()
        world = _SHARED["settlement"] = LedgerWorld("settlement")
        world.setup(PARTICIPANTS * WALLETS_PER_PARTICIPANT)
        print(
            f"  seeded {PARTICIPANTS} partners, {len(world.all_wallets):,} funded wallets, "
            f"prefunded on chain, in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
    return world


@atexit.register
def _destroy_shared() -> None:
    for world in _SHARED.values():
        world.destroy()
    _SHARED.clear()


# ---------------------------------------------------------------------------- scenario


def scenario_name(size: int) -> str:
    return f"settlement.embedded.batch-{size}"


def scenario_names() -> list[str]:
    return [scenario_name(size) for size in WINDOW_SIZES]


def window_row(name: str, size: int, windows: Sequence[WindowFigures]) -> dict[str, Any]:
    """A table row for windows of one size: close-to-receipt throughput, gas, the split."""
    elapsed = sum(w.total_s for w in windows)
    transfers = sum(w.transfers for w in windows)
    gas_per = sum(w.gas_used for w in windows) / transfers
    close_s = median(w.close_s for w in windows)
    build_s = median(w.build_s for w in windows)
    submit_s = median(w.submit_s for w in windows)
    rss = [w.peak_rss_mb for w in windows if w.peak_rss_mb is not None]
    first = windows[0]
    result = Result(
        name=name,
        backend="sqlite+embedded",
        workload=(
            f"close -> build -> settleBatch receipt, {len(windows)} window(s) of {size:,} "
            f"transfers, {PARTICIPANTS} partners, {first.wallets:,} wallets, "
            f"{first.positions} net positions, "
            f"{first.balance_leaves:,} balance leaves: {gas_per:,.1f} gas per settled transfer "
            f"(one ERC-20 transfer: ~{ERC20_TRANSFER_GAS:,})"
        ),
        transfers=transfers,
        elapsed_s=elapsed,
        latencies_s=[w.total_s for w in windows],
        latency_of=f"window of {size:,}",
        peak_rss_mb=max(rss) if rss else None,
        notes=[
            f"per window (median): close {close_s:.3f} s, build (trees) {build_s:.3f} s, "
            f"chain submit {submit_s:.3f} s; settleBatch {first.gas_used:,} gas",
        ],
        extra={
            "batch_size": size,
            "windows": len(windows),
            "close_s": round(close_s, 4),
            "build_s": round(build_s, 4),
            "submit_s": round(submit_s, 4),
            "gas_used": first.gas_used,
            "gas_per_transfer": round(gas_per, 2),
            "positions": first.positions,
            "balance_leaves": first.balance_leaves,
        },
    )
    if size == TARGET_SIZE:
        result.target = f"< {TARGET_GAS_PER_TRANSFER_MAX:.0f} gas/transfer"
    result.cpu_ms_per_transfer = 1000 * sum(w.cpu_s for w in windows) / transfers
    others = [w.other_cpu_s for w in windows if w.other_cpu_s is not None]
    if others and elapsed > 0:
        result.other_cpu_pct = 100 * sum(others) / elapsed
    row = result.as_dict()
    if size == TARGET_SIZE:
        row["target_met"] = gas_per < TARGET_GAS_PER_TRANSFER_MAX
    return row


def run(
    quick: bool = False, only: Sequence[str] | None = None, profile: bool = False
) -> list[dict[str, Any]]:
    sizes = WINDOW_SIZES_QUICK if quick else WINDOW_SIZES
    repeats = REPEATS_QUICK if quick else REPEATS
    selected = [size for size in sizes if matches(scenario_name(size), only)]
    rows: list[dict[str, Any]] = []
    if not selected:
        return rows
    world = shared_world()
    try:
        for size in selected:
            name = scenario_name(size)
            profile_as = f"{name}.build" if profile and size == max(selected) else None
            try:
                windows = world.settled_windows(size, repeats[size], profile_as)
                row = window_row(name, size, windows)
            except Exception as exc:  # one broken scenario must not hide the others
                row = skipped(name, "sqlite+embedded", f"failed: {type(exc).__name__}: {exc}")
            rows.append(row)
            print_result(row)
    finally:
        world.release()
    return rows


if __name__ == "__main__":
    from bench.__main__ import main_for

    main_for("settlement.")
