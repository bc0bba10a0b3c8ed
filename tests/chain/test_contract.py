"""SettlementLedger, the committed artifact, on an in-memory eth-tester: every function and
every revert path. Reverts are decoded with the gateway's decoder from eth-tester's own
`TransactionFailed`, so these tests also pin that decoding path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3 import EthereumTesterProvider, Web3
from web3.contract import Contract

from settlement.chain.artifacts import load_artifact
from settlement.chain.errors import RevertDecoder, revert_data_from
from settlement.chain.gateway import (
    AMOUNT_MAX,
    POSITIONS_MAX,
    ZERO_HASH,
    NetPosition,
    batch_hash,
    canonical_positions,
    positions_hash,
)

ARTIFACT = load_artifact()
DECODER = RevertDecoder(ARTIFACT.abi)
SETTLER_ROLE = keccak(text="SETTLER_ROLE")
FUNDER_ROLE = keccak(text="FUNDER_ROLE")
ADMIN_ROLE = ZERO_HASH


class Ledger:
    """The deployed contract and the roles' accounts (separate accounts per role)."""

    def __init__(self) -> None:
        self.tester_provider = EthereumTesterProvider()
        self.w3 = Web3(self.tester_provider)
        accounts: list[str] = list(self.w3.eth.accounts)
        self.admin: str = accounts[0]
        self.settler: str = accounts[1]
        self.funder: str = accounts[2]
        self.outsider: str = accounts[3]
        self.participants = sorted(accounts[4:8], key=lambda a: int(a, 16))
        factory = self.w3.eth.contract(abi=ARTIFACT.abi, bytecode=ARTIFACT.bytecode)
        tx = factory.constructor(self.admin, self.settler, self.funder).transact(
            {"from": self.admin}
        )
        address = self.w3.eth.get_transaction_receipt(tx)["contractAddress"]
        assert address is not None
        self.c: Contract = self.w3.eth.contract(address=address, abi=ARTIFACT.abi)

    def tx(self, sender: str, function: str, *args: Any) -> Any:
        tx_hash = getattr(self.c.functions, function)(*args).transact({"from": sender})
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == 1
        return receipt

    def call(self, function: str, *args: Any) -> Any:
        return getattr(self.c.functions, function)(*args).call()

    def events(self, receipt: Any, name: str) -> list[Any]:
        return list(getattr(self.c.events, name)().process_receipt(receipt))

    def fund(self, participant: str, currency: bytes, amount: int) -> Any:
        return self.tx(self.funder, "deposit", participant, currency, amount, os.urandom(32))

    def settle(self, number: int, positions: list[tuple[str, bytes, int]], **kw: Any) -> Any:
        return self.tx(
            kw.pop("sender", self.settler), "settleBatch", *self.args(number, positions, **kw)
        )

    def args(
        self,
        number: int,
        positions: list[tuple[str, bytes, int]],
        *,
        prev: bytes | None = None,
        transfers_root: bytes = b"\x11" * 32,
        balances_root: bytes = b"\x22" * 32,
        transfer_count: int = 7,
    ) -> tuple[Any, ...]:
        if prev is None:
            prev = self.call("lastBatchHash")
        return (number, transfers_root, balances_root, prev, transfer_count, positions)


@pytest.fixture(scope="module")
def deployed() -> Ledger:
    return Ledger()


@pytest.fixture
def ledger(deployed: Ledger) -> Iterator[Ledger]:
    """The module's deployment, reverted to its pristine state after each test."""
    tester = deployed.tester_provider.ethereum_tester
    assert tester is not None
    snapshot = tester.take_snapshot()
    yield deployed
    tester.revert_to_snapshot(snapshot)


@contextmanager
def reverts(name: str, **expected: Any) -> Iterator[None]:
    with pytest.raises(Exception) as caught:
        yield
    data = revert_data_from(caught.value)
    assert data is not None, f"not a revert: {caught.value!r}"
    error = DECODER.decode(data)
    assert error.error_name == name, f"{error} (expected {name})"
    for key, value in expected.items():
        assert error.args_by_name[key] == value, f"{key}: {error.args_by_name[key]!r}"


def funded(ledger: Ledger, amount: int = 1_000_00) -> tuple[str, str]:
    a, b = ledger.participants[:2]
    for p in (a, b):
        ledger.tx(ledger.admin, "registerParticipant", p)
        ledger.fund(p, b"USD", amount)
        ledger.fund(p, b"EUR", amount)
    return a, b


