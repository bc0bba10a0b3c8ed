"""`inspect` refuses malformed or inconsistent genesis files with a stable code."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from node_config.network.errors import NetworkConfigError
from node_config.network.extradata import encode_extra_data_hex
from node_config.network.generator import NetworkSpec, build_genesis
from node_config.network.inspect import (
    check_network,
    inspect_genesis,
    load_genesis,
    parse_settings,
    settings_chain_id,
)

VALIDATORS = [f"0x{i:040x}" for i in range(1, 6)]
OPERATOR = "0x" + "ab" * 20


def genesis(validators: list[str] = VALIDATORS[:4], chain_id: int = 1337) -> dict[str, Any]:
    return build_genesis(NetworkSpec(chain_id=chain_id, timestamp=0), validators, [OPERATOR])


def refused(doc: Any, code: str, **kwargs: Any) -> str:
    with pytest.raises(NetworkConfigError) as info:
        inspect_genesis(doc, **kwargs)
    assert info.value.code == code, str(info.value)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_a_good_genesis_reports_its_settings() -> None:
    report = inspect_genesis(genesis(), expected_chain_id=1337)
    assert report.chain_id == 1337
    assert len(report.validators) == 4
    assert report.faulty_tolerated == 1 and report.quorum == 3
    assert report.block_period_s == 2 and report.epoch_length == 30000
    assert report.request_timeout_s == 4
    assert report.zero_base_fee
    assert report.alloc == {"0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB": 10**24}
    assert report.warnings == ()


@pytest.mark.parametrize(
    "extra",
    [
        "0x",
        "0x1234",
        "not hex",
        encode_extra_data_hex(VALIDATORS[:4]) + "00",
        encode_extra_data_hex(VALIDATORS[:4])[:-4],
        # a genesis must carry no vote, round 0 and no seals: round 1 here
        encode_extra_data_hex(VALIDATORS[:4])[:-4] + "01c0",
        12345,
    ],
)
def test_malformed_extra_data_refused(extra: Any) -> None:
    doc = genesis()
    doc["extraData"] = extra
    refused(doc, "extradata_malformed")


def test_missing_extra_data_refused() -> None:
    doc = genesis()
    del doc["extraData"]
    refused(doc, "extradata_malformed")


def test_chain_id_disagreeing_with_settings_refused() -> None:
    settings = parse_settings("# corridor\nCORRIDOR_CHAIN=rpc\nCORRIDOR_CHAIN_ID=2024\n")
    message = refused(genesis(), "chain_id_mismatch", expected_chain_id=settings_chain_id(settings))
    assert "1337" in message and "2024" in message


@pytest.mark.parametrize("count", [1, 2, 3])
def test_too_few_validators_refused_when_fault_tolerance_requested(count: int) -> None:
    doc = genesis(VALIDATORS[:count])
    refused(doc, "validators_too_few", fault_tolerance=True)
    assert len(inspect_genesis(doc, fault_tolerance=False).validators) == count


def test_no_validator_refused_even_without_fault_tolerance() -> None:
    doc = genesis()
    doc["extraData"] = encode_extra_data_hex([])
    refused(doc, "validators_none", fault_tolerance=False)


def test_contract_selection_cannot_prove_fault_tolerance() -> None:
    doc = genesis()
    doc["extraData"] = encode_extra_data_hex([])
    contract = "0x0000000000000000000000000000000000007777"
    doc["config"]["qbft"]["validatorcontractaddress"] = contract
    doc["alloc"][contract[2:]] = {"balance": "0", "code": "0x00"}
    refused(doc, "validators_unverifiable", fault_tolerance=True)
    report = inspect_genesis(doc, fault_tolerance=False)
    assert report.validator_selection == "contract"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: d.pop("config"), "genesis_malformed"),
        (lambda d: d["config"].pop("chainId"), "genesis_malformed"),
        (lambda d: d["config"].update(chainId="twelve"), "genesis_malformed"),
        (lambda d: d["config"].update(chainid=99), "genesis_inconsistent"),
        (lambda d: d["config"].pop("qbft"), "genesis_not_qbft"),
        (lambda d: d["config"].update(ibft2={}), "genesis_not_qbft"),
        (lambda d: d["config"]["qbft"].update(blockperiodseconds=0), "genesis_malformed"),
        (lambda d: d["config"]["qbft"].update(epochlength=-1), "genesis_malformed"),
        (lambda d: d.update(alloc={"0x12": {"balance": "1"}}), "genesis_malformed"),
        (lambda d: d.update(gasLimit="0x10"), "genesis_malformed"),
        (lambda d: d.pop("gasLimit"), "genesis_malformed"),
    ],
)
def test_inconsistent_genesis_refused(mutate: Any, code: str) -> None:
    doc = copy.deepcopy(genesis())
    mutate(doc)
    refused(doc, code)


def test_lowercase_keys_accepted_like_besu() -> None:
    doc = genesis()
    doc["config"]["chainid"] = doc["config"].pop("chainId")
    assert inspect_genesis(doc).chain_id == 1337


def test_besu_defaults_produce_warnings() -> None:
    doc = genesis()
    doc["config"]["qbft"] = {}
    doc["config"].pop("zeroBaseFee")
    report = inspect_genesis(doc)
    assert report.block_period_s == 1 and report.request_timeout_s == 10
    assert any("zeroBaseFee" in w for w in report.warnings)


def test_files_not_json_refused(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text("{ not json")
    with pytest.raises(NetworkConfigError) as info:
        load_genesis(path)
    assert info.value.code == "genesis_malformed"
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(NetworkConfigError):
        load_genesis(path)
    with pytest.raises(NetworkConfigError) as missing:
        load_genesis(tmp_path / "absent.json")
    assert missing.value.code == "genesis_not_found"


def test_settings_parser() -> None:
    values = parse_settings('export CORRIDOR_CHAIN_ID="0x10"\n\n# c\nCORRIDOR_CHAIN=rpc\n')
    assert settings_chain_id(values) == 16
    with pytest.raises(NetworkConfigError):
        parse_settings("not a pair\n")
    with pytest.raises(NetworkConfigError):
        settings_chain_id({"CORRIDOR_CHAIN_ID": "abc"})


def test_check_network_refuses_a_chain_id_mismatch(tmp_path: Path) -> None:
    from node_config.network.generator import generate_network

    generate_network(NetworkSpec(chain_id=5151), tmp_path / "net")
    with pytest.raises(NetworkConfigError) as info:
        check_network(tmp_path / "net", expected_chain_id=5152)
    assert info.value.code == "chain_id_mismatch"
    settings = tmp_path / "net" / "corridor.env"
    settings.write_text(
        settings.read_text().replace("CORRIDOR_CHAIN_ID=5151", "CORRIDOR_CHAIN_ID=7")
    )
    with pytest.raises(NetworkConfigError) as again:
        check_network(tmp_path / "net")
    assert again.value.code == "chain_id_mismatch"
