"""The `corridor` command line: serve the API, manage keys, settle, audit, FX, network."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from api.auth_store import Role
from api.cli_network import network_app
from api.cli_settlement import register_settlement_commands
from api.context import Corridor
from api.settings import Settings

app = typer.Typer(
    help="Corridor: a multi-currency settlement ledger with on-chain batch settlement.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
keys_app = typer.Typer(help="API keys (printed once at creation).", no_args_is_help=True)
fx_app = typer.Typer(help="FX rates and their sources.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(fx_app, name="fx")
app.add_typer(network_app, name="network")
register_settlement_commands(app)  # settle, audit proof|export, verify, chain info, demo
console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def _open() -> Corridor:
    return Corridor.open(Settings())


def emit(data: Any, as_json: bool, human: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        console.print(human)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
) -> None:
    """Run the HTTP API with its background workers (migrates the database first)."""
    import uvicorn

    corridor = _open()  # migrates, and creates the operator participant, once
    corridor.close()
    uvicorn.run(
        "api.server:build",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="operator, participant or auditor")],
    participant: Annotated[
        str | None, typer.Option("--participant", help="For participant keys: its id")
    ] = None,
    label: Annotated[str | None, typer.Option(help="A note for whoever finds the key")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key and print it once. The first operator key comes from here."""
    corridor = _open()
    try:
        if participant is not None:
            corridor.ledger.get_participant(participant)
        key, secret = corridor.keys.create(role, corridor.clock(), participant, label)
    finally:
        corridor.close()
    emit(
        {"id": key.id, "role": key.role.value, "participant_id": participant, "secret": secret},
        as_json,
        f"[bold]{secret}[/bold]\n(key {key.id}, role {key.role.value}; shown once, store it now)",
    )


@keys_app.command("list")
def keys_list(as_json: JsonFlag = False) -> None:
    """List API keys (never their secrets)."""
    corridor = _open()
    try:
        found = corridor.keys.list()
    finally:
        corridor.close()
    rows = [
        {
            "id": k.id,
            "role": k.role.value,
            "participant_id": k.participant_id,
            "expires_at_us": k.expires_at_us,
            "last_used_at_us": k.last_used_at_us,
        }
        for k in found
    ]
    human = "\n".join(f"{r['id']}  {r['role']:<11} {r['participant_id'] or ''}" for r in rows)
    emit(rows, as_json, human or "no keys")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key now."""
    corridor = _open()
    try:
        corridor.keys.expire(key_id, corridor.clock())
    finally:
        corridor.close()
    console.print(f"revoked {key_id}")


@fx_app.command("rates")
def fx_rates(
    all_sources: Annotated[
        bool, typer.Option("--all", help="Every source's latest rate, fresh or stale")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The rates quotes would use now, with source, as-of and age."""
    corridor = _open()
    try:
        listings = corridor.fx.rates(all_sources=all_sources)
    finally:
        corridor.close()
    rows = [
        {
            "pair": f"{item.rate.base}/{item.rate.quote}",
            "rate": str(item.rate.rate),
            "source": item.rate.source,
            "as_of": item.rate.as_of.isoformat(),
            "age_s": int(item.age.total_seconds()),
            "fresh": item.fresh,
        }
        for item in listings
    ]
    human = "\n".join(
        f"{r['pair']:<8} {r['rate']:>16}  {r['source']:<14} {r['as_of']}"
        f"{'' if r['fresh'] else '  (stale)'}"
        for r in rows
    )
    emit(rows, as_json, human or "no rates")


@fx_app.command("refresh")
def fx_refresh(as_json: JsonFlag = False) -> None:
    """Fetch every rate source now and record what each answered (offline sources say so)."""
    corridor = _open()
    try:
        statuses = corridor.fx.refresh()
    finally:
        corridor.close()
    rows = [
        {
            "source": s.source,
            "ok": s.ok,
            "fetched": s.fetched,
            "stored": s.stored,
            "latest_as_of": s.latest_as_of.isoformat() if s.latest_as_of else None,
            "error": s.error_code,
            "detail": s.detail,
        }
        for s in statuses
    ]
    human = "\n".join(
        f"{r['source']:<14} {'ok' if r['ok'] else r['error']:<20} {r['detail']}" for r in rows
    )
    emit(rows, as_json, human)


@fx_app.command("set")
def fx_set(
    base: str,
    quote: str,
    rate: Annotated[str, typer.Argument(help="1 BASE = RATE QUOTE, a decimal string")],
    as_json: JsonFlag = False,
) -> None:
    """Set an operator rate for a corridor the public sources do not cover."""
    corridor = _open()
    try:
        stored = corridor.fx.set_operator_rate(base, quote, rate, set_by="cli")
    finally:
        corridor.close()
    emit(
        {"base": stored.base, "quote": stored.quote, "rate": str(stored.rate)},
        as_json,
        f"{stored.base}/{stored.quote} = {stored.rate} (operator, as of {stored.as_of})",
    )


def main() -> None:
    app()
