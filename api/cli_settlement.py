"""`corridor settle`, `corridor audit proof|export`, `corridor verify`, `corridor chain info`.

`verify` is the auditor's tool: it needs no database and no API, only the chain (a JSON-RPC
URL, or an embedded chain's data directory opened read-only) and the contract's address.
Everything it checks is read from the chain through `settlement.audit.chain_reader`.

Mount with `register_settlement_commands(app)` (see its docstring), or run this module on
its own: `python -m api.cli_settlement verify --data-dir .corridor --contract 0x... DIR`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from api.context import Corridor
from api.problems import ApiError
from api.routers.audit import proof_document, reading_chain, settled_window, stamped_export
from api.settings import Settings
from fx.currency import to_major
from settlement.audit.chain_reader import read_all_batches, read_chain_batches
from settlement.audit.commitment import ZERO_HASH, batch_hash
from settlement.audit.export import (
    BatchExport,
    ExportError,
    TransferProof,
    read_batch_export,
    write_batch_export,
)
from settlement.audit.verify import (
    ChainBatch,
    Mismatch,
    VerificationReport,
    verify_exports,
    verify_transfer_proof,
)
from settlement.batches import CloseReason, Window, WindowStatus, close_window, get_window
from settlement.chain import ChainConfig, ChainError, Web3ChainGateway, open_gateway
from settlement.db import read_transaction
from settlement.errors import LedgerError
from settlement.ledger.tables import settlement_windows

__all__ = [
    "audit_app",
    "chain_app",
    "chain_info",
    "register_settlement_commands",
    "run_verify",
    "settle",
    "settlement_app",
    "verify",
]

SETTLE_TIMEOUT_S_DEFAULT: Final = 120.0
SETTLE_POLL_S: Final = 0.5
PROOF_FILE_BYTES_MAX: Final = 16 * 1024 * 1024
PROOFS_PER_FILE_MAX: Final = 10_000

EXIT_MISMATCH: Final = 1
EXIT_CANNOT_RUN: Final = 2

console = Console()
err_console = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]

audit_app = typer.Typer(
    help="Audit: a transfer's Merkle proof, a settled batch's export.", no_args_is_help=True
)
chain_app = typer.Typer(help="The settlement chain.", no_args_is_help=True)


def _emit(data: Any, as_json: bool, human: str | Sequence[str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    for line in [human] if isinstance(human, str) else human:
        console.print(line, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = EXIT_MISMATCH, as_json: bool = False) -> typer.Exit:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message}, indent=2))
    else:
        err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _corridor() -> Iterator[Corridor]:
    corridor = Corridor.open(Settings())
    try:
        yield corridor
    finally:
        corridor.close()


def _money(amount_minor: int, currency: str) -> str:
    try:
        return f"{to_major(amount_minor, currency)} {currency}"
    except Exception:  # an unknown code in a tampered document: show it raw
        return f"{amount_minor} (minor) {currency}"


# --------------------------------------------------------------------------- settle


def _unsettled(corridor: Corridor, up_to: int) -> list[int]:
    with read_transaction(corridor.engine) as conn:
        return [
            int(n)
            for n in conn.execute(
                select(settlement_windows.c.number)
                .where(
                    settlement_windows.c.number <= up_to,
                    settlement_windows.c.status.in_(
                        [
                            WindowStatus.CLOSED.value,
                            WindowStatus.SUBMITTED.value,
                            WindowStatus.FAILED.value,
                        ]
                    ),
                )
                .order_by(settlement_windows.c.number)
            ).scalars()
        ]


def _highest_unsettled(corridor: Corridor) -> int | None:
    with read_transaction(corridor.engine) as conn:
        found = conn.execute(
            select(settlement_windows.c.number)
            .where(
                settlement_windows.c.status.in_(
                    [
                        WindowStatus.CLOSED.value,
                        WindowStatus.SUBMITTED.value,
                        WindowStatus.FAILED.value,
                    ]
                )
            )
            .order_by(settlement_windows.c.number.desc())
            .limit(1)
        ).scalar()
    return None if found is None else int(found)


def _window_json(window: Window) -> dict[str, Any]:
    return {
        "batch": window.number,
        "status": window.status.value,
        "transfer_count": window.transfer_count,
        "batch_hash": window.batch_hash,
        "tx_hash": window.tx_hash,
        "block_number": window.block_number,
        "gas_used": window.gas_used,
        "last_error": window.last_error,
    }


def _window_line(window: Window) -> str:
    if window.status is WindowStatus.SETTLED:
        return (
            f"[green]batch {window.number} settled[/green]: {window.transfer_count} transfers, "
            f"tx {window.tx_hash}, block {window.block_number}, {window.gas_used:,} gas"
        )
    return (
        f"[red]batch {window.number} {window.status.value}[/red]: {window.last_error or ''}"
        f"{' (retried by the leader with backoff)' if window.status is WindowStatus.FAILED else ''}"
    )


@dataclass
class SettleResult:
    closed: int | None
    leader: bool
    windows: list[Window] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(w.status is WindowStatus.SETTLED for w in self.windows)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "closed_window": self.closed,
            "settled_by": "this process" if self.leader else "the settlement leader",
            "timed_out": self.timed_out,
            "batches": [_window_json(w) for w in self.windows],
        }


def settle_now(corridor: Corridor, timeout_s: float = SETTLE_TIMEOUT_S_DEFAULT) -> SettleResult:
    """Close the open window (if it holds transfers) and settle every closed window now.

    The process that holds the leader lock settles itself; otherwise the running leader
    (e.g. `corridor serve`) settles on its next poll, and this waits for it (polling the
    database) for at most `timeout_s`.
    """
    closed = close_window(corridor.engine, corridor.clock(), CloseReason.DEMAND)
    target = closed.number if closed is not None else _highest_unsettled(corridor)
    result = SettleResult(closed.number if closed else None, leader=False)
    if target is None:
        return result
    numbers = _unsettled(corridor, target)
    if corridor.leader.try_acquire():
        result.leader = True
        corridor.settler().settle_due()
    else:
        deadline = time.monotonic() + timeout_s
        while True:
            window = get_window(corridor.engine, target)
            assert window is not None
            if window.status is WindowStatus.SETTLED:
                break
            if time.monotonic() >= deadline:
                result.timed_out = True
                break
            time.sleep(SETTLE_POLL_S)
    for number in numbers:
        window = get_window(corridor.engine, number)
        assert window is not None
        result.windows.append(window)
    return result


def settle(
    as_json: JsonFlag = False,
    timeout_s: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for another process to settle")
    ] = SETTLE_TIMEOUT_S_DEFAULT,
) -> None:
    """Close the open settlement window and settle it now (with any closed before it)."""
    with _corridor() as corridor:
        try:
            result = settle_now(corridor, timeout_s)
        except (ChainError, LedgerError) as error:
            raise _fail(str(error), EXIT_CANNOT_RUN, as_json) from None
    lines: list[str] = []
    if result.closed is not None:
        lines.append(f"closed window {result.closed}")
    if not result.windows:
        lines.append("nothing to settle: the open window holds no transfer")
    if result.windows and not result.leader:
        lines.append("settled by the running settlement leader")
    lines += [_window_line(w) for w in result.windows]
    if result.timed_out:
        lines.append(f"[red]timed out after {timeout_s:g} s waiting for the leader[/red]")
    _emit(result.to_json(), as_json, lines)
    if not result.ok:
        raise typer.Exit(EXIT_MISMATCH)


# ---------------------------------------------------------------------------- audit


@audit_app.command("proof")
def audit_proof(
    transfer_id: Annotated[str, typer.Argument(help="The transfer's id (tr_...)")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the proof JSON to this file")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A settled transfer's leaf, Merkle proof, batch, root and chain transaction."""
    with _corridor() as corridor:
        try:
            transfer = corridor.ledger.get_transfer(transfer_id)
            with reading_chain(corridor, read_only=True) as gateway:
                proof, document = proof_document(corridor.engine, transfer, gateway)
        except (ApiError, LedgerError) as error:
            raise _fail(f"{error.code}: {error.detail}", EXIT_MISMATCH, as_json) from None
    if out is not None:
        out.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
    leaf = proof.leaf
    accepted = document["verifiedOnChain"]
    lines = [
        f"transfer [bold]{leaf.transfer_id}[/bold] (seq {leaf.seq}) in batch {proof.batch_number}",
        escape(
            f"  {leaf.debit_participant}/{leaf.debit_wallet} -> "
            f"{leaf.credit_participant}/{leaf.credit_wallet}  "
            f"{_money(leaf.amount_minor, leaf.currency)}"
        ),
        f"  leaf hash      {proof.leaf_hash}",
        f"  proof          {len(proof.proof)} sibling hash(es)",
        *(f"                 {p}" for p in proof.proof),
        f"  transfers root {proof.transfers_root}",
        f"  settled in tx  {proof.chain_tx_hash} (block {proof.block_number}, chain "
        f"{document['chainId']}, contract {document['contractAddress']})",
        "  contract verifyTransfer: "
        + ("[green]accepted[/green]" if accepted else "[red]REJECTED[/red]"),
    ]
    if out is not None:
        lines.append(f"  written to {out}")
    _emit(document, as_json, lines)
    if not accepted:
        raise typer.Exit(EXIT_MISMATCH)


