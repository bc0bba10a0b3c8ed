"""Role isolation on every route: each route of the application, called with no key and
with a key of each role (operator, participant, auditor), is refused exactly when the
role may not use it. A new route without an entry in ROLES fails this test.

And participant isolation: a participant reaching for another participant's resource by
its id is told it does not exist (404), on every route that names one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from api.app import create_app
from api.auth_store import Role
from tests.api.conftest import LiveServer

OP, PA, AU = "operator", "participant", "auditor"
EVERYONE = {OP, PA, AU}

# Who may call what: the specification, written out rather than read from the code.
ROLES: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/participants"): {OP},
    ("GET", "/v1/participants"): EVERYONE,
    ("GET", "/v1/participants/{participant_id}"): EVERYONE,
    ("PUT", "/v1/participants/{participant_id}/net-debit-caps/{currency}"): {OP},
    ("GET", "/v1/participants/{participant_id}/settlement"): EVERYONE,
    ("POST", "/v1/wallets"): {OP, PA},
    ("GET", "/v1/wallets"): EVERYONE,
    ("GET", "/v1/wallets/{wallet_id}"): EVERYONE,
    ("PATCH", "/v1/wallets/{wallet_id}"): {OP},
    ("POST", "/v1/wallets/{wallet_id}/aliases"): {OP, PA},
    ("GET", "/v1/wallets/{wallet_id}/statement"): EVERYONE,
    ("GET", "/v1/wallets/{wallet_id}/balances"): EVERYONE,
    ("GET", "/v1/wallets/{wallet_id}/limits/{currency}"): EVERYONE,
    ("PUT", "/v1/wallets/{wallet_id}/limits/{currency}"): {OP},
    ("PUT", "/v1/limits/tiers/{tier}/{currency}"): {OP},
    ("PUT", "/v1/wallets/{wallet_id}/step-up"): {OP, PA},
    ("GET", "/v1/wallets/{wallet_id}/step-up"): EVERYONE,
    ("DELETE", "/v1/wallets/{wallet_id}/step-up"): {OP, PA},
    ("POST", "/v1/deposits"): {PA},
    ("POST", "/v1/withdrawals"): {PA},
    ("POST", "/v1/transfers"): {PA},
    ("POST", "/v1/transfers/batch"): {PA},
    ("GET", "/v1/transfers"): EVERYONE,
    ("GET", "/v1/transfers/{transfer_id}"): EVERYONE,
    ("POST", "/v1/transfers/{transfer_id}/post"): {PA},
    ("POST", "/v1/transfers/{transfer_id}/void"): {PA},
    ("GET", "/v1/rates"): EVERYONE,
    ("GET", "/v1/rates/{base}/{quote}"): EVERYONE,
    ("PUT", "/v1/rates/{base}/{quote}"): {OP},
    ("PUT", "/v1/fx/pricing/{sell}/{buy}"): {OP},
    ("POST", "/v1/quotes"): {PA},
    ("GET", "/v1/quotes/{quote_id}"): EVERYONE,
    ("POST", "/v1/payments"): {PA},
    ("GET", "/v1/payments/{payment_id}"): EVERYONE,
    ("POST", "/v1/liquidity/deposits"): {OP},
    ("POST", "/v1/liquidity/withdrawals"): {OP},
    ("POST", "/v1/settlement/windows/close"): {OP},
    ("GET", "/v1/settlement/windows"): EVERYONE,
    ("GET", "/v1/settlement/windows/{number}"): EVERYONE,
    ("GET", "/v1/settlement/batches/{number}"): EVERYONE,
    ("POST", "/v1/settlement/funding"): {OP},
    ("GET", "/v1/settlement/reconciliation"): {OP, AU},
    ("GET", "/v1/settlement/transfers/{transfer_id}"): EVERYONE,
    ("GET", "/v1/audit/transfers/{transfer_id}/proof"): EVERYONE,
    ("GET", "/v1/audit/batches/{number}/export"): {OP, AU},
    ("POST", "/v1/keys"): {OP},
    ("GET", "/v1/keys"): EVERYONE,
    ("POST", "/v1/keys/{key_id}/rotate"): EVERYONE,
    ("DELETE", "/v1/keys/{key_id}"): EVERYONE,
    ("POST", "/v1/webhooks"): {OP, PA},
    ("GET", "/v1/webhooks"): {OP, PA},
    ("GET", "/v1/webhooks/{webhook_id}"): {OP, PA},
    ("DELETE", "/v1/webhooks/{webhook_id}"): {OP, PA},
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): {OP, PA},
    ("GET", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): {OP, PA},
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): {OP, PA},
    ("GET", "/v1/events"): EVERYONE,
    ("GET", "/v1/events/stream"): {OP, PA},
}


def app_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API route of the application, through included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from app_routes(route.original_router.routes)


def operations(live_server: LiveServer) -> list[tuple[str, str]]:
    app = create_app(live_server.corridor, run_workers=False)
    found = sorted(
        (method, route.path) for route in app_routes(app.routes) for method in route.methods
    )
    documented = sorted(
        (method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item
    )
    assert found == documented, "every route is in the OpenAPI document"
    return found


@pytest.fixture
def world(live_server: LiveServer) -> dict[str, Any]:
    op = live_server.client(live_server.operator_key)
    keys: dict[str, str] = {OP: live_server.operator_key}
    for pid in ("acme", "bolt"):
        assert op.post("/v1/participants", json={"id": pid, "name": pid}).status_code == 201
        op.put(f"/v1/participants/{pid}/net-debit-caps/USD", json={"cap": "1000.00"})
    _, keys[PA] = live_server.corridor.keys.create(Role.PARTICIPANT, 0, "acme")
    _, keys["bolt"] = live_server.corridor.keys.create(Role.PARTICIPANT, 0, "bolt")
    _, keys[AU] = live_server.corridor.keys.create(Role.AUDITOR, 0)
    acme = live_server.client(keys[PA])
    wallet = acme.post("/v1/wallets", json={}).json()["id"]
    deposit = acme.post(
        "/v1/deposits",
        json={"id": "d1", "wallet_id": wallet, "amount": {"amount": "5", "currency": "USD"}},
    ).json()["id"]
    hook = acme.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x"}).json()["id"]
    key_id = acme.get("/v1/keys").json()[0]["id"]
    values = {
        "participant_id": "acme",
        "wallet_id": wallet,
        "transfer_id": deposit,
        "webhook_id": hook,
        "key_id": key_id,
        "currency": "USD",
        "tier": "basic",
        "base": "USD",
        "quote": "EUR",
        "sell": "USD",
        "buy": "EUR",
        "quote_id": "q_missing",
        "payment_id": "pay_missing",
        "number": "1",
        "delivery_id": "1",
    }
    return {"keys": keys, "values": values}


_clients: dict[str | None, httpx.Client] = {}


def call(
    live_server: LiveServer, key: str | None, method: str, path: str, values: dict[str, str]
) -> httpx.Response:
    url = path.format(**values)
    # Revoking or rotating a real key would lock the caller out: name one that is not there.
    if path.startswith("/v1/keys/"):
        url = path.format(key_id="k_missing")
    # One client per key: making an httpx client costs more than the request.
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = live_server.client(key)
    body = {} if method in ("POST", "PUT", "PATCH") else None
    if path == "/v1/events/stream":
        with client.stream(method, url, timeout=10) as response:
            response.read() if response.status_code != 200 else None
            return response
    return client.request(method, url, json=body)


def test_every_route_and_role(live_server: LiveServer, world: dict[str, Any]) -> None:
    _clients.clear()
    found = operations(live_server)
    missing = [op for op in found if op not in ROLES]
    assert not missing, f"routes without a role specification: {missing}"
    checked = 0
    for method, path in found:
        allowed = ROLES[(method, path)]
        anonymous = call(live_server, None, method, path, world["values"])
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.headers["content-type"] == "application/problem+json"
        for role in (OP, PA, AU):
            response = call(live_server, world["keys"][role], method, path, world["values"])
            refused = response.status_code == 403 and response.json()["code"] == "forbidden"
            assert response.status_code != 401, (method, path, role)
            assert refused == (role not in allowed), (method, path, role, response.text)
            assert response.status_code < 500, (method, path, role, response.text)
            checked += 1
    assert checked == 3 * len(found)


# Routes naming a resource of acme's: bolt, a participant too, must not learn it exists.
FOREIGN = [
    ("GET", "/v1/participants/{participant_id}"),
    ("GET", "/v1/participants/{participant_id}/settlement"),
    ("GET", "/v1/wallets/{wallet_id}"),
    ("POST", "/v1/wallets/{wallet_id}/aliases"),
    ("GET", "/v1/wallets/{wallet_id}/statement"),
    ("GET", "/v1/wallets/{wallet_id}/balances"),
    ("GET", "/v1/wallets/{wallet_id}/limits/{currency}"),
    ("PUT", "/v1/wallets/{wallet_id}/step-up"),
    ("GET", "/v1/wallets/{wallet_id}/step-up"),
    ("DELETE", "/v1/wallets/{wallet_id}/step-up"),
    ("GET", "/v1/transfers/{transfer_id}"),
    ("POST", "/v1/transfers/{transfer_id}/post"),
    ("POST", "/v1/transfers/{transfer_id}/void"),
    ("GET", "/v1/settlement/transfers/{transfer_id}"),
    ("GET", "/v1/audit/transfers/{transfer_id}/proof"),
    ("GET", "/v1/webhooks/{webhook_id}"),
    ("DELETE", "/v1/webhooks/{webhook_id}"),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"),
]


def test_participants_cannot_reach_each_others_resources(
    live_server: LiveServer, world: dict[str, Any]
) -> None:
    values = world["values"]
    bolt = live_server.client(world["keys"]["bolt"])
    bodies = {
        "/v1/wallets/{wallet_id}/aliases": {"alias": "@stolen"},
        "/v1/wallets/{wallet_id}/step-up": {
            "signing_address": "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"
        },
    }
    for method, path in FOREIGN:
        body = bodies.get(path, {}) if method in ("POST", "PUT") else None
        params = {"at": "2026-01-01T00:00:00Z"} if path.endswith("/balances") else None
        response = bolt.request(method, path.format(**values), json=body, params=params)
        assert response.status_code == 404, (method, path, response.text)
    # The owner still has everything.
    acme = live_server.client(world["keys"][PA])
    assert acme.get(f"/v1/webhooks/{values['webhook_id']}").status_code == 200
    assert acme.get(f"/v1/wallets/{values['wallet_id']}").status_code == 200
