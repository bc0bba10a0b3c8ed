"""API keys: stored as SHA-256 hashes of high-entropy secrets, shown once at creation.

A key reads `cor_<key id>_<secret>`. The id finds the row; the secret's hash is compared in
constant time. Keys are random 256-bit secrets, so a plain hash (no slow KDF) is enough.

A key checked against the database is remembered for KEY_RECHECK_S, so a busy client costs
one lookup per second rather than one per request. Revoking or expiring a key takes effect
at once in the process that does it and within KEY_RECHECK_S in any other.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Engine, String, Table, insert, select, update

from settlement.db import metadata, read_transaction, write_transaction
from settlement.errors import LedgerError

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_sha256", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("participant_id", String(64), nullable=True),
    Column("label", String(200), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    # Set when a key is rotated (the old one keeps working until then) or revoked.
    Column("expires_at_us", BigInteger, nullable=True),
    Column("last_used_at_us", BigInteger, nullable=True),
)

# Recording every use would turn each read into a write; once a minute is enough to see
# which keys are alive.
LAST_USED_RESOLUTION_US = 60 * 1_000_000
KEY_RECHECK_S = 1.0
# Bounds the memory of keys seen; past it the remembered keys are forgotten at once.
KEYS_REMEMBERED_MAX = 10_000


class Role(StrEnum):
    OPERATOR = "operator"
    PARTICIPANT = "participant"
    AUDITOR = "auditor"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    role: Role
    participant_id: str | None
    label: str | None
    created_at_us: int
    expires_at_us: int | None
    last_used_at_us: int | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _to_key(row: object) -> ApiKey:
    return ApiKey(
        id=row.id,  # type: ignore[attr-defined]
        role=Role(row.role),  # type: ignore[attr-defined]
        participant_id=row.participant_id,  # type: ignore[attr-defined]
        label=row.label,  # type: ignore[attr-defined]
        created_at_us=row.created_at_us,  # type: ignore[attr-defined]
        expires_at_us=row.expires_at_us,  # type: ignore[attr-defined]
        last_used_at_us=row.last_used_at_us,  # type: ignore[attr-defined]
    )


class KeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # presented key text -> (its key, time.monotonic() when checked in the database)
        self._checked: dict[str, tuple[ApiKey, float]] = {}
        self._checked_lock = threading.Lock()

    def create(
        self,
        role: Role,
        now_us: int,
        participant_id: str | None = None,
        label: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its full secret text, which is never stored and never shown again."""
        if (role is Role.PARTICIPANT) != (participant_id is not None):
            raise LedgerError(
                "invalid_key_request", "participant keys, and only they, name a participant"
            )
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        with write_transaction(self.engine) as conn:
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    secret_sha256=_hash(secret),
                    role=role.value,
                    participant_id=participant_id,
                    label=label,
                    created_at_us=now_us,
                )
            )
        key = ApiKey(key_id, role, participant_id, label, now_us, None, None)
        return key, f"cor_{key_id}_{secret}"

    def remembered(self, presented: str, now_us: int) -> ApiKey | None:
        """The key, if it was checked in the database in the last KEY_RECHECK_S and is
        still unexpired; None means: ask `authenticate`."""
        found = self._checked.get(presented)
        if found is None:
            return None
        key, checked_at = found
        if time.monotonic() - checked_at > KEY_RECHECK_S or (
            key.expires_at_us is not None and key.expires_at_us <= now_us
        ):
            return None
        return key

    def authenticate(self, presented: str, now_us: int) -> ApiKey | None:
        """The valid key this text presents, checked in the database; None if there is none."""
        key = self._check(presented, now_us)
        with self._checked_lock:
            if key is None:
                self._checked.pop(presented, None)
            else:
                if len(self._checked) >= KEYS_REMEMBERED_MAX:
                    self._checked.clear()
                self._checked[presented] = (key, time.monotonic())
        return key

    def _check(self, presented: str, now_us: int) -> ApiKey | None:
        parts = presented.split("_", 2)
        if len(parts) != 3 or parts[0] != "cor":
            return None
        _, key_id, secret = parts
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None or not hmac.compare_digest(row.secret_sha256, _hash(secret)):
            return None
        if row.expires_at_us is not None and row.expires_at_us <= now_us:
            return None
        if row.last_used_at_us is None or now_us - row.last_used_at_us > LAST_USED_RESOLUTION_US:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    update(api_keys).where(api_keys.c.id == key_id).values(last_used_at_us=now_us)
                )
        return _to_key(row)

    def list(self, participant_id: str | None = None) -> list[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at_us, api_keys.c.id)
        if participant_id is not None:
            query = query.where(api_keys.c.participant_id == participant_id)
        with read_transaction(self.engine) as conn:
            return [_to_key(row) for row in conn.execute(query)]

    def get(self, key_id: str) -> ApiKey:
        with read_transaction(self.engine) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise LedgerError("key_not_found", f"no API key {key_id}")
        return _to_key(row)

    def expire(self, key_id: str, at_us: int) -> None:
        """Revoke now (at_us = now) or later (rotation overlap); never extends a key's life."""
        with write_transaction(self.engine) as conn:
            row = conn.execute(
                select(api_keys.c.expires_at_us).where(api_keys.c.id == key_id)
            ).first()
            if row is None:
                raise LedgerError("key_not_found", f"no API key {key_id}")
            if row.expires_at_us is None or row.expires_at_us > at_us:
                conn.execute(
                    update(api_keys).where(api_keys.c.id == key_id).values(expires_at_us=at_us)
                )
        with self._checked_lock:
            self._checked = {
                text: found for text, found in self._checked.items() if found[0].id != key_id
            }
