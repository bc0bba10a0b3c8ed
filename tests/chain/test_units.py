"""Pieces of the gateway that need no chain: hashing, revert decoding, the key-value
store, configuration, keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_tester.exceptions import TransactionFailed
from eth_utils import function_signature_to_4byte_selector, keccak
from web3.exceptions import ContractCustomError, ContractLogicError

from settlement.chain import BatchSubmission, ChainConfig, ChainConfigError, NetPosition
from settlement.chain.artifacts import load_artifact
from settlement.chain.deployment import contract_address_for
from settlement.chain.errors import RevertDecoder, revert_data_from
from settlement.chain.gateway import batch_hash, currency_code_bytes, positions_hash
from settlement.chain.keys import create_operator_key, keystore_address, load_operator_key
from settlement.chain.kvstore import SqliteKeyValueStore

A = "0x" + "0a" * 20
B = "0x" + "0b" * 20
WRONG_NUMBER = function_signature_to_4byte_selector(
    "SettlementLedgerWrongBatchNumber(uint256,uint256)"
) + abi_encode(["uint256", "uint256"], [3, 5])


def test_submission_sorts_positions_canonically() -> None:
    positions = (
        NetPosition(B, "USD", 5),
        NetPosition(A, "USD", -5),
        NetPosition(B, "EUR", -1),
        NetPosition(A, "EUR", 1),
    )
    submission = BatchSubmission(1, b"\1" * 32, b"\2" * 32, bytes(32), 4, positions)
    assert [(p.currency, p.participant[-2:].upper()) for p in submission.positions] == [
        ("EUR", "0A"),
        ("EUR", "0B"),
        ("USD", "0A"),
        ("USD", "0B"),
    ]
    encoded = abi_encode(
        ["(address,bytes3,int256)[]"], [[p.as_abi() for p in submission.positions]]
    )
    assert submission.positions_hash == keccak(encoded) == positions_hash(submission.positions)
    expected = keccak(
        abi_encode(
            ["uint256", "bytes32", "bytes32", "bytes32", "uint256", "bytes32"],
            [1, b"\1" * 32, b"\2" * 32, bytes(32), 4, submission.positions_hash],
        )
    )
    assert submission.batch_hash == expected
    assert (
        batch_hash(1, b"\1" * 32, b"\2" * 32, bytes(32), 4, submission.positions_hash) == expected
    )


def test_submission_refuses_malformed_input() -> None:
    with pytest.raises(ValueError):
        BatchSubmission(0, b"\1" * 32, b"\2" * 32, bytes(32), 0)
    with pytest.raises(ValueError):
        BatchSubmission(1, b"\1" * 31, b"\2" * 32, bytes(32), 0)
    with pytest.raises(ValueError):
        BatchSubmission(1, b"\1" * 32, b"\2" * 32, bytes(32), 2**32)
    with pytest.raises(TypeError):
        NetPosition(A, "USD", 1.5)  # type: ignore[arg-type]
    for bad in ("usd", "US", "USDT", "U$D"):
        with pytest.raises(ValueError):
            currency_code_bytes(bad)


def test_revert_data_is_found_in_every_backend_shape() -> None:
    shapes = [
        TransactionFailed(WRONG_NUMBER),
        TransactionFailed(Exception(WRONG_NUMBER)),
        TransactionFailed(repr(WRONG_NUMBER)),
        TransactionFailed(f"execution reverted: {WRONG_NUMBER!r}"),
        ContractCustomError("0x" + WRONG_NUMBER.hex(), data="0x" + WRONG_NUMBER.hex()),
        ContractLogicError("execution reverted", data={"data": "0x" + WRONG_NUMBER.hex()}),
    ]
    decoder = RevertDecoder(load_artifact().abi)
    for shape in shapes:
        error = decoder.decode(revert_data_from(shape) or b"")
        assert error.error_name == "SettlementLedgerWrongBatchNumber", shape
        assert error.args_by_name == {"expected": 3, "given": 5}
    assert revert_data_from(ValueError("x")) is None
    assert revert_data_from(ContractLogicError("execution reverted", data=None)) == b""
    assert decoder.decode(b"\xde\xad\xbe\xef").error_name == "unknown"
    reason = function_signature_to_4byte_selector("Error(string)") + abi_encode(["string"], ["no"])
    assert decoder.decode(reason).args_by_name == {"message": "no"}


def test_kv_store_commits_whole_blocks_only(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite3"
    store = SqliteKeyValueStore(path)
    store[b"a"] = b"1"
    store[b"b"] = b"2"
    store.commit()
    store[b"c"] = b"3"
    del store[b"a"]
    assert store[b"c"] == b"3" and not store.exists(b"a")
    with pytest.raises(KeyError):
        store[b"a"]
    store.close()  # uncommitted: c and the deletion of a are gone
    reopened = SqliteKeyValueStore(path)
    assert reopened[b"a"] == b"1" and reopened[b"b"] == b"2"
    assert not reopened.exists(b"c")
    with pytest.raises(KeyError):
        del reopened[b"zz"]
    reader = SqliteKeyValueStore(path, read_only=True)
    assert reader[b"b"] == b"2"
    reader[b"x"] = b"y"
    reader.commit()  # a no-op
    assert not reopened.exists(b"x")


def test_config_from_environment() -> None:
    config = ChainConfig.from_env(
        {
            "CORRIDOR_CHAIN": "rpc",
            "CORRIDOR_DATA_DIR": "/tmp/x",
            "CORRIDOR_CHAIN_RPC_URLS": "http://a:1, http://b:2,",
            "CORRIDOR_CHAIN_KEYSTORE_PASSPHRASE": "s3cret",
            "CORRIDOR_CHAIN_CONFIRMATIONS": "3",
            "CORRIDOR_CHAIN_ID": "2024",
        }
    )
    assert config.transport == "rpc"
    assert config.rpc_urls == ("http://a:1", "http://b:2")
    assert config.confirmations == 3 and config.expected_chain_id == 2024
    assert config.data_dir == Path("/tmp/x")
    assert "s3cret" not in repr(config)
    assert ChainConfig.from_env({}).transport == "embedded"
    with pytest.raises(ValueError):
        ChainConfig(transport="ipc")  # type: ignore[arg-type]


def test_keystore_wrong_passphrase_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "operator.json"
    account = create_operator_key(path, "right", scrypt_n=2**10)
    assert keystore_address(path) == account.address
    assert load_operator_key(path, "right").address == account.address
    with pytest.raises(ChainConfigError) as caught:
        load_operator_key(path, "wrong")
    assert account.key.hex() not in str(caught.value)
    assert json.loads(path.read_text())["crypto"]["kdfparams"]["n"] == 2**10
    with pytest.raises(ChainConfigError):
        create_operator_key(path, "again", scrypt_n=2**10)


def test_contract_address_prediction() -> None:
    # The first contract deployed by eth-tester's first account (nonce 0), a known value.
    deployer = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
    assert contract_address_for(deployer, 0) == "0xF2E246BB76DF876Cef8b38ae84130F4F55De395b"
