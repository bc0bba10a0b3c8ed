"""A stand-in for a few Besu validators' QBFT JSON-RPC API, on one local HTTP server.

Each validator is a path (``/v0``, ``/v1``, ...). A vote counts once per validator; when
more than half of the current validators have voted alike, the change applies, as QBFT's
block header vote tally does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeQbft:
    def __init__(self, validators: list[str]) -> None:
        self.validators = [v.lower() for v in validators]
        self.votes: dict[int, dict[str, bool]] = {}
        self.calls: list[tuple[int, str, list[Any]]] = []
        self.down: set[int] = set()
        self.lock = threading.Lock()

    def handle(self, node: int, method: str, params: list[Any]) -> Any:
        with self.lock:
            self.calls.append((node, method, params))
            if method == "qbft_getValidatorsByBlockNumber":
                return sorted(self.validators)
            if method == "qbft_getPendingVotes":
                return self.votes.get(node, {})
            if method == "qbft_proposeValidatorVote":
                address, add = params[0].lower(), bool(params[1])
                self.votes.setdefault(node, {})[address] = add
                self._tally(address)
                return True
            if method == "qbft_discardValidatorVote":
                self.votes.get(node, {}).pop(params[0].lower(), None)
                return True
            raise KeyError(method)

    def _tally(self, address: str) -> None:
        for add in (True, False):
            voters = sum(1 for v in self.votes.values() if v.get(address) is add)
            if voters > len(self.validators) // 2:
                if add and address not in self.validators:
                    self.validators.append(address)
                if not add and address in self.validators:
                    self.validators.remove(address)


@contextmanager
def serve(fake: FakeQbft, nodes: int) -> Iterator[list[str]]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            node = int(self.path.strip("/v"))
            if node in fake.down:
                self.send_response(503)
                self.end_headers()
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                answer = {
                    "jsonrpc": "2.0",
                    "id": body["id"],
                    "result": fake.handle(node, body["method"], body["params"]),
                }
            except KeyError:
                answer = {
                    "jsonrpc": "2.0",
                    "id": body["id"],
                    "error": {"code": -32601, "message": "Method not enabled"},
                }
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield [f"http://127.0.0.1:{port}/v{i}" for i in range(nodes)]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
