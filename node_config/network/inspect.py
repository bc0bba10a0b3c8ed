"""Decode and validate a QBFT genesis, and check a generated network folder end to end.

``inspect_genesis`` refuses (``NetworkConfigError`` with a stable code) a genesis that Besu
would reject or that would not give Corridor what it needs: malformed extraData, a chain id
that disagrees with Corridor's settings, or fewer than four validators when QBFT fault
tolerance is requested. Softer findings (no free gas, Besu defaults relied upon) come back
as warnings.
"""

from __future__ import annotations

import json
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node_config.network.errors import NetworkConfigError
from node_config.network.extradata import (
    ExtraDataError,
    decode_extra_data,
    normalize_address,
)
from node_config.network.generator import (
    BFT_MIX_HASH,
    BFT_VALIDATORS_MIN,
    MANIFEST_FORMAT,
    enode_url,
    faulty_tolerated,
    quorum,
)
from node_config.network.keys import KEY_FILE_MODE, read_key_file

# Besu's defaults when the qbft section leaves a value out.
BESU_QBFT_DEFAULTS = {"blockperiodseconds": 1, "epochlength": 30_000, "requesttimeoutseconds": 10}
CONSENSUS_SECTIONS = ("qbft", "ibft2", "ibft", "clique", "ethash")
PERMISSION_FLAGS = (
    "permissions-nodes-config-file-enabled",
    "permissions-accounts-config-file-enabled",
)
genesis_bytes_max = 64 * 1024 * 1024  # a genesis with a large alloc is still far below this


@dataclass(frozen=True)
class GenesisReport:
    """What a QBFT genesis says, once it has passed every check."""

    chain_id: int
    block_period_s: int
    epoch_length: int
    request_timeout_s: int
    validator_selection: str  # "blockheader" | "contract"
    validators: tuple[str, ...]
    gas_limit: int
    zero_base_fee: bool
    milestones: dict[str, int]
    alloc: dict[str, int]  # checksummed address -> balance in wei
    warnings: tuple[str, ...] = ()

    @property
    def faulty_tolerated(self) -> int:
        return faulty_tolerated(len(self.validators))

    @property
    def quorum(self) -> int:
        return quorum(len(self.validators))

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "consensus": {
                "protocol": "qbft",
                "block_period_s": self.block_period_s,
                "epoch_length": self.epoch_length,
                "request_timeout_s": self.request_timeout_s,
                "validator_selection": self.validator_selection,
                "validators": list(self.validators),
                "faulty_tolerated": self.faulty_tolerated,
                "quorum": self.quorum,
            },
            "gas_limit": self.gas_limit,
            "zero_base_fee": self.zero_base_fee,
            "milestones": self.milestones,
            "alloc": {address: str(balance) for address, balance in self.alloc.items()},
            "warnings": list(self.warnings),
        }


def _fail(code: str, message: str) -> NetworkConfigError:
    return NetworkConfigError(code, message)


