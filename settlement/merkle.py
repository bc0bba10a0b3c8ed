"""OpenZeppelin's StandardMerkleTree, ported to Python.

A faithful port of ``StandardMerkleTree`` from ``@openzeppelin/merkle-tree`` 1.0.8
(src/standard.ts, src/merkletree.ts, src/core.ts, src/hashes.ts), so that:

* a root built here equals the root the JavaScript library builds from the same values;
* a dump written here (``dump()``) loads with ``StandardMerkleTree.load`` in JavaScript,
  and a dump written there loads here;
* a proof made here verifies with OpenZeppelin's ``MerkleProof.sol`` and the JS library.

The scheme, as OZ defines it:

* leaf hash = ``keccak256(bytes.concat(keccak256(abi.encode(values))))`` (double hash, so a
  64-byte leaf can never be mistaken for an inner node);
* inner node = ``keccak256(min(a, b) ++ max(a, b))`` (sorted pairs: proofs carry no
  left/right flags);
* layout: the leaf hashes are sorted ascending (default ``sort_leaves=True``, a stable
  sort) and stored in reverse at the end of an array of ``2n - 1`` nodes; node ``i`` has
  children ``2i + 1`` and ``2i + 2``; the root is node 0.
* dump format ``standard-v1``: ``{"format", "leafEncoding", "tree", "values"}`` where
  ``values`` keeps the input order and each entry names its ``treeIndex``.

Values are held here as normalised Python values (``int`` for ``uint*``/``int*``, ``str``
for ``string`` and checksummed ``address``, ``bytes`` for ``bytes``/``bytesN``, ``bool``,
tuples for arrays and tuples). In a dump they are written the way the JS library expects
them: integers as decimal strings, bytes as lowercase ``0x`` hex, addresses as ``0x`` hex.

Speed: leaf encoding for flat leaf types (no arrays or tuples) uses a direct ABI encoder
that is tested byte-for-byte against ``eth_abi.encode``; other types go through
``eth_abi.encode``. Keccak comes from pysha3 when installed, else pycryptodome.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import eth_abi
from eth_abi.exceptions import ABITypeError, ParseError
from eth_abi.grammar import BasicType, TupleType, normalize, parse
from eth_utils import is_checksum_address, to_checksum_address

__all__ = [
    "DUMP_FORMAT",
    "HexLike",
    "LeafCodec",
    "MerkleTreeError",
    "MultiProof",
    "StandardMerkleTree",
    "get_multi_proof",
    "get_proof",
    "is_valid_merkle_tree",
    "keccak256",
    "leaf_codec",
    "make_merkle_tree",
    "process_multi_proof",
    "process_proof",
    "render_merkle_tree",
    "standard_leaf_hash",
    "standard_node_hash",
    "to_hex",
    "to_node",
]

DUMP_FORMAT: Final = "standard-v1"

HexLike = bytes | bytearray | str
"""A 32-byte node: raw bytes or a hex string (with or without ``0x``), as OZ accepts."""


class MerkleTreeError(ValueError):
    """An expected failure (bad input, bad dump, value not in tree), with a stable code.

    Codes: ``merkle.empty_tree``, ``merkle.invalid_encoding``, ``merkle.invalid_value``,
    ``merkle.invalid_node``, ``merkle.invalid_dump``, ``merkle.index_out_of_bounds``,
    ``merkle.leaf_not_in_tree``, ``merkle.invalid_multiproof``, ``merkle.invalid_tree``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- keccak


