"""settlement.merkle against OpenZeppelin's @openzeppelin/merkle-tree 1.0.8.

The known answers in fixtures/oz_merkle_vectors.json were computed by the JS library
itself (tests/audit/js/make_vectors.js), so these tests need no Node.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import eth_abi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from settlement.merkle import (
    MerkleTreeError,
    MultiProof,
    StandardMerkleTree,
    keccak256,
    leaf_codec,
    make_merkle_tree,
    process_proof,
    standard_leaf_hash,
)

VECTORS = json.loads(
    (Path(__file__).parent / "fixtures" / "oz_merkle_vectors.json").read_text("utf-8")
)
CASES = {case["name"]: case for case in VECTORS["cases"]}
TRANSFER_V1 = [
    "uint64",
    "string",
    "string",
    "string",
    "string",
    "string",
    "string",
    "uint256",
    "uint64",
]


def test_vectors_come_from_the_reference_library() -> None:
    assert VECTORS["generator"] == "@openzeppelin/merkle-tree@1.0.8"
    assert len(CASES) >= 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_build_matches_js(name: str) -> None:
    case = CASES[name]
    tree = StandardMerkleTree.of(
        case["values"], case["leafEncoding"], sort_leaves=case["sortLeaves"]
    )
    assert tree.root == case["root"]
    assert tree.dump() == case["dump"]  # same layout, same treeIndex, same JSON values
    assert [tree.leaf_hash(v) for v in case["values"]] == case["leafHashes"]
    assert [tree.get_proof(i) for i in range(len(tree))] == case["proofs"]
    assert tree.render() == case["render"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_load_js_dump(name: str) -> None:
    case = CASES[name]
    tree = StandardMerkleTree.load(json.dumps(case["dump"]))
    assert tree.root == case["root"]
    assert tree.dump() == case["dump"]
    for i, value in enumerate(case["values"]):
        assert tree.get_proof(i) == case["proofs"][i]
        assert StandardMerkleTree.verify(
            case["root"], case["leafEncoding"], value, case["proofs"][i]
        )
        assert tree.verify_proof(value, case["proofs"][i])


@pytest.mark.parametrize("name", sorted(CASES))
def test_multiproofs_match_js(name: str) -> None:
    case = CASES[name]
    tree = StandardMerkleTree.load(case["dump"])
    for expected in case["multiProofs"]:
        got = tree.get_multi_proof(expected["indices"])
        assert got.to_json(tree.codec) == {
            k: expected[k] for k in ("leaves", "proof", "proofFlags")
        }
        js = MultiProof(
            tuple(expected["leaves"]), tuple(expected["proof"]), tuple(expected["proofFlags"])
        )
        assert StandardMerkleTree.verify_multi_proof(case["root"], case["leafEncoding"], js)
        assert tree.verify_multi_proof_of(js)


def test_single_leaf_tree_root_is_the_leaf() -> None:
    tree = StandardMerkleTree.of([[1, "only"]], ["uint64", "string"])
    assert tree.root == CASES["single"]["root"]
    assert tree.get_proof(0) == []
    assert tree.root == "0x" + standard_leaf_hash(["uint64", "string"], [1, "only"]).hex()


def test_empty_tree_is_an_error_like_oz() -> None:
    with pytest.raises(MerkleTreeError) as err:
        StandardMerkleTree.of([], ["uint64"])
    assert err.value.code == "merkle.empty_tree"
    assert "Expected non-zero number of leaves" in str(err.value)


def test_python_and_json_values_build_the_same_tree() -> None:
    case = CASES["mixed_types"]
    python_values = []
    for v in case["values"]:
        python_values.append(
            [
                v[0],
                int(v[1]),
                v[2],
                bytes.fromhex(v[3][2:]),
                bytes.fromhex(v[4][2:]),
                v[5],
                int(v[6]),
                int(v[7]),
            ]
        )
    tree = StandardMerkleTree.of(python_values, case["leafEncoding"])
    assert tree.root == case["root"]
    assert tree.dump() == case["dump"]


def test_get_proof_by_value_and_unknown_value() -> None:
    tree = StandardMerkleTree.load(CASES["transfer_v1_7"]["dump"])
    value = CASES["transfer_v1_7"]["values"][3]
    assert tree.get_proof(value) == CASES["transfer_v1_7"]["proofs"][3]
    with pytest.raises(MerkleTreeError) as err:
        tree.get_proof([*value[:-1], "1"])
    assert err.value.code == "merkle.leaf_not_in_tree"
    with pytest.raises(MerkleTreeError) as err:
        tree.get_proof(7)
    assert err.value.code == "merkle.index_out_of_bounds"


def _dump(name: str) -> dict[str, Any]:
    return json.loads(json.dumps(CASES[name]["dump"]))


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: d.update(format="standard-v2"), "merkle.invalid_dump"),
        (lambda d: d.pop("leafEncoding"), "merkle.invalid_dump"),
        (lambda d: d["values"][2]["value"].__setitem__(7, "1301"), "merkle.invalid_tree"),
        (
            lambda d: d["values"][2].__setitem__("treeIndex", d["values"][3]["treeIndex"]),
            "merkle.invalid_tree",
        ),
        (lambda d: d["values"][2].__setitem__("treeIndex", 99), "merkle.invalid_tree"),
        (lambda d: d["values"][2].__setitem__("treeIndex", "7"), "merkle.invalid_dump"),
        (lambda d: d["tree"].__setitem__(1, "0x" + "00" * 32), "merkle.invalid_tree"),
        (lambda d: d["tree"].__setitem__(1, "0x1234"), "merkle.invalid_node"),
        (lambda d: d["tree"].__setitem__(1, "0x" + "zz" * 32), "merkle.invalid_node"),
        (lambda d: d["tree"].pop(), "merkle.invalid_tree"),
        (lambda d: d["values"][0]["value"].pop(), "merkle.invalid_value"),
        (lambda d: d["values"][0]["value"].__setitem__(0, "-1"), "merkle.invalid_value"),
        (lambda d: d["leafEncoding"].__setitem__(0, "uint7"), "merkle.invalid_encoding"),
    ],
)
def test_load_rejects_what_oz_rejects(mutate: Any, code: str) -> None:
    dump = _dump("transfer_v1_7")
    mutate(dump)
    with pytest.raises(MerkleTreeError) as err:
        StandardMerkleTree.load(dump)
    assert err.value.code == code


def test_reordered_values_with_their_tree_index_still_load() -> None:
    dump = _dump("transfer_v1_7")
    dump["values"].reverse()
    tree = StandardMerkleTree.load(dump)
    assert tree.root == CASES["transfer_v1_7"]["root"]


@pytest.mark.parametrize(
    ("types", "value"),
    [
        (["uint8"], [256]),
        (["uint8"], [-1]),
        (["int8"], [128]),
        (["int8"], [-129]),
        (["uint256"], [True]),
        (["uint256"], [1.5]),
        (["uint256"], ["1_000"]),
        (["uint256"], [" 1"]),
        (["address"], ["0x" + "11" * 19]),
        (["address"], ["0xAbCdEf0000000000000000000000000000000000"]),  # bad checksum
        (["bool"], [1]),
        (["bytes32"], [b"short"]),
        (["bytes32"], ["0x12"]),
        (["string"], [b"bytes"]),
        (["string"], ["lone \ud800 surrogate"]),
        (["uint64", "string"], [1]),
        (["uint64"], "1"),
    ],
)
def test_values_that_do_not_fit_their_type_are_refused(types: list[str], value: Any) -> None:
    with pytest.raises(MerkleTreeError) as err:
        StandardMerkleTree.of([value], types)
    assert err.value.code == "merkle.invalid_value"


def test_verify_rejects_malformed_proofs_like_oz() -> None:
    case = CASES["transfer_v1_7"]
    with pytest.raises(MerkleTreeError):
        StandardMerkleTree.verify(case["root"], TRANSFER_V1, case["values"][0], ["0x12"])
    with pytest.raises(MerkleTreeError):
        StandardMerkleTree.verify("0x12", TRANSFER_V1, case["values"][0], case["proofs"][0])


def test_keccak_is_keccak_not_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


# ----------------------------------------------------------------------------- properties

_flat_types = st.sampled_from(
    [
        "uint8",
        "uint64",
        "uint256",
        "int8",
        "int64",
        "int256",
        "address",
        "bool",
        "bytes1",
        "bytes20",
        "bytes32",
        "string",
        "bytes",
    ]
)


def _value_for(abi_type: str) -> st.SearchStrategy[Any]:
    if abi_type.startswith("uint"):
        return st.integers(0, 2 ** int(abi_type[4:]) - 1)
    if abi_type.startswith("int"):
        bits = int(abi_type[3:])
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if abi_type == "address":
        return st.binary(min_size=20, max_size=20)
    if abi_type == "bool":
        return st.booleans()
    if abi_type == "string":
        return st.text(st.characters(exclude_categories=["Cs"]), max_size=70)
    if abi_type == "bytes":
        return st.binary(max_size=70)
    return st.binary(min_size=int(abi_type[5:]), max_size=int(abi_type[5:]))


@st.composite
def _typed_leaf(draw: st.DrawFn) -> tuple[list[str], list[Any]]:
    types = draw(st.lists(_flat_types, min_size=1, max_size=8))
    return types, [draw(_value_for(t)) for t in types]


@settings(max_examples=300, deadline=None)
@given(_typed_leaf())
def test_direct_encoder_equals_eth_abi(typed: tuple[list[str], list[Any]]) -> None:
    types, values = typed
    codec = leaf_codec(types)
    normalized = codec.normalize(values)
    assert codec.encode(normalized) == eth_abi.encode(types, normalized)
    # The JSON form reads back to the same values.
    assert codec.normalize(codec.to_json(normalized)) == normalized


_transfer_values = st.tuples(
    st.integers(0, 2**64 - 1),
    st.text(max_size=12, alphabet=st.characters(exclude_categories=["Cs"])),
    st.sampled_from(["p_acme", "p_beta", "p_fx"]),
    st.text(max_size=5, alphabet="wxyz0123"),
    st.sampled_from(["p_acme", "p_beta", "p_fx"]),
    st.text(max_size=5, alphabet="wxyz0123"),
    st.sampled_from(["USD", "PHP", "EUR"]),
    st.integers(0, 2**256 - 1),
    st.integers(0, 2**64 - 1),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_transfer_values, min_size=1, max_size=40), st.data())
def test_every_proof_verifies_and_any_tampering_fails(
    values: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    tree = StandardMerkleTree.of(values, TRANSFER_V1)
    for i, value in enumerate(values):
        assert StandardMerkleTree.verify(tree.root, TRANSFER_V1, value, tree.get_proof(i))

    i = data.draw(st.integers(0, len(values) - 1), label="leaf")
    value, proof = list(values[i]), tree.get_proof(i)

    # Any changed field: the leaf is no longer proven (unless it equals another leaf
    # that happens to be proven by the same path, which only a duplicate can).
    field = data.draw(st.integers(0, len(value) - 1), label="field")
    changed = list(value)
    if isinstance(changed[field], int):
        changed[field] = (changed[field] + 1) % (2**64 if field in (0, 8) else 2**256)
    else:
        changed[field] = changed[field] + "x"
    assert not StandardMerkleTree.verify(tree.root, TRANSFER_V1, changed, proof)

    # A changed root.
    root = bytearray(tree.root_bytes)
    root[data.draw(st.integers(0, 31), label="root byte")] ^= 1
    assert not StandardMerkleTree.verify(bytes(root), TRANSFER_V1, value, proof)

    # A changed, dropped or added proof element.
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1), label="proof element")
        flipped = list(proof)
        flipped[j] = (
            "0x"
            + bytes(
                b ^ (1 if k == 31 else 0) for k, b in enumerate(bytes.fromhex(proof[j][2:]))
            ).hex()
        )
        assert not StandardMerkleTree.verify(tree.root, TRANSFER_V1, value, flipped)
        assert not StandardMerkleTree.verify(tree.root, TRANSFER_V1, value, proof[:-1])
    assert not StandardMerkleTree.verify(tree.root, TRANSFER_V1, value, [*proof, "0x" + "ab" * 32])


@settings(max_examples=40, deadline=None)
@given(st.lists(_transfer_values, min_size=1, max_size=30))
def test_dump_load_round_trip(values: list[tuple[Any, ...]]) -> None:
    tree = StandardMerkleTree.of(values, TRANSFER_V1)
    loaded = StandardMerkleTree.load(tree.dumps())
    assert loaded.root == tree.root
    assert loaded.values == tree.values
    assert loaded.dump() == tree.dump()


def test_make_merkle_tree_layout_is_core_ts() -> None:
    leaves = [keccak256(bytes([i])) for i in range(5)]
    tree = make_merkle_tree(leaves)
    assert len(tree) == 9
    assert tree[4:] == list(reversed(leaves))  # leaves at the end, in reverse
    for i in range(4):
        a, b = sorted([tree[2 * i + 1], tree[2 * i + 2]])
        assert tree[i] == keccak256(a + b)
    assert process_proof(tree[8], [tree[7], tree[4], tree[2]]) == tree[0]
