"""Step-up confirmation over HTTP: every refusal (unsigned, expired, replayed, wrongly
signed, malformed, too far ahead), each changing nothing, and the signed paths that pass:
transfers, batches and cross-currency payments."""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_account import Account

from settlement.stepup import ORDER_LIFETIME_MAX_S, PaymentOrder, sign_order
from tests.notify.conftest import World, usd

KEY = Account.create()
OTHER = Account.create()


@pytest.fixture
def guarded(world: World) -> World:
    """alice's wallet needs a signature above 50.00 USD."""
    made = world.acme.put(
        f"/v1/wallets/{world.alice}/step-up",
        json={"signing_address": KEY.address, "thresholds": [usd("50.00")]},
    )
    assert made.status_code == 200, made.text
    assert made.json()["eip712"]["primaryType"] == "PaymentOrder"
    return world


def order(world: World, amount_minor: int, nonce: int, expiry_s: int | None = None) -> PaymentOrder:
    return PaymentOrder(
        from_wallet=world.alice,
        recipient=world.bob,
        amount_minor=amount_minor,
        currency="USD",
        quote="",
        nonce=nonce,
        expiry_s=expiry_s or int(time.time()) + 120,
    )


def step_up(o: PaymentOrder, key: Any = KEY, signature: str | None = None) -> dict[str, Any]:
    return {
        "signature": signature or sign_order(o, key.key),
        "nonce": str(o.nonce),
        "expires_at": o.expiry_s,
    }


