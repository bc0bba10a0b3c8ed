"""Webhook delivery figures (not a test): latency from commit to receipt, deliveries/s.

    .venv/bin/python -m tests.notify.measure_delivery [DATABASE_URL]

Latency: a live server (poll 0.2 s; its own writes wake the dispatcher), one transfer at a
time, time from the API's answer to the receiver's receipt. Throughput: 2,000 events
already committed over 1 and over 50 wallets, one dispatcher, a loopback receiver
answering 200 at once.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from api.auth_store import Role
from settlement.ledger.model import TransferRequest
from settlement.notify import Dispatcher, WebhookStore
from tests.api.conftest import free_port
from tests.helpers import allow_settlement_debits
from tests.notify.conftest import open_corridor, start_server

received: list[tuple[float, int]] = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        received.append((time.perf_counter(), json.loads(body)["id"]))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def main() -> None:
    port = free_port()
    receiver = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{port}/hook"
    tmp = Path(tempfile.mkdtemp())
    database_url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tmp / 'l.sqlite3'}"

    # -- latency through a live server
    corridor = open_corridor(database_url, tmp / "a", webhook_poll_s=0.2, settlement_poll_s=3600)
    ledger = corridor.ledger
    ledger.create_participant("acme", participant_id="acme")
    allow_settlement_debits(ledger, ["acme"])
    wallets = [ledger.create_wallet("acme").id for _ in range(51)]
    for w in wallets:
        ledger.deposit("acme", f"fund-{w}", w, "USD", 10**9)
    WebhookStore(corridor.engine).create("acme", url, ["transfer.created"], None, corridor.clock())
    server, thread, api_port = start_server(corridor)
    _, key = corridor.keys.create(Role.PARTICIPANT, corridor.clock(), "acme")
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {key}"}
    )
    latencies = []
    rng = random.Random(1)
    for i in range(40):
        time.sleep(rng.random() * 0.2)  # not in step with the dispatcher's polling
        before = len(received)
        client.post(
            "/v1/transfers",
            json={
                "id": f"lat-{i}",
                "from_wallet": wallets[0],
                "to_wallet": wallets[1],
                "amount": {"amount": "1.00", "currency": "USD"},
            },
        )
        answered = time.perf_counter()
        while len(received) == before:
            time.sleep(0.001)
        latencies.append((received[-1][0] - answered) * 1000)
    server.should_exit = True
    thread.join(10)
    latencies.sort()
    print(
        f"latency, answer to receipt (poll 0.2 s), 40 transfers: p50 "
        f"{statistics.median(latencies):.0f} ms, p90 {latencies[35]:.0f} ms, "
        f"max {latencies[-1]:.0f} ms"
    )

    # -- throughput of one dispatcher over committed events
    for spread in (1, 50):
        received.clear()
        requests = [
            TransferRequest(
                f"tp-{spread}-{i}",
                wallets[i % spread],
                "USD",
                100,
                to_wallet=wallets[50],
            )
            for i in range(2000)
        ]
        for start in range(0, len(requests), 500):
            ledger.post_batch("acme", requests[start : start + 500])
        dispatcher = Dispatcher(corridor.engine, corridor.clock)
        started = time.perf_counter()
        dispatcher.run_until_idle(timeout_s=600)
        elapsed = time.perf_counter() - started
        dispatcher.close()
        print(
            f"throughput, {len(received)} deliveries over {spread} wallet queue(s): "
            f"{len(received) / elapsed:.0f} deliveries/s ({elapsed:.1f} s)"
        )
    corridor.close()
    receiver.shutdown()


if __name__ == "__main__":
    main()
