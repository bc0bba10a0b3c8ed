"""The gateway's integration tests, run unchanged on the embedded chain and on anvil."""

from __future__ import annotations

import os

import pytest

from node_config.chain import CHAIN_ID_DEV
from settlement.chain import (
    ZERO_HASH,
    BatchConflict,
    BatchSubmission,
    ChainGateway,
    ChainRevertError,
    ChainStateError,
    NetPosition,
    ReadOnlyChain,
    Web3ChainGateway,
)
from settlement.chain.index_store import EventIndex
from settlement.chain.keys import keystore_path
from tests.chain.conftest import GatewayHandle, new_address, random_root


def _participants(gw: Web3ChainGateway, funds: int = 1_000_00) -> tuple[str, str]:
    a, b = new_address(), new_address()
    for p in (a, b):
        gw.register_participant(p)
        gw.fund(p, "USD", funds)
        gw.fund(p, "PHP", funds * 50)
    return a, b


def _submission(gw: Web3ChainGateway, *positions: NetPosition, count: int = 3) -> BatchSubmission:
    return BatchSubmission(
        number=gw.last_batch_number() + 1,
        transfers_root=random_root(),
        balances_root=random_root(),
        prev_batch_hash=gw.last_batch_hash(),
        transfer_count=count,
        positions=positions,
    )


def test_deploys_once_and_records_the_deployment(handle: GatewayHandle) -> None:
    gw = handle.open()
    assert isinstance(gw, ChainGateway)
    assert gw.chain_id() == CHAIN_ID_DEV
    assert gw.deployment() is None
    first = gw.ensure_deployed()
    assert gw.ensure_deployed() == first
    assert gw.deployment() == first
    assert first.block_number >= 1
    assert gw.has_role("admin", gw.operator_address)
    assert gw.has_role("settler", gw.operator_address)
    assert gw.has_role("funder", gw.operator_address)
    gw.close()
    again = handle.open()
    assert again.operator_address == gw.operator_address  # same keystore
    assert again.ensure_deployed() == first
    assert again.last_batch_number() == 0


def test_keystore_is_private_and_holds_no_plain_key(handle: GatewayHandle) -> None:
    gw = handle.open()
    path = keystore_path(handle.config.data_dir)
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert '"crypto"' in text
    assert gw.operator_address[2:].lower() in text.lower()


def test_participants_funding_and_balances(gateway: Web3ChainGateway) -> None:
    a = new_address()
    assert not gateway.is_participant(a)
    receipt = gateway.register_participant(a)
    assert receipt.gas_used > 0 and receipt.tx_hash.startswith("0x")
    assert gateway.is_participant(a)
    ref = os.urandom(32)
    gateway.fund(a, "USD", 250_00, reference=ref)
    assert gateway.reference_used(ref)
    gateway.withdraw(a, "USD", 50_00)
    assert gateway.settlement_balance(a, "USD") == 200_00
    assert gateway.settlement_balance(a, "EUR") == 0
    with pytest.raises(ChainRevertError) as caught:
        gateway.fund(a, "USD", 1, reference=ref)  # a retried deposit never credits twice
    assert caught.value.error_name == "SettlementLedgerInvalidReference"
    assert gateway.settlement_balance(a, "USD") == 200_00


def test_reverts_surface_as_one_typed_error(gateway: Web3ChainGateway) -> None:
    a = new_address()
    gateway.register_participant(a)
    gateway.fund(a, "USD", 100)
    with pytest.raises(ChainRevertError) as caught:
        gateway.withdraw(a, "USD", 101)
    error = caught.value
    assert error.error_name == "SettlementLedgerInsufficientBalance"
    assert error.args_by_name == {
        "participant": a,
        "currency": b"USD",
        "balanceMinor": 100,
        "amountMinor": 101,
    }
    with pytest.raises(ChainRevertError) as caught:
        gateway.register_participant(a)
    assert caught.value.error_name == "SettlementLedgerParticipantAlreadyRegistered"


