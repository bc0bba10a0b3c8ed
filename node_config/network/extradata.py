"""QBFT genesis ``extraData``: encode and decode the validator set.

Besu's QBFT (block header validator selection) keeps the validator set in the genesis
block's ``extraData``, RLP-encoded as::

    RLP([vanity: 32 bytes, validators: [address, ...], vote: [] | [address, 0x00|0xff],
         round: int, seals: [signature, ...]])

A genesis block carries no vote (an empty list), round 0 (an RLP integer, so the empty
string ``0x80``) and no seals. Later blocks carry a vote, a round and committed seals, so
the decoder accepts those too: ``inspect`` decides what a *genesis* may hold.

Encoding goes through the ``rlp`` package with typed sedes, never hand-built bytes, so the
decoder is the exact inverse and rejects non-canonical input (strict mode: no trailing
bytes, no leading zeros in integers, fixed-length fields).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import rlp
from eth_utils import is_hex_address, to_checksum_address
from rlp import sedes

from node_config.network.errors import NetworkConfigError

VANITY_LEN = 32
ADDRESS_LEN = 20
SEAL_LEN = 65  # secp256k1 signature r(32) s(32) v(1)
# Besu encodes a vote as [recipient, 0xff] to add and [recipient, 0x00] to drop.
VOTE_ADD = b"\xff"
VOTE_DROP = b"\x00"
# A bound on what a decoder accepts; QBFT networks run a handful to a few dozen validators.
validators_max = 1024

_address = sedes.Binary.fixed_length(ADDRESS_LEN)
_vanity = sedes.Binary.fixed_length(VANITY_LEN)
_seal = sedes.Binary.fixed_length(SEAL_LEN)
_vote = sedes.List([_address, sedes.Binary.fixed_length(1)])
_EXTRA_DATA = sedes.List(
    [
        _vanity,
        sedes.CountableList(_address, max_length=validators_max),
        sedes.raw,  # [] (no vote) or [address, vote byte]: decoded by hand below
        sedes.big_endian_int,
        sedes.CountableList(_seal, max_length=validators_max),
    ],
    strict=True,
)


class ExtraDataError(NetworkConfigError):
    """extraData that is not a well-formed QBFT extraData (code ``extradata_malformed``)."""

    def __init__(self, message: str) -> None:
        super().__init__("extradata_malformed", message)


@dataclass(frozen=True)
class Vote:
    """A validator vote carried in a block header: add or drop ``recipient``."""

    recipient: str  # checksummed address
    add: bool


@dataclass(frozen=True)
class QbftExtraData:
    """The decoded fields of a QBFT extraData."""

    vanity: bytes
    validators: tuple[str, ...]  # checksummed, in encoded order
    vote: Vote | None
    round: int
    seals: tuple[bytes, ...]

    @property
    def is_genesis_form(self) -> bool:
        """True when the fields are what a genesis block may carry (no vote, round 0, no seals)."""
        return self.vote is None and self.round == 0 and not self.seals


def normalize_address(value: str | bytes) -> str:
    """A checksummed address from 20 raw bytes or a 0x-prefixed (or bare) hex string."""
    if isinstance(value, bytes | bytearray):
        if len(value) != ADDRESS_LEN:
            raise NetworkConfigError(
                "address_invalid", f"an address is {ADDRESS_LEN} bytes, got {len(value)}"
            )
        return to_checksum_address(bytes(value))
    if not isinstance(value, str):
        raise NetworkConfigError("address_invalid", f"not an address: {value!r}")
    text = value.strip()
    if not text.startswith(("0x", "0X")):
        text = "0x" + text
    if not is_hex_address(text):
        raise NetworkConfigError("address_invalid", f"not an address: {value!r}")
    return to_checksum_address(text.lower())


def sort_validators(addresses: Iterable[str | bytes]) -> list[str]:
    """Addresses in ascending numeric order, the order Besu's tooling documents for genesis."""
    return sorted((normalize_address(a) for a in addresses), key=lambda a: int(a, 16))


def encode_extra_data(
    validators: Sequence[str | bytes],
    *,
    vanity: bytes = b"\x00" * VANITY_LEN,
    vote: Vote | None = None,
    round_number: int = 0,
    seals: Sequence[bytes] = (),
) -> bytes:
    """RLP-encode a QBFT extraData. Validators are encoded in the order given.

    Duplicate validators are refused: Besu would count one validator twice towards quorum.
    """
    if len(vanity) != VANITY_LEN:
        raise ExtraDataError(f"vanity must be {VANITY_LEN} bytes, got {len(vanity)}")
    if round_number < 0:
        raise ExtraDataError("round must not be negative")
    raw = [bytes.fromhex(normalize_address(v)[2:]) for v in validators]
    if len(set(raw)) != len(raw):
        raise ExtraDataError("duplicate validator address")
    if len(raw) > validators_max:
        raise ExtraDataError(f"more than {validators_max} validators")
    encoded_vote: list[bytes] = []
    if vote is not None:
        encoded_vote = [
            bytes.fromhex(normalize_address(vote.recipient)[2:]),
            VOTE_ADD if vote.add else VOTE_DROP,
        ]
    for seal in seals:
        if len(seal) != SEAL_LEN:
            raise ExtraDataError(f"a seal is {SEAL_LEN} bytes, got {len(seal)}")
    return rlp.encode([vanity, raw, encoded_vote, round_number, list(seals)], sedes=_EXTRA_DATA)


def encode_extra_data_hex(validators: Sequence[str | bytes]) -> str:
    """A genesis extraData for ``validators`` as 0x-prefixed hex, the form genesis.json holds."""
    return "0x" + encode_extra_data(validators).hex()


def _to_bytes(data: bytes | str) -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if not isinstance(data, str):
        raise ExtraDataError("extraData must be a hex string")
    text = data.strip()
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ExtraDataError("extraData is not valid hex") from None


def decode_extra_data(data: bytes | str) -> QbftExtraData:
    """Decode a QBFT extraData (bytes or hex); ``ExtraDataError`` if it is not one."""
    raw = _to_bytes(data)
    if not raw:
        raise ExtraDataError("extraData is empty")
    try:
        vanity, validators, vote_item, round_number, seals = rlp.decode(
            raw, sedes=_EXTRA_DATA, strict=True
        )
    except (rlp.exceptions.DecodingError, rlp.exceptions.DeserializationError) as exc:
        raise ExtraDataError(f"extraData is not a QBFT RLP list: {_reason(exc)}") from None
    vote = _decode_vote(vote_item)
    addresses = tuple(to_checksum_address(v) for v in validators)
    if len(set(addresses)) != len(addresses):
        raise ExtraDataError("extraData lists a validator twice")
    return QbftExtraData(
        vanity=vanity, validators=addresses, vote=vote, round=round_number, seals=tuple(seals)
    )


def _decode_vote(item: object) -> Vote | None:
    if item == []:
        return None
    if not isinstance(item, list):
        raise ExtraDataError("vote field must be a list")
    try:
        recipient, kind = _vote.deserialize(item)
    except rlp.exceptions.DeserializationError:
        raise ExtraDataError("vote must be [20-byte address, 1-byte vote type]") from None
    if kind not in (VOTE_ADD, VOTE_DROP):
        raise ExtraDataError(f"vote type must be 0x00 or 0xff, got 0x{kind.hex()}")
    return Vote(recipient=to_checksum_address(recipient), add=kind == VOTE_ADD)


def _reason(exc: Exception) -> str:
    # rlp's messages are long and nested; the first line says enough.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
