"""Per-key request rate limits: 429 problem+json with Retry-After, per key."""

from __future__ import annotations

import time
from typing import Any

import pytest

from api.auth_store import Role
from api.ratelimit import RateLimiter
from tests.notify.conftest import NotifyServer


def test_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=lambda: now[0], keys_max=2)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") is None, "each key has its own bucket"
    now[0] += 0.5
    assert limiter.take("a") is None and limiter.take("a") is not None
    limiter.take("c")  # tracks at most 2 keys: the oldest is forgotten (a full bucket again)
    assert len(limiter._buckets) == 2
    assert RateLimiter(rate_per_s=0, burst=1).take("x") is None, "0 turns limits off"


@pytest.fixture
def server_settings() -> dict[str, Any]:
    return {"rate_limit_per_s": 1.0, "rate_limit_burst": 3}


def test_429_with_retry_after(notify_server: NotifyServer) -> None:
    busy = notify_server.client(notify_server.key(Role.AUDITOR))
    other = notify_server.client(notify_server.key(Role.AUDITOR))
    answers = [busy.get("/v1/participants") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert other.get("/v1/participants").status_code == 200, "limits are per key"
    time.sleep(1.05)
    assert busy.get("/v1/participants").status_code == 200
