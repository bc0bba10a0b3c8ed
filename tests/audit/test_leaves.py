"""Leaf schemas v1 and the net positions the auditor re-derives."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.audit.commitment import position_sort_key
from settlement.audit.leaves import (
    BalanceLeaf,
    LeafError,
    NetPosition,
    TransferLeaf,
    balance_leaf_encoding,
    balance_leaves_of,
    build_balances_tree,
    build_transfers_tree,
    compute_net_positions,
    net_amounts,
    transfer_leaf_encoding,
    transfer_leaves_of,
)
from tests.audit.batches import PARTICIPANTS

T = TransferLeaf(17, "tr_x", "p_acme", "w_1", "p_beta", "w_2", "USD", 1200, 1_767_225_600_000)


def test_schema_v1_types_are_the_documented_ones() -> None:
    assert transfer_leaf_encoding(1) == (
        "uint64",
        "string",
        "string",
        "string",
        "string",
        "string",
        "string",
        "uint256",
        "uint64",
    )
    assert balance_leaf_encoding(1) == ("string", "string", "string", "int256", "uint64")
    with pytest.raises(LeafError) as err:
        transfer_leaf_encoding(2)
    assert err.value.code == "leaf.unknown_schema_version"


def test_transfer_leaf_round_trips_through_values_and_json() -> None:
    assert TransferLeaf.from_values(T.to_values()) == T
    assert T.to_json_values() == [
        "17",
        "tr_x",
        "p_acme",
        "w_1",
        "p_beta",
        "w_2",
        "USD",
        "1200",
        "1767225600000",
    ]
    assert TransferLeaf.from_values(T.to_json_values()) == T
    b = BalanceLeaf("p_acme", "w_1", "USD", -1200, 3)
    assert BalanceLeaf.from_values(b.to_json_values()) == b
    assert b.to_json_values()[3] == "-1200"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seq": -1},
        {"seq": 2**64},
        {"amount_minor": -5},
        {"amount_minor": 2**256},
        {"amount_minor": True},
        {"posted_at_ms": 1.5},
        {"currency": b"USD"},
        {"transfer_id": None},
    ],
)
def test_transfer_leaf_refuses_values_outside_the_schema(kwargs: dict[str, object]) -> None:
    fields = {
        "seq": 1,
        "transfer_id": "tr",
        "debit_participant": "a",
        "debit_wallet": "w",
        "credit_participant": "b",
        "credit_wallet": "w",
        "currency": "USD",
        "amount_minor": 1,
        "posted_at_ms": 1,
        **kwargs,
    }
    with pytest.raises(LeafError):
        TransferLeaf(**fields)  # type: ignore[arg-type]


def test_from_values_refuses_wrong_arity_and_bad_json() -> None:
    with pytest.raises(LeafError):
        TransferLeaf.from_values(T.to_values()[:-1])
    with pytest.raises(LeafError):
        TransferLeaf.from_values([*T.to_json_values()[:7], "12.5", "1"])
    with pytest.raises(LeafError):
        BalanceLeaf.from_values(["p", "w", "USD", str(2**255), "1"])


def test_trees_read_back_as_leaves() -> None:
    transfers = [T, TransferLeaf(18, "tr_y", "p_beta", "w_2", "p_acme", "w_1", "PHP", 5, 1)]
    tree = build_transfers_tree(transfers)
    assert transfer_leaves_of(tree) == transfers
    balances = [BalanceLeaf("p_acme", "w_1", "USD", -1200, 3)]
    btree = build_balances_tree(balances)
    assert balance_leaves_of(btree) == balances
    with pytest.raises(LeafError):
        transfer_leaves_of(btree)


def test_net_positions_example() -> None:
    transfers = [
        T,  # acme pays beta 1200 USD
        TransferLeaf(18, "tr_y", "p_beta", "w_2", "p_acme", "w_1", "USD", 200, 1),
        TransferLeaf(19, "tr_z", "p_acme", "w_1", "p_acme", "w_9", "USD", 999, 1),  # internal
        TransferLeaf(20, "tr_q", "p_fxlp", "w_3", "p_beta", "w_2", "PHP", 50, 1),
        TransferLeaf(21, "tr_r", "p_beta", "w_2", "p_fxlp", "w_3", "PHP", 50, 1),  # nets to 0
    ]
    assert net_amounts(transfers) == {("p_acme", "USD"): -1000, ("p_beta", "USD"): 1000}
    positions = compute_net_positions(transfers, PARTICIPANTS)
    # Contract order: currency, then address as a number (p_beta's 0x0b.. < p_acme's 0xa1..).
    assert positions == [
        NetPosition("p_beta", PARTICIPANTS["p_beta"], "USD", 1000),
        NetPosition("p_acme", PARTICIPANTS["p_acme"], "USD", -1000),
    ]


def test_net_positions_need_an_address_per_participant() -> None:
    with pytest.raises(LeafError) as err:
        compute_net_positions([T], {"p_acme": PARTICIPANTS["p_acme"]})
    assert err.value.code == "leaf.unknown_participant_address"
    with pytest.raises(LeafError) as err:
        compute_net_positions(
            [T], {"p_acme": PARTICIPANTS["p_acme"], "p_beta": PARTICIPANTS["p_acme"]}
        )
    assert err.value.code == "leaf.shared_participant_address"


def test_net_position_refuses_what_the_contract_refuses() -> None:
    with pytest.raises(LeafError):
        NetPosition("p_acme", "0x1234", "USD", 1)
    with pytest.raises(LeafError) as err:
        NetPosition("p_acme", PARTICIPANTS["p_acme"], "usdc", 1)
    assert err.value.code == "leaf.invalid_currency"


_leaf = st.builds(
    TransferLeaf,
    seq=st.integers(0, 1000),
    transfer_id=st.just("tr"),
    debit_participant=st.sampled_from(sorted(PARTICIPANTS)),
    debit_wallet=st.just("w"),
    credit_participant=st.sampled_from(sorted(PARTICIPANTS)),
    credit_wallet=st.just("w"),
    currency=st.sampled_from(["USD", "PHP", "EUR"]),
    amount_minor=st.integers(0, 10**15),
    posted_at_ms=st.just(0),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_leaf, max_size=30))
def test_net_positions_sum_to_zero_and_match_a_direct_count(leaves: list[TransferLeaf]) -> None:
    positions = compute_net_positions(leaves, PARTICIPANTS)
    sums: defaultdict[str, int] = defaultdict(int)
    for p in positions:
        assert p.amount_minor != 0
        sums[p.currency] += p.amount_minor
    assert not any(sums.values())
    keys = [position_sort_key(p.to_chain()) for p in positions]
    assert keys == sorted(set(keys))  # strictly ascending, as the contract requires
    for p in positions:
        paid = sum(
            t.amount_minor
            for t in leaves
            if t.debit_participant == p.participant
            and t.credit_participant != p.participant
            and t.currency == p.currency
        )
        received = sum(
            t.amount_minor
            for t in leaves
            if t.credit_participant == p.participant
            and t.debit_participant != p.participant
            and t.currency == p.currency
        )
        assert p.amount_minor == received - paid


def test_docs_state_the_same_schema() -> None:
    import json
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "AUDIT.md").read_text("utf-8")
    for encoding in (transfer_leaf_encoding(1), balance_leaf_encoding(1)):
        assert f"`leafEncoding`: `{json.dumps(list(encoding), separators=(',', ':'))}`" in doc
