"""Decodes the settlement contract's logs into `ChainEvent`s with JSON-safe arguments.

Decoding is done here with eth-abi from the artifact's ABI, so that logs read straight from
py-evm (embedded) and logs from `eth_getLogs` (rpc) go through the same code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address

from settlement.chain.gateway import ChainEvent
from settlement.chain.transport import RawLog

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake_case(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def _abi_type(param: Mapping[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def json_safe(param: Mapping[str, Any], value: Any) -> Any:
    """Addresses checksummed, bytes3 as the currency code, other bytes as 0x-hex, tuples as
    dicts with snake_case keys, arrays as lists, integers and booleans unchanged."""
    kind: str = param["type"]
    if kind.endswith("[]"):
        element = {**param, "type": kind[:-2]}
        return [json_safe(element, v) for v in value]
    if kind == "tuple":
        return {
            snake_case(c["name"]): json_safe(c, v)
            for c, v in zip(param["components"], value, strict=True)
        }
    if kind == "address":
        return to_checksum_address(value)
    if kind == "bytes3":
        return bytes(value).decode("ascii", errors="replace")
    if kind.startswith("bytes"):
        return "0x" + bytes(value).hex()
    return value


class EventDecoder:
    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self._events: dict[bytes, Mapping[str, Any]] = {
            event_abi_to_log_topic(item): item  # type: ignore[arg-type]
            for item in abi
            if item.get("type") == "event" and not item.get("anonymous")
        }

    def topic_of(self, name: str) -> bytes:
        for topic, item in self._events.items():
            if item["name"] == name:
                return topic
        raise KeyError(name)

    def decode(self, raw: RawLog) -> ChainEvent | None:
        """The event, or None for a log this ABI does not know."""
        if not raw.topics:
            return None
        item = self._events.get(raw.topics[0])
        if item is None:
            return None
        inputs = item["inputs"]
        indexed = [i for i in inputs if i["indexed"]]
        plain = [i for i in inputs if not i["indexed"]]
        values: dict[str, Any] = {}
        for param, topic in zip(indexed, raw.topics[1:], strict=True):
            (value,) = abi_decode([_abi_type(param)], topic)
            values[param["name"]] = value
        decoded = abi_decode([_abi_type(p) for p in plain], raw.data)
        for param, value in zip(plain, decoded, strict=True):
            values[param["name"]] = value
        args = {snake_case(p["name"]): json_safe(p, values[p["name"]]) for p in inputs}
        return ChainEvent(
            block_number=raw.block_number,
            block_hash=raw.block_hash,
            tx_hash=raw.tx_hash,
            tx_index=raw.tx_index,
            log_index=raw.log_index,
            name=item["name"],
            args=args,
        )
