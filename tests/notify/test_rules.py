"""The pure rules of notification: backoff, giving up, signatures, reading the outbox."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.notify import GapTracker, RetryPolicy, SignatureError, sign, verify
from settlement.notify.rules import envelope, is_success
from settlement.notify.signing import digest


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(backoff_base_s=1, backoff_max_s=60, jitter=0.5)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60), (10**6, 60)]:
        delay = policy.delay_s(attempt, rng)
        assert ceiling * 0.5 <= delay <= ceiling


def test_gives_up_on_attempts_or_lifetime() -> None:
    policy = RetryPolicy(backoff_base_s=1, backoff_max_s=10, attempts_max=3, jitter=0)
    assert policy.next_attempt_us(1, 0, 10**9) == 1_000_000
    assert policy.next_attempt_us(2, 0, 10**9) == 2_000_000
    assert policy.next_attempt_us(3, 0, 10**9) is None, "attempts exhausted"
    assert policy.next_attempt_us(2, 0, 1_999_999) is None, "would be past the lifetime"
    assert [is_success(s) for s in (200, 204, 299, 301, 400, 500, None)] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"id":1}'
    header = sign("whsec_k", 1_700_000_000, body)
    assert header == f"t=1700000000,v1={digest('whsec_k', 1_700_000_000, body)}"
    assert verify("whsec_k", header, body, 1_700_000_100) == 1_700_000_000
    rotated = f"{header},v1={digest('whsec_new', 1_700_000_000, body)}"
    assert verify("whsec_new", rotated, body, 1_700_000_000) == 1_700_000_000
    for secret, text, payload, now in [
        ("whsec_k", header, b'{"id":2}', 1_700_000_000),
        ("whsec_other", header, body, 1_700_000_000),
        ("whsec_k", header, body, 1_700_000_301),
        ("whsec_k", "v1=abc", body, 1_700_000_000),
        ("whsec_k", "t=1700000000", body, 1_700_000_000),
    ]:
        with pytest.raises(SignatureError):
            verify(secret, text, payload, now)


def test_envelope_is_stable() -> None:
    document = envelope(5, "transfer.created", "acme", None, "tr_1", '{"a":1}', 1_500_000)
    assert document == {
        "id": 5,
        "type": "transfer.created",
        "created_at": "1970-01-01T00:00:01.500000Z",
        "participant_id": "acme",
        "wallet_id": None,
        "subject_id": "tr_1",
        "data": {"a": 1},
    }


def test_gap_tracker_waits_for_late_commits_then_skips_rollbacks() -> None:
    tracker = GapTracker(horizon=0, grace_s=10)
    assert tracker.fresh([1, 2, 4, 5]) == [1, 2, 4, 5]
    tracker.mark([1, 2, 4, 5], now_s=0)
    assert tracker.advance(now_s=0) == 2, "3 may still commit"
    assert tracker.missing_ranges() == [(3, 3)]
    assert tracker.fresh([4, 5, 6]) == [6], "handed out once"
    tracker.mark([3], now_s=1)  # the late commit of 3
    assert tracker.advance(now_s=1) == 5
    tracker.mark([8], now_s=2)  # 7 rolled back
    assert tracker.advance(now_s=5) == 5
    assert tracker.advance(now_s=12.5) == 8, "the hole is skipped after the grace period"
    assert tracker.missing_ranges() == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=1, max_size=40),
    st.randoms(use_true_random=False),
)
def test_gap_tracker_hands_out_every_commit_once(
    plan: list[tuple[bool, int]], rng: random.Random
) -> None:
    """Ids are taken in order; each commits (after a delay of a few polls) or rolls back.

    Polling in between, every committed id comes out exactly once, whatever the order of
    commits, as long as commits come within the grace period."""
    commit_at = {i + 1: delay for i, (commits, delay) in enumerate(plan) if commits}
    tracker = GapTracker(horizon=0, grace_s=10)
    handed: list[int] = []
    for now in range(30):
        visible = [i for i, at in commit_at.items() if at <= now]
        rng.shuffle(visible)
        window = [i for i in visible if i > tracker.top] + [
            i for lo, hi in tracker.missing_ranges() for i in visible if lo <= i <= hi
        ]
        fresh = tracker.fresh(window)
        handed += fresh
        tracker.mark(fresh, now)
        tracker.advance(now)
    assert sorted(handed) == sorted(commit_at)
    assert len(handed) == len(set(handed))


def test_the_documented_receiver_check_works() -> None:
    """docs/WEBHOOKS.md's Python receiver accepts a real signature and refuses a forgery."""
    text = (Path(__file__).parents[2] / "docs" / "WEBHOOKS.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    body = b'{"id":7,"type":"transfer.created"}'
    header = sign("whsec_doc", int(time.time()), body)
    assert namespace["verify"]("whsec_doc", header, body) is True
    assert namespace["verify"]("whsec_doc", header, body + b" ") is False
    assert namespace["verify"]("whsec_doc", sign("whsec_doc", 1000, body), body) is False
