"""The committed build artifact of the settlement contract (contracts/artifacts/).

`node contracts/build.js` writes it; running Corridor only reads it, so no Node is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_utils import keccak

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR_DEFAULT = REPO_ROOT / "contracts" / "artifacts"
CONTRACT_NAME = "SettlementLedger"


@dataclass(frozen=True)
class ContractArtifact:
    name: str
    abi: Sequence[Mapping[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str
    settings: Mapping[str, Any]

    @property
    def deployed_bytecode_hash(self) -> bytes:
        """keccak256 of the runtime code: what `eth_getCode` at the deployment must hash to."""
        return keccak(self.deployed_bytecode)


def artifacts_dir() -> Path:
    """contracts/artifacts of this checkout, or $CORRIDOR_CONTRACT_ARTIFACTS."""
    configured = os.environ.get("CORRIDOR_CONTRACT_ARTIFACTS")
    return Path(configured) if configured else ARTIFACTS_DIR_DEFAULT


@lru_cache(maxsize=4)
def _load(path: Path) -> ContractArtifact:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"contract artifact {path} is missing: it is committed with the sources; "
            "rebuild with `cd contracts && npm ci && node build.js`"
        ) from error
    return ContractArtifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(raw["deployedBytecode"].removeprefix("0x")),
        compiler_version=raw["compiler"]["version"],
        settings=raw["settings"],
    )


def load_artifact(name: str = CONTRACT_NAME) -> ContractArtifact:
    return _load(artifacts_dir() / f"{name}.json")
