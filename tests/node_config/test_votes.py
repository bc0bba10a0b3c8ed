"""The validator vote flow against a stand-in for Besu's QBFT JSON-RPC API."""

from __future__ import annotations

import pytest

from node_config.network.errors import NetworkConfigError
from node_config.network.extradata import normalize_address
from node_config.network.votes import (
    RpcError,
    cast_votes,
    curl_commands,
    discard_votes,
    get_pending_votes,
    get_validators,
    plan_vote,
    rpc_call,
    wait_for_change,
)
from tests.node_config.fake_besu import FakeQbft, serve

VALIDATORS = [normalize_address(f"0x{i:040x}") for i in range(1, 5)]
CANDIDATE = normalize_address("0x" + "c0" * 20)


def test_majority_adds_a_validator() -> None:
    fake = FakeQbft(VALIDATORS)
    with serve(fake, 4) as urls:
        current = get_validators(urls[0])
        assert current == VALIDATORS
        plan = plan_vote(CANDIDATE, add=True, endpoints=urls[:3], current_validators=current)
        assert plan.votes_needed == 3
        results = cast_votes(plan)
        assert all(r.ok for r in results)
        outcome = wait_for_change(plan, timeout_s=5, poll_s=0.01)
        assert outcome.changed and CANDIDATE in outcome.validators
        assert get_pending_votes(urls[0]) == {CANDIDATE: True}
        assert all(r.ok for r in discard_votes(CANDIDATE, urls[:3]))
        assert get_pending_votes(urls[0]) == {}
    assert [c[1] for c in fake.calls].count("qbft_proposeValidatorVote") == 3


def test_a_minority_changes_nothing() -> None:
    fake = FakeQbft(VALIDATORS)
    with serve(fake, 4) as urls:
        plan = plan_vote(CANDIDATE, add=True, endpoints=urls[:2], current_validators=VALIDATORS)
        assert any("votes needed" in w for w in plan.warnings)
        cast_votes(plan)
        ticks = iter(range(100))
        outcome = wait_for_change(
            plan, timeout_s=3, poll_s=0, clock=lambda: float(next(ticks)), sleep=lambda _: None
        )
        assert not outcome.changed
        assert CANDIDATE not in get_validators(urls[0])


def test_removal_and_its_warning() -> None:
    fake = FakeQbft(VALIDATORS)
    with serve(fake, 4) as urls:
        plan = plan_vote(VALIDATORS[3], add=False, endpoints=urls, current_validators=VALIDATORS)
        assert any("tolerates no faulty" in w for w in plan.warnings)
        cast_votes(plan)
        assert VALIDATORS[3] not in get_validators(urls[0])


def test_a_node_down_does_not_stop_the_others() -> None:
    fake = FakeQbft(VALIDATORS)
    fake.down.add(1)
    with serve(fake, 4) as urls:
        plan = plan_vote(CANDIDATE, add=True, endpoints=urls, current_validators=VALIDATORS)
        results = cast_votes(plan)
        assert [r.ok for r in results] == [True, False, True, True]
        assert results[1].error == "HTTP 503"
        assert CANDIDATE in get_validators(urls[0])


@pytest.mark.parametrize(
    ("candidate", "add", "code"),
    [
        (VALIDATORS[0], True, "vote_pointless"),
        (CANDIDATE, False, "vote_pointless"),
        ("0x1234", True, "address_invalid"),
    ],
)
def test_pointless_or_bad_votes_refused(candidate: str, add: bool, code: str) -> None:
    with pytest.raises(NetworkConfigError) as info:
        plan_vote(candidate, add=add, endpoints=["http://x"], current_validators=VALIDATORS)
    assert info.value.code == code


def test_no_endpoint_refused() -> None:
    with pytest.raises(NetworkConfigError):
        plan_vote(CANDIDATE, add=True, endpoints=[" "])


def test_curl_commands_name_the_method_and_params() -> None:
    plan = plan_vote(CANDIDATE, add=True, endpoints=["http://127.0.0.1:8545"])
    (command,) = curl_commands(plan)
    assert '"method": "qbft_proposeValidatorVote"' in command
    assert f'"params": ["{CANDIDATE}", true]' in command
    assert command.endswith("http://127.0.0.1:8545")
    assert plan.votes_needed is None


def test_rpc_errors_are_reported() -> None:
    fake = FakeQbft(VALIDATORS)
    with serve(fake, 1) as urls:
        with pytest.raises(RpcError) as info:
            rpc_call(urls[0], "admin_peers", [])
        assert "Method not enabled" in str(info.value)
    with pytest.raises(RpcError) as down:
        rpc_call("http://127.0.0.1:9/", "qbft_getPendingVotes", [], timeout_s=0.5)
    assert "unreachable" in str(down.value)
