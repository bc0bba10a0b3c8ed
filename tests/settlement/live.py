"""A real uvicorn server over a Corridor, with the settlement and audit routers mounted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.auth_store import Role
from api.context import Corridor
from api.routers import audit, settlement
from tests.api.conftest import free_port

SERVER_START_TIMEOUT_S = 20


def app_with_settlement(corridor: Corridor, run_workers: bool = False) -> FastAPI:
    """The application, plus this area's routers if api/app.py does not mount them yet."""
    app = create_app(corridor, run_workers=run_workers)
    paths = {getattr(route, "path", "") for route in app.routes}
    for module in (settlement, audit):
        if not any(path.startswith(module.router.prefix) for path in paths):
            app.include_router(module.router)
    return app


@dataclass
class Server:
    base_url: str
    corridor: Corridor
    operator_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def key(self, role: Role, participant_id: str | None = None) -> str:
        _, secret = self.corridor.keys.create(role, self.corridor.clock(), participant_id)
        return secret


@contextmanager
def serve(corridor: Corridor, run_workers: bool = False) -> Iterator[Server]:
    _, operator_key = corridor.keys.create(Role.OPERATOR, corridor.clock(), label="tests")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app_with_settlement(corridor, run_workers),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Server(f"http://127.0.0.1:{port}", corridor, operator_key)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