# ---------------------------------------------------------------- constructor and roles


def test_constants_match_the_python_side(ledger: Ledger) -> None:
    assert ledger.call("AMOUNT_MAX") == AMOUNT_MAX
    assert ledger.call("POSITIONS_MAX") == POSITIONS_MAX
    assert ledger.call("SETTLER_ROLE") == SETTLER_ROLE
    assert ledger.call("FUNDER_ROLE") == FUNDER_ROLE


def test_constructor_grants_each_role_to_its_account(ledger: Ledger) -> None:
    assert ledger.call("hasRole", ADMIN_ROLE, ledger.admin)
    assert ledger.call("hasRole", SETTLER_ROLE, ledger.settler)
    assert ledger.call("hasRole", FUNDER_ROLE, ledger.funder)
    assert not ledger.call("hasRole", SETTLER_ROLE, ledger.admin)
    assert not ledger.call("hasRole", FUNDER_ROLE, ledger.settler)
    assert ledger.call("lastBatchNumber") == 0
    assert ledger.call("lastBatchHash") == ZERO_HASH
    assert not ledger.call("paused")


def test_constructor_refuses_a_zero_address(ledger: Ledger) -> None:
    factory = ledger.w3.eth.contract(abi=ARTIFACT.abi, bytecode=ARTIFACT.bytecode)
    zero = "0x" + "00" * 20
    with reverts("SettlementLedgerZeroAddress"):
        factory.constructor(ledger.admin, zero, ledger.funder).transact({"from": ledger.admin})


# ---------------------------------------------------------------- participants


def test_register_participant_emits_and_flags(ledger: Ledger) -> None:
    p = ledger.participants[0]
    receipt = ledger.tx(ledger.admin, "registerParticipant", p)
    (event,) = ledger.events(receipt, "ParticipantRegistered")
    assert event["args"]["participant"] == p
    assert ledger.call("isParticipant", p)
    assert not ledger.call("isParticipant", ledger.participants[1])


def test_register_participant_reverts(ledger: Ledger) -> None:
    p = ledger.participants[0]
    ledger.tx(ledger.admin, "registerParticipant", p)
    with reverts("SettlementLedgerParticipantAlreadyRegistered", participant=p):
        ledger.tx(ledger.admin, "registerParticipant", p)
    with reverts("SettlementLedgerZeroAddress"):
        ledger.tx(ledger.admin, "registerParticipant", "0x" + "00" * 20)
    with reverts("AccessControlUnauthorizedAccount", account=ledger.settler, neededRole=ADMIN_ROLE):
        ledger.tx(ledger.settler, "registerParticipant", ledger.participants[1])


# ---------------------------------------------------------------- funding


def test_deposit_and_withdraw_move_the_balance_with_events(ledger: Ledger) -> None:
    p = ledger.participants[0]
    ledger.tx(ledger.admin, "registerParticipant", p)
    ref = os.urandom(32)
    receipt = ledger.tx(ledger.funder, "deposit", p, b"USD", 500_00, ref)
    (event,) = ledger.events(receipt, "Deposited")
    assert event["args"]["amountMinor"] == 500_00
    assert event["args"]["balanceMinor"] == 500_00
    assert event["args"]["currency"] == b"USD"
    assert event["args"]["ref"] == ref
    assert ledger.call("isReferenceUsed", ref)
    receipt = ledger.tx(ledger.funder, "withdraw", p, b"USD", 200_00, os.urandom(32))
    (event,) = ledger.events(receipt, "Withdrawn")
    assert event["args"]["balanceMinor"] == 300_00
    assert ledger.call("settlementBalance", p, b"USD") == 300_00
    assert ledger.call("settlementBalance", p, b"EUR") == 0


