"""Text of the files a generated network holds, as Python string templates.

TOML values are rendered with ``toml_value`` (TOML basic strings share JSON's escapes for
the characters we emit), so a path or host with a quote in it cannot break the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from string import Template


def toml_value(value: str | int | bool | Sequence[str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)
    return "[" + ", ".join(json.dumps(v, ensure_ascii=True) for v in value) + "]"


def toml_list_multiline(values: Sequence[str]) -> str:
    if not values:
        return "[]"
    body = ",\n".join("  " + json.dumps(v, ensure_ascii=True) for v in values)
    return "[\n" + body + "\n]"


CONFIG_TOML = Template(
    """\
# Besu node "$name" ($role, run by $owner) of Corridor's QBFT network, chain id $chain_id.
# Written by `corridor network init`. Paths are relative to this folder: start.sh runs
# Besu from here, so the folder can be copied as it is to the machine that runs the node.

identity=$identity
data-path="data"
genesis-file="genesis.json"
node-private-key-file="key"
logging="INFO"
sync-mode="FULL"
# Free gas: every node must accept a zero gas price, or it silently drops such transactions.
min-gas-price=0
# Keep the block gas limit at the genesis value instead of drifting towards a default.
target-gas-limit=$gas_limit
# Revert reasons in receipts and eth_call errors: Corridor decodes the contract's custom errors.
revert-reason-enabled=true

# Peer-to-peer
p2p-enabled=true
p2p-host=$p2p_host
${p2p_interface_line}\
p2p-port=$p2p_port
discovery-enabled=true
# Static nodes are re-dialled when a connection drops; bootnodes are only dialled at start.
static-nodes-file="static-nodes.json"
bootnodes=$bootnodes

# JSON-RPC over HTTP, limited to what Corridor (and, on validators, the QBFT vote flow) needs.
rpc-http-enabled=true
rpc-http-host=$rpc_host
rpc-http-port=$rpc_port
rpc-http-api=$rpc_apis
# Host headers accepted (DNS-rebinding protection); add the names clients use to reach it.
host-allowlist=$host_allowlist

# Local permissioning: only allowlisted nodes may connect, only allowlisted accounts may send.
permissions-nodes-config-file-enabled=true
permissions-nodes-config-file="permissions_config.toml"
permissions-accounts-config-file-enabled=true
permissions-accounts-config-file="permissions_config.toml"
"""
)

PERMISSIONS_TOML = Template(
    """\
# Local permissioning for Corridor's QBFT network, chain id $chain_id (the same file on
# every node). Written by `corridor network init`; edit it on every node alike, then call
# perm_reloadPermissionsFromFile (PERM API) or restart the node.

# Accounts that may send transactions: $account_roles.
accounts-allowlist=$accounts

# Every node of the network (validators and member nodes), bootnodes included.
nodes-allowlist=$nodes
"""
)

START_SH = Template(
    """\
#!/bin/sh
# Starts Besu node "$name" ($role) of Corridor's QBFT network, chain id $chain_id.
# Needs Hyperledger Besu on PATH, or BESU=/path/to/besu/bin/besu. Extra arguments are
# passed on to Besu (they override config.toml).
set -eu
cd "$$(dirname "$$0")"
BESU="$${BESU:-besu}"
if ! command -v "$$BESU" >/dev/null 2>&1; then
  echo "start.sh: Besu not found; install it or set BESU=/path/to/besu/bin/besu" >&2
  exit 127
fi
chmod 600 key
mkdir -p data
exec "$$BESU" --config-file=config.toml "$$@"
"""
)

START_ALL_SH = Template(
    """\
#!/bin/sh
# Starts every node of this network on this machine (a rehearsal before the nodes move to
# their own machines). Logs go to nodes/<name>/besu.log; stop them with stop-all.sh.
set -eu
cd "$$(dirname "$$0")"
for node in $names; do
  nohup "nodes/$$node/start.sh" >"nodes/$$node/besu.log" 2>&1 &
  echo $$! >"nodes/$$node/besu.pid"
  echo "started $$node (pid $$!, log nodes/$$node/besu.log)"
done
"""
)

STOP_ALL_SH = Template(
    """\
#!/bin/sh
# Stops the nodes that start-all.sh started on this machine.
set -u
cd "$$(dirname "$$0")"
for node in $names; do
  if [ -f "nodes/$$node/besu.pid" ]; then
    kill "$$(cat "nodes/$$node/besu.pid")" 2>/dev/null && echo "stopped $$node"
    rm -f "nodes/$$node/besu.pid"
  fi
done
"""
)

SETTINGS_ENV = Template(
    """\
# Corridor settings for the QBFT network, chain id $chain_id (written by
# `corridor network init`). Load them into the environment of every Corridor process,
# e.g. `set -a; . ./corridor.env; set +a`. The RPC URLs are tried in order (failover).
# QBFT finality is immediate: a block, once added, is final, so one confirmation suffices.
CORRIDOR_CHAIN=rpc
CORRIDOR_CHAIN_RPC_URLS=$rpc_urls
CORRIDOR_CHAIN_ID=$chain_id
CORRIDOR_CHAIN_CONFIRMATIONS=1
"""
)
