"""What only the JSON-RPC transport does: fail-over, chain id checks, receipt timeouts,
confirmations. Against anvil (marked `node`)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from node_config.anvil import AnvilNode, free_loopback_port, rpc_call
from settlement.chain import ChainConfigError, ChainTimeout, ChainUnavailable, open_gateway
from settlement.chain.rpc import redact
from tests.chain.conftest import OPERATOR_FUNDS_WEI, make_config, new_address

pytestmark = pytest.mark.node


def test_fails_over_to_the_next_url(anvil: AnvilNode, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_loopback_port()}"
    config = replace(make_config("rpc", tmp_path, anvil), rpc_urls=(dead, anvil.url))
    with open_gateway(config) as gateway:
        anvil.set_balance(gateway.operator_address, OPERATOR_FUNDS_WEI)
        gateway.ensure_deployed()
        gateway.register_participant(new_address())
        provider = gateway.w3.provider
        assert provider.failovers >= 1
        assert provider.endpoint_uri == anvil.url


def test_refuses_a_node_on_another_chain(anvil: AnvilNode, tmp_path: Path) -> None:
    config = replace(make_config("rpc", tmp_path, anvil), expected_chain_id=999)
    with pytest.raises(ChainConfigError):
        open_gateway(config)
    other = AnvilNode.start(chain_id=999)
    try:
        config = replace(make_config("rpc", tmp_path, anvil), rpc_urls=(anvil.url, other.url))
        with open_gateway(config) as gateway:
            assert gateway.chain_id() == anvil.chain_id
            anvil.stop()  # the only node of the right chain goes away
            with pytest.raises(ChainUnavailable):
                gateway.head_block_number()
    finally:
        other.stop()


def test_unreachable_nodes_raise_chain_unavailable(tmp_path: Path) -> None:
    config = make_config("rpc", tmp_path, None)
    config = replace(config, rpc_urls=(f"http://127.0.0.1:{free_loopback_port()}",))
    with pytest.raises(ChainUnavailable):
        open_gateway(config)


def test_receipt_timeout_names_the_transaction(anvil: AnvilNode, tmp_path: Path) -> None:
    config = replace(make_config("rpc", tmp_path, anvil), receipt_timeout_s=0.5)
    with open_gateway(config) as gateway:
        anvil.set_balance(gateway.operator_address, OPERATOR_FUNDS_WEI)
        gateway.ensure_deployed()
        participant = new_address()
        rpc_call(anvil.url, "evm_setAutomine", [False])
        with pytest.raises(ChainTimeout) as caught:
            gateway.register_participant(participant)
        assert caught.value.tx_hash is not None
        rpc_call(anvil.url, "evm_mine", [])  # it was sent, and mines later
        assert gateway.is_participant(participant)


def test_waits_for_confirmations(anvil: AnvilNode, tmp_path: Path) -> None:
    config = replace(make_config("rpc", tmp_path, anvil), confirmations=2)
    with open_gateway(config) as gateway:
        anvil.set_balance(gateway.operator_address, OPERATOR_FUNDS_WEI)
        rpc_call(anvil.url, "evm_setAutomine", [False])
        rpc_call(anvil.url, "evm_setIntervalMining", [1])
        started = time.monotonic()
        deployment = gateway.ensure_deployed()
        receipt = gateway.register_participant(new_address())
        assert gateway.head_block_number() >= receipt.block_number + 1
        assert receipt.block_number > deployment.block_number
        assert time.monotonic() - started >= 1.0


def test_urls_are_redacted_in_messages() -> None:
    assert redact("https://node.example:8545/v3/SECRETKEY") == "https://node.example:8545"
    assert "SECRET" not in redact("https://user:SECRET@node.example/path")


def test_concurrent_writers_share_the_nonce_sequence(anvil: AnvilNode, tmp_path: Path) -> None:
    with open_gateway(make_config("rpc", tmp_path, anvil)) as gateway:
        anvil.set_balance(gateway.operator_address, OPERATOR_FUNDS_WEI)
        gateway.ensure_deployed()
        participants = [new_address() for _ in range(6)]
        errors: list[BaseException] = []

        def register(p: str) -> None:
            try:
                gateway.register_participant(p)
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=register, args=(p,)) for p in participants]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        assert all(gateway.is_participant(p) for p in participants)
