"""A process that uses the gateway until it is killed (tests/chain/test_restart.py).

python -m tests.chain.chain_worker settle DATA_DIR [RPC_URL]
    deploys, registers two participants, settles batch 1, prints one JSON line, waits
python -m tests.chain.chain_worker stream DATA_DIR [RPC_URL]
    deploys, then sends deposits forever, printing one JSON line per mined receipt
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from eth_account import Account

from settlement.chain import BatchSubmission, ChainConfig, NetPosition, open_gateway

SCRYPT_N_TEST = 2**10
WAIT_MAX_S = 120  # never outlive a test run that forgot to kill us


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    mode, data_dir = sys.argv[1], Path(sys.argv[2])
    url = sys.argv[3] if len(sys.argv) > 3 else None
    config = ChainConfig(
        transport="rpc" if url else "embedded",
        data_dir=data_dir,
        rpc_urls=(url,) if url else (),
        keystore_scrypt_n=SCRYPT_N_TEST,
        poll_interval_s=0.02,
    )
    gateway = open_gateway(config)
    say(event="opened", operator=gateway.operator_address)
    if url:  # wait for the parent to fund the key it just saw
        sys.stdin.readline()
    deployment = gateway.ensure_deployed()
    a, b = Account.create().address, Account.create().address
    for p in (a, b):
        gateway.register_participant(p)
        gateway.fund(p, "USD", 1_000)
    if mode == "settle":
        submission = BatchSubmission(
            number=1,
            transfers_root=b"\x01" * 32,
            balances_root=b"\x02" * 32,
            prev_batch_hash=gateway.last_batch_hash(),
            transfer_count=2,
            positions=(NetPosition(a, "USD", -10), NetPosition(b, "USD", 10)),
        )
        receipt = gateway.settle_batch(submission)
        say(
            event="settled",
            contract=deployment.address,
            a=a,
            b=b,
            batch_hash="0x" + submission.batch_hash.hex(),
            tx_hash=receipt.tx_hash,
            block=receipt.block_number,
        )
        time.sleep(WAIT_MAX_S)
    else:
        say(event="streaming", contract=deployment.address, a=a)
        deadline = time.monotonic() + WAIT_MAX_S
        while time.monotonic() < deadline:
            mined = gateway.fund(a, "USD", 1)
            say(event="mined", block=mined.block_number, tx_hash=mined.tx_hash)


if __name__ == "__main__":
    main()
