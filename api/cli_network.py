"""`corridor network ...`: stand up the permissioned QBFT network and point Corridor at it.

The integrator mounts ``network_app`` in api/cli.py as ``corridor network``. Domain logic
lives in node_config.network; this module only parses options and prints. Every command
that prints data takes ``--json``; errors exit non-zero with one line on stderr.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from node_config.network import generator, inspect, votes
from node_config.network.errors import NetworkConfigError
from node_config.network.extradata import (
    decode_extra_data,
    encode_extra_data_hex,
    normalize_address,
    sort_validators,
)

network_app = typer.Typer(
    name="network",
    help="The permissioned Besu QBFT network: generate, inspect, vote validators, dev node.",
    no_args_is_help=True,
)
validator_app = typer.Typer(
    help="Add or remove a QBFT validator by vote (qbft_proposeValidatorVote), or list them.",
    no_args_is_help=True,
)
network_app.add_typer(validator_app, name="validator")

console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _split(values: list[str] | None) -> list[str]:
    """Options that take lists accept both repetition and commas: -x a -x b, -x a,b."""
    out: list[str] = []
    for value in values or []:
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return out


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except NetworkConfigError as exc:
        _fail(str(exc))


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


# ---- Corridor's operator key ----------------------------------------------------------------


def _data_dir() -> Path:
    from api.settings import Settings

    return Settings().data_dir


def corridor_operator_address(data_dir: Path, *, create: bool) -> tuple[str | None, bool]:
    """The address of Corridor's operator keystore (data_dir/keys/operator.json): the account
    that deploys, funds and settles, and so must be allowlisted and funded. Read without
    decrypting; with ``create``, made on first use as Corridor itself would. (address, created)
    """
    from settlement.chain.keys import keystore_address, keystore_path, load_or_create_operator_key

    path = keystore_path(data_dir)
    try:
        found = keystore_address(path)
    except (ValueError, KeyError):
        _fail(f"{path} is not a keystore")
    if found is not None or not create:
        return found, False
    from node_config.chain import KEYSTORE_PASSPHRASE_DEV
    from settlement.chain.errors import ChainConfigError

    passphrase = os.environ.get("CORRIDOR_CHAIN_KEYSTORE_PASSPHRASE", KEYSTORE_PASSPHRASE_DEV)
    try:
        account, created = load_or_create_operator_key(path, passphrase)
    except (ChainConfigError, OSError) as exc:
        _fail(f"cannot create Corridor's operator key at {path}: {exc}")
    return str(account.address), created


# ---- init ---------------------------------------------------------------------------------


@network_app.command("init")
def init(
    out: Annotated[Path, typer.Option("--out", help="Folder to write (must be new or empty).")],
    validators: Annotated[
        int, typer.Option("--validators", help="Validator nodes (>= 4 for fault tolerance).")
    ] = generator.BFT_VALIDATORS_MIN,
    partners: Annotated[
        list[str] | None,
        typer.Option(
            "--partners",
            "--partner",
            help="Partners running a member node: NAME or NAME=SETTLEMENT_ADDRESS, "
            "comma-separated or repeated. Without an address a settlement key is generated.",
        ),
    ] = None,
    chain_id: Annotated[
        int, typer.Option(help="Private chain id (must differ from the dev chain's).")
    ] = generator.NETWORK_CHAIN_ID_DEFAULT,
    block_period: Annotated[
        int, typer.Option("--block-period", help="QBFT blockperiodseconds.")
    ] = generator.BLOCK_PERIOD_S_DEFAULT,
    epoch_length: Annotated[
        int, typer.Option(help="QBFT epochlength (blocks; pending votes reset).")
    ] = generator.EPOCH_LENGTH_DEFAULT,
    request_timeout: Annotated[
        int, typer.Option("--request-timeout", help="QBFT requesttimeoutseconds.")
    ] = generator.REQUEST_TIMEOUT_S_DEFAULT,
    gas_limit: Annotated[int, typer.Option(help="Block gas limit.")] = generator.GAS_LIMIT_DEFAULT,
    evm_fork: Annotated[
        str, typer.Option(help=f"EVM fork at genesis: {', '.join(generator.EVM_FORKS)}.")
    ] = generator.EVM_FORK_DEFAULT,
    operator: Annotated[
        str | None,
        typer.Option(
            help="Operator address. Default: Corridor's operator keystore in the data dir "
            "(CORRIDOR_DATA_DIR/keys/operator.json), created if missing.",
        ),
    ] = None,
    generate_operator: Annotated[
        bool,
        typer.Option(
            "--generate-operator",
            help="Generate a new operator key into OUT/keys/ instead of using Corridor's.",
        ),
    ] = False,
    funder: Annotated[
        str | None, typer.Option(help="A separate funder address (default: the operator).")
    ] = None,
    validator_owners: Annotated[
        list[str] | None,
        typer.Option(help="Who runs each validator: 'hub' or a partner name, one per validator."),
    ] = None,
    p2p_host: Annotated[str, typer.Option(help="P2P host (IP) of every node.")] = "127.0.0.1",
    rpc_host: Annotated[str, typer.Option(help="RPC listen host of every node.")] = "127.0.0.1",
    node_hosts: Annotated[
        list[str] | None,
        typer.Option(help="One IP per node (validators, then member nodes): P2P and RPC host."),
    ] = None,
    p2p_port: Annotated[
        int, typer.Option(help="First P2P port; node i uses this + i.")
    ] = generator.P2P_PORT_BASE_DEFAULT,
    rpc_port: Annotated[
        int, typer.Option(help="First RPC port; node i uses this + i.")
    ] = generator.RPC_PORT_BASE_DEFAULT,
    host_allowlist: Annotated[
        list[str] | None, typer.Option(help="Host headers the RPC accepts.")
    ] = None,
    fault_tolerance: Annotated[
        bool,
        typer.Option(
            "--fault-tolerance/--no-fault-tolerance",
            help="Require >= 4 validators (QBFT 3f+1). --no-fault-tolerance: test networks.",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Write a complete Besu QBFT network: keys, genesis, node configs, allowlists, scripts,
    and corridor.env with every node's RPC URL."""
    with _errors():
        created = False
        operator_address = normalize_address(operator) if operator else None
        if operator_address is None and not generate_operator:
            operator_address, created = corridor_operator_address(_data_dir(), create=True)
        spec = generator.NetworkSpec(
            validators=validators,
            partners=tuple(generator.parse_partner(p) for p in _split(partners)),
            validator_owners=tuple(o.lower() for o in _split(validator_owners)),
            chain_id=chain_id,
            block_period_s=block_period,
            epoch_length=epoch_length,
            request_timeout_s=request_timeout,
            gas_limit=gas_limit,
            evm_fork=evm_fork,
            operator_address=operator_address,
            funder_address=normalize_address(funder) if funder else None,
            p2p_host=p2p_host,
            rpc_host=rpc_host,
            node_hosts=tuple(_split(node_hosts)),
            p2p_port_base=p2p_port,
            rpc_port_base=rpc_port,
            host_allowlist=tuple(_split(host_allowlist)) or generator.HOST_ALLOWLIST_DEFAULT,
            fault_tolerance=fault_tolerance,
        )
        written = generator.generate_network(spec, out)
    network = written.network
    if as_json:
        summary = network.manifest()
        summary["out"] = str(out)
        summary["secret_files"] = list(written.secret_files)
        summary["operator_keystore_created"] = created
        _print_json(summary)
        return
    if created:
        console.print(f"Created Corridor's operator key {operator_address} in {_data_dir()}.")
    console.print(
        f"[bold]QBFT network written to {out}[/bold]: chain id {network.chain_id}, "
        f"{len(network.validators)} validators (tolerates "
        f"{generator.faulty_tolerated(len(network.validators))} faulty), "
        f"{len(network.nodes) - len(network.validators)} member node(s)"
    )
    for node in network.nodes:
        typer.echo(
            f"  {node.name:<20} {node.role:<9} run by {node.owner:<10} {node.address}  "
            f"p2p {node.p2p_host}:{node.p2p_port}  rpc {node.rpc_url}"
        )
    for account in network.accounts:
        name = account.role if account.role != "partner" else f"partner {account.name}"
        key = f"key {account.key_file}" if account.key_file else "key held elsewhere"
        typer.echo(f"  {name:<20} {account.address}  ({key})")
    console.print(
        f"Keys (mode 0600): {len(written.secret_files)} files under {out}/nodes/*/key and "
        f"{out}/keys/; move each to its custodian (docs/NETWORK.md)."
    )
    console.print(f"Point Corridor at it: set -a; . {out}/corridor.env; set +a")


