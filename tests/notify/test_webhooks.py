"""Webhooks end to end: a live server, the dispatcher in its worker, a real receiver on
loopback. Signatures verify, failures are retried with backoff and recorded, deliveries
keep per-wallet order, and a participant lists and replays its deliveries."""

from __future__ import annotations

import time
from typing import Any

import pytest

from settlement.notify import SIGNATURE_HEADER, SignatureError, verify
from tests.notify.conftest import Receiver, World, usd

PROBLEM = "application/problem+json"


def subscribe(world: World, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    made = world.acme.post("/v1/webhooks", json={"url": receiver.url, **extra})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    assert body["secret"].startswith("whsec_")
    return body


def transfer(world: World, client_id: str, amount: str = "10.00") -> dict[str, Any]:
    sent = world.acme.post(
        "/v1/transfers",
        json={
            "id": client_id,
            "from_wallet": world.alice,
            "to_wallet": world.bob,
            "amount": usd(amount),
        },
    )
    assert sent.status_code == 201, sent.text
    result: dict[str, Any] = sent.json()
    return result


def test_signed_delivery_verifies_and_is_listed(world: World, receiver: Receiver) -> None:
    hook = subscribe(world, receiver, event_types=["transfer.created"])
    sent = transfer(world, "t-sig")
    receiver.wait_for(lambda got: len(got) >= 1)
    (got,) = receiver.received
    event = got.event
    assert event["type"] == "transfer.created" and event["subject_id"] == sent["id"]
    assert event["participant_id"] == "acme" and event["wallet_id"] == world.alice
    assert event["data"]["amount"] == usd("10.00")
    assert got.headers["corridor-event-id"] == str(event["id"])
    assert got.headers["corridor-event-type"] == "transfer.created"
    # The receiver's check, as docs/WEBHOOKS.md shows it.
    header = got.headers[SIGNATURE_HEADER.lower()]
    assert verify(hook["secret"], header, got.body, time.time()) > 0
    with pytest.raises(SignatureError):
        verify(hook["secret"], header, got.body.replace(b"10.00", b"99.00"), time.time())
    with pytest.raises(SignatureError):
        verify("whsec_wrong", header, got.body, time.time())
    with pytest.raises(SignatureError):  # the same request replayed an hour later
        verify(hook["secret"], header, got.body, time.time() + 3600)

    # The secret is never shown again; the delivery and its attempt are listed.
    listed = world.acme.get("/v1/webhooks").json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    deliveries = world.acme.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
    assert len(deliveries) == 1 and deliveries[0]["status"] == "delivered"
    detail = world.acme.get(f"/v1/webhooks/{hook['id']}/deliveries/{deliveries[0]['id']}")
    attempts = detail.json()["attempt_log"]
    assert [a["status_code"] for a in attempts] == [200]
    # Other participants see none of it.
    assert world.bolt.get(f"/v1/webhooks/{hook['id']}").status_code == 404
    assert world.bolt.get(f"/v1/webhooks/{hook['id']}/deliveries").status_code == 404
    assert world.bolt.get("/v1/webhooks").json() == []


def test_failures_are_retried_with_backoff_and_recorded(world: World, receiver: Receiver) -> None:
    hook = subscribe(world, receiver, event_types=["transfer.created"])
    receiver.script = [500, 503, 200]
    transfer(world, "t-retry")
    receiver.wait_for(lambda got: len(got) >= 3)
    times = [r.at for r in receiver.received]
    assert [r.headers["corridor-attempt"] for r in receiver.received] == ["1", "2", "3"]
    assert len({r.event["id"] for r in receiver.received}) == 1, "one event, retried"
    assert len({r.body for r in receiver.received}) == 1, "the same body on every attempt"
    # Backoff: 25-50 ms after the first failure, 50-100 ms after the second (base 50 ms).
    assert times[1] - times[0] >= 0.02 and times[2] - times[1] >= 0.045
    time.sleep(0.3)
    (delivery,) = world.acme.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
    detail = world.acme.get(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}").json()
    assert detail["status"] == "delivered" and detail["attempts"] == 3
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 503, 200]
    assert detail["attempt_log"][0]["error"].startswith("HTTP 500")


def test_gives_up_after_bounded_attempts_then_replays(world: World, receiver: Receiver) -> None:
    hook = subscribe(world, receiver, event_types=["transfer.created"])
    receiver.default_status = 500
    transfer(world, "t-dead")
    receiver.wait_for(lambda got: len(got) >= 6)  # webhook_attempts_max = 6
    time.sleep(0.5)
    assert len(receiver.received) == 6
    (delivery,) = world.acme.get(f"/v1/webhooks/{hook['id']}/deliveries").json()["data"]
    assert delivery["status"] == "failed" and delivery["next_attempt_at"] is None
    failed = world.acme.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "failed"})
    assert [d["id"] for d in failed.json()["data"]] == [delivery["id"]]

    receiver.default_status = 200
    replay = world.acme.post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/replay")
    assert replay.status_code == 202 and replay.json()["status"] == "pending"
    receiver.wait_for(lambda got: len(got) >= 7)
    assert receiver.received[-1].event["id"] == delivery["event_id"]
    time.sleep(0.2)
    again = world.acme.post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/replay")
    assert again.status_code in (202, 409)
    assert (
        world.bolt.post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/replay").status_code
        == 404
    )


def test_per_wallet_order_holds_through_failures(world: World, receiver: Receiver) -> None:
    subscribe(world, receiver)
    receiver.script = [500, 500, 500, 200, 500]  # failures early in the stream
    for i in range(8):
        transfer(world, f"t-order-{i}", "1.00")
    wanted = 9  # the deposit happened before subscribing: 8 transfer.created only
    receiver.wait_for(
        lambda got: (
            len({r.event["id"] for r in got if r.headers["x-answered"] == "2xx"}) >= wanted - 1
        )
    )
    delivered = [r.event for r in receiver.successes()]
    ids = [e["id"] for e in delivered]
    assert ids == sorted(ids), "one wallet's events arrive in order"
    assert len(set(ids)) == len(ids) == 8


def test_subscription_validation_and_deletion(world: World, receiver: Receiver) -> None:
    bad = [
        {"url": "ftp://example.com/x"},
        {"url": "https://user:pw@example.com/x"},
        {"url": receiver.url, "event_types": ["transfer.exploded"]},
        {"url": receiver.url, "event_types": []},
        {"url": receiver.url, "participant_id": "bolt"},
    ]
    for body in bad:
        refused = world.acme.post("/v1/webhooks", json=body)
        assert refused.status_code in (403, 422), refused.text
        assert refused.headers["content-type"] == PROBLEM
    assert world.acme.get("/v1/webhooks").json() == []
    by_operator = world.op.post(
        "/v1/webhooks", json={"url": receiver.url, "participant_id": "acme"}
    )
    assert by_operator.status_code == 201
    hook = by_operator.json()
    assert world.acme.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert world.acme.get(f"/v1/webhooks/{hook['id']}").status_code == 404
    transfer(world, "t-after-delete")
    time.sleep(0.4)
    assert receiver.received == []