@audit_app.command("export")
def audit_export(
    batch: Annotated[int, typer.Argument(help="Batch (= settlement window) number")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the three files to")],
    as_json: JsonFlag = False,
) -> None:
    """Write a settled batch as DIR/batch.json, DIR/transfers.json and DIR/balances.json."""
    with _corridor() as corridor:
        try:
            window = settled_window(corridor.engine, batch)
            with reading_chain(corridor, read_only=True) as gateway:
                export = stamped_export(corridor.engine, window, gateway)
        except (ApiError, LedgerError) as error:
            raise _fail(f"{error.code}: {error.detail}", EXIT_MISMATCH, as_json) from None
    directory = write_batch_export(export, out)
    files = [str(directory / name) for name in ("batch.json", "transfers.json", "balances.json")]
    _emit(
        {
            "batch": export.batch_number,
            "directory": str(directory),
            "files": files,
            "transfer_count": export.transfer_count,
            "transfers_root": export.transfers_root,
            "balances_root": export.balances_root,
            "batch_hash": export.batch_hash,
            "chain_tx_hash": export.chain_tx_hash,
            "block_number": export.block_number,
        },
        as_json,
        [
            f"batch {export.batch_number}: {export.transfer_count} transfers, "
            f"{len(export.net_positions)} net positions -> {directory}",
            *(f"  {f}" for f in files),
        ],
    )


# --------------------------------------------------------------------------- verify


def open_auditor_gateway(
    *,
    rpc: str | None,
    data_dir: Path | None,
    contract: str,
    chain_id: int | None = None,
    scratch_dir: Path | None = None,
) -> Web3ChainGateway:
    """A read-only gateway on the chain only: a JSON-RPC node, or an embedded data dir.

    For a node, nothing local is read (`scratch_dir`: an empty directory). The contract at
    `contract` must carry the SettlementLedger code of contracts/artifacts (checked).
    """
    if (rpc is None) == (data_dir is None):
        raise ValueError("give exactly one of --rpc URL or --data-dir DIR")
    if rpc is not None:
        config = ChainConfig(
            transport="rpc",
            rpc_urls=(rpc,),
            data_dir=scratch_dir or Path(tempfile.mkdtemp(prefix="corridor-verify-")),
            read_only=True,
            index_events=False,
            contract_address=contract,
            expected_chain_id=chain_id,
        )
    else:
        assert data_dir is not None
        config = ChainConfig(
            transport="embedded",
            data_dir=data_dir,
            read_only=True,
            index_events=False,
            contract_address=contract,
            expected_chain_id=chain_id,
        )
    gateway = open_gateway(config)
    try:
        gateway.ensure_deployed()
    except BaseException:
        gateway.close()
        raise
    return gateway


def _merge(into: VerificationReport, other: VerificationReport) -> None:
    into.mismatches.extend(other.mismatches)
    into.notes.extend(other.notes)
    into.batches.extend(n for n in other.batches if n not in into.batches)
    into.transfers_checked += other.transfers_checked
    into.proofs_checked += other.proofs_checked


def check_chain_batches(batches: Sequence[ChainBatch]) -> VerificationReport:
    """The chain's own batches, with no export: each header hashes to its batch hash (the
    verifier's formula is the contract's), and each links to the one before it."""
    report = VerificationReport(batches=[b.number for b in batches])
    by_number = {b.number: b for b in batches}
    for b in batches:
        recomputed = batch_hash(
            number=b.number,
            transfers_root=b.transfers_root,
            balances_root=b.balances_root,
            prev_batch_hash=b.prev_batch_hash,
            transfer_count=b.transfer_count,
            positions=b.positions,
        )
        if recomputed.lower() != b.batch_hash.lower():
            report.mismatches.append(
                Mismatch(
                    b.number,
                    "batch_hash.formula",
                    f"batch {b.number}: on-chain batch hash {b.batch_hash} is not the hash "
                    f"{recomputed} of its header and BatchSettled positions",
                )
            )
        before = by_number.get(b.number - 1)
        expected = ZERO_HASH if b.number == 1 else before.batch_hash if before else None
        if expected is not None and expected.lower() != b.prev_batch_hash.lower():
            report.mismatches.append(
                Mismatch(
                    b.number,
                    "link.chain",
                    f"batch {b.number}: previous batch hash {b.prev_batch_hash} is not {expected}",
                )
            )
    return report


def _read_proofs(path: Path) -> list[TransferProof]:
    """A proof document (`corridor audit proof --json`), a list of them, or {"proofs": [..]}."""
    if path.stat().st_size > PROOF_FILE_BYTES_MAX:
        raise ExportError("export.file_too_large", f"{path} is over {PROOF_FILE_BYTES_MAX} bytes")
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError("export.invalid_json", f"{path} is not valid JSON: {exc}") from None
    items = doc.get("proofs") if isinstance(doc, dict) and "proofs" in doc else doc
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or len(items) > PROOFS_PER_FILE_MAX:
        raise ExportError("export.invalid_proof", f"{path} holds no proof document")
    return [TransferProof.from_json(item) for item in items]


@dataclass
class VerifyOutcome:
    report: VerificationReport
    chain: dict[str, Any]
    elapsed_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            **self.report.to_json(),
            "chain": self.chain,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def run_verify(
    *,
    contract: str,
    rpc: str | None = None,
    data_dir: Path | None = None,
    export_dirs: Sequence[Path] = (),
    proof_files: Sequence[Path] = (),
    chain_id: int | None = None,
) -> VerifyOutcome:
    """What `corridor verify` does, as a function (the demo and tests call it).

    Raises ChainError (and ValueError) when the chain cannot be read at all; everything that
    is read but differs is a mismatch in the report.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="corridor-verify-") as scratch:
        gateway = open_auditor_gateway(
            rpc=rpc,
            data_dir=data_dir,
            contract=contract,
            chain_id=chain_id,
            scratch_dir=Path(scratch),
        )
        try:
            return _verify_with(gateway, export_dirs, proof_files, started)
        finally:
            gateway.close()


def _verify_with(
    gateway: Web3ChainGateway,
    export_dirs: Sequence[Path],
    proof_files: Sequence[Path],
    started: float,
) -> VerifyOutcome:
    deployment = gateway.deployment()
    assert deployment is not None
    last = gateway.last_batch_number()
    chain_id = gateway.chain_id()
    chain_summary: dict[str, Any] = {
        "transport": gateway.transport,
        "chain_id": chain_id,
        "contract_address": deployment.address,
        "last_batch": last,
        "head_block": gateway.head_block_number(),
    }
    report = VerificationReport()
    exports: list[BatchExport] = []
    unreadable: list[Mismatch] = []
    for directory in export_dirs:
        try:
            exports.append(read_batch_export(directory))
        except ExportError as exc:
            unreadable.append(Mismatch(None, exc.code, f"export {directory}: {exc.message}"))
    proofs: list[tuple[Path, TransferProof]] = []
    for path in proof_files:
        try:
            proofs.extend((path, p) for p in _read_proofs(path))
        except (ExportError, OSError) as exc:
            code = getattr(exc, "code", "proof.unreadable")
            unreadable.append(Mismatch(None, code, f"proof file {path}: {exc}"))
    report.mismatches.extend(unreadable)

    if not export_dirs and not proof_files:
        _merge(report, check_chain_batches(read_all_batches(gateway)))
        return VerifyOutcome(report, chain_summary, time.perf_counter() - started)

    wanted = {e.batch_number for e in exports} | {e.batch_number - 1 for e in exports}
    wanted |= {p.batch_number for _, p in proofs}
    chain = read_chain_batches(gateway, [n for n in wanted if n >= 1])
    if exports:
        _merge(
            report,
            verify_exports(
                exports,
                chain,
                chain_id=chain_id,
                contract_address=deployment.address,
            ),
        )
    for path, proof in proofs:
        single = verify_transfer_proof(proof, chain=chain)
        on_chain = chain.get(proof.batch_number)
        if on_chain is not None and single.ok:
            accepted = gateway.verify_transfer(
                proof.batch_number,
                bytes.fromhex(proof.leaf_hash.removeprefix("0x")),
                [bytes.fromhex(p.removeprefix("0x")) for p in proof.proof],
            )
            if not accepted:
                single.mismatches.append(
                    Mismatch(
                        proof.batch_number,
                        "proof.contract",
                        f"batch {proof.batch_number}: the contract's verifyTransfer rejects the "
                        f"proof of transfer {proof.leaf.transfer_id} that the verifier accepts",
                    )
                )
        if on_chain is not None and proof.transfers_root.lower() != on_chain.transfers_root:
            single.mismatches.append(
                Mismatch(
                    proof.batch_number,
                    "proof.root",
                    f"batch {proof.batch_number}: {path} states transfers root "
                    f"{proof.transfers_root}, the chain's is {on_chain.transfers_root}",
                )
            )
        _merge(report, single)
    report.batches.sort()
    return VerifyOutcome(report, chain_summary, time.perf_counter() - started)


def verify(
    export_dirs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Export directories (corridor audit export) to check", show_default=False
        ),
    ] = None,
    rpc: Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL of a chain node")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="An embedded chain's data directory (read-only)"),
    ] = None,
    contract: Annotated[
        str, typer.Option("--contract", help="The SettlementLedger contract's address")
    ] = "",
    proof: Annotated[
        list[Path] | None,
        typer.Option("--proof", help="A proof JSON (corridor audit proof --json); repeatable"),
    ] = None,
    chain_id: Annotated[
        int | None, typer.Option("--chain-id", help="Refuse a chain with another id")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The auditor's check, trusting only the chain: no database, no API.

    Checks each export directory (trees, roots, counts, positions, batch hash, links, where
    it was settled) and each proof against the batches read from the chain; with neither,
    checks the chain's own batches (hash formula and links). Exit 0: no mismatch;
    1: mismatches (each printed); 2: the chain could not be read.
    """
    if not contract:
        raise _fail("--contract ADDR is required", EXIT_CANNOT_RUN, as_json)
    if (rpc is None) == (data_dir is None):
        raise _fail("give exactly one of --rpc URL or --data-dir DIR", EXIT_CANNOT_RUN, as_json)
    try:
        outcome = run_verify(
            contract=contract,
            rpc=rpc,
            data_dir=data_dir,
            export_dirs=export_dirs or [],
            proof_files=proof or [],
            chain_id=chain_id,
        )
    except (ChainError, ValueError) as error:
        raise _fail(f"cannot read the chain: {error}", EXIT_CANNOT_RUN, as_json) from None
    chain = outcome.chain
    head = (
        f"chain {chain['chain_id']} ({chain['transport']}), contract "
        f"{chain['contract_address']}, {chain['last_batch']} batch(es) settled"
    )
    # Messages quote exported values, which may look like rich markup: print them as text.
    lines = [head, *(escape(x) for x in outcome.report.lines()), f"({outcome.elapsed_s:.2f} s)"]
    if outcome.report.ok:
        lines[1] = f"[green]{lines[1]}[/green]"
    else:
        lines[1] = f"[red]{lines[1]}[/red]"
    _emit(outcome.to_json(), as_json, lines)
    if not outcome.report.ok:
        raise typer.Exit(EXIT_MISMATCH)


# ---------------------------------------------------------------------- chain info


def chain_summary(config: ChainConfig) -> dict[str, Any]:
    """Transport, chain id, contract and the last settled batch, read from the chain."""
    info: dict[str, Any] = {
        "transport": config.transport,
        "rpc_urls": list(config.rpc_urls) if config.transport == "rpc" else None,
        "data_dir": str(config.data_dir),
        "deployed": False,
    }
    read_config = replace(config, read_only=True, index_events=False)
    try:
        gateway = open_gateway(read_config)
    except ChainError as error:
        info["error"] = str(error)
        return info
    try:
        info["chain_id"] = gateway.chain_id()
        info["head_block"] = gateway.head_block_number()
        try:
            deployment = gateway.ensure_deployed()
        except ChainError as error:
            info["error"] = str(error)
            return info
        last = gateway.last_batch_number()
        info.update(
            deployed=True,
            contract_address=deployment.address,
            deployed_block=deployment.block_number,
            operator=gateway.operator_address,
            paused=gateway.paused(),
            last_batch=last,
        )
        if last:
            receipt = gateway.batch_receipt(last)
            assert receipt is not None
            info.update(
                last_batch_hash="0x" + receipt.batch_hash.hex(),
                last_batch_tx_hash=receipt.tx_hash,
                last_batch_block=receipt.block_number,
            )
    finally:
        gateway.close()
    return info


@chain_app.command("info")
def chain_info(as_json: JsonFlag = False) -> None:
    """Transport, chain id, contract address and the last settled batch."""
    settings = Settings()
    info = chain_summary(replace(ChainConfig.from_env(), data_dir=settings.data_dir))
    where = (
        ", ".join(info["rpc_urls"] or [])
        if info["transport"] == "rpc"
        else f"data dir {info['data_dir']}"
    )
    lines = [f"transport      {info['transport']} ({where})"]
    if "chain_id" in info:
        lines.append(f"chain id       {info['chain_id']} (head block {info['head_block']})")
    if info["deployed"]:
        lines += [
            f"contract       {info['contract_address']} (block {info['deployed_block']})",
            f"operator       {info['operator']}",
            f"paused         {info['paused']}",
            f"last batch     {info['last_batch'] or 'none settled yet'}",
        ]
        if info["last_batch"]:
            lines.append(
                f"               tx {info['last_batch_tx_hash']} (block {info['last_batch_block']})"
            )
    else:
        lines.append(f"not deployed   {info.get('error', '')}")
    _emit(info, as_json, lines)


# ------------------------------------------------------------------------- mounting


def register_settlement_commands(app: typer.Typer) -> None:
    """Mount on the `corridor` app: settle, audit proof|export, verify, chain info, demo."""
    from api.demo import demo

    app.command("settle")(settle)
    app.add_typer(audit_app, name="audit")
    app.command("verify")(verify)
    app.add_typer(chain_app, name="chain")
    app.command("demo")(demo)


def settlement_app() -> typer.Typer:
    """The commands on their own (`python -m api.cli_settlement ...`), before mounting."""
    app = typer.Typer(
        help="Corridor settlement, audit and verification commands.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
    )
    register_settlement_commands(app)
    return app


if __name__ == "__main__":
    settlement_app()()
