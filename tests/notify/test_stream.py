"""The live stream (SSE) of a participant's own events, and the events listing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx

from tests.notify.conftest import World, usd


def read_events(lines: Iterator[str], wanted: int) -> list[tuple[int, str, dict[str, Any]]]:
    """Parse SSE frames until `wanted` events have arrived."""
    found: list[tuple[int, str, dict[str, Any]]] = []
    frame: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in frame:
                found.append((int(frame["id"]), frame["event"], json.loads(frame["data"])))
                if len(found) == wanted:
                    return found
            frame = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            frame[name] = value
    return found


def test_stream_carries_own_events_live_and_resumes(world: World) -> None:
    url = f"{world.server.base_url}/v1/events/stream"
    headers = {"Authorization": f"Bearer {world.keys['bolt']}"}
    with httpx.stream("GET", url, headers=headers, timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith("retry:")  # subscribed from here on

        def pay_bob() -> None:
            for i in range(3):
                world.acme.post(
                    "/v1/transfers",
                    json={
                        "id": f"s-{i}",
                        "from_wallet": world.alice,
                        "to_wallet": world.bob,
                        "amount": usd("1.00"),
                    },
                )

        threading.Thread(target=pay_bob).start()
        got = read_events(lines, 3)
    assert [kind for _, kind, _ in got] == ["transfer.created"] * 3
    assert all(e["participant_id"] == "bolt" and e["wallet_id"] == world.bob for _, _, e in got)
    ids = [i for i, _, _ in got]
    assert ids == sorted(ids)

    # Reconnecting with Last-Event-ID replays what came after it.
    headers["Last-Event-ID"] = str(ids[0])
    with httpx.stream("GET", url, headers=headers, timeout=20) as response:
        resumed = read_events(response.iter_lines(), 2)
    assert [i for i, _, _ in resumed] == ids[1:]

    # acme's stream never carries bolt's own events, and bolt cannot read acme's.
    listed = world.acme.get("/v1/events").json()["data"]
    assert {e["participant_id"] for e in listed} == {"acme"}
    assert {e["type"] for e in listed} == {"transfer.created"}
    assert world.bolt.get("/v1/events", params={"participant_id": "acme"}).status_code == 404
    stolen = world.bolt.get("/v1/events/stream", params={"participant_id": "acme"})
    assert stolen.status_code == 404
    auditor = world.server.client(world.keys["auditor"])
    assert auditor.get("/v1/events/stream", params={"participant_id": "acme"}).status_code == 403
    page = world.op.get("/v1/events", params={"participant_id": "bolt", "limit": 2}).json()
    assert [e["id"] for e in page["data"]] == ids[:2] and page["next_cursor"] == str(ids[1])