def _pick_keccak() -> Callable[[bytes], bytes]:
    # pysha3 is the fastest here (~1.4 us per 64-byte hash against ~6.5 us through eth_hash);
    # pycryptodome is always installed (eth-account needs it).
    try:
        import sha3  # safe-pysha3, optional

        impl = sha3.keccak_256

        def keccak_pysha3(data: bytes) -> bytes:
            return impl(data).digest()

        chosen: Callable[[bytes], bytes] = keccak_pysha3
    except ImportError:
        from Crypto.Hash import keccak as crypto_keccak

        new = crypto_keccak.new

        def keccak_cryptodome(data: bytes) -> bytes:
            return new(data=data, digest_bits=256).digest()

        chosen = keccak_cryptodome
    # Keccak-256 (not NIST SHA3-256) of the empty string: a wrong backend stops here.
    assert chosen(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    return chosen


keccak256: Final[Callable[[bytes], bytes]] = _pick_keccak()
"""keccak256 of raw bytes, returning 32 raw bytes."""


# --------------------------------------------------------------------------- hex helpers

_HEX_RE: Final = re.compile(r"^(0x)?([0-9a-fA-F]{2})*$")


def _hex_to_bytes(value: str, what: str) -> bytes:
    if not _HEX_RE.match(value):
        raise MerkleTreeError("merkle.invalid_node", f"{what} is not a hex string: {value!r}")
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


def to_node(value: HexLike, what: str = "Merkle tree node") -> bytes:
    """A 32-byte node from bytes or hex; ``MerkleTreeError`` otherwise (OZ checks the same)."""
    if isinstance(value, str):
        raw = b""
        if len(value) == 66 and value[:2] == "0x":
            # Fast path; 64 digits giving 32 bytes leaves no room for fromhex's whitespace.
            try:
                raw = bytes.fromhex(value[2:])
            except ValueError:
                raw = b""
        if len(raw) != 32:
            raw = _hex_to_bytes(value, what)
    elif isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        raise MerkleTreeError("merkle.invalid_node", f"{what} must be bytes or hex: {value!r}")
    if len(raw) != 32:
        raise MerkleTreeError(
            "merkle.invalid_node", f"{what} must be 32 bytes, got {len(raw)}: {value!r}"
        )
    return raw


def to_hex(node: bytes) -> str:
    """Lowercase ``0x`` hex, as OZ writes every node."""
    return "0x" + node.hex()


# --------------------------------------------------------------------------- leaf codec

# Field kinds of the direct encoder (flat leaves). Dynamic kinds carry a tail.
_K_UINT, _K_INT, _K_ADDRESS, _K_BOOL, _K_FIXED_BYTES, _K_STRING, _K_BYTES = range(7)
_HEXNUM_RE: Final = re.compile(r"^0x[0-9a-fA-F]+$")
_ZERO32: Final = bytes(32)
_ZERO12: Final = bytes(12)

Normalizer = Callable[[Any], Any]
JsonWriter = Callable[[Any], Any]


def _bad(type_str: str, value: object, why: str) -> MerkleTreeError:
    return MerkleTreeError("merkle.invalid_value", f"{type_str}: {why}: {value!r}")


def _int_normalizer(type_str: str, signed: bool, bits: int) -> Normalizer:
    low = -(1 << (bits - 1)) if signed else 0
    high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def norm(value: Any) -> int:
        if isinstance(value, bool):
            raise _bad(type_str, value, "a bool is not an integer")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str):
            # Decimal (the JSON form) or 0x hex; no whitespace, underscores or '+'.
            digits = value[1:] if value[:1] == "-" else value
            if digits.isascii() and digits.isdigit():
                number = int(value, 10)
            elif _HEXNUM_RE.match(value):
                number = int(value, 16)
            else:
                raise _bad(type_str, value, "not a decimal or 0x-hex integer")
        else:
            raise _bad(type_str, value, "expected an integer")
        if not low <= number <= high:
            raise _bad(type_str, value, "out of range")
        return number

    return norm


def _address_normalizer(type_str: str) -> Normalizer:
    def norm(value: Any) -> str:
        if isinstance(value, bytes | bytearray):
            if len(value) != 20:
                raise _bad(type_str, value, "an address is 20 bytes")
            return str(to_checksum_address(bytes(value)))
        if not isinstance(value, str) or not re.fullmatch(r"0x[0-9a-fA-F]{40}", value):
            raise _bad(type_str, value, "expected 0x and 40 hex digits")
        body = value[2:]
        # Mixed case claims an EIP-55 checksum: hold it to it.
        if body != body.lower() and body != body.upper() and not is_checksum_address(value):
            raise _bad(type_str, value, "bad EIP-55 checksum")
        return str(to_checksum_address(value))

    return norm


def _bytes_normalizer(type_str: str, size: int | None) -> Normalizer:
    def norm(value: Any) -> bytes:
        if isinstance(value, bytes | bytearray):
            raw = bytes(value)
        elif isinstance(value, str) and value.startswith("0x"):
            try:
                raw = _hex_to_bytes(value, type_str)
            except MerkleTreeError:
                raise _bad(type_str, value, "not a 0x hex string") from None
        else:
            raise _bad(type_str, value, "expected bytes or 0x hex")
        if size is not None and len(raw) != size:
            raise _bad(type_str, value, f"expected exactly {size} bytes")
        return raw

    return norm


def _bool_normalizer(type_str: str) -> Normalizer:
    def norm(value: Any) -> bool:
        if not isinstance(value, bool):
            raise _bad(type_str, value, "expected a bool")
        return value

    return norm


