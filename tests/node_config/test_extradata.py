"""QBFT extraData: Besu's documented encodings, and encode/decode as exact inverses."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node_config.network.extradata import (
    ExtraDataError,
    Vote,
    decode_extra_data,
    encode_extra_data,
    encode_extra_data_hex,
    sort_validators,
)

# From Besu's QBFT documentation: four validators, in the order given to `besu rlp encode`.
BESU_DOC_VALIDATORS = [
    "0x4592c8e45706cc08b8f44b11e43cba0cfc5892cb",
    "0x06e23768a0f59cf365e18c2e0c89e151bcdedc70",
    "0xc5327f96ee02d7bcbc1bf1236b8c15148971e1de",
    "0xab5e7f4061c605820d3744227eed91ff8e2c8908",
]
BESU_DOC_EXTRA_DATA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f854944592c8e4"
    "5706cc08b8f44b11e43cba0cfc5892cb9406e23768a0f59cf365e18c2e0c89e151bcdedc7094c5327f96ee"
    "02d7bcbc1bf1236b8c15148971e1de94ab5e7f4061c605820d3744227eed91ff8e2c8908c080c0"
)
# Besu's contract-selection genesis: no validator in extraData.
BESU_DOC_EMPTY = "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0"


def test_matches_besu_documentation() -> None:
    assert encode_extra_data_hex(BESU_DOC_VALIDATORS) == BESU_DOC_EXTRA_DATA
    assert encode_extra_data_hex([]) == BESU_DOC_EMPTY


def test_decodes_besu_documentation() -> None:
    decoded = decode_extra_data(BESU_DOC_EXTRA_DATA)
    assert [v.lower() for v in decoded.validators] == BESU_DOC_VALIDATORS
    assert decoded.vanity == b"\x00" * 32
    assert decoded.is_genesis_form


def test_sort_is_numeric_ascending() -> None:
    ordered = sort_validators(BESU_DOC_VALIDATORS)
    assert [int(a, 16) for a in ordered] == sorted(int(a, 16) for a in BESU_DOC_VALIDATORS)


def test_duplicate_validator_refused() -> None:
    with pytest.raises(ExtraDataError):
        encode_extra_data([BESU_DOC_VALIDATORS[0], BESU_DOC_VALIDATORS[0].upper()[2:]])


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0x",
        "0xzz",
        "0xc0",  # an empty list
        BESU_DOC_EXTRA_DATA + "00",  # trailing bytes
        BESU_DOC_EXTRA_DATA[:-2],  # truncated
        BESU_DOC_EXTRA_DATA.replace("c080c0", "8080c0"),  # vote is a string, not a list
        BESU_DOC_EXTRA_DATA.replace("c080c0", "c00080"),  # non-canonical round, seals not list
        "0xe4" + "9f" + "00" * 31 + "c0c080c0",  # 31-byte vanity
    ],
)
def test_malformed_refused(bad: str) -> None:
    with pytest.raises(ExtraDataError):
        decode_extra_data(bad)


addresses = st.binary(min_size=20, max_size=20)
validator_sets = st.lists(addresses, max_size=30, unique=True)
votes = st.none() | st.builds(
    Vote, recipient=addresses.map(lambda b: "0x" + b.hex()), add=st.booleans()
)


@settings(max_examples=200, deadline=None)
@given(
    validators=validator_sets,
    vanity=st.binary(min_size=32, max_size=32),
    vote=votes,
    round_number=st.integers(min_value=0, max_value=2**64),
    seals=st.lists(st.binary(min_size=65, max_size=65), max_size=5),
)
def test_round_trip(
    validators: list[bytes], vanity: bytes, vote: Vote | None, round_number: int, seals: list[bytes]
) -> None:
    encoded = encode_extra_data(
        validators, vanity=vanity, vote=vote, round_number=round_number, seals=seals
    )
    decoded = decode_extra_data(encoded)
    assert [bytes.fromhex(v[2:]) for v in decoded.validators] == validators
    assert decoded.vanity == vanity
    assert decoded.round == round_number
    assert list(decoded.seals) == seals
    if vote is None:
        assert decoded.vote is None
    else:
        assert decoded.vote is not None
        assert decoded.vote.recipient.lower() == vote.recipient.lower()
        assert decoded.vote.add == vote.add
    # Decoding then re-encoding gives the same bytes: the encoding is canonical.
    again = encode_extra_data(
        decoded.validators,
        vanity=decoded.vanity,
        vote=decoded.vote,
        round_number=decoded.round,
        seals=decoded.seals,
    )
    assert again == encoded
    assert decoded.is_genesis_form == (vote is None and round_number == 0 and not seals)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_refuse_cleanly(data: bytes) -> None:
    try:
        decoded = decode_extra_data(data)
    except ExtraDataError:
        return
    assert (
        encode_extra_data(
            decoded.validators,
            vanity=decoded.vanity,
            vote=decoded.vote,
            round_number=decoded.round,
            seals=decoded.seals,
        )
        == data
    )


@settings(max_examples=100, deadline=None)
@given(validator_sets.filter(bool), st.data())
def test_mutations_never_crash(validators: list[bytes], data: st.DataObject) -> None:
    encoded = bytearray(encode_extra_data(validators))
    index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[index] = data.draw(st.integers(min_value=0, max_value=255))
    with contextlib.suppress(ExtraDataError):
        decode_extra_data(bytes(encoded))
