"""API keys over HTTP: created with the secret shown once, listed without secrets, rotated
with an overlap, revoked, last use recorded; each participant sees only its own."""

from __future__ import annotations

from tests.notify.conftest import World


def test_key_lifecycle(world: World) -> None:
    made = world.op.post("/v1/keys", json={"role": "participant", "participant_id": "acme"})
    assert made.status_code == 201
    key = made.json()
    assert key["secret"].startswith(f"cor_{key['id']}_")
    fresh = world.server.client(key["secret"])
    assert fresh.get("/v1/wallets").status_code == 200

    listed = world.op.get("/v1/keys").json()
    assert all("secret" not in k for k in listed)
    mine = next(k for k in listed if k["id"] == key["id"])
    assert mine["last_used_at"] is not None, "the first use is recorded"
    assert {k["participant_id"] for k in world.acme.get("/v1/keys").json()} == {"acme"}
    auditor = world.server.client(world.keys["auditor"])
    assert len(auditor.get("/v1/keys").json()) == 1, "an auditor sees its own key only"

    # Rotation: a new secret now; the old one keeps working for the overlap.
    rotated = fresh.post(f"/v1/keys/{key['id']}/rotate", json={"overlap_s": 3600})
    assert rotated.status_code == 201
    successor = rotated.json()
    assert successor["id"] != key["id"] and successor["participant_id"] == "acme"
    assert fresh.get("/v1/wallets").status_code == 200
    listed = {k["id"]: k for k in world.op.get("/v1/keys").json()}
    assert listed[key["id"]]["expires_at"] is not None
    # With no overlap the old key stops at once; the successor works.
    again = world.server.client(successor["secret"])
    newest = again.post(f"/v1/keys/{successor['id']}/rotate", json={"overlap_s": 0}).json()
    assert again.get("/v1/wallets").status_code == 401
    assert world.server.client(newest["secret"]).get("/v1/wallets").status_code == 200

    # Another participant can neither see nor touch acme's keys; revocation is immediate.
    assert world.bolt.delete(f"/v1/keys/{newest['id']}").status_code == 404
    assert world.bolt.post(f"/v1/keys/{newest['id']}/rotate", json={}).status_code == 404
    revoked = world.acme.delete(f"/v1/keys/{newest['id']}")
    assert revoked.status_code == 200 and revoked.json()["expires_at"] is not None
    gone = world.server.client(newest["secret"]).get("/v1/wallets")
    assert gone.status_code == 401 and gone.json()["code"] == "unauthenticated"
    assert world.acme.post(f"/v1/keys/{newest['id']}/rotate", json={}).status_code == 422
