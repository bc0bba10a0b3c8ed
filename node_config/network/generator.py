"""Generate a complete Hyperledger Besu QBFT network for Corridor.

``plan_network`` builds the whole network in memory (keys, genesis, per-node files) and
``write_network`` lays it out on disk::

    OUT/
      network.json            public manifest: chain, nodes, enodes, RPC URLs, accounts
      genesis.json            QBFT genesis; extraData holds the validator set
      static-nodes.json       every node's enode
      permissions_config.toml node and account allowlists (also copied into each node)
      corridor.env            CORRIDOR_CHAIN=rpc, CORRIDOR_CHAIN_RPC_URLS, CORRIDOR_CHAIN_ID
      start-all.sh, stop-all.sh   run every node on one machine (a rehearsal)
      keys/                   0700: generated account keys (operator, partners), mode 0600
      nodes/<name>/           self-contained: copy it to the machine that runs the node
        key (0600), key.pub, address, config.toml, genesis.json, static-nodes.json,
        permissions_config.toml, start.sh

Validators are run by the hub (or by partners, ``validator_owners``); each partner runs a
member node (a non-validating node that serves its own RPC). Nothing secret goes to
stdout or into network.json.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node_config.network import templates
from node_config.network.errors import NetworkConfigError
from node_config.network.extradata import encode_extra_data_hex, normalize_address, sort_validators
from node_config.network.keys import Entropy, NodeKey, generate_key, write_secret

MANIFEST_FORMAT = "corridor-network/1"
# QBFT tolerates f faulty validators out of 3f+1: four is the smallest fault-tolerant set.
BFT_VALIDATORS_MIN = 4
validators_max = 64
partners_max = 64
# A private chain id for the production network. It must differ from the dev/embedded
# chain's id: a transaction signed for one chain must not replay on the other.
NETWORK_CHAIN_ID_DEFAULT = 8_617_301
BLOCK_PERIOD_S_DEFAULT = 2
EPOCH_LENGTH_DEFAULT = 30_000
# Besu's advice: start the round timeout at twice the block period, then tune.
REQUEST_TIMEOUT_S_DEFAULT = 4
GAS_LIMIT_DEFAULT = 100_000_000
OPERATOR_BALANCE_WEI_DEFAULT = 1_000_000 * 10**18
P2P_PORT_BASE_DEFAULT = 30303
RPC_PORT_BASE_DEFAULT = 8545
HOST_ALLOWLIST_DEFAULT = ("localhost", "127.0.0.1")
# What Corridor needs (ETH, NET, WEB3); validators add QBFT for the validator vote flow.
RPC_APIS_MEMBER = ("ETH", "NET", "WEB3")
RPC_APIS_VALIDATOR = ("ETH", "NET", "WEB3", "QBFT")
HUB = "hub"
# "Istanbul" mixHash that marks a BFT block, and QBFT's genesis difficulty (Besu docs).
BFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
ZERO_HASH = "0x" + "00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
# Milestones switched on at genesis, per EVM fork. Corridor's contracts target Cancun or
# Prague; Prague adds no opcode the compiler emits, so a Cancun chain runs them.
EVM_FORKS: dict[str, dict[str, int]] = {
    "london": {"berlinBlock": 0, "londonBlock": 0},
    "shanghai": {"berlinBlock": 0, "londonBlock": 0, "shanghaiTime": 0},
    "cancun": {"berlinBlock": 0, "londonBlock": 0, "shanghaiTime": 0, "cancunTime": 0},
}
EVM_FORK_DEFAULT = "cancun"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


@dataclass(frozen=True)
class PartnerSpec:
    """A partner that runs a member node; ``settlement_address`` None: generate its key."""

    name: str
    settlement_address: str | None = None


def parse_partner(text: str) -> PartnerSpec:
    """``NAME`` or ``NAME=0xADDRESS``."""
    name, sep, address = text.strip().partition("=")
    name = name.strip().lower()
    check_name(name, "partner")
    if name == HUB:
        raise NetworkConfigError("partner_invalid", f"{HUB!r} names the hub, not a partner")
    return PartnerSpec(name, normalize_address(address) if sep else None)


def check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise NetworkConfigError(
            f"{what}_invalid",
            f"{what} name {name!r}: use 1-32 of a-z, 0-9 and '-', starting with a letter or digit",
        )


def check_ip(host: str) -> None:
    """Enode hosts must be IP addresses: Besu's node allowlist matches on IP (DNS names
    need its early-access --Xdns-enabled)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise NetworkConfigError(
            "host_invalid", f"P2P host {host!r} is not an IP address (enode URLs need one)"
        ) from None