# ---- extradata ----------------------------------------------------------------------------


@network_app.command("extradata")
def extradata(
    validators: Annotated[
        list[str], typer.Option("--validators", help="Validator addresses, comma-separated.")
    ],
    sort: Annotated[
        bool, typer.Option("--sort", help="Encode in ascending address order.")
    ] = False,
    decode: Annotated[
        bool, typer.Option("--decode", help="Treat the value as extraData hex and decode it.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the QBFT genesis extraData for a validator set (or decode one with --decode)."""
    with _errors():
        if decode:
            values = _split(validators)
            if len(values) != 1:
                _fail("--decode takes one extraData hex value")
            decoded = decode_extra_data(values[0])
            result = {
                "vanity": "0x" + decoded.vanity.hex(),
                "validators": list(decoded.validators),
                "vote": (
                    None
                    if decoded.vote is None
                    else {"recipient": decoded.vote.recipient, "add": decoded.vote.add}
                ),
                "round": decoded.round,
                "seals": ["0x" + s.hex() for s in decoded.seals],
            }
            if as_json:
                _print_json(result)
            else:
                for address in decoded.validators:
                    typer.echo(address)
            return
        addresses = [normalize_address(v) for v in _split(validators)]
        if not addresses:
            _fail("--validators lists no address")
        if sort:
            addresses = sort_validators(addresses)
        encoded = encode_extra_data_hex(addresses)
    if as_json:
        _print_json({"validators": addresses, "extra_data": encoded})
    else:
        typer.echo(encoded)


# ---- inspect ------------------------------------------------------------------------------


def _expected_chain_id(chain_id: int | None, settings: Path | None) -> int | None:
    if chain_id is not None:
        return chain_id
    if settings is not None:
        found = inspect.settings_chain_id(inspect.read_settings(settings))
        if found is None:
            _fail(f"{settings} sets no CORRIDOR_CHAIN_ID")
        return found
    from_env = os.environ.get("CORRIDOR_CHAIN_ID")
    if from_env:
        return inspect.settings_chain_id({"CORRIDOR_CHAIN_ID": from_env})
    return None


@network_app.command("inspect")
def inspect_cmd(
    path: Annotated[Path, typer.Argument(help="A genesis.json, or a folder from `init`.")],
    chain_id: Annotated[
        int | None, typer.Option(help="Expected chain id (default: --settings, else env).")
    ] = None,
    settings: Annotated[
        Path | None, typer.Option(help="Corridor settings file (CORRIDOR_CHAIN_ID=...).")
    ] = None,
    fault_tolerance: Annotated[
        bool,
        typer.Option(
            "--fault-tolerance/--no-fault-tolerance",
            help="Require >= 4 validators (QBFT 3f+1).",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Decode and validate a genesis (validators, chain id, consensus); refuse bad ones.

    On a network folder, also check it is consistent: keys, enodes, allowlists, settings."""
    with _errors():
        expected = _expected_chain_id(chain_id, settings)
        if path.is_dir():
            check = inspect.check_network(
                path, expected_chain_id=expected, fault_tolerance=fault_tolerance
            )
            report = check.genesis
        else:
            check = None
            report = inspect.inspect_genesis(
                inspect.load_genesis(path),
                expected_chain_id=expected,
                fault_tolerance=fault_tolerance,
            )
    if as_json:
        _print_json(check.to_json() if check is not None else report.to_json())
    else:
        _print_report(report)
        if check is not None:
            for item in check.checked:
                console.print(f"[green]checked[/green] {item}")
            for problem in check.problems:
                console.print(f"[red]problem[/red] {problem}")
    if check is not None and not check.ok:
        _fail(f"{len(check.problems)} inconsistenc(ies) in {path}: {check.problems[0]}")


def _print_report(report: inspect.GenesisReport) -> None:
    console.print(
        f"chain id {report.chain_id}; QBFT block period {report.block_period_s}s, "
        f"epoch {report.epoch_length} blocks, round timeout {report.request_timeout_s}s; "
        f"gas limit {report.gas_limit}; free gas: {'yes' if report.zero_base_fee else 'no'}"
    )
    console.print(
        f"{len(report.validators)} validator(s) ({report.validator_selection} selection), "
        f"tolerates {report.faulty_tolerated} faulty, quorum {report.quorum}:"
    )
    for address in report.validators:
        console.print(f"  {address}")
    for address, balance in report.alloc.items():
        console.print(f"funded {address}: {balance} wei")
    for warning in report.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}")


# ---- validator votes ----------------------------------------------------------------------

RpcOpt = Annotated[
    list[str] | None,
    typer.Option("--rpc", help="Validator RPC URLs (comma-separated or repeated)."),
]
NetworkOpt = Annotated[
    Path | None,
    typer.Option("--network", help="A folder from `init`: vote on its validator nodes."),
]


def _endpoints(rpc: list[str] | None, network: Path | None) -> list[str]:
    urls = _split(rpc)
    if network is not None:
        manifest = inspect.load_json_object(network / "network.json", "manifest")
        urls += [
            str(n["rpc_url"]) for n in manifest.get("nodes", []) if n.get("role") == "validator"
        ]
    if not urls:
        _fail("give validator endpoints with --rpc URL,... or --network DIR")
    return list(dict.fromkeys(urls))


def _current_validators(urls: list[str]) -> tuple[list[str] | None, str | None]:
    last_error = None
    for url in urls:
        try:
            return votes.get_validators(url), None
        except votes.RpcError as exc:
            last_error = str(exc)
    return None, last_error


def _vote(
    candidate: str,
    add: bool,
    rpc: list[str] | None,
    network: Path | None,
    execute: bool,
    wait_s: float,
    as_json: bool,
) -> None:
    with _errors():
        urls = _endpoints(rpc, network)
        current, error = _current_validators(urls)
        if current is None and execute:
            _fail(f"cannot read the validator set: {error}")
        plan = votes.plan_vote(candidate, add=add, endpoints=urls, current_validators=current)
        results: list[votes.VoteResult] = []
        outcome = None
        if execute:
            results = votes.cast_votes(plan)
            if wait_s > 0 and any(r.ok for r in results):
                outcome = votes.wait_for_change(plan, timeout_s=wait_s)
    if as_json:
        body = plan.to_json()
        if current is None:
            body["warnings"].append(f"validator set not read: {error}")
        if execute:
            body["results"] = [r.to_json() for r in results]
            body["discard"] = votes.discard_commands(plan.candidate, plan.endpoints)
        if outcome is not None:
            body["changed"] = outcome.changed
            body["validators_after"] = outcome.validators
        _print_json(body)
    else:
        _print_plan(plan, current, error, execute, results, outcome)
    if execute and not any(r.ok for r in results):
        _fail("no validator accepted the vote")
    if outcome is not None and not outcome.changed:
        _fail(f"the change did not show within {wait_s:g}s; votes stay pending")


def _print_plan(
    plan: votes.VotePlan,
    current: list[str] | None,
    error: str | None,
    execute: bool,
    results: list[votes.VoteResult],
    outcome: votes.WaitOutcome | None,
) -> None:
    action = "add" if plan.add else "remove"
    if current is None:
        console.print(f"[yellow]validator set not read[/yellow] ({error})")
    else:
        console.print(
            f"{len(current)} validator(s) now; to {action} {plan.candidate}, "
            f"{plan.votes_needed} of them must vote (more than half)."
        )
    for warning in plan.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}")
    if not execute:
        console.print("Run on each validator (or rerun with --execute):")
        for command in votes.curl_commands(plan):
            typer.echo(command)
        return
    for result in results:
        status = "[green]voted[/green]" if result.ok else f"[red]failed[/red] {result.error}"
        console.print(f"{result.endpoint}: {status}")
    if outcome is not None:
        state = "in" if plan.add else "out"
        if outcome.changed:
            console.print(f"{plan.candidate} is {state} after {outcome.waited_s:.0f}s.")
    console.print(
        "Once the change shows, each voter should discard its vote: "
        f"corridor network validator discard {plan.candidate} --rpc ..."
    )


ExecuteOpt = Annotated[
    bool, typer.Option("--execute", help="Cast the votes instead of printing them.")
]
WaitOpt = Annotated[
    float,
    typer.Option("--wait", help="With --execute: seconds to wait for the change (0: none)."),
]


@validator_app.command("add")
def validator_add(
    address: Annotated[str, typer.Argument(help="The new validator's address.")],
    rpc: RpcOpt = None,
    network: NetworkOpt = None,
    execute: ExecuteOpt = False,
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Vote to add a validator: qbft_proposeValidatorVote(ADDRESS, true) on each validator."""
    _vote(address, True, rpc, network, execute, wait, as_json)


@validator_app.command("remove")
def validator_remove(
    address: Annotated[str, typer.Argument(help="The validator to remove.")],
    rpc: RpcOpt = None,
    network: NetworkOpt = None,
    execute: ExecuteOpt = False,
    wait: WaitOpt = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Vote to remove a validator: qbft_proposeValidatorVote(ADDRESS, false) on each."""
    _vote(address, False, rpc, network, execute, wait, as_json)


@validator_app.command("discard")
def validator_discard(
    address: Annotated[str, typer.Argument(help="The address voted on.")],
    rpc: RpcOpt = None,
    network: NetworkOpt = None,
    execute: ExecuteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop this node's pending vote on ADDRESS (qbft_discardValidatorVote) on each validator."""
    with _errors():
        urls = _endpoints(rpc, network)
        commands = votes.discard_commands(address, urls)
        results = votes.discard_votes(address, urls) if execute else []
    if as_json:
        body: dict[str, Any] = {"address": normalize_address(address), "curl": commands}
        if execute:
            body["results"] = [r.to_json() for r in results]
        _print_json(body)
    elif not execute:
        for command in commands:
            typer.echo(command)
    else:
        for result in results:
            status = "discarded" if result.ok else f"failed: {result.error}"
            typer.echo(f"{result.endpoint}: {status}")
    if execute and not all(r.ok for r in results):
        _fail("some endpoints did not discard the vote")


@validator_app.command("list")
def validator_list(
    rpc: RpcOpt = None,
    network: NetworkOpt = None,
    block: Annotated[str, typer.Option(help="Block number or tag.")] = "latest",
    as_json: JsonOpt = False,
) -> None:
    """The validator set (qbft_getValidatorsByBlockNumber) and each node's pending votes."""
    with _errors():
        urls = _endpoints(rpc, network)
        current = None
        errors: list[str] = []
        for url in urls:
            try:
                current = votes.get_validators(url, block)
                break
            except votes.RpcError as exc:
                errors.append(str(exc))
        if current is None:
            _fail(f"no endpoint answered: {errors[-1]}")
        pending: dict[str, Any] = {}
        for url in urls:
            try:
                pending[url] = votes.get_pending_votes(url)
            except votes.RpcError as exc:
                pending[url] = {"error": exc.reason}
    if as_json:
        _print_json(
            {
                "block": block,
                "validators": current,
                "faulty_tolerated": generator.faulty_tolerated(len(current)),
                "pending_votes": pending,
            }
        )
        return
    console.print(
        f"{len(current)} validator(s) at {block}, "
        f"tolerates {generator.faulty_tolerated(len(current))} faulty:"
    )
    for address in current:
        typer.echo(f"  {address}")
    for url, votes_here in pending.items():
        if votes_here:
            console.print(f"pending at {url}: {votes_here}")


# ---- dev ----------------------------------------------------------------------------------


@network_app.command("dev")
def dev(
    block_time: Annotated[
        int | None, typer.Option(help="Seconds per block (default: a block per transaction).")
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(help="Account to fund (default: Corridor's operator keystore, created)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a local anvil node with the dev chain id and the operator funded, print the
    settings that point Corridor at it, and run until Ctrl-C."""
    from node_config import anvil, chain

    with _errors():
        address = normalize_address(operator) if operator else None
        created = False
        if address is None:
            address, created = corridor_operator_address(_data_dir(), create=True)
        assert address is not None
    try:
        node = anvil.AnvilNode.start(chain_id=chain.CHAIN_ID_DEV, block_time_s=block_time)
    except anvil.AnvilUnavailable as exc:
        _fail(str(exc).splitlines()[0])
    try:
        node.set_balance(address, chain.OPERATOR_BALANCE_WEI)
        settings = {
            "CORRIDOR_CHAIN": "rpc",
            "CORRIDOR_CHAIN_RPC_URLS": node.url,
            "CORRIDOR_CHAIN_ID": str(node.chain_id),
        }
        if as_json:
            body = {
                "rpc_url": node.url,
                "chain_id": node.chain_id,
                "operator": address,
                "operator_balance_wei": str(chain.OPERATOR_BALANCE_WEI),
                "operator_keystore_created": created,
                "settings": settings,
            }
            typer.echo(json.dumps(body), nl=True)
        else:
            console.print(
                f"[bold]dev node[/bold] (anvil) at {node.url}, chain id {node.chain_id}; "
                f"operator {address} funded. Blocks are mined at once and a restart starts "
                "a new chain: unlike QBFT, nothing here is final or durable."
            )
            console.print("Point Corridor at it (Ctrl-C stops the node):")
            for key, value in settings.items():
                typer.echo(f"{key}={value}")
        sys.stdout.flush()
        _wait_until_interrupted(node.process.wait)
    finally:
        node.stop()


def _wait_until_interrupted(wait: Callable[[], int]) -> None:
    # SIGTERM (a supervisor, `timeout`) stops the node as cleanly as Ctrl-C does.
    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = wait()
    except KeyboardInterrupt:
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code != 0:
        _fail(f"the dev node exited with status {code}")