def send(world: World, client_id: str, amount: str, proof: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {
        "id": client_id,
        "from_wallet": world.alice,
        "to_wallet": world.bob,
        "amount": usd(amount),
    }
    if proof is not None:
        body["step_up"] = proof
    return world.acme.post("/v1/transfers", json=body)


def balances(world: World) -> list[Any]:
    return [world.op.get(f"/v1/wallets/{w}").json()["balances"] for w in (world.alice, world.bob)]


def events_seen(world: World) -> list[int]:
    return [e["id"] for e in world.op.get("/v1/events", params={"limit": 500}).json()["data"]]


def test_every_refusal_changes_nothing(guarded: World) -> None:
    w = guarded
    now = int(time.time())
    good = order(w, 10_000, nonce=7)
    tampered = order(w, 9_000, nonce=8)  # signed for 90.00, sent for 100.00
    refusals = [
        (None, "step_up_required", 403),
        (step_up(order(w, 10_000, 1, now - 1)), "step_up_expired", 403),
        (step_up(order(w, 10_000, 2, now + ORDER_LIFETIME_MAX_S + 60)), "step_up_invalid", 422),
        (step_up(good, key=OTHER), "step_up_invalid_signature", 403),
        (
            {**step_up(order(w, 10_000, 8)), "signature": step_up(tampered)["signature"]},
            "step_up_invalid_signature",
            403,
        ),
        (step_up(good, signature="0x" + "00" * 65), "step_up_invalid_signature", 403),
        (step_up(good, signature="0xabc"), "step_up_invalid", 422),
    ]
    before, seen = balances(w), events_seen(w)
    for index, (proof, code, status) in enumerate(refusals):
        refused = send(w, f"big-{index}", "100.00", proof)
        assert refused.status_code == status, (index, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == code, (index, refused.json())
    assert balances(w) == before
    assert events_seen(w) == seen, "a refused transfer leaves no event behind"
    # The nonce of a refused order was not burnt: signed properly, it passes once.
    assert send(w, "big-ok", "100.00", step_up(good)).status_code == 201
    replayed = send(w, "big-again", "100.00", step_up(good))
    assert replayed.status_code == 409 and replayed.json()["code"] == "step_up_replayed"
    # A retry of the accepted request is the ledger's replay: no second confirmation.
    retry = send(w, "big-ok", "100.00", step_up(good))
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert balances(w)[0][0]["balance"] == "400.00"


def test_below_threshold_and_other_currencies(guarded: World) -> None:
    w = guarded
    assert send(w, "small", "50.00", None).status_code == 201  # at the threshold: no signature
    assert send(w, "small-2", "50.01", None).json()["code"] == "step_up_required"
    # A wallet without a key ignores step_up; a currency without a threshold always needs it.
    w.acme.put(
        f"/v1/wallets/{w.alice}/step-up",
        json={"signing_address": KEY.address, "thresholds": [{"amount": "100", "currency": "JPY"}]},
    )
    assert send(w, "usd-any", "0.01", None).json()["code"] == "step_up_required"
    assert w.acme.delete(f"/v1/wallets/{w.alice}/step-up").status_code == 204
    assert w.acme.get(f"/v1/wallets/{w.alice}/step-up").status_code == 404
    assert send(w, "free", "100.00", None).status_code == 201
    # Only the wallet's owner (or the operator) manages its key.
    hijack = w.bolt.put(f"/v1/wallets/{w.alice}/step-up", json={"signing_address": OTHER.address})
    assert hijack.status_code == 404


def test_batch_refused_whole_or_accepted_signed(guarded: World) -> None:
    w = guarded
    items = [
        {"id": "b-1", "from_wallet": w.alice, "to_wallet": w.bob, "amount": usd("5.00")},
        {"id": "b-2", "from_wallet": w.alice, "to_wallet": w.bob, "amount": usd("60.00")},
    ]
    before = balances(w)
    refused = w.acme.post("/v1/transfers/batch", json={"transfers": items})
    assert refused.status_code == 403 and refused.json()["code"] == "step_up_required"
    assert refused.json()["index"] == 1
    assert balances(w) == before
    items[1]["step_up"] = step_up(order(w, 6_000, nonce=99))
    accepted = w.acme.post("/v1/transfers/batch", json={"transfers": items}).json()
    assert accepted["created"] == 2
    # The same nonce twice in one batch is a replay.
    dup = [
        {**items[1], "id": "b-3"},
        {**items[1], "id": "b-4"},
    ]
    for item in dup:
        item["step_up"] = step_up(order(w, 6_000, nonce=100))
    twice = w.acme.post("/v1/transfers/batch", json={"transfers": dup})
    assert twice.status_code == 409 and twice.json()["index"] == 1


def test_payment_needs_a_signature_over_the_quote(guarded: World) -> None:
    w = guarded
    w.op.put("/v1/rates/USD/PHP", json={"rate": "58.00"})
    w.op.put("/v1/participants/fx-liquidity/net-debit-caps/PHP", json={"cap": "100000.00"})
    w.op.put("/v1/fx/pricing/USD/PHP", json={"spread_bps": 0, "fee_bps": 0, "fixed_fee": "1.00"})
    w.op.post(
        "/v1/liquidity/deposits",
        json={"id": "liq", "amount": {"amount": "100000", "currency": "PHP"}},
    )
    quote = w.acme.post(
        "/v1/quotes", json={"sell_currency": "USD", "buy_currency": "PHP", "sell_amount": "60.00"}
    ).json()
    assert quote["total_debit"] == usd("61.00"), quote
    body = {"id": "pay-1", "quote_id": quote["id"], "from_wallet": w.alice, "to_wallet": w.bob}
    refused = w.acme.post("/v1/payments", json=body)
    assert refused.status_code == 403 and refused.json()["code"] == "step_up_required"
    assert w.acme.get(f"/v1/quotes/{quote['id']}").json()["used"] is False
    signed = PaymentOrder(w.alice, w.bob, 6_100, "USD", quote["id"], 5, int(time.time()) + 60)
    wrong_quote = PaymentOrder(w.alice, w.bob, 6_100, "USD", "q_other", 6, int(time.time()) + 60)
    mismatch = w.acme.post(
        "/v1/payments",
        json={
            **body,
            "step_up": {**step_up(signed), "signature": step_up(wrong_quote)["signature"]},
        },
    )
    assert mismatch.json()["code"] == "step_up_invalid_signature"
    paid = w.acme.post("/v1/payments", json={**body, "step_up": step_up(signed)})
    assert paid.status_code == 201, paid.text
    assert paid.json()["buy"] == {"amount": "3480.00", "currency": "PHP"}
