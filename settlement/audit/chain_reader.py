"""Settled batches as the chain records them, read through the chain gateway only.

The auditor's side of the trust model: nothing here reads Corridor's database or API. The
header (roots, previous hash, batch hash, transfer count, block) comes from the contract's
storage (``SettlementLedger.batchHeader``); the net positions, the settling transaction and
its block come from the ``BatchSettled`` event, the only place the contract keeps the
positions themselves (storage holds their hash, which the verifier re-checks:
``batch_hash.formula``).

    with open_gateway(ChainConfig(read_only=True, ...)) as gateway:
        gateway.ensure_deployed()
        chain = read_all_batches(gateway)             # [ChainBatch, ...], by number
        report = verify_export_dirs(dirs, chain)

Events are found from each header's block on, so a read costs a few event pages whatever
the length of the chain, on every transport (with or without an event index).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from settlement.audit.verify import ChainBatch
from settlement.chain.errors import ChainStateError
from settlement.chain.gateway import BatchHeader, ChainEvent, ChainGateway

__all__ = [
    "BATCHES_READ_MAX",
    "EVENTS_PAGE_MAX",
    "EVENTS_PAGE_MAX_CEILING",
    "ChainReadError",
    "chain_batch_of",
    "read_all_batches",
    "read_chain_batch",
    "read_chain_batches",
]

EVENTS_PAGE_MAX: Final = 1000
"""Events asked for per `events_since` call."""
EVENTS_PAGE_MAX_CEILING: Final = 64_000
"""A block with more contract events than this before its BatchSettled is not searched."""
BATCHES_READ_MAX: Final = 100_000
"""Batches `read_all_batches` reads in one call (a bound, not an expected size)."""

BATCH_SETTLED: Final = "BatchSettled"


class ChainReadError(ChainStateError):
    """The chain does not hold what a settled batch must leave behind (header and event)."""


def _hex(raw: bytes) -> str:
    return "0x" + raw.hex()


def chain_batch_of(header: BatchHeader, event: ChainEvent) -> ChainBatch:
    """A ``ChainBatch`` from the contract's header and its ``BatchSettled`` event."""
    args = event.args
    if args.get("number") != header.number:
        raise ChainReadError(
            f"BatchSettled event in tx {event.tx_hash} is for batch {args.get('number')}, "
            f"not {header.number}"
        )
    if str(args.get("batch_hash", "")).lower() != _hex(header.batch_hash):
        raise ChainReadError(
            f"batch {header.number}: the BatchSettled event names batch hash "
            f"{args.get('batch_hash')}, the contract stores {_hex(header.batch_hash)}"
        )
    if event.block_number != header.block_number:
        raise ChainReadError(
            f"batch {header.number}: BatchSettled was emitted in block {event.block_number}, "
            f"the contract records block {header.block_number}"
        )
    positions = [
        (str(p["participant"]), str(p["currency"]), int(p["amount_minor"]))
        for p in args.get("positions", [])
    ]
    return ChainBatch(
        number=header.number,
        transfers_root=_hex(header.transfers_root),
        balances_root=_hex(header.balances_root),
        prev_batch_hash=_hex(header.prev_batch_hash),
        batch_hash=_hex(header.batch_hash),
        transfer_count=header.transfer_count,
        positions=positions,
        tx_hash=event.tx_hash.lower(),
        block_number=event.block_number,
    )


def _find_settled_events(
    gateway: ChainGateway, headers: dict[int, BatchHeader]
) -> dict[int, ChainEvent]:
    """The BatchSettled event of each header's batch, searched from the header's block.

    One `events_since(block)` page usually covers many batches: it holds the events of that
    block and of the blocks after it (how many depends on the transport and index), so each
    call finds at least the batch it starts at and often the following ones too.
    """
    gateway.index_events()
    found: dict[int, ChainEvent] = {}
    for number in sorted(headers):
        if number in found:
            continue
        block = headers[number].block_number
        limit = EVENTS_PAGE_MAX
        while True:
            page = gateway.events_since(block, limit)
            for event in page:
                if event.name == BATCH_SETTLED:
                    settled = event.args.get("number")
                    if isinstance(settled, int) and settled in headers:
                        found.setdefault(settled, event)
            if number in found:
                break
            # A full page that ended inside the starting block may have cut it short.
            if len(page) >= limit and page[-1].block_number == block:
                if limit >= EVENTS_PAGE_MAX_CEILING:
                    raise ChainReadError(
                        f"block {block} holds more than {limit} contract events; "
                        f"batch {number}'s BatchSettled was not among them"
                    )
                limit *= 4
                continue
            raise ChainReadError(
                f"no BatchSettled event for batch {number} in block {block}, where the "
                "contract says it was settled"
            )
    return found


def read_chain_batches(gateway: ChainGateway, numbers: Iterable[int]) -> dict[int, ChainBatch]:
    """The on-chain batches with these numbers; numbers not settled on chain are absent."""
    headers: dict[int, BatchHeader] = {}
    for number in sorted(set(numbers)):
        header = gateway.batch(number)
        if header is not None:
            headers[number] = header
    if not headers:
        return {}
    events = _find_settled_events(gateway, headers)
    return {n: chain_batch_of(headers[n], events[n]) for n in sorted(headers)}


def read_chain_batch(gateway: ChainGateway, number: int) -> ChainBatch | None:
    """Batch ``number`` as the chain records it, or None if it is not settled."""
    return read_chain_batches(gateway, [number]).get(number)


def read_all_batches(gateway: ChainGateway) -> list[ChainBatch]:
    """Every settled batch, 1 to the contract's ``lastBatchNumber``, in order."""
    last = gateway.last_batch_number()
    if last > BATCHES_READ_MAX:
        raise ChainReadError(
            f"the chain holds {last} batches, more than {BATCHES_READ_MAX} read at once: "
            "read them in ranges with read_chain_batches"
        )
    batches = read_chain_batches(gateway, range(1, last + 1))
    missing = [n for n in range(1, last + 1) if n not in batches]
    if missing:
        raise ChainReadError(
            f"the contract's last batch is {last} but batch(es) {missing[:10]} have no header"
        )
    return [batches[n] for n in range(1, last + 1)]