def _string_normalizer(type_str: str) -> Normalizer:
    def norm(value: Any) -> str:
        if not isinstance(value, str):
            raise _bad(type_str, value, "expected a string")
        # UTF-8 validity (lone surrogates) is checked once, when the leaf is encoded.
        return value

    return norm


def _sequence_normalizer(
    type_str: str, items: Sequence[Normalizer] | Normalizer, length: int | None
) -> Normalizer:
    def norm(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str | bytes | bytearray) or not isinstance(value, Sequence):
            raise _bad(type_str, value, "expected a list")
        if isinstance(items, Sequence):
            if len(value) != len(items):
                raise _bad(type_str, value, f"expected {len(items)} components")
            return tuple(n(v) for n, v in zip(items, value, strict=True))
        if length is not None and len(value) != length:
            raise _bad(type_str, value, f"expected {length} items")
        return tuple(items(v) for v in value)

    return norm


def _json_of(value: Any) -> Any:
    """The JSON form the JS library takes: big integers as decimal strings, bytes as hex."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple):
        return [_json_of(v) for v in value]
    raise AssertionError(f"not a normalised leaf value: {value!r}")


def _compile(abi_type: BasicType | TupleType) -> Normalizer:
    type_str = abi_type.to_type_str()
    if abi_type.arrlist:
        item = _compile(abi_type.item_type)
        last = abi_type.arrlist[-1]
        return _sequence_normalizer(type_str, item, last[0] if last else None)
    if isinstance(abi_type, TupleType):
        return _sequence_normalizer(type_str, [_compile(c) for c in abi_type.components], None)
    base, sub = abi_type.base, abi_type.sub
    if base in ("uint", "int"):
        assert isinstance(sub, int)
        return _int_normalizer(type_str, base == "int", sub)
    if base == "address":
        return _address_normalizer(type_str)
    if base == "bool":
        return _bool_normalizer(type_str)
    if base == "bytes":
        return _bytes_normalizer(type_str, sub if isinstance(sub, int) else None)
    if base == "string":
        return _string_normalizer(type_str)
    raise MerkleTreeError("merkle.invalid_encoding", f"unsupported ABI type {type_str!r}")


def _flat_kind(abi_type: BasicType | TupleType) -> tuple[int, int] | None:
    """The direct-encoder kind of a flat type, or None when eth_abi must encode it."""
    if abi_type.arrlist or isinstance(abi_type, TupleType):
        return None
    base, sub = abi_type.base, abi_type.sub
    if base == "uint":
        return (_K_UINT, 0)
    if base == "int":
        return (_K_INT, 0)
    if base == "address":
        return (_K_ADDRESS, 0)
    if base == "bool":
        return (_K_BOOL, 0)
    if base == "bytes":
        return (_K_FIXED_BYTES, sub) if isinstance(sub, int) else (_K_BYTES, 0)
    if base == "string":
        return (_K_STRING, 0)
    return None


def _make_flat_encoder(kinds: Sequence[tuple[int, int]]) -> Callable[[tuple[Any, ...]], bytes]:
    """An ``abi.encode`` for one flat leaf encoding, generated as straight-line code.

    The ABI head/tail layout, unrolled per field: this is the per-leaf hot path, and
    the unrolled form is about 3x faster than a loop over field kinds or eth_abi.
    Only integer constants and field indices enter the generated source.
    Tested byte-for-byte against ``eth_abi.encode``.
    """
    count = len(kinds)
    body = [f"    o = {32 * count}"]
    head: list[str] = []
    tail: list[str] = []
    for i, (kind, size) in enumerate(kinds):
        if kind == _K_UINT:
            head.append(f"v[{i}].to_bytes(32, 'big')")
        elif kind == _K_INT:
            head.append(f"v[{i}].to_bytes(32, 'big', signed=True)")
        elif kind == _K_ADDRESS:
            head.append(f"Z12 + fromhex(v[{i}][2:])")
        elif kind == _K_BOOL:
            head.append(f"(TRUE if v[{i}] else FALSE)")
        elif kind == _K_FIXED_BYTES:
            head.append(f"v[{i}] + Z32[:{32 - size}]")
        else:
            data = f"v[{i}].encode('utf-8')" if kind == _K_STRING else f"v[{i}]"
            body += [
                f"    d{i} = {data}",
                f"    n{i} = len(d{i})",
                f"    o{i} = o",
                f"    o += 32 + n{i} + (-n{i} % 32)",
            ]
            head.append(f"o{i}.to_bytes(32, 'big')")
            tail += [f"n{i}.to_bytes(32, 'big')", f"d{i}", f"Z32[:-n{i} % 32]"]
    body.append(f"    return b''.join(({', '.join(head + tail)},))")
    source = "def encode(v):\n" + "\n".join(body) + "\n"
    namespace: dict[str, Any] = {
        "Z12": _ZERO12,
        "Z32": _ZERO32,
        "TRUE": _ZERO32[:31] + b"\x01",
        "FALSE": _ZERO32,
        "fromhex": bytes.fromhex,
    }
    exec(compile(source, "<merkle flat encoder>", "exec"), namespace)
    encode: Callable[[tuple[Any, ...]], bytes] = namespace["encode"]

    def encode_checked(v: tuple[Any, ...]) -> bytes:
        try:
            return encode(v)
        except UnicodeEncodeError:
            raise MerkleTreeError(
                "merkle.invalid_value", f"a string is not encodable as UTF-8: {v!r}"
            ) from None

    return encode_checked


class LeafCodec:
    """Validates, ABI-encodes and (de)serialises the values of one leaf encoding."""

    def __init__(self, leaf_encoding: Sequence[str]) -> None:
        if isinstance(leaf_encoding, str) or not isinstance(leaf_encoding, Sequence):
            raise MerkleTreeError(
                "merkle.invalid_encoding",
                f"leaf encoding must be a list of ABI types: {leaf_encoding!r}",
            )
        parsed = []
        for type_str in leaf_encoding:
            try:
                abi_type = parse(normalize(type_str))
                abi_type.validate()
            except (ParseError, ABITypeError, TypeError, AttributeError) as exc:
                raise MerkleTreeError(
                    "merkle.invalid_encoding", f"invalid ABI type {type_str!r}: {exc}"
                ) from None
            parsed.append(abi_type)
        self.leaf_encoding: tuple[str, ...] = tuple(leaf_encoding)
        self.abi_types: tuple[str, ...] = tuple(t.to_type_str() for t in parsed)
        self._normalizers = tuple(_compile(t) for t in parsed)
        kinds = [_flat_kind(t) for t in parsed]
        flat = [k for k in kinds if k is not None]
        self._flat_encoder: Callable[[tuple[Any, ...]], bytes] | None = (
            _make_flat_encoder(flat) if len(flat) == len(kinds) else None
        )

    def normalize(self, value: Sequence[Any]) -> tuple[Any, ...]:
        """Checks a leaf against the encoding; returns its normalised Python values."""
        if isinstance(value, str | bytes | bytearray) or not isinstance(value, Sequence):
            raise MerkleTreeError("merkle.invalid_value", f"a leaf must be a list: {value!r}")
        if len(value) != len(self._normalizers):
            raise MerkleTreeError(
                "merkle.invalid_value",
                f"leaf has {len(value)} values, encoding {list(self.leaf_encoding)} has "
                f"{len(self._normalizers)}",
            )
        return tuple(n(v) for n, v in zip(self._normalizers, value, strict=True))

    def encode(self, normalized: tuple[Any, ...]) -> bytes:
        """``abi.encode(values)`` of a normalised leaf (see ``normalize``)."""
        if self._flat_encoder is None:
            return bytes(eth_abi.encode(self.abi_types, normalized))
        return self._flat_encoder(normalized)

    def leaf_hash(self, normalized: tuple[Any, ...]) -> bytes:
        """The OZ leaf hash of a normalised leaf."""
        if self._flat_encoder is None:
            return keccak256(keccak256(bytes(eth_abi.encode(self.abi_types, normalized))))
        return keccak256(keccak256(self._flat_encoder(normalized)))

    def to_json(self, normalized: tuple[Any, ...]) -> list[Any]:
        return [_json_of(v) for v in normalized]


@lru_cache(maxsize=64)
def _cached_codec(leaf_encoding: tuple[str, ...]) -> LeafCodec:
    return LeafCodec(leaf_encoding)


def leaf_codec(leaf_encoding: Sequence[str]) -> LeafCodec:
    """The (cached) codec of a leaf encoding such as ``["address", "uint256"]``."""
    if isinstance(leaf_encoding, str) or not isinstance(leaf_encoding, Sequence):
        raise MerkleTreeError(
            "merkle.invalid_encoding", f"leaf encoding must be a list: {leaf_encoding!r}"
        )
    if not all(isinstance(t, str) for t in leaf_encoding):
        raise MerkleTreeError(
            "merkle.invalid_encoding", f"leaf encoding must be a list of strings: {leaf_encoding!r}"
        )
    return _cached_codec(tuple(leaf_encoding))


def standard_leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """``keccak256(bytes.concat(keccak256(abi.encode(value))))`` (hashes.ts)."""
    codec = leaf_codec(leaf_encoding)
    return codec.leaf_hash(codec.normalize(value))


def standard_node_hash(a: bytes, b: bytes) -> bytes:
    """``keccak256(sorted(a, b))`` (hashes.ts). 32-byte strings compare as numbers."""
    return keccak256(a + b if a <= b else b + a)


# --------------------------------------------------------------------------- core.ts


def make_merkle_tree(leaves: Sequence[bytes]) -> list[bytes]:
    """The array-heap tree over leaf hashes, leaves stored in reverse at the end (core.ts)."""
    if not leaves:
        raise MerkleTreeError("merkle.empty_tree", "Expected non-zero number of leaves")
    for leaf in leaves:
        if not isinstance(leaf, bytes) or len(leaf) != 32:
            raise MerkleTreeError("merkle.invalid_node", "Merkle tree nodes must be 32 bytes long")
    n = len(leaves)
    tree: list[bytes] = [b""] * (n - 1) + list(reversed(leaves))
    hash_ = keccak256
    for i in range(n - 2, -1, -1):
        a = tree[2 * i + 1]
        b = tree[2 * i + 2]
        tree[i] = hash_(a + b if a <= b else b + a)
    return tree


def _is_leaf_node(tree: Sequence[bytes], i: int) -> bool:
    return 0 <= i < len(tree) and not 2 * i + 1 < len(tree)


def get_proof(tree: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from leaf ``index`` (a tree index) up to the root (core.ts)."""
    if not _is_leaf_node(tree, index):
        raise MerkleTreeError("merkle.index_out_of_bounds", "Index is not a leaf")
    proof = []
    while index > 0:
        proof.append(tree[index - 1 if index % 2 == 0 else index + 1])
        index = (index - 1) // 2
    return proof


