"""The deployment record: where the settlement contract lives, kept in the data directory.

data_dir/chain/deployment-<transport>.json. A deployment is first recorded as "pending"
with the address it will get (fixed by the deployer's address and nonce) and the
transaction's hash, then "deployed" once mined: a crash in between is resolved on the next
start by looking at the chain, never by deploying a second contract blindly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import rlp
from eth_utils import keccak, to_canonical_address, to_checksum_address

from settlement.chain.gateway import Deployment


@dataclass(frozen=True)
class DeploymentRecord:
    status: Literal["pending", "deployed"]
    chain_id: int
    genesis_hash: str
    address: str
    tx_hash: str
    deployer: str
    nonce: int
    deployed_bytecode_hash: str
    block_number: int = -1
    block_hash: str = ""

    def deployment(self) -> Deployment:
        assert self.status == "deployed", "a pending deployment has no block yet"
        return Deployment(
            chain_id=self.chain_id,
            address=self.address,
            block_number=self.block_number,
            block_hash=self.block_hash,
            tx_hash=self.tx_hash,
            deployer=self.deployer,
            deployed_bytecode_hash=self.deployed_bytecode_hash,
        )


def record_path(chain_dir: Path, transport: str) -> Path:
    return chain_dir / f"deployment-{transport}.json"


def contract_address_for(deployer: str, nonce: int) -> str:
    """The address a CREATE from `deployer` at `nonce` gets: keccak(rlp([sender, nonce]))."""
    return to_checksum_address(keccak(rlp.encode([to_canonical_address(deployer), nonce]))[12:])


def load_record(path: Path) -> DeploymentRecord | None:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return DeploymentRecord(**raw)


def save_record(path: Path, record: DeploymentRecord) -> None:
    """Atomic write: a crash leaves the old record or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as handle:
        json.dump(asdict(record), handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
