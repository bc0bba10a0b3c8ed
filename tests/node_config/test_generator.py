"""A generated network is internally consistent, checked independently of check_network."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest
from eth_keys import keys
from eth_utils import keccak, to_checksum_address

from node_config.network.errors import NetworkConfigError
from node_config.network.extradata import decode_extra_data
from node_config.network.generator import (
    NetworkSpec,
    generate_network,
    parse_partner,
    plan_network,
)
from node_config.network.inspect import check_network, parse_settings

GLOBEX = "0x4592C8e45706CC08b8F44b11E43CbA0CFC5892Cb"


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("net") / "corridor-net"
    spec = NetworkSpec(
        validators=5,
        partners=(parse_partner("acme"), parse_partner(f"globex={GLOBEX}")),
        validator_owners=("hub", "hub", "hub", "acme", "globex"),
        chain_id=424242,
        timestamp=1_700_000_000,
    )
    generate_network(spec, out)
    return out


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "network.json").read_text())


def test_every_validator_address_derives_from_its_key(network_dir: Path) -> None:
    manifest = _manifest(network_dir)
    for node in manifest["nodes"]:
        raw = (network_dir / "nodes" / node["name"] / "key").read_text()
        assert not raw.startswith("0x") and len(raw) == 64  # Besu's key file format
        public = keys.PrivateKey(bytes.fromhex(raw)).public_key
        # address = keccak(pubkey)[12:], computed here by hand
        assert to_checksum_address(keccak(public.to_bytes())[12:]) == node["address"]
        assert node["public_key"] == public.to_bytes().hex()
        assert node["enode"] == f"enode://{public.to_bytes().hex()}@127.0.0.1:{node['p2p_port']}"
        assert (network_dir / "nodes" / node["name"] / "address").read_text().strip() == (
            node["address"]
        )


def test_genesis_validators_are_the_validator_nodes(network_dir: Path) -> None:
    manifest = _manifest(network_dir)
    genesis = json.loads((network_dir / "genesis.json").read_text())
    decoded = decode_extra_data(genesis["extraData"])
    validators = [n["address"] for n in manifest["nodes"] if n["role"] == "validator"]
    assert sorted(decoded.validators) == sorted(validators)
    assert list(decoded.validators) == sorted(validators, key=lambda a: int(a, 16))
    assert decoded.is_genesis_form
    assert genesis["config"]["chainId"] == 424242
    assert genesis["config"]["zeroBaseFee"] is True
    assert set(genesis["config"]["qbft"]) == {
        "blockperiodseconds",
        "epochlength",
        "requesttimeoutseconds",
    }
    funded = {a["address"].lower()[2:] for a in manifest["accounts"] if a["role"] == "operator"}
    assert funded <= set(genesis["alloc"])


def test_allowlists_list_every_node_and_account(network_dir: Path) -> None:
    manifest = _manifest(network_dir)
    enodes = {n["enode"] for n in manifest["nodes"]}
    accounts = {a["address"].lower() for a in manifest["accounts"]}
    assert {a["role"] for a in manifest["accounts"]} == {"operator", "funder", "partner"}
    assert GLOBEX.lower() in accounts
    assert len(accounts) == 3  # operator (also the funder), acme (generated), globex (given)
    for node in manifest["nodes"]:
        base = network_dir / "nodes" / node["name"]
        permissions = tomllib.loads((base / "permissions_config.toml").read_text())
        assert set(permissions["nodes-allowlist"]) == enodes
        assert {a.lower() for a in permissions["accounts-allowlist"]} == accounts
        assert set(json.loads((base / "static-nodes.json").read_text())) == enodes
        config = tomllib.loads((base / "config.toml").read_text())
        assert set(config["bootnodes"]) <= enodes
        assert config["p2p-port"] == node["p2p_port"]
        assert config["rpc-http-port"] == node["rpc_port"]
        assert config["rpc-http-host"] == "127.0.0.1"
        assert config["p2p-host"] == "127.0.0.1"
        assert config["min-gas-price"] == 0
        assert config["permissions-nodes-config-file-enabled"] is True
        assert config["permissions-accounts-config-file-enabled"] is True
        expected_apis = {"ETH", "NET", "WEB3"} | (
            {"QBFT"} if node["role"] == "validator" else set()
        )
        assert set(config["rpc-http-api"]) == expected_apis
        assert "localhost" in config["host-allowlist"]
        assert (base / "genesis.json").read_text() == (network_dir / "genesis.json").read_text()
        assert (base / "start.sh").stat().st_mode & stat.S_IXUSR


def test_ports_are_distinct_and_owners_recorded(network_dir: Path) -> None:
    nodes = _manifest(network_dir)["nodes"]
    ports = [n["p2p_port"] for n in nodes] + [n["rpc_port"] for n in nodes]
    assert len(set(ports)) == len(ports)
    assert [n["owner"] for n in nodes if n["role"] == "validator"] == [
        "hub",
        "hub",
        "hub",
        "acme",
        "globex",
    ]
    assert [n["name"] for n in nodes if n["role"] == "member"] == ["member-acme", "member-globex"]


def test_settings_file_points_at_every_node(network_dir: Path) -> None:
    settings = parse_settings((network_dir / "corridor.env").read_text())
    nodes = _manifest(network_dir)["nodes"]
    assert settings["CORRIDOR_CHAIN"] == "rpc"
    assert settings["CORRIDOR_CHAIN_ID"] == "424242"
    urls = settings["CORRIDOR_CHAIN_RPC_URLS"].split(",")
    assert sorted(urls) == sorted(n["rpc_url"] for n in nodes)
    # The hub's own nodes come first in the failover order.
    hub_urls = [n["rpc_url"] for n in nodes if n["owner"] == "hub"]
    assert urls[: len(hub_urls)] == hub_urls


def test_secrets_are_owner_only_and_stay_out_of_public_files(network_dir: Path) -> None:
    manifest = _manifest(network_dir)
    secret_paths = [network_dir / "nodes" / n["name"] / "key" for n in manifest["nodes"]]
    secret_paths += [network_dir / a["key_file"] for a in manifest["accounts"] if a["key_file"]]
    assert len(secret_paths) == 5 + 2 + 2  # validators, member nodes, operator and acme
    public_text = "".join(
        p.read_text() for p in network_dir.rglob("*") if p.is_file() and p not in secret_paths
    )
    for path in secret_paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() not in public_text
    assert stat.S_IMODE((network_dir / "keys").stat().st_mode) == 0o700


def test_check_network_agrees(network_dir: Path) -> None:
    check = check_network(network_dir)
    assert check.ok, check.problems
    assert check.genesis.faulty_tolerated == 1
    assert check.genesis.quorum == 4


def test_check_network_finds_a_missing_allowlist_entry(network_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(network_dir, copy)
    target = copy / "nodes" / "member-acme" / "permissions_config.toml"
    permissions = target.read_text()
    first_enode = _manifest(copy)["nodes"][0]["enode"]
    target.write_text(permissions.replace(f'"{first_enode}",', ""))
    check = check_network(copy)
    assert not check.ok
    assert any("member-acme" in p and "nodes-allowlist" in p for p in check.problems)


def test_check_network_finds_a_swapped_key(network_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(network_dir, copy)
    a = copy / "nodes" / "validator-1" / "key"
    b = copy / "nodes" / "validator-2" / "key"
    key_a, key_b = a.read_text(), b.read_text()
    a.write_text(key_b)
    b.write_text(key_a)
    check = check_network(copy)
    assert any("validator-1: key does not derive" in p for p in check.problems)


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("keep me")
    with pytest.raises(NetworkConfigError) as info:
        generate_network(NetworkSpec(), tmp_path)
    assert info.value.code == "out_dir_not_empty"
    assert (tmp_path / "something").read_text() == "keep me"


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        (NetworkSpec(validators=3), "validators_too_few"),
        (NetworkSpec(validators=4, validator_owners=("hub",)), "validator_owners_invalid"),
        (NetworkSpec(validator_owners=("hub", "hub", "hub", "nobody")), "validator_owners_invalid"),
        (NetworkSpec(block_period_s=5, request_timeout_s=2), "consensus_invalid"),
        (NetworkSpec(p2p_host="node1.example"), "host_invalid"),
        (NetworkSpec(evm_fork="frontier"), "evm_fork_invalid"),
        (NetworkSpec(p2p_port_base=8545, rpc_port_base=8547), "port_invalid"),
        (NetworkSpec(node_hosts=("10.0.0.1",)), "node_hosts_invalid"),
        (NetworkSpec(partners=(parse_partner("a"), parse_partner("a"))), "partner_duplicate"),
    ],
)
def test_refused_specs(spec: NetworkSpec, code: str) -> None:
    with pytest.raises(NetworkConfigError) as info:
        plan_network(spec)
    assert info.value.code == code


def test_given_operator_and_separate_funder_are_allowlisted_and_funded() -> None:
    operator, funder = "0x" + "11" * 20, "0x" + "22" * 20
    network = plan_network(NetworkSpec(operator_address=operator, funder_address=funder))
    assert network.account_allowlist == [operator, funder]
    assert set(network.genesis["alloc"]) == {operator[2:], funder[2:]}
    assert not any(path.startswith("keys/") for path in network.secrets)


def test_small_network_allowed_without_fault_tolerance() -> None:
    network = plan_network(NetworkSpec(validators=1, fault_tolerance=False))
    assert len(network.validators) == 1


@pytest.mark.parametrize("text", ["", "Bad Name", "hub", "acme=0x1234"])
def test_bad_partner_refused(text: str) -> None:
    with pytest.raises(NetworkConfigError):
        parse_partner(text)


def test_node_hosts_place_each_node(tmp_path: Path) -> None:
    hosts = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.1.9")
    spec = NetworkSpec(partners=(parse_partner("acme"),), node_hosts=hosts)
    written = generate_network(spec, tmp_path / "net")
    assert [n.p2p_host for n in written.network.nodes] == list(hosts)
    assert all(n.enode.endswith(f"@{n.p2p_host}:{n.p2p_port}") for n in written.network.nodes)
    config = tomllib.loads((tmp_path / "net/nodes/member-acme/config.toml").read_text())
    assert "10.0.1.9" in config["host-allowlist"]
    assert "p2p-interface" not in config  # not loopback: listen on every interface
    assert check_network(tmp_path / "net").ok