def process_proof(leaf: HexLike, proof: Sequence[HexLike]) -> bytes:
    """The root a proof leads to from a leaf hash (core.ts, same as MerkleProof.sol)."""
    node = to_node(leaf, "leaf")
    for sibling in (to_node(p, "proof element") for p in proof):
        node = standard_node_hash(node, sibling)
    return node


@dataclass(frozen=True, slots=True)
class MultiProof:
    """A multiproof (OZ ``MultiProof``): leaves are values (or hashes in core functions)."""

    leaves: tuple[Any, ...]
    proof: tuple[str, ...]
    proof_flags: tuple[bool, ...]

    def to_json(self, codec: LeafCodec | None = None) -> dict[str, Any]:
        leaves = (
            [codec.to_json(v) for v in self.leaves]
            if codec
            else [to_hex(v) if isinstance(v, bytes) else v for v in self.leaves]
        )
        return {"leaves": leaves, "proof": list(self.proof), "proofFlags": list(self.proof_flags)}


def get_multi_proof(tree: Sequence[bytes], indices: Sequence[int]) -> MultiProof:
    """A multiproof of leaf hashes at tree ``indices`` (core.ts ``getMultiProof``)."""
    for i in indices:
        if not _is_leaf_node(tree, i):
            raise MerkleTreeError("merkle.index_out_of_bounds", "Index is not a leaf")
    ordered = sorted(indices, reverse=True)
    if any(a == b for a, b in itertools.pairwise(ordered)):
        raise MerkleTreeError("merkle.invalid_multiproof", "Cannot prove duplicated index")
    stack = list(ordered)
    proof: list[bytes] = []
    flags: list[bool] = []
    pos = 0  # stack[pos:] is the live queue; a list with a head index, as shift() is O(n)
    while pos < len(stack) and stack[pos] > 0:
        j = stack[pos]
        pos += 1
        s = j - 1 if j % 2 == 0 else j + 1
        p = (j - 1) // 2
        if pos < len(stack) and s == stack[pos]:
            flags.append(True)
            pos += 1
        else:
            flags.append(False)
            proof.append(tree[s])
        stack.append(p)
    if not ordered:
        proof.append(tree[0])
    return MultiProof(
        leaves=tuple(tree[i] for i in ordered),
        proof=tuple(to_hex(p) for p in proof),
        proof_flags=tuple(flags),
    )


