"""The baseline: one chain transaction per payment, against Corridor's fast path (issue 8).

    python -m bench --only naive.

The "one token transfer per payment" design, built from what the settlement contract
offers: every payment is its own `settleBatch` with two net positions (the payer's
partner -amount, the payee's +amount), i.e. a Corridor batch of one transfer (the roots of
a one-leaf transfers tree and a two-leaf balances tree). That is the contract's closest
analogue of a token transfer: one transaction that moves value from one registered
participant's balance to another's, checks the payer's balance and emits an event. A
`deposit` or `withdraw` moves one balance only (a payment would need both, two
transactions); its gas is printed beside for comparison.

Each payment is signed locally, sent through the same chain gateway Corridor uses, mined
in its own block and waited for (receipt), one after the other:

* naive.embedded: the embedded py-evm chain (persisted, events indexed as Corridor does);
* naive.anvil: anvil over JSON-RPC on loopback (when installed: contracts/node_modules).

Figures: payments per second, p50/p99 latency per payment, gas per payment.

Corridor's fast path is measured in the same run for the ratio: in-process
`Ledger.post_batch` on SQLite, the workload of bench/ledger.py's
`ledger.sqlite.inproc-batch8190` and `inproc-batch100` (its functions, its sizes); the
faster of the two is Corridor's figure. Target: >= 100x the naive design's best.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
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
from node_config.anvil import AnvilNode, find_anvil
from settlement.audit.leaves import (
    BalanceLeaf,
    TransferLeaf,
    build_balances_tree,
    build_transfers_tree,
)
from settlement.chain import BatchSubmission, ChainConfig, NetPosition, open_gateway
from settlement.chain.web3_gateway import Web3ChainGateway
from settlement.ledger.model import derive_settlement_address

PARTICIPANTS = 20
CURRENCY = "USD"
PREFUNDING_MINOR = 10**13
PAYMENT_AMOUNT_MINOR_MAX = 10_000
PAYMENTS = 300
PAYMENTS_QUICK = 60
TIME_CAP_S = 15.0
SCRYPT_N_BENCH = 2**10  # keystore cost is not what is measured here
OPERATOR_FUNDS_WEI = 10**24
TARGET_RATIO = 100.0
ERC20_TRANSFER_GAS = 50_000

NAIVE_SCENARIOS = ("naive.embedded.tx-per-payment", "naive.anvil.tx-per-payment")
FASTPATH_SCENARIO = "naive.corridor-fastpath"
WORKLOAD = "settleBatch of 2 positions per payment (a batch of one transfer)"


def scenario_names() -> list[str]:
    return [*NAIVE_SCENARIOS, FASTPATH_SCENARIO]


@contextmanager
def _gateway(anvil: AnvilNode | None) -> Iterator[Web3ChainGateway]:
    with tempfile.TemporaryDirectory(prefix="corridor-bench-naive-") as tmp:
        config = ChainConfig(
            transport="rpc" if anvil else "embedded",
            data_dir=Path(tmp),
            rpc_urls=(anvil.url,) if anvil else (),
            keystore_scrypt_n=SCRYPT_N_BENCH,
            poll_interval_s=0.005,
        )
        gateway = open_gateway(config)
        try:
            if anvil is not None:
                anvil.set_balance(gateway.operator_address, OPERATOR_FUNDS_WEI)
            gateway.ensure_deployed()
            yield gateway
        finally:
            gateway.close()


def _submission(
    number: int,
    prev_hash: bytes,
    seq: int,
    payer: tuple[str, str],
    payee: tuple[str, str],
    amount_minor: int,
) -> BatchSubmission:
    """A Corridor batch of one transfer: its roots and its two net positions."""
    (payer_id, payer_address), (payee_id, payee_address) = payer, payee
    posted_at_ms = time.time_ns() // 1_000_000
    leaf = TransferLeaf(
        seq=seq,
        transfer_id=f"tr_{seq}",
        debit_participant=payer_id,
        debit_wallet=f"{payer_id}.w",
        credit_participant=payee_id,
        credit_wallet=f"{payee_id}.w",
        currency=CURRENCY,
        amount_minor=amount_minor,
        posted_at_ms=posted_at_ms,
    )
    balances = [
        BalanceLeaf(payer_id, f"{payer_id}.w", CURRENCY, 10**9 - amount_minor, number),
        BalanceLeaf(payee_id, f"{payee_id}.w", CURRENCY, 10**9 + amount_minor, number),
    ]
    return BatchSubmission(
        number=number,
        transfers_root=bytes.fromhex(build_transfers_tree([leaf]).root[2:]),
        balances_root=bytes.fromhex(build_balances_tree(balances).root[2:]),
        prev_batch_hash=prev_hash,
        transfer_count=1,
        positions=(
            NetPosition(payer_address, CURRENCY, -amount_minor),
            NetPosition(payee_address, CURRENCY, amount_minor),
        ),
    )


def naive_payments(name: str, payments: int, anvil: AnvilNode | None) -> Result:
    """`payments` payments, each its own settleBatch transaction, one after the other."""
    with _gateway(anvil) as gateway:
        ids = [f"bank-{i:02d}" for i in range(PARTICIPANTS)]
        partners = [(pid, derive_settlement_address(pid)) for pid in ids]
        for _, address in partners:
            gateway.register_participant(address)
            gateway.fund(address, CURRENCY, PREFUNDING_MINOR)
        deposit_gas = gateway.fund(partners[0][1], CURRENCY, 1).gas_used  # steady state
        rng = random.Random(5)
        number = gateway.last_batch_number()
        prev_hash = gateway.last_batch_hash()
        latencies: list[float] = []
        gas: list[int] = []
        reset_peak_rss()
        meter = CpuMeter()
        started = time.perf_counter()
        deadline = started + TIME_CAP_S
        for seq in range(1, payments + 1):
            begun = time.perf_counter()
            payer, payee = rng.sample(partners, 2)
            number += 1
            submission = _submission(
                number,
                prev_hash,
                seq,
                payer,
                payee,
                rng.randint(1, PAYMENT_AMOUNT_MINOR_MAX),
            )
            receipt = gateway.settle_batch(submission)
            ended = time.perf_counter()
            prev_hash = submission.batch_hash
            latencies.append(ended - begun)
            gas.append(receipt.gas_used)
            if ended > deadline:
                break
        elapsed = time.perf_counter() - started
        meter.stop()
        settled = gateway.last_batch_number() - (number - len(latencies))
    gas_per = sum(gas) / len(gas)
    transport = "anvil over JSON-RPC (loopback)" if anvil else "embedded py-evm chain"
    result = Result(
        name=name,
        backend="rpc" if anvil else "embedded",
        workload=(
            f"{WORKLOAD}, sequential, signed locally, one block each, {transport}: "
            f"{gas_per:,.0f} gas per payment"
        ),
        transfers=len(latencies),
        elapsed_s=elapsed,
        latencies_s=latencies,
        latency_of="payment (tx receipt)",
        peak_rss_mb=peak_rss_mb(),
        errors=len(latencies) - settled,
        notes=[
            f"gas per payment {gas_per:,.0f} (one ERC-20 transfer: ~{ERC20_TRANSFER_GAS:,}); "
            f"a one-sided deposit costs {deposit_gas:,} gas (a payment would need two)",
        ],
        extra={"gas_per_payment": round(gas_per), "deposit_gas": deposit_gas},
    )
    meter.record(result)
    if anvil is not None:
        result.notes.append("peak RSS and CPU are this process's only (anvil not included)")
    return result


def corridor_fastpath(quick: bool) -> list[Result]:
    """bench/ledger.py's in-process batch posting on SQLite, same functions and sizes."""
    from bench.ledger import BATCH_SIZE_MAX, FULL, QUICK, database, inproc_batch, seed

    sizes = QUICK if quick else FULL
    with database("sqlite") as (url, scratch):
        fx = seed("sqlite", url, scratch, sizes, profile=False)
        try:
            return [
                inproc_batch(fx, f"{FASTPATH_SCENARIO}-8190", BATCH_SIZE_MAX, sizes.batches_8190),
                inproc_batch(fx, f"{FASTPATH_SCENARIO}-100", 100, sizes.batches_100),
            ]
        finally:
            fx.engine.dispose()


