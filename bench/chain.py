"""The chain: gas of `settleBatch` by number of net positions, and transactions/s.

    python -m bench.chain            prints the table
    python -m bench.chain --quick    fewer transactions
    python -m bench                  runs it with the other scenarios

Gas: a fresh embedded chain; participants registered and funded in USD first, so every
position updates an existing balance (the steady state: no zero-to-non-zero storage
writes). Half of the positions pay, half receive; they sum to zero. Gas is deterministic:
the same on anvil, which runs the same bytecode and fork (Prague).

Throughput: deposits (a storage write, an event) one after the other through the gateway,
each signed locally, mined in its own block, persisted (embedded: SQLite commit per block)
and, unless noted, indexed into the event tables. On anvil when it is installed
(contracts/node_modules), over JSON-RPC on loopback, for comparison.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_account import Account

from bench.common import Result, print_result, skipped
from node_config.anvil import AnvilNode, find_anvil
from settlement.chain import BatchSubmission, ChainConfig, NetPosition, open_gateway
from settlement.chain.web3_gateway import Web3ChainGateway

POSITION_COUNTS = (2, 10, 100)
TRANSACTIONS = 300
TRANSACTIONS_QUICK = 60
SCRYPT_N_BENCH = 2**10  # keystore cost is not what is measured here
OPERATOR_FUNDS_WEI = 10**24


@contextmanager
def _gateway(
    transport: str, *, index_events: bool = True, anvil: AnvilNode | None = None
) -> Iterator[Web3ChainGateway]:
    with tempfile.TemporaryDirectory(prefix="corridor-bench-chain-") as tmp:
        config = ChainConfig(
            transport=transport,  # type: ignore[arg-type]
            data_dir=Path(tmp),
            rpc_urls=(anvil.url,) if anvil else (),
            keystore_scrypt_n=SCRYPT_N_BENCH,
            index_events=index_events,
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


def settle_gas(counts: tuple[int, ...] = POSITION_COUNTS) -> list[tuple[int, int]]:
    """(positions, gas used by settleBatch) on a fresh embedded chain."""
    results = []
    with _gateway("embedded", index_events=False) as gateway:
        participants = [Account.create().address for _ in range(max(counts))]
        for p in participants:
            gateway.register_participant(p)
            gateway.fund(p, "USD", 1_000_000_00)
        for count in counts:
            positions = tuple(
                NetPosition(p, "USD", 100 if i % 2 else -100)
                for i, p in enumerate(participants[:count])
            )
            submission = BatchSubmission(
                number=gateway.last_batch_number() + 1,
                transfers_root=os.urandom(32),
                balances_root=os.urandom(32),
                prev_batch_hash=gateway.last_batch_hash(),
                transfer_count=count * 10,
                positions=positions,
            )
            results.append((count, gateway.settle_batch(submission).gas_used))
    return results


def throughput(gateway: Web3ChainGateway, transactions: int) -> tuple[float, list[float]]:
    participant = Account.create().address
    gateway.register_participant(participant)
    latencies = []
    started = time.perf_counter()
    for _ in range(transactions):
        begun = time.perf_counter()
        gateway.fund(participant, "USD", 1)
        latencies.append(time.perf_counter() - begun)
    return time.perf_counter() - started, latencies


def _throughput_row(
    name: str, backend: str, workload: str, transactions: int, **gateway_options: Any
) -> dict[str, Any]:
    with _gateway(backend, **gateway_options) as gateway:
        elapsed, latencies = throughput(gateway, transactions)
    result = Result(
        name=name,
        backend=backend,
        workload=workload,
        transfers=transactions,
        elapsed_s=elapsed,
        latencies_s=latencies,
        latency_of="transaction",
    )
    return result.as_dict()


def run(
    quick: bool = False, position_counts: tuple[int, ...] = POSITION_COUNTS
) -> list[dict[str, Any]]:
    """Rows for `python -m bench` (gas rows carry `gas_used` and `positions`)."""
    transactions = TRANSACTIONS_QUICK if quick else TRANSACTIONS
    rows: list[dict[str, Any]] = []
    for count, gas in settle_gas(position_counts):
        row = {
            "name": f"chain.settle_gas.{count}",
            "backend": "embedded",
            "workload": f"settleBatch, {count} positions: {gas:,} gas",
            "positions": count,
            "gas_used": gas,
        }
        rows.append(row)
        print(f"  settleBatch with {count:>3} positions: {gas:>9,} gas", flush=True)
    scenarios: list[tuple[str, str, str, dict[str, Any]]] = [
        ("chain.tx.embedded", "embedded", "deposit, indexed", {}),
        ("chain.tx.embedded_noindex", "embedded", "deposit, not indexed", {"index_events": False}),
    ]
    for name, backend, workload, options in scenarios:
        row = _throughput_row(name, backend, workload, transactions, **options)
        print_result(row)
        rows.append(row)
    if find_anvil() is None:
        rows.append(skipped("chain.tx.anvil", "rpc", "anvil not installed (npm ci in contracts/)"))
    else:
        with AnvilNode.start() as anvil:
            row = _throughput_row(
                "chain.tx.anvil", "rpc", "deposit, indexed, JSON-RPC", transactions, anvil=anvil
            )
        print_result(row)
        rows.append(row)
    return rows


def format_report(rows: list[dict[str, Any]]) -> str:
    lines = [
        "settleBatch gas (embedded chain, Prague; same bytecode on any node)",
        f"{'positions':>9}  {'gas used':>10}  {'gas/position':>12}",
    ]
    for row in rows:
        if "gas_used" in row:
            per = row["gas_used"] / row["positions"]
            lines.append(f"{row['positions']:>9}  {row['gas_used']:>10,}  {per:>12,.0f}")
    lines += [
        "",
        "transactions/s (one transaction per block, signed locally)",
        f"{'scenario':<28}  {'workload':<28}  {'tx':>5}  {'tx/s':>7}  {'p50 ms':>7}  {'p99 ms':>7}",
    ]
    for row in rows:
        if row.get("skipped"):
            lines.append(f"{row['name']:<28}  skipped: {row['skipped']}")
        elif "throughput_tps" in row:
            lines.append(
                f"{row['name']:<28}  {row['workload']:<28}  {row['transfers']:>5}  "
                f"{row['throughput_tps']:>7.1f}  {row['p50_ms']:>7.2f}  {row['p99_ms']:>7.2f}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer transactions")
    parser.add_argument(
        "--positions",
        default=",".join(str(c) for c in POSITION_COUNTS),
        help="comma-separated position counts to measure (up to POSITIONS_MAX, 1000)",
    )
    args = parser.parse_args()
    counts = tuple(int(c) for c in args.positions.split(","))
    print(format_report(run(quick=args.quick, position_counts=counts)))


if __name__ == "__main__":
    main()