def process_multi_proof(
    leaves: Sequence[HexLike], proof: Sequence[HexLike], proof_flags: Sequence[bool]
) -> bytes:
    """The root a multiproof of leaf hashes leads to (core.ts ``processMultiProof``)."""
    queue = [to_node(leaf, "leaf") for leaf in leaves]
    rest = [to_node(p, "proof element") for p in proof]
    if len(rest) < sum(1 for f in proof_flags if not f):
        raise MerkleTreeError("merkle.invalid_multiproof", "Invalid multiproof format")
    if len(queue) + len(rest) != len(proof_flags) + 1:
        raise MerkleTreeError(
            "merkle.invalid_multiproof", "Provided leaves and multiproof are not compatible"
        )
    qpos = 0
    ppos = 0
    for flag in proof_flags:
        a = queue[qpos]
        qpos += 1
        if flag:
            b = queue[qpos]
            qpos += 1
        else:
            b = rest[ppos]
            ppos += 1
        queue.append(standard_node_hash(a, b))
    remaining = len(queue) - qpos
    assert remaining + (len(rest) - ppos) == 1, "multiproof invariant"
    return queue[-1] if remaining else rest[ppos]


def is_valid_merkle_tree(tree: Sequence[bytes]) -> bool:
    """Every node is 32 bytes and every inner node hashes its children (core.ts)."""
    size = len(tree)
    for i, node in enumerate(tree):
        if not isinstance(node, bytes) or len(node) != 32:
            return False
        left, right = 2 * i + 1, 2 * i + 2
        if right >= size:
            if left < size:
                return False
        elif node != standard_node_hash(tree[left], tree[right]):
            return False
    return size > 0


