"""The chain gateway's errors: expected failures are typed values with stable codes.

A contract revert surfaces as one `ChainRevertError` whichever backend raised it: eth-tester
raises `eth_tester.exceptions.TransactionFailed` carrying the raw revert bytes (sometimes as
their `repr`), a JSON-RPC node gives web3's `ContractCustomError` / `ContractLogicError` with
the data as hex. `revert_data_from` finds the bytes in either; `RevertDecoder` turns them into
the contract's custom error name and arguments.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3.exceptions import ContractLogicError

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


class ChainError(Exception):
    """Base class of every error the gateway raises on purpose. `code` is stable."""

    code = "chain_error"


class ChainConfigError(ChainError):
    """The configuration cannot work (unknown transport, no RPC URL, wrong chain id...)."""

    code = "chain_config"


class ChainUnavailable(ChainError):
    """No configured node answered (every RPC URL failed), or the embedded chain is locked."""

    code = "chain_unavailable"


class ChainTimeout(ChainError):
    """A transaction was sent but not mined (or not confirmed) within the timeout.

    It may still be mined later: `tx_hash` identifies it.
    """

    code = "chain_timeout"

    def __init__(self, message: str, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class TransactionRejected(ChainError):
    """The node (or the embedded chain) refused a signed transaction before executing it:
    insufficient funds for gas, a stale nonce, a gas limit above the block's..."""

    code = "transaction_rejected"

    @property
    def stale_nonce(self) -> bool:
        return "nonce too low" in str(self).lower()


class ChainStateError(ChainError):
    """The chain does not hold what Corridor recorded (e.g. the contract is missing)."""

    code = "chain_state"


class ReadOnlyChain(ChainError):
    """A transaction was attempted through a gateway opened read-only."""

    code = "chain_read_only"


class BatchConflict(ChainError):
    """A batch with this number is already settled with a different hash."""

    code = "batch_conflict"

    def __init__(self, number: int, onchain_hash: bytes, submitted_hash: bytes) -> None:
        super().__init__(
            f"batch {number} is settled on chain with hash 0x{onchain_hash.hex()}, "
            f"not the submitted 0x{submitted_hash.hex()}"
        )
        self.number = number
        self.onchain_hash = onchain_hash
        self.submitted_hash = submitted_hash


class ChainRevertError(ChainError):
    """The contract reverted. `error_name` is the custom error's name (e.g.
    "SettlementLedgerWrongBatchNumber", "AccessControlUnauthorizedAccount", "EnforcedPause"),
    "Error" for a reason string, "Panic" for a Solidity panic, "unknown" when undecodable.
    `args` maps the error's parameter names to decoded values (addresses checksummed,
    fixed bytes as bytes, integers as int).
    """

    code = "chain_revert"

    def __init__(
        self,
        error_name: str,
        args: Mapping[str, Any],
        data: bytes,
        tx_hash: str | None = None,
    ) -> None:
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in args.items())
        super().__init__(f"contract reverted: {error_name}({rendered})")
        self.error_name = error_name
        self.args_by_name = dict(args)
        self.data = data
        self.tx_hash = tx_hash

    @property
    def selector(self) -> bytes:
        return self.data[:4]


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


class RevertDecoder:
    """Decodes revert data with the custom errors of a contract ABI."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_abi_type(i) for i in item["inputs"]]
            names = [i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"])]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            self._errors[selector] = (item["name"], names, types)
        self._errors[ERROR_STRING_SELECTOR] = ("Error", ["message"], ["string"])
        self._errors[PANIC_SELECTOR] = ("Panic", ["code"], ["uint256"])

    def decode(self, data: bytes, tx_hash: str | None = None) -> ChainRevertError:
        known = self._errors.get(data[:4])
        if known is None:
            return ChainRevertError("unknown", {}, data, tx_hash)
        name, names, types = known
        try:
            values = abi_decode(types, data[4:])
        except Exception:  # malformed revert data is still a revert, just undecoded
            return ChainRevertError(name, {}, data, tx_hash)
        args = {
            n: (to_checksum_address(v) if t == "address" else v)
            for n, t, v in zip(names, types, values, strict=True)
        }
        return ChainRevertError(name, args, data, tx_hash)

    def names(self) -> set[str]:
        return {name for name, _, _ in self._errors.values()}


def _abi_type(param: Mapping[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def revert_data_from(error: BaseException) -> bytes | None:
    """The raw revert bytes carried by a web3 or eth-tester exception; None if `error` is
    not a revert. Returns b"" for a revert without data (a bare `revert()`, out of gas).
    """
    if isinstance(error, ContractLogicError):
        # web3 keeps the node's `data`: a hex string, or a dict holding one.
        data: Any = error.data
        if isinstance(data, Mapping):
            data = data.get("data")
        if isinstance(data, str):
            return _bytes_in(data.removeprefix("Reverted ")) or b""
        return b""
    # eth-tester is imported only by the embedded transport (importing it costs seconds of
    # start-up); if it is not loaded, no error can be its TransactionFailed.
    tester = sys.modules.get("eth_tester.exceptions")
    if tester is not None and isinstance(error, tester.TransactionFailed):
        # eth-tester: TransactionFailed(bytes), TransactionFailed(Revert(bytes)), or the
        # bytes' repr in a message.
        for arg in error.args:
            found = _bytes_in(arg)
            if found is not None:
                return found
        return b""
    return None


def _bytes_in(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, BaseException):
        for arg in value.args:
            found = _bytes_in(arg)
            if found is not None:
                return found
        return None
    if isinstance(value, str):
        text = value.removeprefix("execution reverted: ").strip()
        if text.startswith(("b'", 'b"')):
            try:
                literal = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return None
            return bytes(literal) if isinstance(literal, bytes) else None
        if text.startswith("0x"):
            try:
                return bytes.fromhex(text[2:])
            except ValueError:
                return None
    return None