@dataclass(frozen=True)
class NetworkSpec:
    """What to generate. Defaults give a fault-tolerant 4-validator network on loopback."""

    validators: int = BFT_VALIDATORS_MIN
    partners: tuple[PartnerSpec, ...] = ()
    validator_owners: tuple[str, ...] = ()  # empty: the hub runs every validator
    chain_id: int = NETWORK_CHAIN_ID_DEFAULT
    block_period_s: int = BLOCK_PERIOD_S_DEFAULT
    epoch_length: int = EPOCH_LENGTH_DEFAULT
    request_timeout_s: int = REQUEST_TIMEOUT_S_DEFAULT
    gas_limit: int = GAS_LIMIT_DEFAULT
    evm_fork: str = EVM_FORK_DEFAULT
    operator_address: str | None = None  # None: generate the operator key
    funder_address: str | None = None  # None: the operator funds
    operator_balance_wei: int = OPERATOR_BALANCE_WEI_DEFAULT
    p2p_host: str = "127.0.0.1"
    rpc_host: str = "127.0.0.1"
    node_hosts: tuple[str, ...] = ()  # per-node host (validators, then members); overrides
    p2p_port_base: int = P2P_PORT_BASE_DEFAULT
    rpc_port_base: int = RPC_PORT_BASE_DEFAULT
    host_allowlist: tuple[str, ...] = HOST_ALLOWLIST_DEFAULT
    fault_tolerance: bool = True  # refuse fewer than 4 validators
    timestamp: int | None = None  # genesis timestamp; None: now

    def validate(self) -> None:
        if self.fault_tolerance and self.validators < BFT_VALIDATORS_MIN:
            raise NetworkConfigError(
                "validators_too_few",
                f"QBFT needs at least {BFT_VALIDATORS_MIN} validators to tolerate a faulty one "
                f"(3f+1); got {self.validators} (pass --no-fault-tolerance for a test network)",
            )
        if not 1 <= self.validators <= validators_max:
            raise NetworkConfigError(
                "validators_invalid", f"validators must be 1..{validators_max}"
            )
        if len(self.partners) > partners_max:
            raise NetworkConfigError("partners_too_many", f"at most {partners_max} partners")
        names = [p.name for p in self.partners]
        if len(set(names)) != len(names):
            raise NetworkConfigError("partner_duplicate", "a partner is listed twice")
        if self.validator_owners:
            if len(self.validator_owners) != self.validators:
                raise NetworkConfigError(
                    "validator_owners_invalid",
                    f"give one owner per validator ({self.validators}), "
                    f"got {len(self.validator_owners)}",
                )
            known = {HUB, *names}
            unknown = sorted(set(self.validator_owners) - known)
            if unknown:
                raise NetworkConfigError(
                    "validator_owners_invalid",
                    f"validator owner(s) {', '.join(unknown)} are neither {HUB!r} nor a partner",
                )
        if not 0 < self.chain_id < 2**63:
            raise NetworkConfigError("chain_id_invalid", "chain id must be a positive integer")
        for what, value in (
            ("block period", self.block_period_s),
            ("epoch length", self.epoch_length),
            ("request timeout", self.request_timeout_s),
        ):
            if value <= 0:
                raise NetworkConfigError("consensus_invalid", f"{what} must be positive")
        if self.request_timeout_s < self.block_period_s:
            raise NetworkConfigError(
                "consensus_invalid",
                "request timeout shorter than the block period makes every round time out",
            )
        if not 5000 <= self.gas_limit < 2**63:
            raise NetworkConfigError("gas_limit_invalid", "gas limit must be >= 5000")
        if self.evm_fork not in EVM_FORKS:
            raise NetworkConfigError(
                "evm_fork_invalid", f"EVM fork must be one of {', '.join(EVM_FORKS)}"
            )
        node_count = self.validators + len(self.partners)
        if self.node_hosts and len(self.node_hosts) != node_count:
            raise NetworkConfigError(
                "node_hosts_invalid",
                f"give one host per node ({node_count}: validators, then partners' member "
                f"nodes), got {len(self.node_hosts)}",
            )
        for base in (self.p2p_port_base, self.rpc_port_base):
            if not 1024 <= base <= 65535 - node_count:
                raise NetworkConfigError("port_invalid", "ports must lie in 1024..65535")
        p2p = set(range(self.p2p_port_base, self.p2p_port_base + node_count))
        rpc = set(range(self.rpc_port_base, self.rpc_port_base + node_count))
        if p2p & rpc:
            raise NetworkConfigError("port_invalid", "P2P and RPC port ranges overlap")
        for host in (self.p2p_host, *self.node_hosts):
            check_ip(host)
        if not self.host_allowlist:
            raise NetworkConfigError("host_allowlist_invalid", "the host allowlist is empty")
        if self.operator_balance_wei < 0:
            raise NetworkConfigError("balance_invalid", "operator balance must not be negative")