def render_merkle_tree(tree: Sequence[bytes]) -> str:
    """The text drawing of core.ts ``renderMerkleTree``."""
    if not tree:
        raise MerkleTreeError("merkle.empty_tree", "Expected non-zero number of nodes")
    stack: list[tuple[int, list[int]]] = [(0, [])]
    lines = []
    while stack:
        i, path = stack.pop()
        lines.append(
            "".join(["   ", "│  "][p] for p in path[:-1])
            + "".join(["└─ ", "├─ "][p] for p in path[-1:])
            + f"{i}) {to_hex(tree[i])}"
        )
        if 2 * i + 2 < len(tree):
            stack.append((2 * i + 2, [*path, 0]))
            stack.append((2 * i + 1, [*path, 1]))
    return "\n".join(lines)


# --------------------------------------------------------------------------- the tree


class StandardMerkleTree:
    """OZ ``StandardMerkleTree``: a Merkle tree over ABI-encoded values.

    Build with ``StandardMerkleTree.of(values, leaf_encoding)``, or ``load(dump)``.
    ``value index`` below means the position of a value in the input order (OZ's
    ``valueIndex``); ``tree index`` is the node's position in ``tree``.
    """

    __slots__ = ("_codec", "_hash_lookup", "_tree", "_tree_indices", "_values")

    def __init__(
        self,
        tree: Sequence[bytes],
        values: Sequence[tuple[Any, ...]],
        tree_indices: Sequence[int],
        leaf_encoding: Sequence[str],
    ) -> None:
        """Low level, as OZ's constructor: no validation. Use ``of`` or ``load``."""
        self._codec = leaf_codec(leaf_encoding)
        self._tree = list(tree)
        self._values = list(values)
        self._tree_indices = list(tree_indices)
        self._hash_lookup: dict[bytes, int] | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def of(
        cls,
        values: Sequence[Sequence[Any]],
        leaf_encoding: Sequence[str],
        *,
        sort_leaves: bool = True,
    ) -> StandardMerkleTree:
        """Builds the tree over ``values`` (merkletree.ts ``prepare``)."""
        codec = leaf_codec(leaf_encoding)
        normalized = [codec.normalize(v) for v in values]
        leaf_hash = codec.leaf_hash
        hashes = [leaf_hash(v) for v in normalized]
        # A stable sort, as JS Array.prototype.sort: equal leaves keep their input order.
        order = sorted(range(len(hashes)), key=hashes.__getitem__) if sort_leaves else None
        sorted_hashes = [hashes[i] for i in order] if order is not None else hashes
        tree = make_merkle_tree(sorted_hashes)
        last = len(tree) - 1
        tree_indices = [0] * len(values)
        for leaf_index, value_index in enumerate(
            order if order is not None else range(len(values))
        ):
            tree_indices[value_index] = last - leaf_index
        return cls(tree, normalized, tree_indices, codec.leaf_encoding)

    @classmethod
    def load(cls, data: Mapping[str, Any] | str | bytes) -> StandardMerkleTree:
        """Loads and validates a ``standard-v1`` dump (a dict or its JSON text)."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise MerkleTreeError("merkle.invalid_dump", f"dump is not JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise MerkleTreeError("merkle.invalid_dump", "dump must be a JSON object")
        if data.get("format") != DUMP_FORMAT:
            raise MerkleTreeError("merkle.invalid_dump", f"Unknown format {data.get('format')!r}")
        if data.get("leafEncoding") is None:
            raise MerkleTreeError("merkle.invalid_dump", "Expected leaf encoding")
        codec = leaf_codec(data["leafEncoding"])
        raw_tree = data.get("tree")
        raw_values = data.get("values")
        if not isinstance(raw_tree, list) or not isinstance(raw_values, list):
            raise MerkleTreeError("merkle.invalid_dump", "dump needs 'tree' and 'values' lists")
        tree = [to_node(node, f"tree[{i}]") for i, node in enumerate(raw_tree)]
        values = []
        tree_indices = []
        for i, entry in enumerate(raw_values):
            if not isinstance(entry, Mapping) or "value" not in entry:
                raise MerkleTreeError("merkle.invalid_dump", f"values[{i}] has no 'value'")
            tree_index = entry.get("treeIndex")
            if isinstance(tree_index, bool) or not isinstance(tree_index, int):
                raise MerkleTreeError(
                    "merkle.invalid_dump", f"values[{i}].treeIndex is not an integer"
                )
            values.append(codec.normalize(entry["value"]))
            tree_indices.append(tree_index)
        loaded = cls(tree, values, tree_indices, codec.leaf_encoding)
        loaded.validate()
        return loaded

    # ------------------------------------------------------------------ accessors

    @property
    def root(self) -> str:
        return to_hex(self._tree[0])

    @property
    def root_bytes(self) -> bytes:
        return self._tree[0]

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        return self._codec.leaf_encoding

    @property
    def codec(self) -> LeafCodec:
        return self._codec

    @property
    def tree(self) -> list[str]:
        return [to_hex(node) for node in self._tree]

    @property
    def tree_bytes(self) -> Sequence[bytes]:
        return self._tree

    def __len__(self) -> int:
        return len(self._values)

    def at(self, value_index: int) -> tuple[Any, ...] | None:
        """The value at a value index (negative counts from the end, as JS ``at``)."""
        try:
            return self._values[value_index]
        except IndexError:
            return None

    def tree_index(self, value_index: int) -> int:
        self._check_index(value_index)
        return self._tree_indices[value_index]

    def entries(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        yield from enumerate(self._values)

    @property
    def values(self) -> list[tuple[Any, ...]]:
        return list(self._values)

    def render(self) -> str:
        return render_merkle_tree(self._tree)

    # ------------------------------------------------------------------ hashing & lookup

    def leaf_hash(self, leaf: Sequence[Any]) -> str:
        return to_hex(self._codec.leaf_hash(self._codec.normalize(leaf)))

    def _leaf_hash_of(self, leaf: int | Sequence[Any]) -> bytes:
        if isinstance(leaf, int):
            return self._codec.leaf_hash(self._values[self._value_index(leaf)])
        return self._codec.leaf_hash(self._codec.normalize(leaf))

    def _value_index(self, leaf: int | Sequence[Any]) -> int:
        """A value index, given one or given the value itself."""
        if isinstance(leaf, bool):
            raise MerkleTreeError("merkle.invalid_value", "a leaf is not a bool")
        if isinstance(leaf, int):
            self._check_index(leaf)
            return leaf
        return self.leaf_lookup(leaf)

    def leaf_lookup(self, leaf: Sequence[Any]) -> int:
        """The value index of a value (the last one when a value repeats, as OZ)."""
        if self._hash_lookup is None:
            self._hash_lookup = {
                self._tree[ti]: vi
                for vi, ti in enumerate(self._tree_indices)
                if 0 <= ti < len(self._tree)
            }
        found = self._hash_lookup.get(self._codec.leaf_hash(self._codec.normalize(leaf)))
        if found is None:
            raise MerkleTreeError("merkle.leaf_not_in_tree", "Leaf is not in tree")
        return found

    def _check_index(self, value_index: int) -> None:
        if not 0 <= value_index < len(self._values):
            raise MerkleTreeError("merkle.index_out_of_bounds", "Index out of bounds")

    def _validate_value_at(self, value_index: int) -> None:
        self._check_index(value_index)
        tree_index = self._tree_indices[value_index]
        if not (
            0 <= tree_index < len(self._tree)
            and self._tree[tree_index] == self._codec.leaf_hash(self._values[value_index])
        ):
            raise MerkleTreeError(
                "merkle.invalid_tree",
                f"Merkle tree does not contain the expected value (values[{value_index}])",
            )

    def validate(self) -> None:
        """OZ ``validate``: each value hashes to its node, and the tree is consistent."""
        for i in range(len(self._values)):
            self._validate_value_at(i)
        if not is_valid_merkle_tree(self._tree):
            raise MerkleTreeError("merkle.invalid_tree", "Merkle tree is invalid")

    # ------------------------------------------------------------------ proofs

    def get_proof(self, leaf: int | Sequence[Any]) -> list[str]:
        """The proof of a value, given by value index or by value."""
        value_index = self._value_index(leaf)
        self._validate_value_at(value_index)
        tree_index = self._tree_indices[value_index]
        proof = get_proof(self._tree, tree_index)
        if process_proof(self._tree[tree_index], proof) != self._tree[0]:
            raise MerkleTreeError("merkle.invalid_tree", "Unable to prove value")
        return [to_hex(p) for p in proof]

    def get_multi_proof(self, leaves: Sequence[int | Sequence[Any]]) -> MultiProof:
        """A multiproof of several values; its ``leaves`` are values in proof order."""
        value_indices = [self._value_index(leaf) for leaf in leaves]
        for value_index in value_indices:
            self._validate_value_at(value_index)
        tree_indices = [self._tree_indices[vi] for vi in value_indices]
        proof = get_multi_proof(self._tree, tree_indices)
        if process_multi_proof(proof.leaves, proof.proof, proof.proof_flags) != self._tree[0]:
            raise MerkleTreeError("merkle.invalid_tree", "Unable to prove values")
        # proof.leaves are the nodes at the tree indices in descending order.
        value_of = dict(zip(tree_indices, value_indices, strict=True))
        return MultiProof(
            leaves=tuple(self._values[value_of[ti]] for ti in sorted(tree_indices, reverse=True)),
            proof=proof.proof,
            proof_flags=proof.proof_flags,
        )

    def verify_proof(self, leaf: int | Sequence[Any], proof: Sequence[HexLike]) -> bool:
        """OZ instance ``verify``: does ``proof`` lead from ``leaf`` to this root?"""
        return process_proof(self._leaf_hash_of(leaf), proof) == self._tree[0]

    def verify_multi_proof_of(self, multiproof: MultiProof) -> bool:
        """OZ instance ``verifyMultiProof``."""
        hashes = [self._leaf_hash_of(leaf) for leaf in multiproof.leaves]
        root = process_multi_proof(hashes, multiproof.proof, multiproof.proof_flags)
        return root == self._tree[0]

    @staticmethod
    def verify(
        root: HexLike,
        leaf_encoding: Sequence[str],
        leaf: Sequence[Any],
        proof: Sequence[HexLike],
    ) -> bool:
        """OZ static ``verify``: True when ``proof`` leads from ``leaf`` to ``root``.

        Raises ``MerkleTreeError`` for malformed input (a node that is not 32 bytes, a
        value that does not fit its type), as OZ throws.
        """
        return process_proof(standard_leaf_hash(leaf_encoding, leaf), proof) == to_node(
            root, "root"
        )

    @staticmethod
    def verify_multi_proof(
        root: HexLike, leaf_encoding: Sequence[str], multiproof: MultiProof
    ) -> bool:
        """OZ static ``verifyMultiProof``."""
        hashes = [standard_leaf_hash(leaf_encoding, leaf) for leaf in multiproof.leaves]
        got = process_multi_proof(hashes, multiproof.proof, multiproof.proof_flags)
        return got == to_node(root, "root")

    # ------------------------------------------------------------------ dump

    def dump(self) -> dict[str, Any]:
        """The ``standard-v1`` dump, as OZ's ``dump()`` (JSON-ready)."""
        to_json = self._codec.to_json
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(self._codec.leaf_encoding),
            "tree": self.tree,
            "values": [
                {"value": to_json(v), "treeIndex": ti}
                for v, ti in zip(self._values, self._tree_indices, strict=True)
            ],
        }

    def dumps(self, *, indent: int | None = None) -> str:
        """The dump as JSON text (compact, like ``JSON.stringify(tree.dump())``)."""
        separators = (",", ":") if indent is None else None
        return json.dumps(self.dump(), indent=indent, separators=separators, ensure_ascii=False)

    def __repr__(self) -> str:
        return f"StandardMerkleTree(root={self.root}, leaves={len(self._values)})"
