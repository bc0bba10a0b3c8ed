"""Audit: Merkle proofs generated and verified per second, and the auditor's full
re-verification of a settled 100,000-transfer batch (issue 8).

    python -m bench --only audit.

The settled batch is the largest window of bench/settlement.py's ledger (100,000 transfers;
10,000 with --quick), shared with it in the same process: 20 partners, 2,000 wallets, a
SQLite file and the embedded chain. A random sample of the batch's transfers is proven:

* generate: a transfer's proof from the batch rebuilt from the ledger and loaded once (the
  cached tree `/v1/audit/transfers/{id}/proof` and `corridor audit proof` use:
  `api.routers.audit.settled_batch`), `get_proof` and the `TransferProof` document; the
  first proof of the batch pays for the rebuild, reported apart;
* verify (Python): `settlement.audit.verify.verify_transfer_proof` against the batch as the
  chain records it (a `ChainBatch` read from the contract);
* verify (contract): the settlement contract's `verifyTransfer` view through the gateway
  (an `eth_call` on the embedded chain);
* re-verification: the batch exported (`corridor audit export`: three files, written apart
  from the timing), then what `corridor verify --data-dir DIR --contract ADDR EXPORT` does:
  the chain opened read-only, the batch (and the one before, for the link) read from the
  chain, `verify_export_dirs` over the export. Target: < 10 s for 100,000 transfers.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from api.cli_settlement import open_auditor_gateway
from api.routers.audit import settled_batch, stamped_export
from bench.common import (
    CpuMeter,
    Result,
    matches,
    peak_rss_mb,
    print_result,
    reset_peak_rss,
    skipped,
)
from bench.settlement import LedgerWorld, shared_world
from settlement.audit.chain_reader import read_chain_batches
from settlement.audit.export import TransferProof, write_batch_export
from settlement.audit.verify import ChainBatch, verify_export_dirs, verify_transfer_proof
from settlement.batches import get_window
from settlement.chain import Web3ChainGateway
from settlement.db import read_transaction
from settlement.ledger.tables import transfers

BATCH_TRANSFERS = 100_000
BATCH_TRANSFERS_QUICK = 10_000
PROOFS = 5_000
PROOFS_QUICK = 1_000
CONTRACT_PROOFS = 1_000
CONTRACT_PROOFS_QUICK = 200
TIME_CAP_S = 15.0
TARGET_VERIFY_S = 10.0
BACKEND = "sqlite+embedded"

SCENARIOS = (
    "audit.proofs.generate",
    "audit.proofs.verify-python",
    "audit.proofs.verify-contract",
    "audit.verify-export",
)


def scenario_names() -> list[str]:
    return list(SCENARIOS)


class AuditSetup:
    """The settled batch, a sample of its transfers, and their proofs once generated."""

    def __init__(self, world: LedgerWorld, size: int, sample: int) -> None:
        self.world = world
        self.size = size
        corridor = world.corridor
        (figures,) = world.settled_windows(size, 1)
        self.number = figures.number
        window = get_window(corridor.engine, self.number)
        assert window is not None
        self.window = window
        self.gateway: Web3ChainGateway = corridor.chain()
        with read_transaction(corridor.engine) as conn:
            ids = list(
                conn.execute(
                    select(transfers.c.id).where(transfers.c.window_number == self.number)
                ).scalars()
            )
        assert len(ids) == size, f"window {self.number} holds {len(ids)} transfers"
        self.sample = random.Random(11).sample(ids, min(sample, len(ids)))
        chain = read_chain_batches(self.gateway, [self.number])
        self.chain_batch: ChainBatch = chain[self.number]
        self.first_proof_s = 0.0
        self.proofs: list[TransferProof] = []

    def load(self) -> None:
        """The first proof's extra cost: rebuild the batch from the ledger, load its tree."""
        started = time.perf_counter()
        settled_batch(self.world.corridor.engine, self.window)
        self.first_proof_s = time.perf_counter() - started

    def generate(self, count: int, deadline: float) -> list[float]:
        """Proofs of the sample as the API makes them; latency per proof."""
        built = settled_batch(self.world.corridor.engine, self.window)  # cached by load()
        latencies = []
        self.proofs = []
        for transfer_id in self.sample[:count]:
            begun = time.perf_counter()
            position = built.index[transfer_id]
            proof = TransferProof(
                batch_number=self.number,
                leaf=built.leaves[position],
                proof=tuple(built.tree.get_proof(position)),
                transfers_root=built.tree.root,
                chain_tx_hash=self.window.tx_hash,
                block_number=self.window.block_number,
            )
            proof.to_json()  # the document handed out
            self.proofs.append(proof)
            ended = time.perf_counter()
            latencies.append(ended - begun)
            if ended > deadline:
                break
        return latencies


