"""A permissioned Hyperledger Besu QBFT network for Corridor: generate, inspect, vote.

- ``extradata``: encode/decode the QBFT genesis extraData (the validator set), with ``rlp``.
- ``generator``: ``NetworkSpec`` -> ``plan_network`` -> ``write_network``: keys, genesis,
  per-node config.toml, static nodes, permissions_config.toml, start scripts, corridor.env.
- ``inspect``: ``inspect_genesis`` validates a genesis; ``check_network`` checks a folder.
- ``votes``: the validator add/remove vote flow over Besu's QBFT JSON-RPC API.

Domain code only: no typer, no api/settlement imports (api/cli_network.py is the CLI).
"""

from node_config.network.errors import NetworkConfigError
from node_config.network.extradata import (
    ExtraDataError,
    QbftExtraData,
    decode_extra_data,
    encode_extra_data,
    encode_extra_data_hex,
)
from node_config.network.generator import (
    NetworkSpec,
    PartnerSpec,
    generate_network,
    parse_partner,
    plan_network,
    write_network,
)
from node_config.network.inspect import GenesisReport, check_network, inspect_genesis

__all__ = [
    "ExtraDataError",
    "GenesisReport",
    "NetworkConfigError",
    "NetworkSpec",
    "PartnerSpec",
    "QbftExtraData",
    "check_network",
    "decode_extra_data",
    "encode_extra_data",
    "encode_extra_data_hex",
    "generate_network",
    "inspect_genesis",
    "parse_partner",
    "plan_network",
    "write_network",
]
