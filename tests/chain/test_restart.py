"""Restarts: settle, stop the process (kill -9 included), reopen: the chain, the batches and
the contract are all there and the next batch settles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from node_config.anvil import AnvilNode
from settlement.chain import (
    BatchSubmission,
    ChainConfig,
    ChainUnavailable,
    NetPosition,
    open_gateway,
)
from settlement.chain.embedded import CHAIN_DB_FILE
from tests.chain.conftest import OPERATOR_FUNDS_WEI, SCRYPT_N_TEST, GatewayHandle, new_address

REPO_ROOT = Path(__file__).resolve().parents[2]
LINE_TIMEOUT_S = 60.0


class Worker:
    """tests/chain/chain_worker.py in a subprocess, read line by line."""

    def __init__(self, mode: str, data_dir: Path, url: str | None = None) -> None:
        args = [sys.executable, "-m", "tests.chain.chain_worker", mode, str(data_dir)]
        if url:
            args.append(url)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.process = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def line(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + LINE_TIMEOUT_S
        text = stdout.readline()
        if not text or time.monotonic() > deadline:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"worker said nothing: {stderr[-3000:]}")
        parsed: dict[str, Any] = json.loads(text)
        return parsed

    def wait_for(self, event: str) -> dict[str, Any]:
        while True:
            message = self.line()
            if message["event"] == event:
                return message

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def kill9(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        assert self.process.returncode == -signal.SIGKILL

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.close()


def _config(data_dir: Path, url: str | None = None) -> ChainConfig:
    return ChainConfig(
        transport="rpc" if url else "embedded",
        data_dir=data_dir,
        rpc_urls=(url,) if url else (),
        keystore_scrypt_n=SCRYPT_N_TEST,
        poll_interval_s=0.02,
    )


def _start(workers: list[Worker], mode: str, data_dir: Path, anvil: AnvilNode | None) -> Worker:
    worker = Worker(mode, data_dir, anvil.url if anvil else None)
    workers.append(worker)
    opened = worker.wait_for("opened")
    if anvil is not None:
        anvil.set_balance(opened["operator"], OPERATOR_FUNDS_WEI)
        worker.send("funded")
    return worker


def _settle_next(gateway: Any, a: str, b: str) -> None:
    submission = BatchSubmission(
        number=gateway.last_batch_number() + 1,
        transfers_root=b"\x03" * 32,
        balances_root=b"\x04" * 32,
        prev_batch_hash=gateway.last_batch_hash(),
        transfer_count=1,
        positions=(NetPosition(a, "USD", 4), NetPosition(b, "USD", -4)),
    )
    receipt = gateway.settle_batch(submission)
    assert receipt.batch_number == 2 and not receipt.already_settled


@pytest.mark.parametrize("kind", ["embedded", pytest.param("rpc", marks=pytest.mark.node)])
def test_kill_9_after_settling_keeps_chain_batches_and_contract(
    kind: str, tmp_path: Path, workers: list[Worker], request: pytest.FixtureRequest
) -> None:
    anvil: AnvilNode | None = request.getfixturevalue("anvil") if kind == "rpc" else None
    worker = _start(workers, "settle", tmp_path, anvil)
    settled = worker.wait_for("settled")
    worker.kill9()

    with open_gateway(_config(tmp_path, anvil.url if anvil else None)) as gateway:
        if anvil is not None:
            anvil.set_balance(gateway.operator_address, OPERATOR_FUNDS_WEI)
        deployment = gateway.ensure_deployed()
        assert deployment.address == settled["contract"]  # reused, not redeployed
        assert gateway.head_block_number() >= settled["block"]
        header = gateway.batch(1)
        assert header is not None
        assert "0x" + header.batch_hash.hex() == settled["batch_hash"]
        receipt = gateway.batch_receipt(1)
        assert receipt is not None and receipt.tx_hash == settled["tx_hash"]
        assert gateway.settlement_balance(settled["b"], "USD") == 1_010
        _settle_next(gateway, settled["a"], settled["b"])
        assert gateway.settlement_balance(settled["b"], "USD") == 1_006
        events = gateway.events_since(deployment.block_number)
        assert [e.args["number"] for e in events if e.name == "BatchSettled"] == [1, 2]


def test_kill_9_while_mining_loses_no_mined_block(tmp_path: Path, workers: list[Worker]) -> None:
    worker = _start(workers, "stream", tmp_path, None)
    streaming = worker.wait_for("streaming")
    mined = [worker.wait_for("mined") for _ in range(15)]
    worker.kill9()  # somewhere in the middle of the next transaction

    with open_gateway(_config(tmp_path)) as gateway:
        gateway.ensure_deployed()
        last = mined[-1]
        assert gateway.head_block_number() >= last["block"]
        # Every block the worker saw mined is there, with its transaction.
        for entry in mined:
            assert gateway.w3.eth.get_transaction_receipt(entry["tx_hash"])["status"] == 1
        balance = gateway.settlement_balance(streaming["a"], "USD")
        assert balance >= 1_000 + len(mined)
        gateway.fund(streaming["a"], "USD", 1)  # and the chain goes on
        assert gateway.settlement_balance(streaming["a"], "USD") == balance + 1


def test_clean_close_and_reopen_in_process(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with open_gateway(config) as gateway:
        deployment = gateway.ensure_deployed()
        a, b = new_address(), new_address()
        for p in (a, b):
            gateway.register_participant(p)
            gateway.fund(p, "USD", 100)
        gateway.settle_batch(
            BatchSubmission(
                1,
                b"\x01" * 32,
                b"\x02" * 32,
                bytes(32),
                1,
                (NetPosition(a, "USD", -1), NetPosition(b, "USD", 1)),
            )
        )
        head = gateway.head_block_number()
    assert (tmp_path / "chain" / CHAIN_DB_FILE).exists()
    with open_gateway(config) as gateway:
        assert gateway.head_block_number() == head
        assert gateway.ensure_deployed() == deployment
        _settle_next(gateway, a, b)


def test_one_writer_per_data_dir(handle_embedded: GatewayHandle) -> None:
    first = handle_embedded.open()
    first.ensure_deployed()
    with pytest.raises(ChainUnavailable):
        open_gateway(handle_embedded.config, index_engine=handle_embedded.engine)
    reader = handle_embedded.open(read_only=True)  # readers are welcome
    assert reader.ensure_deployed() == first.deployment()


@pytest.fixture
def handle_embedded(gateway_factory: Any) -> GatewayHandle:
    handle: GatewayHandle = gateway_factory("embedded")
    return handle