def load_json_object(path: Path, what: str) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > genesis_bytes_max:
            raise _fail(f"{what}_malformed", f"{path} is larger than {genesis_bytes_max} bytes")
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(f"{what}_not_found", f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{what}_unreadable", f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _fail(f"{what}_malformed", f"{path} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _fail(f"{what}_malformed", f"{path} is not a JSON object")
    return value


def load_genesis(path: Path) -> dict[str, Any]:
    return load_json_object(path, "genesis")


def _lower_keys(mapping: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Besu reads genesis config keys case-insensitively; two spellings must agree."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        lowered = str(key).lower()
        if lowered in out and out[lowered] != value:
            raise _fail("genesis_inconsistent", f"{where} sets {key!r} twice, differently")
        out[lowered] = value
    return out


def _quantity(value: Any, what: str) -> int:
    """A JSON number, or a decimal / 0x-hex string, as Besu accepts them."""
    if isinstance(value, bool):
        raise _fail("genesis_malformed", f"{what} must be a number, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            raise _fail("genesis_malformed", f"{what} is not a number: {value!r}") from None
    else:
        raise _fail("genesis_malformed", f"{what} must be a number, got {value!r}")
    if number < 0:
        raise _fail("genesis_malformed", f"{what} must not be negative")
    return number


def inspect_genesis(
    genesis: Mapping[str, Any],
    *,
    expected_chain_id: int | None = None,
    fault_tolerance: bool = True,
) -> GenesisReport:
    """Validate a QBFT genesis; return what it says or raise ``NetworkConfigError``.

    ``expected_chain_id`` is Corridor's configured chain id (CORRIDOR_CHAIN_ID), when known.
    ``fault_tolerance`` requires at least four validators (QBFT: n = 3f+1, f >= 1).
    """
    warnings: list[str] = []
    top = _lower_keys(genesis, "genesis")
    config_raw = top.get("config")
    if not isinstance(config_raw, dict):
        raise _fail("genesis_malformed", "genesis has no 'config' object")
    config = _lower_keys(config_raw, "config")

    if "chainid" not in config:
        raise _fail("genesis_malformed", "config has no chainId")
    chain_id = _quantity(config["chainid"], "chainId")
    if chain_id == 0:
        raise _fail("genesis_malformed", "chainId must be positive")

    present = [name for name in CONSENSUS_SECTIONS if name in config]
    if present != ["qbft"]:
        found = ", ".join(present) or "none"
        raise _fail(
            "genesis_not_qbft", f"config must hold exactly a 'qbft' section (found: {found})"
        )
    qbft_raw = config["qbft"]
    if not isinstance(qbft_raw, dict):
        raise _fail("genesis_malformed", "config.qbft is not an object")
    qbft = _lower_keys(qbft_raw, "config.qbft")
    settings: dict[str, int] = {}
    for name, default in BESU_QBFT_DEFAULTS.items():
        if name in qbft:
            settings[name] = _quantity(qbft[name], f"qbft.{name}")
            if settings[name] == 0:
                raise _fail("genesis_malformed", f"qbft.{name} must be positive")
        else:
            settings[name] = default
            warnings.append(f"qbft.{name} not set: Besu's default {default} applies")
    if settings["requesttimeoutseconds"] < settings["blockperiodseconds"]:
        warnings.append("requesttimeoutseconds < blockperiodseconds: expect round changes")

    if "extradata" not in top:
        raise _fail("extradata_malformed", "genesis has no extraData")
    try:
        extra = decode_extra_data(top["extradata"])
    except ExtraDataError as exc:
        raise _fail("extradata_malformed", f"genesis extraData: {exc}") from None
    if not extra.is_genesis_form:
        raise _fail(
            "extradata_malformed",
            "genesis extraData must carry no vote, round 0 and no seals",
        )

    alloc = _alloc(top.get("alloc", {}))
    if "validatorcontractaddress" in qbft:
        selection = "contract"
        contract = normalize_address(str(qbft["validatorcontractaddress"]))
        if extra.validators:
            raise _fail(
                "genesis_inconsistent",
                "validator contract selection, but extraData lists validators as well",
            )
        if contract not in alloc:
            raise _fail("genesis_inconsistent", f"validator contract {contract} is not in alloc")
        if fault_tolerance:
            raise _fail(
                "validators_unverifiable",
                "validators live in the validator contract's storage: cannot check that there "
                f"are at least {BFT_VALIDATORS_MIN} (pass --no-fault-tolerance to skip)",
            )
    else:
        selection = "blockheader"
        if not extra.validators:
            raise _fail("validators_none", "extraData lists no validator: no block can be made")
        if fault_tolerance and len(extra.validators) < BFT_VALIDATORS_MIN:
            raise _fail(
                "validators_too_few",
                f"{len(extra.validators)} validator(s): QBFT fault tolerance needs at least "
                f"{BFT_VALIDATORS_MIN} (3f+1 with f >= 1)",
            )

    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise _fail(
            "chain_id_mismatch",
            f"genesis chain id {chain_id} disagrees with the settings' chain id "
            f"{expected_chain_id}",
        )

    if "gaslimit" not in top:
        raise _fail("genesis_malformed", "genesis has no gasLimit")
    gas_limit = _quantity(top["gaslimit"], "gasLimit")
    if gas_limit < 5000:
        raise _fail("genesis_malformed", "gasLimit is too small for any transaction")

    zero_base_fee = config.get("zerobasefee") is True
    london = "londonblock" in config
    if london and not zero_base_fee:
        warnings.append("zeroBaseFee is not set: transactions pay a base fee (gas is not free)")
    if str(top.get("mixhash", "")).lower() != BFT_MIX_HASH:
        warnings.append("mixHash is not the BFT (Istanbul) value Besu's QBFT docs specify")
    if "difficulty" in top and _quantity(top["difficulty"], "difficulty") != 1:
        warnings.append("difficulty is not 0x1, the value Besu's QBFT docs specify")

    milestones = {
        key: _quantity(value, key)
        for key, value in config.items()
        if key.endswith(("block", "time")) and key != "qbft"
    }
    return GenesisReport(
        chain_id=chain_id,
        block_period_s=settings["blockperiodseconds"],
        epoch_length=settings["epochlength"],
        request_timeout_s=settings["requesttimeoutseconds"],
        validator_selection=selection,
        validators=extra.validators,
        gas_limit=gas_limit,
        zero_base_fee=zero_base_fee,
        milestones=milestones,
        alloc=alloc,
        warnings=tuple(warnings),
    )


def _alloc(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise _fail("genesis_malformed", "alloc is not an object")
    out: dict[str, int] = {}
    for key, entry in raw.items():
        try:
            address = normalize_address(str(key))
        except NetworkConfigError:
            raise _fail("genesis_malformed", f"alloc key {key!r} is not an address") from None
        if not isinstance(entry, dict):
            raise _fail("genesis_malformed", f"alloc entry {key!r} is not an object")
        balance = _quantity(entry.get("balance", 0), f"alloc {key} balance")
        if address in out:
            raise _fail("genesis_inconsistent", f"alloc lists {address} twice")
        out[address] = balance
    return out


# ---- Corridor settings (env file) --------------------------------------------------------


def parse_settings(text: str) -> dict[str, str]:
    """An env file: KEY=VALUE lines, ``#`` comments, optional ``export`` and quotes."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].strip()
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip():
            raise _fail("settings_malformed", f"line {number} is not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def read_settings(path: Path) -> dict[str, str]:
    try:
        return parse_settings(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail("settings_not_found", f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail("settings_unreadable", f"cannot read {path}: {exc}") from None


def settings_chain_id(settings: Mapping[str, str]) -> int | None:
    raw = settings.get("CORRIDOR_CHAIN_ID")
    if raw is None or raw == "":
        return None
    try:
        return int(raw, 0)
    except ValueError:
        raise _fail("settings_malformed", f"CORRIDOR_CHAIN_ID is not a number: {raw!r}") from None


def settings_rpc_urls(settings: Mapping[str, str]) -> list[str]:
    return [u.strip() for u in settings.get("CORRIDOR_CHAIN_RPC_URLS", "").split(",") if u.strip()]


# ---- a generated network folder ---------------------------------------------------------


@dataclass
class NetworkCheck:
    """The result of ``check_network``: the genesis report and every inconsistency found."""

    genesis: GenesisReport
    manifest: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "genesis": self.genesis.to_json(),
            "nodes": [n["name"] for n in self.manifest.get("nodes", [])],
            "checked": self.checked,
            "problems": self.problems,
        }


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail("network_incomplete", f"{path} is missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail("network_malformed", f"{path} is not TOML: {exc}") from None


def _mode_ok(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & ~KEY_FILE_MODE == 0


def check_network(
    folder: Path, *, expected_chain_id: int | None = None, fault_tolerance: bool | None = None
) -> NetworkCheck:
    """Check a folder written by ``write_network`` for internal consistency.

    Every node key derives the manifest's address and enode; genesis validators are the
    validator nodes; every node has the same genesis, static nodes and allowlists, and the
    allowlists name every node and account; the settings file names every node's RPC URL
    and the genesis chain id. Files missing or unparsable raise; disagreements are listed.
    """
    manifest = load_json_object(folder / "network.json", "manifest")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise _fail("manifest_malformed", f"network.json is not a {MANIFEST_FORMAT} manifest")
    nodes: list[dict[str, Any]] = list(manifest.get("nodes", []))
    accounts: list[dict[str, Any]] = list(manifest.get("accounts", []))
    settings = read_settings(folder / str(manifest.get("settings_file", "corridor.env")))
    settings_id = settings_chain_id(settings)
    wanted_chain_id = expected_chain_id if expected_chain_id is not None else settings_id
    validator_nodes = [n for n in nodes if n.get("role") == "validator"]
    if fault_tolerance is None:
        fault_tolerance = len(validator_nodes) >= BFT_VALIDATORS_MIN
    genesis_text = (folder / "genesis.json").read_text(encoding="utf-8")
    report = inspect_genesis(
        load_genesis(folder / "genesis.json"),
        expected_chain_id=wanted_chain_id,
        fault_tolerance=fault_tolerance,
    )
    check = NetworkCheck(genesis=report, manifest=manifest)
    problem = check.problems.append

    if manifest.get("chain_id") != report.chain_id:
        problem(f"network.json chain id {manifest.get('chain_id')} != genesis {report.chain_id}")
    if settings_id != report.chain_id:
        problem(f"settings CORRIDOR_CHAIN_ID {settings_id} != genesis chain id {report.chain_id}")
    if settings.get("CORRIDOR_CHAIN") != "rpc":
        problem("settings: CORRIDOR_CHAIN is not 'rpc'")

    enodes = {str(n.get("enode")) for n in nodes}
    want_validators = sorted(
        (normalize_address(str(n["address"])) for n in validator_nodes), key=lambda a: int(a, 16)
    )
    if list(report.validators) != want_validators:
        problem("genesis extraData validators are not the validator nodes' addresses")
    check.checked.append("genesis validators = validator node addresses")

    static_top = load_json_object_list(folder / "static-nodes.json")
    if set(static_top) != enodes:
        problem("static-nodes.json does not list exactly every node's enode")
    permissions_top = _toml(folder / "permissions_config.toml")
    account_addresses = {str(a["address"]).lower() for a in accounts}
    _check_permissions(
        permissions_top, enodes, account_addresses, "permissions_config.toml", problem
    )
    for role in ("operator", "funder"):
        if not any(a.get("role") == role for a in accounts):
            problem(f"no {role} account in network.json")
    for address in (a["address"] for a in accounts if a.get("role") in ("operator", "funder")):
        if normalize_address(str(address)) not in report.alloc:
            problem(f"genesis does not fund {address}")

    rpc_urls: list[str] = []
    for node in nodes:
        name = str(node.get("name"))
        base = folder / "nodes" / name
        key_path = base / "key"
        key = read_key_file(key_path)
        if not _mode_ok(key_path):
            problem(f"{name}: key file is readable by others (want mode 0600)")
        if key.address != normalize_address(str(node.get("address"))):
            problem(f"{name}: key does not derive the manifest's address")
        if key.public_key_hex != node.get("public_key"):
            problem(f"{name}: key does not derive the manifest's public key")
        enode = enode_url(key.public_key_hex, str(node.get("p2p_host")), int(node["p2p_port"]))
        if enode != node.get("enode"):
            problem(f"{name}: enode URL does not match its key, host and port")
        config = _toml(base / "config.toml")
        if config.get("p2p-port") != node.get("p2p_port"):
            problem(f"{name}: config.toml p2p-port differs from network.json")
        if config.get("rpc-http-port") != node.get("rpc_port"):
            problem(f"{name}: config.toml rpc-http-port differs from network.json")
        if config.get("p2p-host") != node.get("p2p_host"):
            problem(f"{name}: config.toml p2p-host differs from network.json")
        for flag in PERMISSION_FLAGS:
            if config.get(flag) is not True:
                problem(f"{name}: {flag} is not true")
        if config.get("min-gas-price") != 0:
            problem(f"{name}: min-gas-price is not 0 (free gas needs it on every node)")
        if not set(config.get("bootnodes", [])) <= enodes:
            problem(f"{name}: a bootnode is not a node of the network")
        if (base / "genesis.json").read_text(encoding="utf-8") != genesis_text:
            problem(f"{name}: genesis.json differs from the network's")
        if set(load_json_object_list(base / "static-nodes.json")) != enodes:
            problem(f"{name}: static-nodes.json does not list exactly every node")
        _check_permissions(
            _toml(base / "permissions_config.toml"),
            enodes,
            account_addresses,
            f"{name}/permissions_config.toml",
            problem,
        )
        rpc_urls.append(str(node.get("rpc_url")))
    check.checked.append("node keys derive addresses and enodes")
    check.checked.append("allowlists list every node and account")

    for account in accounts:
        relative = account.get("key_file")
        if not relative:
            continue
        path = folder / str(relative)
        if read_key_file(path).address != normalize_address(str(account.get("address"))):
            problem(f"{relative}: key does not derive the {account.get('role')} address")
        if not _mode_ok(path):
            problem(f"{relative}: readable by others (want mode 0600)")
    check.checked.append("account keys derive their addresses")

    if sorted(settings_rpc_urls(settings)) != sorted(rpc_urls):
        problem("settings CORRIDOR_CHAIN_RPC_URLS does not list exactly every node's RPC URL")
    check.checked.append("settings name every node's RPC URL and the chain id")
    return check


def load_json_object_list(path: Path) -> list[str]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail("network_incomplete", f"{path} is missing") from None
    except json.JSONDecodeError as exc:
        raise _fail("network_malformed", f"{path} is not JSON: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail("network_malformed", f"{path} is not a list of enode URLs")
    return value


def _check_permissions(
    permissions: Mapping[str, Any],
    enodes: set[str],
    accounts: set[str],
    where: str,
    problem: Any,
) -> None:
    listed_nodes = set(permissions.get("nodes-allowlist", []))
    if not enodes <= listed_nodes:
        problem(f"{where}: nodes-allowlist misses {len(enodes - listed_nodes)} node(s)")
    listed_accounts = {str(a).lower() for a in permissions.get("accounts-allowlist", [])}
    if not accounts <= listed_accounts:
        problem(f"{where}: accounts-allowlist misses {len(accounts - listed_accounts)} account(s)")
