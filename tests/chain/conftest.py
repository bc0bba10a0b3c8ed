"""Fixtures for the chain tests: the contract on an in-memory eth-tester, and the gateway
on both transports (embedded py-evm in a temporary data dir; anvil from contracts/).

`gateway_factory(transport)` opens a gateway on a fresh chain; `reopen()` on what it
returns opens the same data dir (and, for rpc, the same anvil) again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import Engine, create_engine

from node_config.anvil import AnvilNode, find_anvil
from settlement.chain import ChainConfig, Web3ChainGateway, open_gateway
from settlement.chain.index_store import create_index_tables

SCRYPT_N_TEST = 2**10  # keystores in tests: fast to decrypt; never in production
OPERATOR_FUNDS_WEI = 10**24


def anvil_missing_reason() -> str | None:
    if find_anvil() is None:
        return "anvil not installed: run `npm ci` in contracts/ (needs Node.js)"
    return None


requires_anvil = pytest.mark.skipif(
    anvil_missing_reason() is not None, reason=anvil_missing_reason() or ""
)


@pytest.fixture
def anvil() -> Iterator[AnvilNode]:
    reason = anvil_missing_reason()
    if reason:
        pytest.skip(reason)
    node = AnvilNode.start()
    try:
        yield node
    finally:
        node.stop()


@dataclass
class GatewayHandle:
    """A gateway plus what is needed to open it again."""

    config: ChainConfig
    engine: Engine
    anvil: AnvilNode | None = None
    opened: list[Web3ChainGateway] = field(default_factory=list)

    def open(self, **changes: Any) -> Web3ChainGateway:
        config = replace(self.config, **changes)
        gateway = open_gateway(config, index_engine=self.engine)
        self.opened.append(gateway)
        if self.anvil is not None and not config.read_only:
            self.anvil.set_balance(gateway.operator_address, OPERATOR_FUNDS_WEI)
        return gateway

    def close_all(self) -> None:
        for gateway in self.opened:
            gateway.close()
        self.opened.clear()


def make_config(transport: str, data_dir: Path, anvil: AnvilNode | None) -> ChainConfig:
    return ChainConfig(
        transport=transport,  # type: ignore[arg-type]
        data_dir=data_dir,
        rpc_urls=(anvil.url,) if anvil else (),
        keystore_scrypt_n=SCRYPT_N_TEST,
        receipt_timeout_s=20.0,
        poll_interval_s=0.02,
    )


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[[str], GatewayHandle]]:
    handles: list[GatewayHandle] = []
    nodes: list[AnvilNode] = []

    def factory(transport: str) -> GatewayHandle:
        node = None
        if transport == "rpc":
            reason = anvil_missing_reason()
            if reason:
                pytest.skip(reason)
            node = AnvilNode.start()
            nodes.append(node)
        data_dir = tmp_path / f"data-{len(handles)}"
        engine = create_engine(f"sqlite:///{data_dir.parent / f'index-{len(handles)}.sqlite3'}")
        create_index_tables(engine)
        handle = GatewayHandle(make_config(transport, data_dir, node), engine, node)
        handles.append(handle)
        return handle

    yield factory
    for handle in handles:
        handle.close_all()
        handle.engine.dispose()
    for node in nodes:
        node.stop()


@pytest.fixture(params=["embedded", pytest.param("rpc", marks=pytest.mark.node)])
def transport(request: pytest.FixtureRequest) -> str:
    """Runs a test on each transport; the rpc run is marked `node` (needs anvil)."""
    return str(request.param)


@pytest.fixture
def handle(transport: str, gateway_factory: Callable[[str], GatewayHandle]) -> GatewayHandle:
    return gateway_factory(transport)


@pytest.fixture
def gateway(handle: GatewayHandle) -> Web3ChainGateway:
    """A gateway with the contract deployed."""
    gw = handle.open()
    gw.ensure_deployed()
    return gw


def new_address() -> str:
    return str(Account.create().address)


def random_root() -> bytes:
    return os.urandom(32)