@dataclass(frozen=True)
class NodeInfo:
    """Public facts about one node (no secrets)."""

    name: str
    role: str  # "validator" | "member"
    owner: str  # "hub" or a partner name
    address: str
    public_key: str  # 128 hex, no 0x
    p2p_host: str
    p2p_port: int
    rpc_host: str
    rpc_port: int
    rpc_apis: tuple[str, ...]

    @property
    def enode(self) -> str:
        return enode_url(self.public_key, self.p2p_host, self.p2p_port)

    @property
    def rpc_url(self) -> str:
        host = self.rpc_host
        if host in ("0.0.0.0", "::"):  # listens everywhere; reach it on loopback here
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.rpc_port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "owner": self.owner,
            "address": self.address,
            "public_key": self.public_key,
            "enode": self.enode,
            "p2p_host": self.p2p_host,
            "p2p_port": self.p2p_port,
            "rpc_host": self.rpc_host,
            "rpc_port": self.rpc_port,
            "rpc_url": self.rpc_url,
            "rpc_apis": list(self.rpc_apis),
        }


@dataclass(frozen=True)
class AccountInfo:
    """An account allowed to send transactions."""

    role: str  # "operator" | "funder" | "partner"
    name: str
    address: str
    key_file: str | None  # relative to the network folder, when the key was generated here

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "address": self.address,
            "key_file": self.key_file,
        }


@dataclass(frozen=True)
class Network:
    """A planned network: public facts plus, in ``secrets``, the keys to write (0600)."""

    spec: NetworkSpec
    nodes: tuple[NodeInfo, ...]
    accounts: tuple[AccountInfo, ...]
    genesis: dict[str, Any]
    secrets: dict[str, NodeKey] = field(repr=False)  # relative path -> key

    @property
    def chain_id(self) -> int:
        return self.spec.chain_id

    @property
    def validators(self) -> tuple[NodeInfo, ...]:
        return tuple(n for n in self.nodes if n.role == "validator")

    @property
    def validator_addresses(self) -> list[str]:
        return sort_validators(n.address for n in self.validators)

    @property
    def enodes(self) -> list[str]:
        return [n.enode for n in self.nodes]

    @property
    def bootnodes(self) -> list[str]:
        # Validators are always up in a healthy network: they make good bootnodes.
        return [n.enode for n in self.validators]

    @property
    def rpc_urls(self) -> list[str]:
        """Failover order: the hub's own nodes first, then partners' nodes."""
        hub = [n.rpc_url for n in self.nodes if n.owner == HUB]
        return hub + [n.rpc_url for n in self.nodes if n.owner != HUB]

    @property
    def account_allowlist(self) -> list[str]:
        """Lower-case hex, as Besu's documentation writes them; each address once."""
        seen: list[str] = []
        for account in self.accounts:
            if account.address.lower() not in seen:
                seen.append(account.address.lower())
        return seen

    def manifest(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "format": MANIFEST_FORMAT,
            "chain_id": spec.chain_id,
            "consensus": {
                "protocol": "qbft",
                "block_period_s": spec.block_period_s,
                "epoch_length": spec.epoch_length,
                "request_timeout_s": spec.request_timeout_s,
                "validators": self.validator_addresses,
                "faulty_tolerated": faulty_tolerated(spec.validators),
            },
            "evm_fork": spec.evm_fork,
            "gas_limit": spec.gas_limit,
            "nodes": [n.to_json() for n in self.nodes],
            "accounts": [a.to_json() for a in self.accounts],
            "rpc_urls": self.rpc_urls,
            "settings_file": "corridor.env",
        }


