"""Writes fixtures/contract_batch_hash.json: batch and positions hashes computed by the
compiled SettlementLedger contract itself (contracts/artifacts), run on eth-tester.

    .venv/bin/python -m tests.audit.make_contract_vectors > \
        tests/audit/fixtures/contract_batch_hash.json

Run again when the contract's hashing changes; test_commitment.py then tells whether
settlement.audit.commitment still agrees.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main() -> None:
    from web3 import EthereumTesterProvider, Web3

    artifact = json.loads(
        (
            Path(__file__).resolve().parents[2] / "contracts/artifacts/SettlementLedger.json"
        ).read_text("utf-8")
    )
    w3 = Web3(EthereumTesterProvider())
    admin, *others = w3.eth.accounts
    deploy = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(
        deploy.constructor(admin, admin, admin).transact({"from": admin})
    )
    ledger = w3.eth.contract(address=receipt.contractAddress, abi=artifact["abi"])
    a, b, c = sorted(others[:3], key=lambda x: int(x, 16))
    for participant in (a, b, c):
        ledger.functions.registerParticipant(participant).transact({"from": admin})
    for i, (who, cur) in enumerate([(a, b"USD"), (b, b"USD"), (c, b"PHP"), (a, b"PHP")]):
        ref = bytes([i + 1]) * 32
        ledger.functions.deposit(who, cur, 10**9, ref).transact({"from": admin})

    batches: list[dict[str, Any]] = []
    prev = b"\x00" * 32
    plans = [
        (3, [(a, "PHP", 5000), (c, "PHP", -5000), (a, "USD", -1200), (b, "USD", 1200)]),
        (1, [(b, "USD", -700), (c, "USD", 700)]),
        (2, []),
    ]
    for number, (count, positions) in enumerate(plans, start=1):
        transfers_root = bytes([0x10 + number]) * 32
        balances_root = bytes([0x20 + number]) * 32
        rows = [(who, cur.encode("ascii"), amount) for who, cur, amount in positions]
        tx = ledger.functions.settleBatch(
            number, transfers_root, balances_root, prev, count, rows
        ).transact({"from": admin})
        w3.eth.wait_for_transaction_receipt(tx)
        header = ledger.functions.batchHeader(number).call()
        batches.append(
            {
                "number": number,
                "transfersRoot": "0x" + transfers_root.hex(),
                "balancesRoot": "0x" + balances_root.hex(),
                "prevBatchHash": "0x" + prev.hex(),
                "transferCount": count,
                "positions": [[who, cur, str(amount)] for who, cur, amount in positions],
                "positionsHash": "0x" + header[7].hex(),
                "batchHash": "0x" + header[8].hex(),
            }
        )
        prev = header[8]
    json.dump(
        {
            "generator": "contracts/artifacts/SettlementLedger.json on eth-tester",
            "batches": batches,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
