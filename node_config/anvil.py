"""Starts and stops a development JSON-RPC node: anvil, from the npm package in contracts/.

`npm ci` in contracts/ installs `@foundry-rs/anvil`, which ships a prebuilt binary for the
platform (node_modules/@foundry-rs/anvil-<os>-<arch>/bin/anvil). anvil writes to
~/.foundry, so it runs with HOME pointed at a temporary folder that is removed on stop.

    with AnvilNode.start() as node:
        node.url          # http://127.0.0.1:<free port>
        node.set_balance(address, 10**24)

Used by the tests (tests/chain/conftest.py) and meant for `corridor network dev`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from node_config.chain import BASE_FEE_GENESIS_WEI, CHAIN_ID_DEV, GAS_LIMIT_BLOCK

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "contracts" / "node_modules"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
START_ATTEMPTS_MAX = 3  # a free port can be taken between choosing it and anvil binding it
RPC_TIMEOUT_S = 5.0


class AnvilUnavailable(RuntimeError):
    """anvil is not installed (run `npm ci` in contracts/) or does not start."""


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(platform.system())
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    return f"anvil-{system}-{machine}"


def find_anvil() -> Path | None:
    """The anvil binary: $CORRIDOR_ANVIL_BIN, else contracts/node_modules, else PATH."""
    configured = os.environ.get("CORRIDOR_ANVIL_BIN")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    name = "anvil.exe" if platform.system() == "Windows" else "anvil"
    bundled = NODE_MODULES / "@foundry-rs" / _platform_package() / "bin" / name
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    found = shutil.which("anvil")
    return Path(found) if found else None


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rpc_call(url: str, method: str, params: list[Any], timeout_s: float = RPC_TIMEOUT_S) -> Any:
    """One JSON-RPC call with the standard library (no web3 needed to manage the node)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise RuntimeError(f"{method} failed: {reply['error']}")
    return reply["result"]


@dataclass
class AnvilNode:
    """A running anvil process on a loopback port."""

    url: str
    port: int
    chain_id: int
    process: subprocess.Popen[bytes]
    home: Path
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(
        cls,
        *,
        chain_id: int = CHAIN_ID_DEV,
        gas_limit: int = GAS_LIMIT_BLOCK,
        base_fee_wei: int = BASE_FEE_GENESIS_WEI,
        block_time_s: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> AnvilNode:
        """Starts anvil on a free loopback port and waits until it answers.

        Blocks are mined on each transaction unless `block_time_s` is given.
        """
        binary = find_anvil()
        if binary is None:
            raise AnvilUnavailable(
                "anvil not found: run `npm ci` in contracts/ (or set CORRIDOR_ANVIL_BIN)"
            )
        last_error = "no attempt"
        for _ in range(START_ATTEMPTS_MAX):
            home = Path(tempfile.mkdtemp(prefix="corridor-anvil-"))
            port = free_loopback_port()
            args = [
                str(binary),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--chain-id",
                str(chain_id),
                "--gas-limit",
                str(gas_limit),
                "--block-base-fee-per-gas",
                str(base_fee_wei),
                "--hardfork",
                "prague",
                "--silent",
                *(("--block-time", str(block_time_s)) if block_time_s else ()),
                *extra_args,
            ]
            env = {**os.environ, "HOME": str(home)}
            log = (home / "anvil.log").open("wb")
            process = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            log.close()
            node = cls(
                url=f"http://127.0.0.1:{port}",
                port=port,
                chain_id=chain_id,
                process=process,
                home=home,
            )
            try:
                node._wait_ready()
                return node
            except AnvilUnavailable as error:
                last_error = str(error)
                node.stop()
        raise AnvilUnavailable(f"anvil did not start: {last_error}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.home / "anvil.log").read_text(errors="replace")[-2000:]
                raise AnvilUnavailable(f"anvil exited with {self.process.returncode}: {log}")
            try:
                reported = int(rpc_call(self.url, "eth_chainId", [], timeout_s=1.0), 16)
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.05)
                continue
            if reported != self.chain_id:
                raise AnvilUnavailable(f"anvil reports chain id {reported}, not {self.chain_id}")
            return
        raise AnvilUnavailable(f"anvil did not answer within {START_TIMEOUT_S} s")

    def set_balance(self, address: str, balance_wei: int) -> None:
        """Gives an account ether (anvil's dev-only `anvil_setBalance`)."""
        rpc_call(self.url, "anvil_setBalance", [address, hex(balance_wei)])

    def kill(self) -> None:
        """Kills anvil without letting it clean up (a crash of the node)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Stops anvil and removes its temporary HOME. Safe to call twice."""
        if self._stopped:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        shutil.rmtree(self.home, ignore_errors=True)
        self._stopped = True

    def __enter__(self) -> AnvilNode:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