def _timed_each(
    items: Sequence[TransferProof], check: Callable[[TransferProof], bool], deadline: float
) -> tuple[list[float], int]:
    latencies = []
    failures = 0
    for item in items:
        begun = time.perf_counter()
        ok = check(item)
        ended = time.perf_counter()
        latencies.append(ended - begun)
        failures += not ok
        if ended > deadline:
            break
    return latencies, failures


def _proof_row(
    name: str,
    workload: str,
    latencies: list[float],
    meter: CpuMeter,
    errors: int = 0,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    result = Result(
        name=name,
        backend=BACKEND,
        workload=workload,
        transfers=len(latencies),
        elapsed_s=meter.wall_s,
        latencies_s=latencies,
        latency_of="proof",
        peak_rss_mb=peak_rss_mb(),
        errors=errors,
        notes=list(notes),
    )
    meter.record(result)
    return result.as_dict()


def proofs_generate(setup: AuditSetup, count: int) -> dict[str, Any]:
    setup.load()
    reset_peak_rss()
    meter = CpuMeter()
    latencies = setup.generate(count, time.perf_counter() + TIME_CAP_S)
    meter.stop()
    return _proof_row(
        "audit.proofs.generate",
        f"get_proof + proof document from the cached tree of a {setup.size:,}-transfer batch "
        f"(api.routers.audit.settled_batch), {len(latencies):,} random transfers",
        latencies,
        meter,
        notes=[
            f"first proof of the batch: {setup.first_proof_s:.2f} s (rebuild the batch from "
            "the ledger and load its tree, once per batch; not in the figures)"
        ],
    )


def proofs_verify_python(setup: AuditSetup) -> dict[str, Any]:
    chain = setup.chain_batch

    def check(proof: TransferProof) -> bool:
        return verify_transfer_proof(proof, chain=chain).ok

    reset_peak_rss()
    meter = CpuMeter()
    latencies, failures = _timed_each(setup.proofs, check, time.perf_counter() + TIME_CAP_S)
    meter.stop()
    return _proof_row(
        "audit.proofs.verify-python",
        f"verify_transfer_proof against the on-chain root (ChainBatch read from the "
        f"contract), {len(latencies):,} proofs of a {setup.size:,}-transfer batch",
        latencies,
        meter,
        errors=failures,
    )


def proofs_verify_contract(setup: AuditSetup, count: int) -> dict[str, Any]:
    gateway = setup.gateway

    def check(proof: TransferProof) -> bool:
        return gateway.verify_transfer(
            proof.batch_number,
            bytes.fromhex(proof.leaf_hash.removeprefix("0x")),
            [bytes.fromhex(p.removeprefix("0x")) for p in proof.proof],
        )

    reset_peak_rss()
    meter = CpuMeter()
    latencies, failures = _timed_each(setup.proofs[:count], check, time.perf_counter() + TIME_CAP_S)
    meter.stop()
    depth = len(setup.proofs[0].proof) if setup.proofs else 0
    return _proof_row(
        "audit.proofs.verify-contract",
        f"SettlementLedger.verifyTransfer view (eth_call, embedded chain), {len(latencies):,} "
        f"proofs of {depth} hashes, {setup.size:,}-transfer batch",
        latencies,
        meter,
        errors=failures,
    )


def verify_export(setup: AuditSetup) -> dict[str, Any]:
    world = setup.world
    corridor = world.corridor
    with tempfile.TemporaryDirectory(prefix="corridor-bench-export-") as tmp:
        started = time.perf_counter()
        export = stamped_export(corridor.engine, setup.window, setup.gateway)
        directory = write_batch_export(export, Path(tmp) / f"batch-{setup.number}")
        export_s = time.perf_counter() - started
        size_mb = sum(f.stat().st_size for f in directory.iterdir()) / 2**20
        contract = export.contract_address
        assert contract is not None
        reset_peak_rss()
        meter = CpuMeter()
        begun = time.perf_counter()
        gateway = open_auditor_gateway(rpc=None, data_dir=world.data_dir, contract=contract)
        try:
            opened = time.perf_counter()
            chain_id = gateway.chain_id()
            chain = read_chain_batches(gateway, [setup.number - 1, setup.number])
            read = time.perf_counter()
            report = verify_export_dirs(
                [directory], chain, chain_id=chain_id, contract_address=contract
            )
            verified = time.perf_counter()
        finally:
            gateway.close()
        meter.stop()
    total_s = meter.wall_s
    result = Result(
        name="audit.verify-export",
        backend=BACKEND,
        workload=(
            f"corridor verify's path on a {setup.size:,}-transfer export ({size_mb:.0f} MB, "
            f"{len(export.net_positions)} positions): chain opened read-only, batches read "
            f"from the contract, verify_export_dirs: {total_s:.2f} s"
        ),
        transfers=setup.size,
        elapsed_s=total_s,
        latencies_s=[total_s],
        latency_of="whole export",
        peak_rss_mb=peak_rss_mb(),
        target=f"< {TARGET_VERIFY_S:.0f} s",
        # transfers/s needed to check the whole export in under TARGET_VERIFY_S
        target_tps_min=setup.size / TARGET_VERIFY_S,
        errors=0 if report.ok else len(report.mismatches),
        notes=[
            f"open the chain {opened - begun:.2f} s, read the batches "
            f"{read - opened:.2f} s, verify {verified - read:.2f} s (reading the JSON "
            f"included); export written beforehand in {export_s:.2f} s (not timed)",
            *(str(m) for m in report.mismatches[:3]),
        ],
        extra={"export_mb": round(size_mb, 1), "report_ok": report.ok},
    )
    meter.record(result)
    return result.as_dict()


def run(quick: bool = False, only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    selected = [name for name in SCENARIOS if matches(name, only)]
    if not selected:
        return []
    size = BATCH_TRANSFERS_QUICK if quick else BATCH_TRANSFERS
    proofs = PROOFS_QUICK if quick else PROOFS
    contract_proofs = CONTRACT_PROOFS_QUICK if quick else CONTRACT_PROOFS
    world = shared_world()
    rows: list[dict[str, Any]] = []
    try:
        setup = AuditSetup(world, size, proofs)
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            "audit.proofs.generate": lambda: proofs_generate(setup, proofs),
            "audit.proofs.verify-python": lambda: proofs_verify_python(setup),
            "audit.proofs.verify-contract": lambda: proofs_verify_contract(setup, contract_proofs),
            "audit.verify-export": lambda: verify_export(setup),
        }
        for name in SCENARIOS:
            # Verifying needs proofs: generate them even when only verification is asked.
            wanted = name in selected
            if not wanted and not (name == "audit.proofs.generate" and len(selected) > 0):
                continue
            try:
                row = steps[name]()
            except Exception as exc:  # one broken scenario must not hide the others
                row = skipped(name, BACKEND, f"failed: {type(exc).__name__}: {exc}")
            if wanted:
                rows.append(row)
                print_result(row)
    finally:
        world.release()
    return rows


if __name__ == "__main__":
    from bench.__main__ import main_for

    main_for("audit.")
