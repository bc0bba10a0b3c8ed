"""API keys: created, listed (never their secrets), rotated with overlap, revoked."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import Anyone, CorridorDep, Operator
from api.auth_store import ApiKey, Role
from api.problems import ApiError
from api.schemas import KeyCreatedOut, KeyIn, KeyOut, RotateIn, to_iso

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def _out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        role=key.role.value,
        participant_id=key.participant_id,
        label=key.label,
        created_at=to_iso(key.created_at_us),  # type: ignore[arg-type]
        expires_at=to_iso(key.expires_at_us),
        last_used_at=to_iso(key.last_used_at_us),
    )


def _created(key: ApiKey, secret: str) -> KeyCreatedOut:
    return KeyCreatedOut(**_out(key).model_dump(), secret=secret)


@router.post("", status_code=201, response_model=KeyCreatedOut)
def create_key(body: KeyIn, who: Operator, corridor: CorridorDep) -> KeyCreatedOut:
    if body.participant_id is not None:
        corridor.ledger.get_participant(body.participant_id)
    key, secret = corridor.keys.create(
        Role(body.role), corridor.clock(), body.participant_id, body.label
    )
    return _created(key, secret)


@router.get("", response_model=list[KeyOut])
def list_keys(who: Anyone, corridor: CorridorDep) -> list[KeyOut]:
    """Operators see every key; others see the keys of their own participant or role."""
    if who.role is Role.OPERATOR:
        return [_out(k) for k in corridor.keys.list()]
    if who.participant_id is not None:
        return [_out(k) for k in corridor.keys.list(who.participant_id)]
    return [_out(who.key)]


def _own_key(who: Anyone, corridor: CorridorDep, key_id: str) -> ApiKey:
    key = corridor.keys.get(key_id)
    allowed = (
        who.role is Role.OPERATOR
        or key.id == who.key.id
        or (who.participant_id is not None and key.participant_id == who.participant_id)
    )
    if not allowed:
        raise ApiError("key_not_found", f"no API key {key_id}")
    return key


@router.post("/{key_id}/rotate", status_code=201, response_model=KeyCreatedOut)
def rotate_key(key_id: str, body: RotateIn, who: Anyone, corridor: CorridorDep) -> KeyCreatedOut:
    """A new key with the same role; the old one keeps working for `overlap_s` seconds."""
    old = _own_key(who, corridor, key_id)
    now = corridor.clock()
    if old.expires_at_us is not None and old.expires_at_us <= now:
        raise ApiError("key_expired", f"API key {key_id} is already revoked or expired")
    key, secret = corridor.keys.create(old.role, now, old.participant_id, old.label)
    corridor.keys.expire(old.id, now + body.overlap_s * 1_000_000)
    return _created(key, secret)


@router.delete("/{key_id}", response_model=KeyOut)
def revoke_key(key_id: str, who: Anyone, corridor: CorridorDep) -> KeyOut:
    _own_key(who, corridor, key_id)
    corridor.keys.expire(key_id, corridor.clock())
    return _out(corridor.keys.get(key_id))
