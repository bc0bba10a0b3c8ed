"""Conformance of the OpenAPI document and of errors: every operation has examples and
documents its problem responses; 404, 405, 422, 429 and unexpected errors are all RFC 9457
problem+json without internals. (The fuzzing itself, schemathesis against a live server with
a key of each role, is `.ci/fuzz.py`.)"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from tests.api.conftest import LiveServer

PROBLEM = "application/problem+json"


@pytest.fixture
def document(live_server: LiveServer) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{live_server.base_url}/openapi.json").json()
    return found


def test_every_operation_has_examples_and_problem_responses(document: dict[str, Any]) -> None:
    assert "Problem" in document["components"]["schemas"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    operations = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) > 50
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        responses = operation["responses"]
        for status in ("401", "403", "404", "422", "429", "500"):
            content = responses[status]["content"]
            assert list(content) == [PROBLEM], where
            assert content[PROBLEM]["example"]["status"] == int(status), where
        assert "Retry-After" in responses["429"]["headers"], where
        successes = [s for s in responses if s.startswith("2")]
        assert successes, where
        for status in successes:
            for media in responses[status].get("content", {}).values():
                assert "example" in media or "examples" in media, (where, status)
        if "requestBody" in operation:
            for media in operation["requestBody"]["content"].values():
                assert "example" in media or "examples" in media, where
            assert "413" in responses and "400" in responses, where
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])):
            assert "200" in responses, f"{where} replays with 200"


def test_errors_are_problems_without_internals(live_server: LiveServer) -> None:
    client = live_server.client(live_server.operator_key)
    cases = [
        (client.get("/v1/nowhere"), 404, "not_found"),
        (client.put("/v1/transfers"), 405, "method_not_allowed"),
        (client.post("/v1/participants", json={"name": 5}), 422, "validation_error"),
        (client.post("/v1/participants", json={"name": "a\u0000b"}), 422, "invalid_characters"),
        (client.get("/v1/wallets/w%00x"), 422, "invalid_characters"),
        (
            client.post(
                "/v1/participants",
                content=b"\xff\xfe",
                headers={"content-type": "application/json"},
            ),
            422,
            None,
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status or (code is None and response.status_code == 400)
        assert response.headers["content-type"] == PROBLEM
        assert code is None or response.json()["code"] == code


def test_unexpected_errors_leak_nothing(live_server: LiveServer) -> None:
    app: FastAPI = create_app(live_server.corridor, run_workers=False)

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret database password in a stack trace")

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/v1/boom", headers={"content-length": "0"})

    response = asyncio.run(get())
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text
