"""The HTTP API through a real uvicorn server: problem+json for every bad input, nothing
changed by a refused request, idempotent replays, and partner isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer

PROBLEM = "application/problem+json"


@pytest.fixture
def world(live_server: LiveServer) -> dict[str, Any]:
    """Two partners with one funded customer wallet each, and their keys."""
    op = live_server.client(live_server.operator_key)
    keys = {}
    wallets = {}
    for pid in ("acme", "bolt"):
        assert op.post("/v1/participants", json={"id": pid, "name": pid.title()}).status_code == 201
        cap = op.put(f"/v1/participants/{pid}/net-debit-caps/USD", json={"cap": "100000.00"})
        assert cap.status_code == 200 and cap.json()["net_debit_cap"] == "100000.00"
        made = op.post("/v1/keys", json={"role": "participant", "participant_id": pid})
        keys[pid] = made.json()["secret"]
    keys["auditor"] = op.post("/v1/keys", json={"role": "auditor"}).json()["secret"]
    acme = live_server.client(keys["acme"])
    bolt = live_server.client(keys["bolt"])
    wallets["alice"] = acme.post("/v1/wallets", json={"aliases": ["+639171234567"]}).json()["id"]
    wallets["bob"] = bolt.post("/v1/wallets", json={"aliases": ["@bob.mx"]}).json()["id"]
    deposit = {"id": "fund-alice", "wallet_id": wallets["alice"], "amount": _usd("500.00")}
    assert acme.post("/v1/deposits", json=deposit).status_code == 201
    return {"keys": keys, "wallets": wallets, "op": op, "acme": acme, "bolt": bolt}


def _usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def _snapshot(world: dict[str, Any]) -> list[Any]:
    op: httpx.Client = world["op"]
    return [op.get(f"/v1/wallets/{w}").json()["balances"] for w in world["wallets"].values()]


def _transfer(world: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body = {
        "id": "t-1",
        "from_wallet": world["wallets"]["alice"],
        "to_wallet": world["wallets"]["bob"],
        "amount": _usd("10.00"),
    }
    body.update(overrides)
    return body


BAD_TRANSFERS = [
    ({"amount": _usd("10.001")}, "invalid_amount"),
    ({"amount": _usd("-5.00")}, "invalid_amount"),
    ({"amount": _usd("0")}, "invalid_amount"),
    ({"amount": _usd("0.00")}, "invalid_amount"),
    ({"amount": _usd("1e3")}, "invalid_amount"),
    ({"amount": _usd(" 10")}, "invalid_amount"),
    ({"amount": {"amount": "10", "currency": "ZZZ"}}, "unknown_currency"),
    ({"amount": {"amount": "10", "currency": "usd"}}, "unknown_currency"),
    ({"amount": {"amount": "1.5", "currency": "JPY"}}, "invalid_amount"),
    ({"amount": {"amount": 10.5, "currency": "USD"}}, "validation_error"),
    ({"amount": {"amount": "10", "currency": "USD", "x": 1}}, "validation_error"),
    ({"amount": _usd("600.00")}, "insufficient_funds"),
    ({"to_wallet": "w_nope"}, "wallet_not_found"),
    ({"to_wallet": None, "to_alias": "@nobody"}, "alias_not_found"),
    ({"to_wallet": None, "to_alias": "not an alias"}, "invalid_alias"),
    ({"to_alias": "@bob.mx"}, "invalid_recipient"),
    ({"id": None}, "idempotency_key_missing"),
    ({"id": ""}, "validation_error"),
    ({"pending": "yes"}, "validation_error"),
    ({"timeout_s": 30}, "invalid_timeout"),
    ({"surprise": True}, "validation_error"),
]


@pytest.mark.parametrize(("overrides", "code"), BAD_TRANSFERS)
def test_bad_transfer_is_a_problem_and_changes_nothing(
    world: dict[str, Any], overrides: dict[str, Any], code: str
) -> None:
    before = _snapshot(world)
    response = world["acme"].post("/v1/transfers", json=_transfer(world, **overrides))
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == code, problem
    assert problem["status"] == response.status_code
    assert problem["type"].endswith(code) and problem["detail"]
    assert _snapshot(world) == before


def test_malformed_requests_are_problems(world: dict[str, Any]) -> None:
    acme: httpx.Client = world["acme"]
    cases = [
        acme.post(
            "/v1/transfers", content=b"{not json", headers={"content-type": "application/json"}
        ),
        acme.post("/v1/transfers", content=b"[]", headers={"content-type": "application/json"}),
        acme.get("/v1/no-such-route"),
        acme.delete("/v1/transfers"),
        acme.get("/v1/wallets/w_missing"),
        acme.get("/v1/transfers", params={"after": "abc"}),
        acme.get("/v1/transfers", params={"limit": 100000}),
        httpx.post(f"{acme.base_url}/v1/transfers", json={}),
        httpx.get(f"{acme.base_url}/v1/wallets", headers={"Authorization": "Bearer cor_x_y"}),
        acme.post(
            "/v1/transfers",
            content=b" " * (5 * 2**20),
            headers={"content-type": "application/json"},
        ),
    ]
    expected = [422, 422, 404, 405, 404, 422, 422, 401, 401, 413]
    assert [r.status_code for r in cases] == expected
    for response in cases:
        assert response.headers["content-type"] == PROBLEM, response.text
        assert "Traceback" not in response.text
        assert response.json()["code"]


def test_replay_and_conflict(world: dict[str, Any]) -> None:
    acme: httpx.Client = world["acme"]
    body = _transfer(world)
    first = acme.post("/v1/transfers", json=body)
    assert first.status_code == 201
    replay = acme.post("/v1/transfers", json=body)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    conflict = acme.post("/v1/transfers", json=_transfer(world, amount=_usd("11.00")))
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"

    by_header = _transfer(world, id=None)
    sent = acme.post("/v1/transfers", json=by_header, headers={"Idempotency-Key": "hdr-1"})
    again = acme.post("/v1/transfers", json=by_header, headers={"Idempotency-Key": "hdr-1"})
    assert sent.status_code == 201 and again.status_code == 200
    assert sent.json()["client_id"] == "hdr-1"
    balances = acme.get(f"/v1/wallets/{world['wallets']['alice']}").json()["balances"]
    assert balances == [
        {"currency": "USD", "balance": "480.00", "held": "0.00", "available": "480.00"}
    ]


def test_partner_cannot_see_or_move_another_partners_wallet(world: dict[str, Any]) -> None:
    bolt: httpx.Client = world["bolt"]
    alice = world["wallets"]["alice"]
    before = _snapshot(world)
    steal = _transfer(world, from_wallet=alice, to_wallet=world["wallets"]["bob"])
    attempts = [
        bolt.get(f"/v1/wallets/{alice}"),
        bolt.get(f"/v1/wallets/{alice}/statement"),
        bolt.get(f"/v1/wallets/{alice}/limits/USD"),
        bolt.get("/v1/wallets", params={"participant_id": "acme"}),
        bolt.get("/v1/participants/acme"),
        bolt.post("/v1/transfers", json=steal),
        bolt.post("/v1/withdrawals", json={"id": "w", "wallet_id": alice, "amount": _usd("1")}),
        bolt.post("/v1/deposits", json={"id": "d", "wallet_id": alice, "amount": _usd("1")}),
        bolt.post(f"/v1/wallets/{alice}/aliases", json={"alias": "@stolen"}),
    ]
    for response in attempts:
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == PROBLEM
    assert _snapshot(world) == before
    listed = bolt.get("/v1/wallets").json()["data"]
    assert [w["id"] for w in listed if w["kind"] == "customer"] == [world["wallets"]["bob"]]
    assert {w["participant_id"] for w in listed} == {"bolt"}
    assert bolt.get("/v1/transfers", params={"participant_id": "acme"}).status_code == 404
    acme_transfer = world["acme"].post("/v1/transfers", json=_transfer(world)).json()
    seen_by_bolt = bolt.get(f"/v1/transfers/{acme_transfer['id']}")
    assert seen_by_bolt.status_code == 200, "the recipient's partner sees incoming transfers"
    deposit_id = world["acme"].get("/v1/transfers").json()["data"][0]["id"]
    assert bolt.get(f"/v1/transfers/{deposit_id}").status_code == 404


def test_roles(world: dict[str, Any], live_server: LiveServer) -> None:
    auditor = live_server.client(world["keys"]["auditor"])
    acme: httpx.Client = world["acme"]
    op: httpx.Client = world["op"]
    forbidden = [
        auditor.post("/v1/transfers", json=_transfer(world, id="aud")),
        auditor.post("/v1/participants", json={"name": "x"}),
        acme.post("/v1/participants", json={"name": "x"}),
        acme.post("/v1/keys", json={"role": "operator"}),
        acme.put("/v1/limits/tiers/basic/USD", json={"per_transfer_max": "1.00"}),
        op.post("/v1/transfers", json=_transfer(world, id="op")),
    ]
    for response in forbidden:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
    assert auditor.get(f"/v1/wallets/{world['wallets']['alice']}").status_code == 200
    assert auditor.get("/v1/transfers").status_code == 200


def test_pay_by_alias_pending_and_statement(world: dict[str, Any]) -> None:
    acme: httpx.Client = world["acme"]
    held = acme.post(
        "/v1/transfers",
        json=_transfer(world, id="p1", to_wallet=None, to_alias="@bob.mx", pending=True),
    ).json()
    assert held["status"] == "pending" and held["to_wallet"] == world["wallets"]["bob"]
    posted = acme.post(f"/v1/transfers/{held['id']}/post")
    assert posted.status_code == 200 and posted.json()["status"] == "posted"
    statement = acme.get(f"/v1/wallets/{world['wallets']['alice']}/statement").json()
    assert [line["balance_after"]["amount"] for line in statement["data"]] == ["500.00", "490.00"]


def test_batch_over_http(world: dict[str, Any]) -> None:
    acme: httpx.Client = world["acme"]
    items = [_transfer(world, id=f"b{i}", amount=_usd("1.00")) for i in range(50)]
    items.append(_transfer(world, id="b-too-much", amount=_usd("999.00")))
    result = acme.post("/v1/transfers/batch", json={"transfers": items}).json()
    assert (result["created"], result["exists"], result["failed"]) == (50, 0, 1)
    assert result["results"][-1]["error"]["code"] == "insufficient_funds"
    replay = acme.post("/v1/transfers/batch", json={"transfers": items[:50]}).json()
    assert replay["exists"] == 50 and replay["created"] == 0


def test_limit_refusal_names_the_limit(world: dict[str, Any]) -> None:
    op: httpx.Client = world["op"]
    alice = world["wallets"]["alice"]
    op.put(f"/v1/wallets/{alice}/limits/USD", json={"per_transfer_max": "25.00"})
    refused = world["acme"].post("/v1/transfers", json=_transfer(world, amount=_usd("30.00")))
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "limit_exceeded"
    assert (problem["limit"], problem["limit_amount"], problem["excess_amount"]) == (
        "per_transfer",
        "25.00",
        "5.00",
    )


def test_openapi_document(live_server: LiveServer) -> None:
    document = httpx.get(f"{live_server.base_url}/openapi.json").json()
    paths = document["paths"]
    for path in ("/v1/transfers", "/v1/transfers/batch", "/v1/deposits", "/v1/wallets/{wallet_id}"):
        assert path in paths


def test_net_debit_cap_refusal(world: dict[str, Any]) -> None:
    op: httpx.Client = world["op"]
    op.put("/v1/participants/acme/net-debit-caps/USD", json={"cap": "5.00"})
    refused = world["acme"].post("/v1/transfers", json=_transfer(world))
    assert refused.status_code == 422
    assert refused.json()["code"] == "net_debit_cap_exceeded"
    assert refused.json()["excess_amount"] == "5.00"
    exposure = world["acme"].get("/v1/participants/acme/settlement").json()
    assert exposure == [
        {
            "currency": "USD",
            "prefunded": "0.00",
            "unsettled": "0.00",
            "net_debit_cap": "5.00",
            "cap_is_prefunding": False,
        }
    ]
    assert world["bolt"].get("/v1/participants/acme/settlement").status_code == 404
