"""A real webhook receiver on loopback, and a live API server tuned for fast retries."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.auth_store import Role
from api.context import Corridor
from api.settings import Settings
from tests.api.conftest import free_port

FAST_WEBHOOKS = {
    "webhook_poll_s": 0.05,
    "webhook_backoff_base_s": 0.05,
    "webhook_backoff_max_s": 0.2,
    "webhook_attempts_max": 6,
    "webhook_lifetime_s": 30.0,
    "webhook_timeout_s": 2.0,
    "settlement_poll_s": 3600.0,
}


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


@dataclass
class Receiver:
    """An HTTP server that records every POST and answers with scripted statuses."""

    url: str
    received: list[Received] = field(default_factory=list)
    # Statuses to answer, in order; then `default_status`.
    script: list[int] = field(default_factory=list)
    default_status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else self.default_status

    def record(self, item: Received) -> None:
        with self.lock:
            self.received.append(item)

    def successes(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.headers.get("x-answered") == "2xx"]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.received)):
                    return
            time.sleep(0.02)
        with self.lock:
            got = [(r.event["id"], r.event["type"]) for r in self.received]
        raise AssertionError(f"the receiver did not get what was expected; got {got}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hooks")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            status = state.answer()
            headers = {k.lower(): v for k, v in self.headers.items()}
            headers["x-answered"] = "2xx" if 200 <= status < 300 else str(status)
            state.record(Received(time.monotonic(), self.path, headers, body))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class NotifyServer:
    base_url: str
    corridor: Corridor
    operator_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def key(self, role: Role, participant_id: str | None = None) -> str:
        _, secret = self.corridor.keys.create(role, self.corridor.clock(), participant_id)
        return secret


def open_corridor(database_url: str, data_dir: Path, **overrides: Any) -> Corridor:
    settings = Settings(
        data_dir=data_dir, database_url=database_url, **{**FAST_WEBHOOKS, **overrides}
    )
    return Corridor.open(settings)


def start_server(corridor: Corridor) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(corridor), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return server, thread, port


@pytest.fixture
def server_settings() -> dict[str, Any]:
    """Override in a test module to tune the server's settings."""
    return {}


@pytest.fixture
def notify_server(
    database_url: str, tmp_path: Path, server_settings: dict[str, Any]
) -> Iterator[NotifyServer]:
    corridor = open_corridor(database_url, tmp_path / "data", **server_settings)
    _, operator_key = corridor.keys.create(Role.OPERATOR, corridor.clock(), label="tests")
    server, thread, port = start_server(corridor)
    yield NotifyServer(f"http://127.0.0.1:{port}", corridor, operator_key)
    server.should_exit = True
    thread.join(timeout=15)
    corridor.close()


@dataclass
class World:
    server: NotifyServer
    op: httpx.Client
    acme: httpx.Client
    bolt: httpx.Client
    keys: dict[str, str]
    alice: str
    bob: str


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


@pytest.fixture
def world(notify_server: NotifyServer) -> World:
    """Two partners, acme (alice, funded with 500.00 USD) and bolt (bob)."""
    op = notify_server.client(notify_server.operator_key)
    keys = {}
    for pid in ("acme", "bolt"):
        assert op.post("/v1/participants", json={"id": pid, "name": pid}).status_code == 201
        op.put(f"/v1/participants/{pid}/net-debit-caps/USD", json={"cap": "100000.00"})
        keys[pid] = notify_server.key(Role.PARTICIPANT, pid)
    keys["auditor"] = notify_server.key(Role.AUDITOR)
    acme = notify_server.client(keys["acme"])
    bolt = notify_server.client(keys["bolt"])
    alice = acme.post("/v1/wallets", json={"aliases": ["@alice"]}).json()["id"]
    bob = bolt.post("/v1/wallets", json={"aliases": ["@bob"]}).json()["id"]
    funded = acme.post(
        "/v1/deposits", json={"id": "fund-alice", "wallet_id": alice, "amount": usd("500.00")}
    )
    assert funded.status_code == 201, funded.text
    return World(notify_server, op, acme, bolt, keys, alice, bob)