def test_deposit_reverts(ledger: Ledger) -> None:
    p, stranger = ledger.participants[:2]
    ledger.tx(ledger.admin, "registerParticipant", p)
    ref = os.urandom(32)
    ledger.tx(ledger.funder, "deposit", p, b"USD", 1, ref)
    cases: list[tuple[str, dict[str, Any], tuple[Any, ...]]] = [
        ("SettlementLedgerUnknownParticipant", {"participant": stranger}, (stranger, b"USD", 1)),
        ("SettlementLedgerInvalidCurrency", {"currency": b"usd"}, (p, b"usd", 1)),
        ("SettlementLedgerInvalidCurrency", {"currency": b"\0\0\0"}, (p, b"\0\0\0", 1)),
        ("SettlementLedgerInvalidAmount", {"amountMinor": 0}, (p, b"USD", 0)),
        (
            "SettlementLedgerInvalidAmount",
            {"amountMinor": AMOUNT_MAX + 1},
            (p, b"USD", AMOUNT_MAX + 1),
        ),
    ]
    for name, expected, args in cases:
        with reverts(name, **expected):
            ledger.tx(ledger.funder, "deposit", *args, os.urandom(32))
    with reverts("SettlementLedgerInvalidReference", ref=ref):
        ledger.tx(ledger.funder, "deposit", p, b"USD", 1, ref)
    with reverts("SettlementLedgerInvalidReference", ref=ZERO_HASH):
        ledger.tx(ledger.funder, "deposit", p, b"USD", 1, ZERO_HASH)
    with reverts("AccessControlUnauthorizedAccount", account=ledger.admin, neededRole=FUNDER_ROLE):
        ledger.tx(ledger.admin, "deposit", p, b"USD", 1, os.urandom(32))


def test_withdraw_reverts(ledger: Ledger) -> None:
    p = ledger.participants[0]
    ledger.tx(ledger.admin, "registerParticipant", p)
    ledger.fund(p, b"USD", 100)
    with reverts(
        "SettlementLedgerInsufficientBalance",
        participant=p,
        currency=b"USD",
        balanceMinor=100,
        amountMinor=101,
    ):
        ledger.tx(ledger.funder, "withdraw", p, b"USD", 101, os.urandom(32))
    with reverts("AccessControlUnauthorizedAccount", account=ledger.settler):
        ledger.tx(ledger.settler, "withdraw", p, b"USD", 1, os.urandom(32))


# ---------------------------------------------------------------- settlement


def _positions(
    *rows: tuple[str, str, int],
) -> tuple[list[tuple[str, bytes, int]], tuple[NetPosition, ...]]:
    canonical = canonical_positions(NetPosition(p, c, a) for p, c, a in rows)
    return [p.as_abi() for p in canonical], canonical


def test_settle_batch_applies_positions_and_records_the_header(ledger: Ledger) -> None:
    a, b = funded(ledger)
    abi_positions, canonical = _positions(
        (a, "USD", -300), (b, "USD", 300), (a, "EUR", 50), (b, "EUR", -50)
    )
    receipt = ledger.settle(1, abi_positions)
    assert ledger.call("settlementBalance", a, b"USD") == 1_000_00 - 300
    assert ledger.call("settlementBalance", b, b"USD") == 1_000_00 + 300
    assert ledger.call("settlementBalance", a, b"EUR") == 1_000_00 + 50
    expected_positions_hash = positions_hash(canonical)
    expected_hash = batch_hash(1, b"\x11" * 32, b"\x22" * 32, ZERO_HASH, 7, expected_positions_hash)
    header = ledger.call("batchHeader", 1)
    block = ledger.w3.eth.get_block(receipt["blockNumber"])
    assert header == (
        1,
        7,
        receipt["blockNumber"],
        block["timestamp"],
        b"\x11" * 32,
        b"\x22" * 32,
        ZERO_HASH,
        expected_positions_hash,
        expected_hash,
    )
    assert ledger.call("lastBatchNumber") == 1
    assert ledger.call("lastBatchHash") == expected_hash
    (event,) = ledger.events(receipt, "BatchSettled")
    args = event["args"]
    # Everything an auditor needs to rebuild the header and the positions from the log.
    assert args["number"] == 1
    assert args["batchHash"] == expected_hash
    assert args["prevBatchHash"] == ZERO_HASH
    assert args["transfersRoot"] == b"\x11" * 32
    assert args["balancesRoot"] == b"\x22" * 32
    assert args["transferCount"] == 7
    assert args["positionsHash"] == expected_positions_hash
    assert args["timestamp"] == block["timestamp"]
    logged = [(p["participant"], p["currency"], p["amountMinor"]) for p in args["positions"]]
    assert logged == abi_positions
    # The next batch links to this one.
    ledger.settle(2, [], prev=expected_hash)
    assert ledger.call("batchHeader", 2)[6] == expected_hash