def test_settles_batches_in_order_linked_by_hash(gateway: Web3ChainGateway) -> None:
    a, b = _participants(gateway)
    assert gateway.batch(1) is None
    first = _submission(
        gateway,
        NetPosition(a, "USD", -120_00),
        NetPosition(b, "USD", 120_00),
        NetPosition(a, "PHP", 6_000_00),
        NetPosition(b, "PHP", -6_000_00),
    )
    receipt = gateway.settle_batch(first)
    assert not receipt.already_settled
    assert receipt.batch_number == 1 and receipt.batch_hash == first.batch_hash
    header = gateway.batch(1)
    assert header is not None
    assert header.batch_hash == first.batch_hash
    assert header.positions_hash == first.positions_hash
    assert header.prev_batch_hash == ZERO_HASH
    assert header.transfers_root == first.transfers_root
    assert header.block_number == receipt.block_number
    assert gateway.settlement_balance(a, "USD") == 1_000_00 - 120_00
    assert gateway.settlement_balance(b, "PHP") == 50 * 1_000_00 - 6_000_00
    second = _submission(gateway, NetPosition(b, "USD", -1), NetPosition(a, "USD", 1))
    assert second.prev_batch_hash == first.batch_hash
    gateway.settle_batch(second)
    assert gateway.last_batch_number() == 2
    assert gateway.last_batch_hash() == second.batch_hash
    found = gateway.batch_receipt(1)
    assert found is not None and found.tx_hash == receipt.tx_hash
    assert found.gas_used == receipt.gas_used


def test_settling_the_same_batch_again_is_a_no_op(gateway: Web3ChainGateway) -> None:
    a, b = _participants(gateway)
    submission = _submission(gateway, NetPosition(a, "USD", -5), NetPosition(b, "USD", 5))
    original = gateway.settle_batch(submission)
    again = gateway.settle_batch(submission)
    assert again.already_settled
    assert again.tx_hash == original.tx_hash
    assert gateway.settlement_balance(b, "USD") == 1_000_00 + 5
    different = BatchSubmission(
        number=1,
        transfers_root=random_root(),
        balances_root=submission.balances_root,
        prev_batch_hash=ZERO_HASH,
        transfer_count=3,
    )
    with pytest.raises(BatchConflict):
        gateway.settle_batch(different)


def test_settlement_reverts_are_typed(gateway: Web3ChainGateway) -> None:
    a, b = _participants(gateway, funds=100)
    with pytest.raises(ChainRevertError) as caught:
        gateway.settle_batch(_submission(gateway, NetPosition(a, "USD", -1)))
    assert caught.value.error_name == "SettlementLedgerNonZeroSum"
    with pytest.raises(ChainRevertError) as caught:
        gateway.settle_batch(
            _submission(gateway, NetPosition(a, "USD", -101), NetPosition(b, "USD", 101))
        )
    assert caught.value.error_name == "SettlementLedgerNegativeBalance"
    wrong_prev = BatchSubmission(1, random_root(), random_root(), b"\x01" * 32, 0)
    with pytest.raises(ChainRevertError) as caught:
        gateway.settle_batch(wrong_prev)
    assert caught.value.error_name == "SettlementLedgerWrongPrevBatchHash"
    skipped = BatchSubmission(2, random_root(), random_root(), ZERO_HASH, 0)
    with pytest.raises(ChainRevertError) as caught:
        gateway.settle_batch(skipped)
    assert caught.value.error_name == "SettlementLedgerWrongBatchNumber"
    assert caught.value.args_by_name == {"expected": 1, "given": 2}
    assert gateway.last_batch_number() == 0


def test_pause_blocks_settlement(gateway: Web3ChainGateway) -> None:
    a, b = _participants(gateway)
    gateway.pause()
    assert gateway.paused()
    submission = _submission(gateway, NetPosition(a, "USD", -1), NetPosition(b, "USD", 1))
    with pytest.raises(ChainRevertError) as caught:
        gateway.settle_batch(submission)
    assert caught.value.error_name == "EnforcedPause"
    gateway.unpause()
    assert gateway.settle_batch(submission).batch_number == 1


def test_verify_transfer_through_the_gateway(gateway: Web3ChainGateway) -> None:
    from eth_utils import keccak

    leaves = [keccak(keccak(i.to_bytes(32, "big"))) for i in range(2)]
    root = keccak(min(leaves) + max(leaves))
    gateway.settle_batch(BatchSubmission(1, root, random_root(), ZERO_HASH, 2))
    assert gateway.verify_transfer(1, leaves[0], [leaves[1]])
    assert not gateway.verify_transfer(1, leaves[0], [leaves[0]])
    with pytest.raises(ChainRevertError) as caught:
        gateway.verify_transfer(2, leaves[0], [leaves[1]])
    assert caught.value.error_name == "SettlementLedgerUnknownBatch"


