"""`corridor demo`: the whole story on the embedded defaults, in one run.

A US remittance company and a Philippine e-wallet join the hub; a customer in the US
tops up, sends dollars to her brother's wallet in Manila by his handle, then pays him in
pesos at a firm quote; the hub settles the window on chain in one transaction; an auditor
takes one transfer's Merkle proof and checks the batch against the chain alone, with the
same code as `corridor verify`.

Every run uses fresh participant, wallet and request ids, so it works on a fresh data
directory and again on the same one (each run settles its own batch).
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from api.cli_settlement import run_verify, settle_now
from api.context import Corridor
from api.routers.audit import proof_document, reading_chain, stamped_export
from api.settings import Settings
from fx.currency import to_major
from settlement.audit.chain_reader import read_chain_batch
from settlement.audit.export import TransferProof, write_batch_export
from settlement.audit.verify import verify_transfer_proof
from settlement.batches import WindowStatus
from settlement.chain import ChainError
from settlement.errors import LedgerError
from settlement.ledger.model import TransferRequest, WalletKind
from settlement.payments import PaymentRequest
from settlement.reconcile import reconcile

__all__ = ["demo", "run_demo"]

ALIAS_ATTEMPTS_MAX = 5
PREFUND_US_USD_MINOR = 5_000_00
PREFUND_LP_PHP_MINOR = 500_000_00
LP_INVENTORY_PHP_MINOR = 1_000_000_00


def _money(amount_minor: int, currency: str) -> str:
    return f"{to_major(amount_minor, currency)} {currency}"


class DemoFailed(Exception):
    pass


class _Story:
    """Numbered steps with timings; quiet when the output is JSON."""

    def __init__(self, console: Console, quiet: bool, total: int) -> None:
        self.console = console
        self.quiet = quiet
        self.total = total
        self.number = 0
        self.timings: dict[str, float] = {}

    def say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"    {text}", highlight=False, soft_wrap=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.number += 1
        if not self.quiet:
            self.console.print(
                f"[bold cyan][{self.number}/{self.total}][/bold cyan] [bold]{title}[/bold]"
            )
        started = time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        self.timings[title] = round(elapsed, 3)
        if not self.quiet:
            self.console.print(f"    [green]done[/green] [dim]({elapsed:.2f} s)[/dim]")


def _phone() -> str:
    # A Philippine mobile number (Globe, 0917): valid for libphonenumber, unique per run.
    return f"+63917{secrets.randbelow(10**7):07d}"


def run_demo(data_dir: Path | None, json: bool) -> int:
    """Run the story; returns the exit code (0: every check passed)."""
    console = Console()
    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    story = _Story(console, quiet=json, total=9)
    summary: dict[str, Any] = {"data_dir": str(settings.data_dir)}
    started = time.perf_counter()
    if not json:
        console.rule("[bold]Corridor demo[/bold]: a US remittance to a Philippine wallet")
    corridor = Corridor.open(settings)
    try:
        code = _story(corridor, story, summary)
    except (DemoFailed, LedgerError, ChainError) as error:
        summary["error"] = str(error)
        code = 1
        if not json:
            console.print(f"[red]demo failed:[/red] {error}", highlight=False)
    finally:
        corridor.close()
    summary["ok"] = code == 0
    summary["elapsed_s"] = round(time.perf_counter() - started, 2)
    summary["timings_s"] = story.timings
    if json:
        typer.echo(_dumps(summary))
    else:
        verdict = "[green]all checks passed[/green]" if code == 0 else "[red]FAILED[/red]"
        console.rule(f"{verdict} in {summary['elapsed_s']:.1f} s")
    return code


def _dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def _story(corridor: Corridor, story: _Story, summary: dict[str, Any]) -> int:
    ledger = corridor.ledger
    run = secrets.token_hex(3)
    us, ph = f"us-remit-{run}", f"ph-wallet-{run}"
    lp = corridor.settings.fx_liquidity_participant
    summary["run"] = run

    with story.step("Open the hub on the embedded defaults"):
        if corridor.chain_is_local() and not corridor.leader.try_acquire():
            raise DemoFailed(
                f"another Corridor process (corridor serve?) leads {corridor.settings.data_dir}: "
                "stop it, or run the demo with CORRIDOR_DATA_DIR set to another directory"
            )
        gateway = corridor.chain()
        deployment = gateway.deployment()
        assert deployment is not None
        summary["chain"] = {
            "transport": gateway.transport,
            "chain_id": deployment.chain_id,
            "contract_address": deployment.address,
        }
        story.say(f"data dir {corridor.settings.data_dir}  (ledger: SQLite, WAL)")
        story.say(
            f"chain: {gateway.transport} py-evm, chain id {deployment.chain_id}, "
            f"SettlementLedger at {deployment.address}"
        )

    with story.step("Two partners join: a US remittance company and a Philippine wallet"):
        ledger.create_participant("Liberty Remit (US)", participant_id=us)
        ledger.create_participant("Pera Wallet (PH)", participant_id=ph)
        for pid in (us, ph):
            story.say(f"{pid}: settlement address {ledger.get_participant(pid).settlement_address}")

    with story.step("Prefund settlement balances on chain"):
        settler = corridor.settler()
        usd = settler.fund(us, "USD", PREFUND_US_USD_MINOR, f"demo-{run}-prefund-usd")
        php = settler.fund(lp, "PHP", PREFUND_LP_PHP_MINOR, f"demo-{run}-prefund-php")
        story.say(f"{us}: {_money(usd, 'USD')} on chain (bounds what it may owe the others)")
        story.say(f"{lp} (FX liquidity): {_money(php, 'PHP')} on chain")

    with story.step("Wallets with aliases, and a cash-in"):
        maria_handle, jose_handle = f"@maria.{run}", f"@jose.{run}"
        maria = ledger.create_wallet(us, label="Maria (San Jose, CA)", aliases_raw=[maria_handle])
        jose = None
        for _ in range(ALIAS_ATTEMPTS_MAX):
            jose_phone = _phone()
            try:
                jose = ledger.create_wallet(
                    ph, label="Jose (Manila)", aliases_raw=[jose_handle, jose_phone]
                )
                break
            except LedgerError as error:
                if error.code != "alias_taken":
                    raise
        if jose is None:
            raise DemoFailed("could not find a free phone alias")
        cash_in, _ = ledger.deposit(us, f"demo-{run}-cash-in", maria.id, "USD", 500_00)
        story.say(f"Maria: wallet {maria.id} at {us}, alias {maria_handle}")
        story.say(f"Jose:  wallet {jose.id} at {ph}, aliases {jose_handle}, {jose_phone}")
        story.say(f"cash-in: {_money(500_00, 'USD')} to Maria ({cash_in.id})")

    with story.step("A same-currency transfer, by handle"):
        sent, _ = ledger.transfer(
            us,
            TransferRequest(f"demo-{run}-usd", maria.id, "USD", 25_00, to_alias=jose_handle),
        )
        story.say(f"Maria -> {jose_handle}: {_money(25_00, 'USD')}, final at once ({sent.id})")

    with story.step("A cross-currency payment at a firm quote (USD -> PHP)"):
        lp_wallet = ledger.system_wallet_id(lp, WalletKind.LIQUIDITY)
        ledger.deposit(lp, f"demo-{run}-inventory", lp_wallet, "PHP", LP_INVENTORY_PHP_MINOR)
        quote = corridor.fx.create_quote(us, "USD", "PHP", sell_amount_minor=100_00)
        story.say(
            f"quote {quote.id}: sell {_money(quote.sell_amount_minor, 'USD')} + fee "
            f"{_money(quote.fee_minor, 'USD')} -> {_money(quote.buy_amount_minor, 'PHP')} "
            f"at {quote.customer_rate} (mid {quote.mid_rate}, {quote.rate_source} as of "
            f"{quote.rate_as_of:%Y-%m-%d}), firm until {quote.expires_at:%H:%M:%S} UTC"
        )
        payment, _ = corridor.payments.pay(
            us, PaymentRequest(f"demo-{run}-pay", quote.id, maria.id, to_alias=jose_phone)
        )
        legs = {"sell": payment.sell_transfer_id, "buy": payment.buy_transfer_id}
        if payment.fee_transfer_id:
            legs["fee"] = payment.fee_transfer_id
        story.say(f"paid {jose_phone}: legs {', '.join(f'{k} {v}' for k, v in legs.items())}")
        balances = {b.currency: b.balance_minor for b in ledger.get_wallet(jose.id).balances}
        story.say("Jose now holds " + ", ".join(_money(v, c) for c, v in sorted(balances.items())))
        summary["transfers"] = {"cash_in": cash_in.id, "usd": sent.id, **legs}

    with story.step("Settle the window on chain"):
        result = settle_now(corridor)
        if not result.ok or not result.windows:
            raise DemoFailed(f"settlement did not complete: {result.to_json()}")
        batch = result.windows[-1]
        assert batch.status is WindowStatus.SETTLED and batch.tx_hash is not None
        for window in result.windows:
            story.say(
                f"batch {window.number}: {window.transfer_count} transfers in one transaction "
                f"{window.tx_hash} (block {window.block_number}, {window.gas_used:,} gas)"
            )
        export = stamped_export(corridor.engine, batch, gateway)
        for p in export.net_positions:
            story.say(f"  net {p.participant:<22} {_money(p.amount_minor, p.currency):>16}")
        summary["batch"] = {
            "number": batch.number,
            "transfer_count": batch.transfer_count,
            "tx_hash": batch.tx_hash,
            "block_number": batch.block_number,
            "gas_used": batch.gas_used,
            "batch_hash": batch.batch_hash,
        }

    with story.step("The Merkle proof of Jose's pesos"):
        transfer = ledger.get_transfer(payment.buy_transfer_id)
        with reading_chain(corridor) as reader:
            proof, document = proof_document(corridor.engine, transfer, reader)
            on_chain = read_chain_batch(reader, proof.batch_number)
        assert on_chain is not None
        python_check = verify_transfer_proof(proof, chain=on_chain)
        story.say(escape(f"leaf {document['leaf']}"))
        story.say(f"leaf hash {proof.leaf_hash}, {len(proof.proof)} sibling hash(es)")
        story.say(f"root on chain {on_chain.transfers_root}")
        story.say(
            f"contract verifyTransfer: {'accepted' if document['verifiedOnChain'] else 'REJECTED'}"
            f"; Python verifier: {'accepted' if python_check.ok else 'REJECTED'}"
        )
        summary["proof"] = document
        if not (document["verifiedOnChain"] and python_check.ok):
            raise DemoFailed("the proof does not verify")

    with story.step("An auditor checks the batch against the chain alone"):
        with tempfile.TemporaryDirectory(prefix="corridor-demo-") as scratch:
            out = write_batch_export(export, Path(scratch) / f"batch-{batch.number}")
            proof_file = Path(scratch) / "proof.json"
            proof_file.write_text(_dumps(TransferProof.to_json(proof)), "utf-8")
            # The same code as `corridor verify`: a read-only gateway on the data dir (no
            # database, no API); readers never block the chain's writer in this process.
            outcome = run_verify(
                contract=deployment.address,
                data_dir=corridor.settings.data_dir,
                export_dirs=[out],
                proof_files=[proof_file],
            )
        story.say(
            f"$ corridor verify --data-dir {corridor.settings.data_dir} --contract "
            f"{deployment.address} EXPORT_DIR --proof proof.json"
        )
        for line in outcome.report.lines():
            story.say(escape(line))
        report = reconcile(corridor.engine, gateway, [batch.number])
        story.say(
            f"reconciliation of batch {batch.number} (database vs chain): "
            + ("agrees" if report.ok else f"{len(report.differences)} difference(s)")
        )
        summary["verify"] = outcome.to_json()
        summary["reconciliation"] = report.to_json()
        if not outcome.report.ok or not report.ok:
            return 1
    return 0


def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary only")] = False,
) -> None:
    """The whole story on the embedded defaults, end to end: partners, wallets, a cash-in,
    a transfer, a cross-currency payment, prefunding, settlement on chain, a proof, and an
    independent verification. Uses CORRIDOR_DATA_DIR (default .corridor)."""
    code = run_demo(None, as_json)
    if code:
        raise typer.Exit(code)
