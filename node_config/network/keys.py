"""Node and account keys (secp256k1), in the formats Besu and Corridor read.

A Besu node key file holds the private key as 64 hex characters without ``0x``. The node's
public key (64 bytes, uncompressed without the 0x04 prefix) names it in its enode URL; the
keccak of that public key, last 20 bytes, is its address, which is the validator address in
QBFT. Private keys are written with mode 0600 and never printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_keys.datatypes import PrivateKey
from eth_keys.exceptions import ValidationError

from node_config.network.errors import NetworkConfigError

KEY_FILE_MODE = 0o600
Entropy = Callable[[int], bytes]


@dataclass(frozen=True, repr=False)
class NodeKey:
    """A secp256k1 key pair. ``repr`` leaves the private key out so logs never carry it."""

    private_key: bytes

    def __post_init__(self) -> None:
        assert len(self.private_key) == 32, "a secp256k1 private key is 32 bytes"

    def __repr__(self) -> str:
        return f"NodeKey(address={self.address})"

    @property
    def _key(self) -> PrivateKey:
        return PrivateKey(self.private_key)

    @property
    def public_key_hex(self) -> str:
        """128 hex characters, no ``0x``: the node id in an enode URL."""
        return self._key.public_key.to_bytes().hex()

    @property
    def address(self) -> str:
        """The checksummed address: keccak(public key)[12:]."""
        return str(self._key.public_key.to_checksum_address())

    def private_key_file_text(self) -> str:
        """Besu's key file format: hex without ``0x``."""
        return self.private_key.hex()


def generate_key(entropy: Entropy = os.urandom) -> NodeKey:
    """A fresh key from the OS's CSPRNG; retried in the (negligible) out-of-range case."""
    for _ in range(16):
        candidate = entropy(32)
        try:
            PrivateKey(candidate)
        except ValidationError:
            continue
        return NodeKey(candidate)
    raise AssertionError("entropy source keeps yielding invalid secp256k1 keys")


def parse_private_key(text: str) -> NodeKey:
    """A key from Besu's key file text (hex, ``0x`` optional)."""
    body = text.strip()
    if body.startswith(("0x", "0X")):
        body = body[2:]
    try:
        raw = bytes.fromhex(body)
        PrivateKey(raw)
    except (ValueError, ValidationError):
        raise NetworkConfigError("key_invalid", "not a secp256k1 private key in hex") from None
    return NodeKey(raw)


def read_key_file(path: Path) -> NodeKey:
    try:
        return parse_private_key(path.read_text(encoding="ascii"))
    except OSError as exc:
        raise NetworkConfigError("key_unreadable", f"cannot read key file {path}: {exc}") from None
    except NetworkConfigError:
        raise NetworkConfigError("key_invalid", f"{path} does not hold a private key") from None


def write_secret(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the start (no window where others may read it).

    Refuses to overwrite: a node key that is replaced changes the node's enode and address.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
    os.chmod(path, KEY_FILE_MODE)  # the umask may have narrowed it further; keep it exact
