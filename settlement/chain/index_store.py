"""The SQL index of the settlement contract's events, filled as blocks are mined.

Never rely on a full-range `get_logs` on the embedded chain (eth-tester scans back from the
head for each receipt, so a query from block 0 is quadratic): the gateway scans each block
once, shortly after it is mined, and records here how far it got (the cursor). Readers query
these tables.

Tables (on the shared `settlement.db.metadata`; Alembic migrations create them on a real
database, `create_index_tables` on a scratch one):
- chain_index_cursors: per (chain id, contract), the last block scanned and its hash.
- chain_events: every decoded event, JSON arguments (see ChainEvent).
- chain_batches: one row per BatchSettled: the header plus where it was mined.
- chain_batch_positions: the net positions of each batch, in submission order.
Hashes are 0x-prefixed lower-case hex, addresses EIP-55; amounts are integer minor units
(bounded by the contract's AMOUNT_MAX, so they fit BIGINT).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    delete,
    insert,
    select,
    update,
)

from settlement.chain.gateway import BatchHeader, ChainEvent, NetPosition
from settlement.db import metadata

HEX32 = 66  # "0x" + 64 hex digits
ADDRESS = 42

chain_index_cursors = Table(
    "chain_index_cursors",
    metadata,
    Column("chain_id", BigInteger, primary_key=True),
    Column("contract_address", String(ADDRESS), primary_key=True),
    Column("last_block_number", BigInteger, nullable=False),
    Column("last_block_hash", String(HEX32), nullable=False),
)

chain_events = Table(
    "chain_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chain_id", BigInteger, nullable=False),
    Column("contract_address", String(ADDRESS), nullable=False),
    Column("block_number", BigInteger, nullable=False, index=True),
    Column("block_hash", String(HEX32), nullable=False),
    Column("tx_hash", String(HEX32), nullable=False),
    Column("tx_index", Integer, nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("args", JSON, nullable=False),
    UniqueConstraint("chain_id", "contract_address", "block_number", "log_index"),
)

chain_batches = Table(
    "chain_batches",
    metadata,
    Column("chain_id", BigInteger, primary_key=True),
    Column("contract_address", String(ADDRESS), primary_key=True),
    Column("number", BigInteger, primary_key=True),
    Column("batch_hash", String(HEX32), nullable=False),
    Column("prev_batch_hash", String(HEX32), nullable=False),
    Column("transfers_root", String(HEX32), nullable=False),
    Column("balances_root", String(HEX32), nullable=False),
    Column("transfer_count", BigInteger, nullable=False),
    Column("positions_hash", String(HEX32), nullable=False),
    Column("block_number", BigInteger, nullable=False),
    Column("block_hash", String(HEX32), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("tx_hash", String(HEX32), nullable=False),
)

chain_batch_positions = Table(
    "chain_batch_positions",
    metadata,
    Column("chain_id", BigInteger, primary_key=True),
    Column("contract_address", String(ADDRESS), primary_key=True),
    Column("batch_number", BigInteger, primary_key=True),
    Column("position_index", Integer, primary_key=True),
    Column("participant", String(ADDRESS), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
)

INDEX_TABLES = (chain_index_cursors, chain_events, chain_batches, chain_batch_positions)
EVENTS_PAGE_MAX = 10_000


def create_index_tables(engine: Engine) -> None:
    """Creates only this module's tables (tests, and the gateway's private SQLite file)."""
    metadata.create_all(engine, tables=list(INDEX_TABLES))


@dataclass(frozen=True)
class IndexedBatch:
    header: BatchHeader
    tx_hash: str
    block_hash: str
    positions: tuple[NetPosition, ...]


def _hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


class EventIndex:
    """Reads and writes the index of one contract on one chain."""

    def __init__(self, engine: Engine, chain_id: int, contract_address: str) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.contract = contract_address

    def _scope(self, table: Table) -> Any:
        return and_(table.c.chain_id == self.chain_id, table.c.contract_address == self.contract)

    def cursor(self) -> tuple[int, str] | None:
        """(last block scanned, its hash), or None before the first scan."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    chain_index_cursors.c.last_block_number, chain_index_cursors.c.last_block_hash
                ).where(self._scope(chain_index_cursors))
            ).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def record(self, events: Sequence[ChainEvent], last_block: int, last_block_hash: str) -> None:
        """Stores the events of blocks up to `last_block` and moves the cursor, atomically."""
        with self.engine.begin() as conn:
            for event in events:
                conn.execute(
                    insert(chain_events).values(
                        chain_id=self.chain_id,
                        contract_address=self.contract,
                        block_number=event.block_number,
                        block_hash=event.block_hash,
                        tx_hash=event.tx_hash,
                        tx_index=event.tx_index,
                        log_index=event.log_index,
                        name=event.name,
                        args=dict(event.args),
                    )
                )
                if event.name == "BatchSettled":
                    self._record_batch(conn, event)
            values = {"last_block_number": last_block, "last_block_hash": last_block_hash}
            moved = conn.execute(
                update(chain_index_cursors).where(self._scope(chain_index_cursors)).values(values)
            )
            if moved.rowcount == 0:
                conn.execute(
                    insert(chain_index_cursors).values(
                        chain_id=self.chain_id, contract_address=self.contract, **values
                    )
                )

    def _record_batch(self, conn: Any, event: ChainEvent) -> None:
        a = event.args
        conn.execute(
            insert(chain_batches).values(
                chain_id=self.chain_id,
                contract_address=self.contract,
                number=a["number"],
                batch_hash=a["batch_hash"],
                prev_batch_hash=a["prev_batch_hash"],
                transfers_root=a["transfers_root"],
                balances_root=a["balances_root"],
                transfer_count=a["transfer_count"],
                positions_hash=a["positions_hash"],
                block_number=event.block_number,
                block_hash=event.block_hash,
                timestamp=a["timestamp"],
                tx_hash=event.tx_hash,
            )
        )
        rows = [
            {
                "chain_id": self.chain_id,
                "contract_address": self.contract,
                "batch_number": a["number"],
                "position_index": i,
                "participant": p["participant"],
                "currency": p["currency"],
                "amount_minor": p["amount_minor"],
            }
            for i, p in enumerate(a["positions"])
        ]
        if rows:
            conn.execute(insert(chain_batch_positions), rows)

    def forget_from(self, block_number: int, previous_block_hash: str) -> None:
        """Drops everything indexed from `block_number` on (after a reorganisation) and
        puts the cursor on the block before, whose hash is `previous_block_hash`."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(chain_events).where(
                    self._scope(chain_events), chain_events.c.block_number >= block_number
                )
            )
            gone = select(chain_batches.c.number).where(
                self._scope(chain_batches), chain_batches.c.block_number >= block_number
            )
            conn.execute(
                delete(chain_batch_positions).where(
                    self._scope(chain_batch_positions),
                    chain_batch_positions.c.batch_number.in_(gone),
                )
            )
            conn.execute(
                delete(chain_batches).where(
                    self._scope(chain_batches), chain_batches.c.block_number >= block_number
                )
            )
            conn.execute(
                update(chain_index_cursors)
                .where(self._scope(chain_index_cursors))
                .values(last_block_number=block_number - 1, last_block_hash=previous_block_hash)
            )

    def events_since(self, block_number: int, limit: int = 1000) -> list[ChainEvent]:
        """Indexed events from `block_number` on (inclusive), in chain order."""
        limit = max(1, min(limit, EVENTS_PAGE_MAX))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(chain_events)
                .where(self._scope(chain_events), chain_events.c.block_number >= block_number)
                .order_by(chain_events.c.block_number, chain_events.c.log_index)
                .limit(limit)
            ).all()
        return [
            ChainEvent(
                block_number=int(r.block_number),
                block_hash=r.block_hash,
                tx_hash=r.tx_hash,
                tx_index=int(r.tx_index),
                log_index=int(r.log_index),
                name=r.name,
                args=r.args,
            )
            for r in rows
        ]

    def batch(self, number: int) -> IndexedBatch | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(chain_batches).where(
                    self._scope(chain_batches), chain_batches.c.number == number
                )
            ).first()
            if row is None:
                return None
            positions = conn.execute(
                select(chain_batch_positions)
                .where(
                    self._scope(chain_batch_positions),
                    chain_batch_positions.c.batch_number == number,
                )
                .order_by(chain_batch_positions.c.position_index)
            ).all()
        header = BatchHeader(
            number=int(row.number),
            transfers_root=_hex_bytes(row.transfers_root),
            balances_root=_hex_bytes(row.balances_root),
            prev_batch_hash=_hex_bytes(row.prev_batch_hash),
            batch_hash=_hex_bytes(row.batch_hash),
            transfer_count=int(row.transfer_count),
            positions_hash=_hex_bytes(row.positions_hash),
            block_number=int(row.block_number),
            timestamp=int(row.timestamp),
        )
        return IndexedBatch(
            header=header,
            tx_hash=row.tx_hash,
            block_hash=row.block_hash,
            positions=tuple(
                NetPosition(p.participant, p.currency, int(p.amount_minor)) for p in positions
            ),
        )