def test_settle_batch_accepts_zero_amounts_and_an_empty_batch(ledger: Ledger) -> None:
    a, b = funded(ledger)
    abi_positions, _ = _positions((a, "USD", 0), (b, "USD", 0))
    ledger.settle(1, abi_positions)
    ledger.settle(2, [])
    assert ledger.call("lastBatchNumber") == 2


def test_settle_batch_wrong_batch_number(ledger: Ledger) -> None:
    funded(ledger)
    for number in (0, 2):
        with reverts("SettlementLedgerWrongBatchNumber", expected=1, given=number):
            ledger.settle(number, [])
    ledger.settle(1, [])
    with reverts("SettlementLedgerWrongBatchNumber", expected=2, given=1):
        ledger.settle(1, [])  # a replay of batch 1


def test_settle_batch_wrong_previous_hash(ledger: Ledger) -> None:
    with reverts("SettlementLedgerWrongPrevBatchHash", expected=ZERO_HASH, given=b"\x01" * 32):
        ledger.settle(1, [], prev=b"\x01" * 32)
    ledger.settle(1, [])
    first = ledger.call("lastBatchHash")
    with reverts("SettlementLedgerWrongPrevBatchHash", expected=first, given=ZERO_HASH):
        ledger.settle(2, [], prev=ZERO_HASH)


def test_settle_batch_non_zero_sum(ledger: Ledger) -> None:
    a, b = funded(ledger)
    abi_positions, _ = _positions((a, "USD", -300), (b, "USD", 299))
    with reverts("SettlementLedgerNonZeroSum", currency=b"USD", sumMinor=-1):
        ledger.settle(1, abi_positions)
    # The first currency group is checked when the next one starts.
    abi_positions, _ = _positions((a, "EUR", 5), (b, "EUR", -4), (a, "USD", -1), (b, "USD", 1))
    with reverts("SettlementLedgerNonZeroSum", currency=b"EUR", sumMinor=1):
        ledger.settle(1, abi_positions)
    assert ledger.call("lastBatchNumber") == 0
    assert ledger.call("settlementBalance", a, b"USD") == 1_000_00


def test_settle_batch_negative_balance(ledger: Ledger) -> None:
    a, b = funded(ledger, amount=100)
    abi_positions, _ = _positions((a, "USD", -101), (b, "USD", 101))
    index = [p[0] for p in abi_positions].index(a)
    with reverts(
        "SettlementLedgerNegativeBalance",
        index=index,
        participant=a,
        currency=b"USD",
        balanceMinor=100,
        amountMinor=-101,
    ):
        ledger.settle(1, abi_positions)
    abi_positions, _ = _positions((a, "USD", -100), (b, "USD", 100))
    ledger.settle(1, abi_positions)  # down to exactly zero is fine
    assert ledger.call("settlementBalance", a, b"USD") == 0


def test_settle_batch_unknown_participant_order_and_range(ledger: Ledger) -> None:
    a, b = funded(ledger)
    stranger = ledger.participants[3]
    abi_positions, _ = _positions((a, "USD", -1), (stranger, "USD", 1))
    with reverts("SettlementLedgerUnknownParticipant", participant=stranger):
        ledger.settle(1, abi_positions)
    abi_positions, _ = _positions((a, "USD", -1), (b, "USD", 1))
    with reverts("SettlementLedgerPositionsNotSorted", index=1):
        ledger.settle(1, list(reversed(abi_positions)))
    with reverts("SettlementLedgerPositionsNotSorted", index=1):
        ledger.settle(1, [(a, b"USD", -1), (a, b"USD", 1)])  # a duplicate pair
    with reverts("SettlementLedgerPositionOutOfRange", index=0, amountMinor=-AMOUNT_MAX - 1):
        ledger.settle(1, [(a, b"USD", -AMOUNT_MAX - 1), (b, b"USD", AMOUNT_MAX + 1)])
    too_many = [(a, b"USD", 0)] * (POSITIONS_MAX + 1)
    with reverts("SettlementLedgerTooManyPositions", count=POSITIONS_MAX + 1, max=POSITIONS_MAX):
        ledger.settle(1, too_many)


def test_settle_batch_missing_role(ledger: Ledger) -> None:
    for sender in (ledger.admin, ledger.funder, ledger.outsider):
        with reverts("AccessControlUnauthorizedAccount", account=sender, neededRole=SETTLER_ROLE):
            ledger.settle(1, [], sender=sender)
    ledger.tx(ledger.admin, "grantRole", SETTLER_ROLE, ledger.outsider)
    ledger.settle(1, [], sender=ledger.outsider)