def test_events_are_indexed_as_they_are_mined(
    handle: GatewayHandle, gateway: Web3ChainGateway
) -> None:
    a, b = _participants(gateway)
    submission = _submission(gateway, NetPosition(a, "USD", -7), NetPosition(b, "USD", 7))
    receipt = gateway.settle_batch(submission)
    deployment = gateway.deployment()
    assert deployment is not None
    index = EventIndex(handle.engine, deployment.chain_id, deployment.address)
    cursor = index.cursor()
    assert cursor is not None and cursor[0] == receipt.block_number  # no query needed
    indexed = index.batch(1)
    assert indexed is not None
    assert indexed.tx_hash == receipt.tx_hash
    assert indexed.header.batch_hash == submission.batch_hash
    assert indexed.positions == submission.positions
    events = gateway.events_since(deployment.block_number)
    names = [e.name for e in events]
    assert names.count("ParticipantRegistered") == 2
    assert names.count("Deposited") == 4
    assert names[-1] == "BatchSettled"
    settled = events[-1].args
    assert settled["batch_hash"] == "0x" + submission.batch_hash.hex()
    assert settled["positions"] == [
        {"participant": p.participant, "currency": p.currency, "amount_minor": p.amount_minor}
        for p in submission.positions
    ]
    assert gateway.events_since(receipt.block_number + 1) == []
    assert gateway.index_events() == 0


def test_read_only_gateway_reads_and_refuses_to_write(
    handle: GatewayHandle, gateway: Web3ChainGateway
) -> None:
    a, b = _participants(gateway)
    gateway.settle_batch(_submission(gateway, NetPosition(a, "USD", -3), NetPosition(b, "USD", 3)))
    reader = handle.open(read_only=True)
    assert reader.ensure_deployed() == gateway.deployment()
    header = reader.batch(1)
    assert header is not None and header.batch_hash == gateway.last_batch_hash()
    with pytest.raises(ReadOnlyChain):
        reader.register_participant(new_address())


def test_a_missing_contract_is_reported_not_redeployed(handle: GatewayHandle) -> None:
    gw = handle.open()
    gw.ensure_deployed()
    gw.close()
    pinned = handle.open(contract_address=new_address())
    with pytest.raises(ChainStateError):
        pinned.ensure_deployed()


def test_concurrent_callers_are_serialized(gateway: Web3ChainGateway) -> None:
    """eth-tester is not thread-safe; the gateway serializes access (embedded) and keeps
    one nonce sequence (both)."""
    import threading

    participants = [new_address() for _ in range(8)]
    errors: list[BaseException] = []

    def work(p: str) -> None:
        try:
            gateway.register_participant(p)
            gateway.fund(p, "USD", 10)
            assert gateway.settlement_balance(p, "USD") == 10
            gateway.events_since(0)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(p,)) for p in participants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert all(gateway.is_participant(p) for p in participants)


def test_a_refused_transaction_is_typed(gateway: Web3ChainGateway) -> None:
    from eth_account import Account

    from settlement.chain import TransactionRejected

    poor = Account.create()  # holds no ether: cannot pay for gas
    signed = poor.sign_transaction(
        {
            "to": poor.address,
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 1,
            "nonce": 0,
            "chainId": gateway.chain_id(),
        }
    )
    with pytest.raises(TransactionRejected):
        gateway._t.send_raw_transaction(bytes(signed.raw_transaction))


def test_a_deployment_interrupted_by_a_crash_is_resolved_from_the_chain(
    handle: GatewayHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from settlement.chain.deployment import load_record, record_path

    gw = handle.open()

    def crash(*_: object) -> None:
        raise RuntimeError("killed between mining and recording")

    monkeypatch.setattr(Web3ChainGateway, "_finish_deployment", crash)
    with pytest.raises(RuntimeError):
        gw.ensure_deployed()
    monkeypatch.undo()
    path = record_path(handle.config.data_dir / "chain", gw.transport)
    pending = load_record(path)
    assert pending is not None and pending.status == "pending"
    gw.close()
    again = handle.open()
    deployment = again.ensure_deployed()
    assert deployment.address == pending.address  # found on chain, not deployed twice
    assert deployment.tx_hash == pending.tx_hash
    recorded = load_record(path)
    assert recorded is not None and recorded.status == "deployed"


def test_a_deployment_never_sent_is_made_anew(handle: GatewayHandle) -> None:
    from dataclasses import replace as dc_replace

    from settlement.chain.deployment import load_record, record_path, save_record

    gw = handle.open()
    deployment = gw.ensure_deployed()
    path = record_path(handle.config.data_dir / "chain", gw.transport)
    record = load_record(path)
    assert record is not None
    gw.close()
    # As if the process died after recording the intent, before sending anything.
    never_sent = dc_replace(
        record,
        status="pending",
        nonce=record.nonce + 5,
        address=new_address(),
        tx_hash="0x" + "ab" * 32,
        block_number=-1,
        block_hash="",
    )
    save_record(path, never_sent)
    again = handle.open()
    fresh = again.ensure_deployed()
    assert fresh.address not in (never_sent.address, deployment.address)
    assert again.last_batch_number() == 0