def ratio_row(fast: Sequence[Result], naive: Sequence[dict[str, Any]]) -> dict[str, Any]:
    best = max(fast, key=lambda r: r.throughput_tps)
    measured = [r for r in naive if r.get("throughput_tps")]
    baseline = max(measured, key=lambda r: float(r["throughput_tps"]))
    baseline_tps = float(baseline["throughput_tps"])
    ratio = best.throughput_tps / baseline_tps
    others = ", ".join(
        f"{r.latency_of.removeprefix('batch of ')}-item batches {r.throughput_tps:,.0f}/s"
        for r in fast
    )
    best.name = FASTPATH_SCENARIO
    best.workload = (
        f"Corridor's fast path ({best.workload}) = {ratio:,.0f}x the naive design's best "
        f"({baseline['name']}: {baseline_tps:,.1f} payments/s)"
    )
    best.target = f">= {TARGET_RATIO:.0f}x naive"
    best.target_tps_min = TARGET_RATIO * baseline_tps
    best.notes.insert(0, f"fast path measured: {others}; ratio {ratio:,.0f}x")
    best.extra.update(ratio=round(ratio, 1), naive_tps=baseline_tps)
    return best.as_dict()


def run(quick: bool = False, only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    payments = PAYMENTS_QUICK if quick else PAYMENTS
    want_ratio = matches(FASTPATH_SCENARIO, only)
    rows: list[dict[str, Any]] = []
    naive_rows: list[dict[str, Any]] = []
    for name in NAIVE_SCENARIOS:
        # The ratio needs the naive figures: measure them even when only it is asked.
        if not (matches(name, only) or want_ratio):
            continue
        backend = "rpc" if ".anvil." in name else "embedded"
        try:
            if backend == "rpc":
                if find_anvil() is None:
                    row = skipped(name, backend, "anvil not installed (npm ci in contracts/)")
                else:
                    with AnvilNode.start() as anvil:
                        row = naive_payments(name, payments, anvil).as_dict()
            else:
                row = naive_payments(name, payments, None).as_dict()
        except Exception as exc:  # one broken scenario must not hide the others
            row = skipped(name, backend, f"failed: {type(exc).__name__}: {exc}")
        naive_rows.append(row)
        if matches(name, only):
            rows.append(row)
            print_result(row)
    if want_ratio:
        try:
            if not any(r.get("throughput_tps") for r in naive_rows):
                raise RuntimeError("no naive figure to compare with")
            row = ratio_row(corridor_fastpath(quick), naive_rows)
        except Exception as exc:
            row = skipped(FASTPATH_SCENARIO, "sqlite", f"failed: {type(exc).__name__}: {exc}")
        rows.append(row)
        print_result(row)
    return rows


if __name__ == "__main__":
    from bench.__main__ import main_for

    main_for("naive.")
