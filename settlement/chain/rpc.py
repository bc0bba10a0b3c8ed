"""The JSON-RPC transport: one or more node URLs, fail-over, confirmations.

`FailoverHTTPProvider` is a web3 HTTPProvider that, when a node does not answer (connection
refused, timeout, HTTP error), moves on to the next URL, checking first that the new node
reports the same chain id. Every web3 call goes through it, so fail-over is transparent to
the gateway. Transactions are signed locally; after a fail-over the transport re-broadcasts
the pending transaction to the new node (the same signed bytes: it cannot execute twice).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from eth_typing import URI
from eth_utils import encode_hex, keccak
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint

from settlement.chain.errors import (
    ChainConfigError,
    ChainTimeout,
    ChainUnavailable,
    TransactionRejected,
)
from settlement.chain.transport import RawLog, Transport

log = logging.getLogger(__name__)

# A node's reply to a transaction it already has; the transaction is in flight, not lost.
_ALREADY_KNOWN = ("already known", "known transaction", "already imported", "alreadyknown")


def redact(url: str) -> str:
    """scheme://host:port only: URLs of hosted nodes often carry an API key in the path."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


class FailoverHTTPProvider(HTTPProvider):
    def __init__(self, urls: tuple[str, ...], *, timeout_s: float) -> None:
        if not urls:
            raise ChainConfigError("rpc transport needs at least one URL (CORRIDOR_CHAIN_RPC_URLS)")
        self.session = requests.Session()
        super().__init__(
            urls[0],
            request_kwargs={"timeout": timeout_s},
            session=self.session,
            exception_retry_configuration=None,
        )
        self.urls = urls
        self.index = 0
        self.failovers = 0
        self.expected_chain_id: int | None = None
        self._verified: set[int] = set()
        self._lock = threading.Lock()

    def _post(self, url: str, data: bytes) -> bytes:
        response: bytes = self._request_session_manager.make_post_request(
            URI(url), data, **self.get_request_kwargs()
        )
        return response

    def _verify(self, index: int) -> None:
        """Refuses a node on another chain: signing for one chain and sending to another
        would at best fail, at worst settle on the wrong ledger."""
        if index in self._verified or self.expected_chain_id is None:
            return
        url = self.urls[index]
        reply = json.loads(self._post(url, self.encode_rpc_request(RPCEndpoint("eth_chainId"), [])))
        reported = int(reply["result"], 16)
        if reported != self.expected_chain_id:
            raise ChainConfigError(
                f"{redact(url)} reports chain id {reported}, expected {self.expected_chain_id}"
            )
        self._verified.add(index)

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        failures: list[str] = []
        for _ in range(len(self.urls)):
            with self._lock:
                index = self.index
            url = self.urls[index]
            try:
                self._verify(index)
                return self._post(url, request_data)
            except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as error:
                failures.append(f"{redact(url)}: {type(error).__name__}")
            except ChainConfigError as error:
                failures.append(str(error))
            with self._lock:
                if self.index == index:
                    self.index = (index + 1) % len(self.urls)
                    self.failovers += 1
                    self.endpoint_uri = self.urls[self.index]  # type: ignore[assignment]
                    log.warning(
                        "JSON-RPC node %s failed, switching to %s",
                        redact(url),
                        redact(self.urls[self.index]),
                    )
        raise ChainUnavailable("no JSON-RPC node answered: " + "; ".join(failures))


class RpcTransport(Transport):
    kind: ClassVar = "rpc"

    def __init__(
        self,
        urls: tuple[str, ...],
        *,
        expected_chain_id: int | None,
        confirmations: int,
        timeout_s: float,
        poll_interval_s: float,
        read_only: bool = False,
    ) -> None:
        self.provider = FailoverHTTPProvider(urls, timeout_s=timeout_s)
        self.w3 = Web3(self.provider)
        self.confirmations = confirmations
        self.poll_interval_s = poll_interval_s
        self.read_only = read_only
        self._write_lock = threading.RLock()
        reported = int(self.w3.eth.chain_id)
        if expected_chain_id is not None and reported != expected_chain_id:
            raise ChainConfigError(
                f"{redact(self.provider.urls[self.provider.index])} reports chain id "
                f"{reported}, expected {expected_chain_id}"
            )
        self._chain_id = reported
        self.provider.expected_chain_id = reported
        self.provider._verified.add(self.provider.index)

    def write_lock(self) -> AbstractContextManager[Any]:
        return self._write_lock

    def read_lock(self) -> AbstractContextManager[Any]:
        return nullcontext()

    def chain_id(self) -> int:
        return self._chain_id

    def block_hash(self, number: int) -> str:
        return encode_hex(self.w3.eth.get_block(number)["hash"])

    def gas_used(self, tx_hash: str, block_number: int) -> int:
        return int(self.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"])  # type: ignore[arg-type]

    def head_block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def send_raw_transaction(self, raw: bytes) -> str:
        try:
            return encode_hex(self.w3.eth.send_raw_transaction(raw))
        except Web3RPCError as error:
            if any(phrase in str(error).lower() for phrase in _ALREADY_KNOWN):
                return encode_hex(keccak(raw))
            raise TransactionRejected(str(error)) from error

    def wait_for_receipt(self, tx_hash: str, raw: bytes, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        failovers_seen = self.provider.failovers
        while True:
            if self.provider.failovers != failovers_seen:
                failovers_seen = self.provider.failovers
                if raw:
                    self._rebroadcast(raw)
            receipt = self._receipt(tx_hash)
            if receipt is not None:
                mined_in = int(receipt["blockNumber"])
                if self.confirmations == 1:
                    return receipt  # the node's receipt is of its canonical chain
                if self.head_block_number() - mined_in + 1 >= self.confirmations:
                    # Still in the canonical chain at that height (no reorganisation since)?
                    canonical = self.w3.eth.get_block(mined_in)["hash"]
                    if canonical == receipt["blockHash"]:
                        return receipt
            if time.monotonic() >= deadline:
                raise ChainTimeout(
                    f"transaction {tx_hash} not mined with {self.confirmations} "
                    f"confirmation(s) within {timeout_s} s",
                    tx_hash=tx_hash,
                )
            time.sleep(self.poll_interval_s)

    def _receipt(self, tx_hash: str) -> dict[str, Any] | None:
        try:
            return dict(self.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def _rebroadcast(self, raw: bytes) -> None:
        try:
            self.send_raw_transaction(raw)
        except TransactionRejected as error:  # e.g. "nonce too low": it was mined meanwhile
            log.info("re-broadcast after fail-over refused: %s", error)

    def fetch_logs(self, address: str, from_block: int, to_block: int) -> list[RawLog]:
        if to_block < from_block:
            return []
        logs = self.w3.eth.get_logs(
            {
                "address": Web3.to_checksum_address(address),
                "fromBlock": from_block,
                "toBlock": to_block,
            }
        )
        return [
            RawLog(
                address=Web3.to_checksum_address(entry["address"]),
                topics=tuple(bytes(t) for t in entry["topics"]),
                data=bytes(entry["data"]),
                block_number=int(entry["blockNumber"]),
                block_hash=encode_hex(entry["blockHash"]),
                tx_hash=encode_hex(entry["transactionHash"]),
                tx_index=int(entry["transactionIndex"]),
                log_index=int(entry["logIndex"]),
            )
            for entry in logs
        ]

    def close(self) -> None:
        self.provider.session.close()
