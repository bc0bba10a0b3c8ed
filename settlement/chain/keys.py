"""The operator's signing key: an encrypted eth-account keystore in the data directory.

The key is created on first use (a random key, os.urandom through eth-account), written as
a version-3 keystore (scrypt), readable only by its owner. Nothing here logs or prints a key;
only the address, which is public, is ever shown.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from settlement.chain.errors import ChainConfigError

log = logging.getLogger(__name__)

KEYSTORE_RELATIVE = Path("keys") / "operator.json"


def keystore_path(data_dir: Path) -> Path:
    return data_dir / KEYSTORE_RELATIVE


def keystore_address(path: Path) -> str | None:
    """The address a keystore holds, read without decrypting (None when absent)."""
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return to_checksum_address(raw["address"])


def load_operator_key(path: Path, passphrase: str) -> LocalAccount:
    try:
        keystore = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ChainConfigError(f"no operator keystore at {path}") from error
    try:
        private_key = Account.decrypt(keystore, passphrase)
    except ValueError as error:  # eth-keyfile: "MAC mismatch"
        raise ChainConfigError(
            f"cannot decrypt the operator keystore {path}: wrong passphrase "
            "(CORRIDOR_CHAIN_KEYSTORE_PASSPHRASE)?"
        ) from error
    account: LocalAccount = Account.from_key(private_key)
    return account


def create_operator_key(path: Path, passphrase: str, *, scrypt_n: int = 2**18) -> LocalAccount:
    """Creates a new random key and writes its keystore atomically (mode 0600)."""
    if path.exists():
        raise ChainConfigError(f"an operator keystore already exists at {path}")
    account: LocalAccount = Account.create()
    keystore = Account.encrypt(account.key, passphrase, kdf="scrypt", iterations=scrypt_n)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keystore, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    log.info("created operator key %s in %s", account.address, path)
    return account


def load_or_create_operator_key(
    path: Path, passphrase: str, *, scrypt_n: int = 2**18
) -> tuple[LocalAccount, bool]:
    """The operator key, created on first use; returns (account, created)."""
    if path.exists():
        return load_operator_key(path, passphrase), False
    return create_operator_key(path, passphrase, scrypt_n=scrypt_n), True