def enode_url(public_key_hex: str, host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"enode://{public_key_hex}@{host}:{port}"


def faulty_tolerated(validators: int) -> int:
    """f for n = 3f+1 validators: how many may fail (or lie) with the chain still final."""
    return (validators - 1) // 3


def quorum(validators: int) -> int:
    """Commit seals a QBFT block needs: ceil(2n/3)."""
    return -(-2 * validators // 3)


def build_genesis(spec: NetworkSpec, validators: Sequence[str], alloc: Sequence[str]) -> dict:
    """The QBFT genesis: free gas, the validator set in extraData, ``alloc`` funded."""
    config: dict[str, Any] = {"chainId": spec.chain_id}
    config.update(EVM_FORKS[spec.evm_fork])
    config["zeroBaseFee"] = True
    config["qbft"] = {
        "blockperiodseconds": spec.block_period_s,
        "epochlength": spec.epoch_length,
        "requesttimeoutseconds": spec.request_timeout_s,
    }
    timestamp = spec.timestamp if spec.timestamp is not None else int(time.time())
    balance = hex(spec.operator_balance_wei)
    return {
        "config": config,
        "nonce": "0x0",
        "timestamp": hex(timestamp),
        "extraData": encode_extra_data_hex(sort_validators(validators)),
        "gasLimit": hex(spec.gas_limit),
        "difficulty": "0x1",
        "mixHash": BFT_MIX_HASH,
        "coinbase": ZERO_ADDRESS,
        "baseFeePerGas": "0x0",
        "alloc": {address.lower()[2:]: {"balance": balance} for address in alloc},
        "number": "0x0",
        "gasUsed": "0x0",
        "parentHash": ZERO_HASH,
    }


def plan_network(spec: NetworkSpec, *, entropy: Entropy = os.urandom) -> Network:
    """The whole network in memory; nothing touches the disk."""
    spec.validate()
    secrets: dict[str, NodeKey] = {}
    hosts = list(spec.node_hosts)
    nodes: list[NodeInfo] = []
    members = [(f"member-{p.name}", "member", p.name) for p in spec.partners]
    owners = spec.validator_owners or (HUB,) * spec.validators
    validators = [(f"validator-{i + 1}", "validator", owners[i]) for i in range(spec.validators)]
    for index, (name, role, owner) in enumerate(validators + members):
        key = generate_key(entropy)
        secrets[f"nodes/{name}/key"] = key
        host = hosts[index] if hosts else None
        nodes.append(
            NodeInfo(
                name=name,
                role=role,
                owner=owner,
                address=key.address,
                public_key=key.public_key_hex,
                p2p_host=host or spec.p2p_host,
                p2p_port=spec.p2p_port_base + index,
                rpc_host=host or spec.rpc_host,
                rpc_port=spec.rpc_port_base + index,
                rpc_apis=RPC_APIS_VALIDATOR if role == "validator" else RPC_APIS_MEMBER,
            )
        )

    accounts: list[AccountInfo] = []
    if spec.operator_address is not None:
        operator = AccountInfo(
            "operator", "operator", normalize_address(spec.operator_address), None
        )
    else:
        key = generate_key(entropy)
        secrets["keys/operator.key"] = key
        operator = AccountInfo("operator", "operator", key.address, "keys/operator.key")
    accounts.append(operator)
    # Corridor's operator funds partners itself unless a separate funder account is named.
    funder_address = (
        normalize_address(spec.funder_address) if spec.funder_address else operator.address
    )
    accounts.append(AccountInfo("funder", "funder", funder_address, None))
    for partner in spec.partners:
        if partner.settlement_address is not None:
            accounts.append(AccountInfo("partner", partner.name, partner.settlement_address, None))
        else:
            key = generate_key(entropy)
            path = f"keys/partners/{partner.name}.key"
            secrets[path] = key
            accounts.append(AccountInfo("partner", partner.name, key.address, path))

    funded = list(dict.fromkeys(a.address for a in accounts if a.role in ("operator", "funder")))
    genesis = build_genesis(spec, [n.address for n in nodes if n.role == "validator"], funded)
    return Network(
        spec=spec, nodes=tuple(nodes), accounts=tuple(accounts), genesis=genesis, secrets=secrets
    )


# ---- rendering -------------------------------------------------------------------------


def render_config_toml(network: Network, node: NodeInfo) -> str:
    spec = network.spec
    # On loopback, also bind loopback only; elsewhere listen on every interface.
    interface = ""
    if node.p2p_host in ("127.0.0.1", "::1"):
        interface = f"p2p-interface={templates.toml_value(node.p2p_host)}\n"
    return templates.CONFIG_TOML.substitute(
        name=node.name,
        role=node.role,
        owner=node.owner,
        chain_id=spec.chain_id,
        identity=templates.toml_value(node.name),
        gas_limit=spec.gas_limit,
        p2p_host=templates.toml_value(node.p2p_host),
        p2p_interface_line=interface,
        p2p_port=node.p2p_port,
        bootnodes=templates.toml_list_multiline(network.bootnodes),
        rpc_host=templates.toml_value(node.rpc_host),
        rpc_port=node.rpc_port,
        rpc_apis=templates.toml_value(list(node.rpc_apis)),
        host_allowlist=templates.toml_value(host_allowlist(spec, node)),
    )


def host_allowlist(spec: NetworkSpec, node: NodeInfo) -> list[str]:
    """The spec's allowlist, plus the node's own RPC host when clients reach it by that IP."""
    hosts = list(spec.host_allowlist)
    if node.rpc_host not in hosts and node.rpc_host not in ("0.0.0.0", "::") and "*" not in hosts:
        hosts.append(node.rpc_host)
    return hosts


def render_permissions_toml(network: Network) -> str:
    roles = ", ".join(
        f"{a.role} {a.name}" if a.role == "partner" else a.role for a in network.accounts
    )
    return templates.PERMISSIONS_TOML.substitute(
        chain_id=network.chain_id,
        account_roles=roles,
        accounts=templates.toml_list_multiline(network.account_allowlist),
        nodes=templates.toml_list_multiline(network.enodes),
    )


def render_start_script(network: Network, node: NodeInfo) -> str:
    return templates.START_SH.substitute(name=node.name, role=node.role, chain_id=network.chain_id)


def render_settings_env(network: Network) -> str:
    return templates.SETTINGS_ENV.substitute(
        chain_id=network.chain_id, rpc_urls=",".join(network.rpc_urls)
    )


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def network_files(network: Network) -> dict[str, tuple[str, int]]:
    """Every public file of the network: relative path -> (text, mode)."""
    genesis = _json_text(network.genesis)
    static_nodes = _json_text(network.enodes)
    permissions = render_permissions_toml(network)
    files: dict[str, tuple[str, int]] = {
        "network.json": (_json_text(network.manifest()), 0o644),
        "genesis.json": (genesis, 0o644),
        "static-nodes.json": (static_nodes, 0o644),
        "bootnodes.txt": ("\n".join(network.bootnodes) + "\n", 0o644),
        "permissions_config.toml": (permissions, 0o644),
        "corridor.env": (render_settings_env(network), 0o644),
    }
    names = " ".join(n.name for n in network.nodes)
    files["start-all.sh"] = (templates.START_ALL_SH.substitute(names=names), 0o755)
    files["stop-all.sh"] = (templates.STOP_ALL_SH.substitute(names=names), 0o755)
    for node in network.nodes:
        base = f"nodes/{node.name}"
        files[f"{base}/config.toml"] = (render_config_toml(network, node), 0o644)
        files[f"{base}/genesis.json"] = (genesis, 0o644)
        files[f"{base}/static-nodes.json"] = (static_nodes, 0o644)
        files[f"{base}/permissions_config.toml"] = (permissions, 0o644)
        files[f"{base}/start.sh"] = (render_start_script(network, node), 0o755)
        files[f"{base}/key.pub"] = ("0x" + node.public_key + "\n", 0o644)
        files[f"{base}/address"] = (node.address + "\n", 0o644)
    return files


@dataclass(frozen=True)
class WrittenNetwork:
    network: Network
    out_dir: Path
    files: tuple[str, ...]  # relative paths, public ones
    secret_files: tuple[str, ...]  # relative paths, mode 0600


def write_network(network: Network, out_dir: Path) -> WrittenNetwork:
    """Write ``network`` under ``out_dir``, which must not exist or be empty.

    Never overwrites: replacing a key silently would change a validator's identity.
    """
    if out_dir.exists():
        if not out_dir.is_dir():
            raise NetworkConfigError("out_dir_invalid", f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()):
            raise NetworkConfigError(
                "out_dir_not_empty",
                f"{out_dir} is not empty; refusing to overwrite a network (its keys)",
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    keys_dir = out_dir / "keys"
    for relative in network.secrets:
        if relative.startswith("keys/"):
            # keys/ and keys/partners/ hold account keys: owner-only, like the files.
            for folder in (keys_dir, (out_dir / relative).parent):
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(folder, 0o700)
    for relative, key in sorted(network.secrets.items()):
        write_secret(out_dir / relative, key.private_key_file_text())
    files = network_files(network)
    for relative, (text, mode) in sorted(files.items()):
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        os.chmod(path, mode)
    for node in network.nodes:
        (out_dir / "nodes" / node.name / "data").mkdir(exist_ok=True)
    return WrittenNetwork(
        network=network,
        out_dir=out_dir,
        files=tuple(sorted(files)),
        secret_files=tuple(sorted(network.secrets)),
    )


def generate_network(
    spec: NetworkSpec, out_dir: Path, *, entropy: Entropy = os.urandom
) -> WrittenNetwork:
    """``plan_network`` then ``write_network``: what ``corridor network init`` does."""
    return write_network(plan_network(spec, entropy=entropy), out_dir)
