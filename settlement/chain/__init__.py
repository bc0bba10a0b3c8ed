"""The chain gateway: everything Corridor does on chain, behind one interface.

    from settlement.chain import ChainConfig, open_gateway

    with open_gateway(ChainConfig.from_env()) as chain:
        chain.ensure_deployed()
        chain.register_participant(address)
        chain.fund(address, "USD", 1_000_00)
        chain.settle_batch(BatchSubmission(...))
        chain.batch(1)

The transport is configuration: "embedded" (py-evm in-process, persisted under
data_dir/chain) or "rpc" (JSON-RPC URLs with fail-over). See gateway.py for the data types
and the protocol, errors.py for the errors.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, create_engine, event

from node_config.chain import CHAIN_ID_DEV, TX_GAS_LIMIT_EMBEDDED, dev_genesis
from settlement.chain.errors import (
    BatchConflict,
    ChainConfigError,
    ChainError,
    ChainRevertError,
    ChainStateError,
    ChainTimeout,
    ChainUnavailable,
    ReadOnlyChain,
    TransactionRejected,
)
from settlement.chain.gateway import (
    AMOUNT_MAX,
    POSITIONS_MAX,
    ZERO_HASH,
    BatchHeader,
    BatchSubmission,
    ChainConfig,
    ChainEvent,
    ChainGateway,
    Deployment,
    NetPosition,
    SettlementReceipt,
    TxReceipt,
    batch_hash,
    positions_hash,
)
from settlement.chain.index_store import create_index_tables
from settlement.chain.keys import keystore_address, keystore_path, load_or_create_operator_key
from settlement.chain.web3_gateway import Web3ChainGateway

log = logging.getLogger(__name__)

__all__ = [
    "AMOUNT_MAX",
    "POSITIONS_MAX",
    "ZERO_HASH",
    "BatchConflict",
    "BatchHeader",
    "BatchSubmission",
    "ChainConfig",
    "ChainConfigError",
    "ChainError",
    "ChainEvent",
    "ChainGateway",
    "ChainRevertError",
    "ChainStateError",
    "ChainTimeout",
    "ChainUnavailable",
    "Deployment",
    "NetPosition",
    "ReadOnlyChain",
    "SettlementReceipt",
    "TransactionRejected",
    "TxReceipt",
    "Web3ChainGateway",
    "batch_hash",
    "open_gateway",
    "positions_hash",
]

EVENTS_DB_FILE = "events.sqlite3"


def _private_index_engine(config: ChainConfig) -> Engine:
    """The default event index: a SQLite file beside the chain (WAL, like the chain)."""
    path = config.data_dir / "chain" / EVENTS_DB_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path.resolve()}")

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    create_index_tables(engine)
    return engine


def open_gateway(config: ChainConfig, index_engine: Engine | None = None) -> Web3ChainGateway:
    """Opens the chain the configuration names. Does not deploy: call ensure_deployed().

    index_engine: where events are indexed (tables of settlement.chain.index_store, created
    by the migrations); None: a private SQLite file in data_dir/chain (created here).
    The operator key is loaded from data_dir/keys/operator.json, created on first use.
    """
    from settlement.chain.transport import Transport

    chain_dir = config.data_dir / "chain"
    path = keystore_path(config.data_dir)
    account = None
    if config.read_only:
        operator = keystore_address(path)
    else:
        account, created = load_or_create_operator_key(
            path, config.keystore_passphrase, scrypt_n=config.keystore_scrypt_n
        )
        operator = account.address
        if created and config.transport == "rpc":
            log.warning(
                "created a new operator key %s: fund it on the chain before sending", operator
            )
    transport: Transport
    if config.transport == "embedded":
        from settlement.chain.embedded import EmbeddedTransport

        if operator is None and not (chain_dir / "chain.sqlite3").exists():
            raise ChainStateError(f"no embedded chain in {chain_dir}")
        chain_id = config.expected_chain_id or CHAIN_ID_DEV
        genesis = dev_genesis(operator or "0x" + "00" * 20)
        if genesis.chain_id != chain_id:
            raise ChainConfigError(f"the embedded chain's id is {genesis.chain_id}, not {chain_id}")
        transport = EmbeddedTransport(
            chain_dir, genesis, fixed_gas_limit=TX_GAS_LIMIT_EMBEDDED, read_only=config.read_only
        )
    else:
        from settlement.chain.rpc import RpcTransport

        transport = RpcTransport(
            config.rpc_urls,
            expected_chain_id=config.expected_chain_id,
            confirmations=config.confirmations,
            timeout_s=config.rpc_timeout_s,
            poll_interval_s=config.poll_interval_s,
            read_only=config.read_only,
        )
    owns_engine = False
    try:
        # A read-only gateway (an auditor's) writes nothing, not even an index: it reads
        # events straight from the chain.
        if index_engine is None and config.index_events and not config.read_only:
            index_engine = _private_index_engine(config)
            owns_engine = True
        return Web3ChainGateway(
            config, transport, account, operator, index_engine, owns_engine=owns_engine
        )
    except BaseException:
        transport.close()
        raise
