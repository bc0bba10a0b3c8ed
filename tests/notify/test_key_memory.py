"""A key checked once is remembered briefly: revocation is immediate in the process that
revokes and takes at most KEY_RECHECK_S in any other."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from api import auth_store
from api.auth_store import KEY_RECHECK_S, KeyStore, Role

NOW_US = 1_800_000_000_000_000


def test_a_revoked_key_stops_at_once_here_and_within_the_recheck_elsewhere(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(auth_store.time, "monotonic", lambda: clock[0])
    here, elsewhere = KeyStore(engine), KeyStore(engine)  # two serving processes
    key, secret = here.create(Role.AUDITOR, NOW_US)
    assert here.remembered(secret, NOW_US) is None, "not checked yet"
    for store in (here, elsewhere):
        found = store.authenticate(secret, NOW_US)
        assert found is not None and found.id == key.id
    assert here.remembered(secret, NOW_US) is not None
    assert here.remembered(secret + "x", NOW_US) is None, "only the exact text is remembered"

    here.expire(key.id, NOW_US)

    assert here.remembered(secret, NOW_US) is None
    assert here.authenticate(secret, NOW_US) is None
    assert elsewhere.remembered(secret, NOW_US) is not None, "the other process has not looked"
    clock[0] += KEY_RECHECK_S + 0.001
    assert elsewhere.remembered(secret, NOW_US) is None
    assert elsewhere.authenticate(secret, NOW_US) is None


def test_a_remembered_key_still_expires_on_time(engine: Engine) -> None:
    store = KeyStore(engine)
    key, secret = store.create(Role.AUDITOR, NOW_US)
    store.expire(key.id, NOW_US + 5_000_000)  # a rotation's overlap
    assert store.authenticate(secret, NOW_US) is not None
    assert store.remembered(secret, NOW_US + 4_999_999) is not None
    assert store.remembered(secret, NOW_US + 5_000_000) is None
