"""The development chain's genesis and defaults, in one readable place.

Used by the embedded chain (py-evm in-process, settlement/chain/embedded.py) and by the
development JSON-RPC node (anvil, node_config/anvil.py), so that both are the same chain as
far as Corridor can tell: same chain id, same block gas limit, same starting base fee.

Plain data only: nothing here imports py-evm or web3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# 1337 is the customary chain id of private development chains (geth --dev, Ganache): it is
# not the id of any public network, so a transaction signed for it cannot be replayed on one.
# A permissioned production network (Besu/QBFT) picks its own id in its genesis.
CHAIN_ID_DEV = 1337

# Block gas limit, kept constant from block to block. 30M is Ethereum mainnet's long-standing
# value; `settleBatch` with SettlementLedger.POSITIONS_MAX positions fits in one block.
GAS_LIMIT_BLOCK = 30_000_000

# EIP-1559 base fee of the genesis block (1 gwei, py-evm's and anvil's default). On a dev
# chain the fee only needs to be payable, not meaningful.
BASE_FEE_GENESIS_WEI = 1_000_000_000

# Tip offered per gas unit; max fee per gas = 2 * base fee + tip.
PRIORITY_FEE_WEI = 1_000_000_000

# The embedded chain skips gas estimation (py-evm estimates by binary search, about twenty
# executions per estimate) and sends every transaction with this limit; only gas used is
# charged. One transaction per block, so it may be the whole block.
TX_GAS_LIMIT_EMBEDDED = GAS_LIMIT_BLOCK

# What the operator (deployer, admin, settler, funder) holds at genesis: 1,000,000 ether.
OPERATOR_BALANCE_WEI = 1_000_000 * 10**18

# The keystore passphrase used when none is configured (CORRIDOR_CHAIN_KEYSTORE_PASSPHRASE).
# Development only: anyone reading this file knows it.
KEYSTORE_PASSPHRASE_DEV = "corridor-dev-insecure"

# The anvil release pinned in contracts/package.json. Corridor does not use anvil's built-in
# dev accounts: its operator key lives in the keystore and is funded with `anvil_setBalance`.
ANVIL_VERSION = "1.7.1"


@dataclass(frozen=True)
class GenesisSpec:
    """What the first block of a development chain holds."""

    chain_id: int = CHAIN_ID_DEV
    gas_limit: int = GAS_LIMIT_BLOCK
    base_fee_wei: int = BASE_FEE_GENESIS_WEI
    # Checksummed or lower-case hex address -> balance in wei.
    alloc_wei: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.chain_id > 0, "chain id must be positive"
        assert self.gas_limit >= 5_000_000, "gas limit too small to deploy the ledger"
        assert all(v >= 0 for v in self.alloc_wei.values()), "negative genesis balance"


def dev_genesis(
    operator_address: str, *, extra_alloc_wei: Mapping[str, int] | None = None
) -> GenesisSpec:
    """The embedded chain's genesis: the operator funded, nothing else."""
    alloc = {operator_address: OPERATOR_BALANCE_WEI}
    if extra_alloc_wei:
        alloc.update(extra_alloc_wei)
    return GenesisSpec(alloc_wei=alloc)