# ---------------------------------------------------------------- pause


def test_pause_stops_money_movement_until_unpaused(ledger: Ledger) -> None:
    a, b = funded(ledger)
    receipt = ledger.tx(ledger.admin, "pause")
    assert ledger.events(receipt, "Paused")
    assert ledger.call("paused")
    abi_positions, _ = _positions((a, "USD", -1), (b, "USD", 1))
    with reverts("EnforcedPause"):
        ledger.settle(1, abi_positions)
    with reverts("EnforcedPause"):
        ledger.fund(a, b"USD", 1)
    with reverts("EnforcedPause"):
        ledger.tx(ledger.funder, "withdraw", a, b"USD", 1, os.urandom(32))
    with reverts("EnforcedPause"):
        ledger.tx(ledger.admin, "pause")
    ledger.tx(ledger.admin, "registerParticipant", ledger.participants[2])  # moves no money
    receipt = ledger.tx(ledger.admin, "unpause")
    assert ledger.events(receipt, "Unpaused")
    with reverts("ExpectedPause"):
        ledger.tx(ledger.admin, "unpause")
    ledger.settle(1, abi_positions)


def test_only_the_admin_pauses(ledger: Ledger) -> None:
    for sender in (ledger.settler, ledger.funder, ledger.outsider):
        with reverts("AccessControlUnauthorizedAccount", account=sender, neededRole=ADMIN_ROLE):
            ledger.tx(sender, "pause")


# ---------------------------------------------------------------- views


def _leaf(values: tuple[Any, ...]) -> bytes:
    """StandardMerkleTree leaf: keccak256(bytes.concat(keccak256(abi.encode(values))))."""
    return keccak(keccak(abi_encode(["string", "address", "uint256"], list(values))))


def _pair(x: bytes, y: bytes) -> bytes:
    return keccak(min(x, y) + max(x, y))


def test_verify_transfer_checks_inclusion_against_the_batch_root(ledger: Ledger) -> None:
    p = ledger.participants[0]
    leaves = [_leaf((f"transfer-{i}", p, 100 + i)) for i in range(4)]
    root = _pair(_pair(leaves[0], leaves[1]), _pair(leaves[2], leaves[3]))
    ledger.settle(1, [], transfers_root=root, transfer_count=4)
    proof_0 = [leaves[1], _pair(leaves[2], leaves[3])]
    assert ledger.call("verifyTransfer", 1, leaves[0], proof_0)
    assert ledger.call("verifyTransfer", 1, leaves[3], [leaves[2], _pair(leaves[0], leaves[1])])
    assert not ledger.call("verifyTransfer", 1, _leaf(("forged", p, 1)), proof_0)
    assert not ledger.call("verifyTransfer", 1, leaves[0], [leaves[2]])
    with reverts("SettlementLedgerUnknownBatch", number=2):
        ledger.call("verifyTransfer", 2, leaves[0], proof_0)


def test_batch_header_of_an_unknown_batch_reverts(ledger: Ledger) -> None:
    for number in (0, 1, 99):
        with reverts("SettlementLedgerUnknownBatch", number=number):
            ledger.call("batchHeader", number)


def test_role_management_is_the_admins(ledger: Ledger) -> None:
    assert ledger.call("getRoleAdmin", SETTLER_ROLE) == ADMIN_ROLE
    assert ledger.call("supportsInterface", bytes.fromhex("7965db0b"))  # IAccessControl
    receipt = ledger.tx(ledger.admin, "grantRole", FUNDER_ROLE, ledger.outsider)
    assert ledger.events(receipt, "RoleGranted")
    ledger.tx(ledger.admin, "revokeRole", FUNDER_ROLE, ledger.outsider)
    assert not ledger.call("hasRole", FUNDER_ROLE, ledger.outsider)
    with reverts("AccessControlUnauthorizedAccount", account=ledger.outsider):
        ledger.tx(ledger.outsider, "grantRole", SETTLER_ROLE, ledger.outsider)
    with reverts("AccessControlBadConfirmation"):
        ledger.tx(ledger.settler, "renounceRole", SETTLER_ROLE, ledger.admin)
    ledger.tx(ledger.settler, "renounceRole", SETTLER_ROLE, ledger.settler)
    with reverts("AccessControlUnauthorizedAccount", account=ledger.settler):
        ledger.settle(1, [])
