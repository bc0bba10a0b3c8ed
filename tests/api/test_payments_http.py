"""Quotes and cross-currency payments over HTTP: the recipient gets exactly the quote."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveServer

PROBLEM = "application/problem+json"


@pytest.fixture
def setup(live_server: LiveServer) -> dict[str, Any]:
    op = live_server.client(live_server.operator_key)
    for pid in ("acme", "bolt"):
        op.post("/v1/participants", json={"id": pid, "name": pid})
    lp = live_server.corridor.settings.fx_liquidity_participant
    for pid, cur in (("acme", "USD"), (lp, "PHP"), (lp, "USD"), ("operator", "USD")):
        op.put(f"/v1/participants/{pid}/net-debit-caps/{cur}", json={"cap": "1000000.00"})
    funded = op.post(
        "/v1/liquidity/deposits",
        json={"id": "inv-1", "amount": {"amount": "500000.00", "currency": "PHP"}},
    )
    assert funded.status_code == 201, funded.text
    keys = {
        pid: op.post("/v1/keys", json={"role": "participant", "participant_id": pid}).json()[
            "secret"
        ]
        for pid in ("acme", "bolt")
    }
    acme = live_server.client(keys["acme"])
    bolt = live_server.client(keys["bolt"])
    sender = acme.post("/v1/wallets", json={"kyc_tier": "standard"}).json()["id"]
    recipient = bolt.post("/v1/wallets", json={"aliases": ["+639171234567"]}).json()["id"]
    acme.post(
        "/v1/deposits",
        json={
            "id": "cash",
            "wallet_id": sender,
            "amount": {"amount": "1000.00", "currency": "USD"},
        },
    )
    return {"op": op, "acme": acme, "bolt": bolt, "sender": sender, "recipient": recipient}


def test_quote_then_payment(setup: dict[str, Any]) -> None:
    acme: httpx.Client = setup["acme"]
    rate = acme.get("/v1/rates/USD/PHP").json()
    assert rate["source"] and rate["as_of"] and "." in rate["rate"]
    quote = acme.post(
        "/v1/quotes", json={"sell_currency": "USD", "buy_currency": "PHP", "sell_amount": "100.00"}
    )
    assert quote.status_code == 201, quote.text
    q = quote.json()
    assert q["sell"] == {"amount": "100.00", "currency": "USD"}
    body = {
        "id": "pay-1",
        "quote_id": q["id"],
        "from_wallet": setup["sender"],
        "to_alias": "+639171234567",
        "buy": q["buy"],
    }
    paid = acme.post("/v1/payments", json=body)
    assert paid.status_code == 201, paid.text
    assert paid.json()["buy"] == q["buy"] and paid.json()["customer_rate"] == q["customer_rate"]
    replay = acme.post("/v1/payments", json=body)
    assert replay.status_code == 200 and replay.json() == paid.json()
    wallet = setup["bolt"].get(f"/v1/wallets/{setup['recipient']}").json()
    assert wallet["balances"][0]["balance"] == q["buy"]["amount"]
    again = acme.post("/v1/payments", json={**body, "id": "pay-2"})
    assert again.status_code == 409 and again.json()["code"] == "quote_used"
    foreign = setup["bolt"].post("/v1/payments", json={**body, "id": "pay-3"})
    assert foreign.status_code == 404 and foreign.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    ("quote", "code"),
    [
        (
            {"sell_currency": "USD", "buy_currency": "XXX", "sell_amount": "1.00"},
            "unknown_currency",
        ),
        ({"sell_currency": "USD", "buy_currency": "PHP"}, "invalid_amount"),
        ({"sell_currency": "USD", "buy_currency": "PHP", "sell_amount": "1.001"}, "invalid_amount"),
        (
            {"sell_currency": "USD", "buy_currency": "PHP", "sell_amount": "1", "lifetime_s": 9999},
            "lifetime_too_long",
        ),
        (
            {"sell_currency": "USD", "buy_currency": "USD", "sell_amount": "1.00"},
            "unsupported_pair",
        ),
    ],
)
def test_bad_quotes_are_problems(setup: dict[str, Any], quote: dict[str, Any], code: str) -> None:
    refused = setup["acme"].post("/v1/quotes", json=quote)
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["code"] == code, refused.text
