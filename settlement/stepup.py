"""Step-up confirmation: large transfers and payments signed by the wallet's own key.

A wallet may register a signing key (an Ethereum address) and thresholds per currency.
A transfer or payment from it whose amount is above the threshold of its currency (or in a
currency without one: registering a key fails closed) must carry an EIP-712 signature by
that key over the payment order: source wallet, recipient, amount, currency, quote, nonce
and expiry. The order is rebuilt here from the request itself, so a signature over
anything else recovers to another address and is refused.

Refusals (stable codes): step_up_required, step_up_invalid (malformed, or an expiry too
far ahead), step_up_expired, step_up_invalid_signature, step_up_replayed.

Nonces: a used nonce is recorded in the same database transaction as the transfer or
payment it authorised (`enforce`, called by the ledger inside that transaction), so a
refusal anywhere leaves the nonce unused, a success always burns it, and a retried
request with the same idempotency key is a replay of the ledger (it never reaches here).
Orders live at most ORDER_LIFETIME_MAX_S, so a nonce row can be pruned once its order
has expired: an expired order is refused whatever its nonce.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_hex_address, to_checksum_address
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    String,
    Table,
    delete,
    insert,
    select,
)

from settlement.db import metadata, read_transaction, write_transaction
from settlement.errors import LedgerError

ORDER_LIFETIME_MAX_S: Final = 900
NONCE_MAX: Final = 2**256 - 1
THRESHOLD_CURRENCIES_MAX: Final = 32
IN_CHUNK_MAX: Final = 900

DOMAIN: Final[dict[str, Any]] = {"name": "Corridor", "version": "1"}
TYPES: Final[dict[str, list[dict[str, str]]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
    ],
    "PaymentOrder": [
        {"name": "fromWallet", "type": "string"},
        {"name": "recipient", "type": "string"},
        {"name": "amount", "type": "uint256"},
        {"name": "currency", "type": "string"},
        {"name": "quote", "type": "string"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ],
}
PRIMARY_TYPE: Final = "PaymentOrder"

wallet_signing_keys = Table(
    "wallet_signing_keys",
    metadata,
    Column("wallet_id", String(64), ForeignKey("wallets.id"), primary_key=True),
    # Checksummed 0x address of the key that confirms large payments.
    Column("address", String(42), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

step_up_thresholds = Table(
    "step_up_thresholds",
    metadata,
    # Amounts above this need a signature; a currency without a row: every amount does.
    Column("wallet_id", String(64), ForeignKey("wallets.id"), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("threshold_minor", BigInteger, nullable=False),
)

step_up_nonces = Table(
    "step_up_nonces",
    metadata,
    Column("wallet_id", String(64), primary_key=True),
    # uint256 as decimal text: identical on every backend.
    Column("nonce", String(78), primary_key=True),
    # What it authorised: the request's idempotency key.
    Column("participant_id", String(64), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
    Column("used_at_us", BigInteger, nullable=False),
    Index("ix_step_up_nonces_expiry", "expires_at_us"),
)


# ------------------------------------------------------------------------ domain types


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """What the wallet's key signs. `amount_minor` is what leaves the wallet: a transfer's
    amount, or a payment's total debit (sell + fee) in the sell currency."""

    from_wallet: str
    recipient: str
    amount_minor: int
    currency: str
    quote: str
    nonce: int
    expiry_s: int

    def typed_data(self) -> dict[str, Any]:
        return {
            "types": TYPES,
            "primaryType": PRIMARY_TYPE,
            "domain": DOMAIN,
            "message": {
                "fromWallet": self.from_wallet,
                "recipient": self.recipient,
                "amount": self.amount_minor,
                "currency": self.currency,
                "quote": self.quote,
                "nonce": self.nonce,
                "expiry": self.expiry_s,
            },
        }


@dataclass(frozen=True, slots=True)
class StepUpProof:
    signature: str
    nonce: str
    expires_at_s: int


@dataclass(frozen=True, slots=True)
class Policy:
    address: str
    thresholds_minor: Mapping[str, int] = field(default_factory=dict)

    def requires(self, currency: str, amount_minor: int) -> bool:
        threshold = self.thresholds_minor.get(currency)
        return threshold is None or amount_minor > threshold


_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_NONCE = re.compile(r"^[0-9]{1,78}$")


def check_address(address: str) -> str:
    if not is_hex_address(address):
        raise LedgerError("invalid_address", f"{address!r} is not a 0x Ethereum address")
    return str(to_checksum_address(address))


def parse_nonce(text: str) -> int:
    if not _NONCE.fullmatch(text) or int(text) > NONCE_MAX:
        raise LedgerError("step_up_invalid", "nonce must be a decimal uint256")
    return int(text)


def recover_signer(order: PaymentOrder, signature: str) -> str:
    """The address that signed this order with this signature (any signature recovers to
    some address; it is the comparison with the wallet's key that decides)."""
    if not _SIGNATURE.fullmatch(signature):
        raise LedgerError("step_up_invalid", "signature must be 65 bytes as 0x-prefixed hex")
    try:
        signer = Account.recover_message(
            encode_typed_data(full_message=order.typed_data()), signature=signature
        )
    except Exception as exc:  # eth-keys refuses impossible (r, s, v) values
        raise LedgerError(
            "step_up_invalid_signature", f"the signature does not verify: {exc}"
        ) from None
    return str(signer)


def sign_order(order: PaymentOrder, private_key: Any) -> str:
    """Sign an order the way a client (a wallet app) does: eth_signTypedData_v4."""
    signed = Account.sign_message(encode_typed_data(full_message=order.typed_data()), private_key)
    return "0x" + bytes(signed.signature).hex()


@dataclass(frozen=True, slots=True)
class Prepared:
    """An order with its proof, checked for shape and recovered before the transaction.

    `error` keeps a refusal for later: whether it matters depends on the wallet's policy,
    which is read inside the transaction.
    """

    order: PaymentOrder | None
    client_id: str
    from_wallet: str
    amount_minor: int
    currency: str
    proof: StepUpProof | None
    signer: str | None = None
    error: LedgerError | None = None


def prepare(
    client_id: str,
    from_wallet: str,
    recipient: str,
    amount_minor: int,
    currency: str,
    quote: str,
    proof: StepUpProof | None,
) -> Prepared:
    if proof is None:
        return Prepared(None, client_id, from_wallet, amount_minor, currency, None)
    try:
        order = PaymentOrder(
            from_wallet,
            recipient,
            amount_minor,
            currency,
            quote,
            parse_nonce(proof.nonce),
            proof.expires_at_s,
        )
        signer = recover_signer(order, proof.signature)
    except LedgerError as error:
        return Prepared(None, client_id, from_wallet, amount_minor, currency, proof, error=error)
    return Prepared(order, client_id, from_wallet, amount_minor, currency, proof, signer)


def verify(policy: Policy, item: Prepared, now_us: int, index: int | None = None) -> bool:
    """Apply the policy to one prepared item; True when a nonce is to be consumed.

    Raises the refusal. A wallet with a key checks every proof it is given, required or
    not; a wallet without one ignores proofs (there is no key to check them against).
    """
    where = {} if index is None else {"index": index}
    required = policy.requires(item.currency, item.amount_minor)
    if item.proof is None:
        if required:
            raise LedgerError(
                "step_up_required",
                f"payments of this size from wallet {item.from_wallet} need an EIP-712 "
                "signature by its signing key (step_up)",
                **where,
            )
        return False
    if item.error is not None:
        raise LedgerError(item.error.code, item.error.detail, **where)
    assert item.order is not None and item.signer is not None
    now_s = now_us // 1_000_000
    if item.order.expiry_s <= now_s:
        raise LedgerError("step_up_expired", "the signed order has expired", **where)
    if item.order.expiry_s > now_s + ORDER_LIFETIME_MAX_S:
        raise LedgerError(
            "step_up_invalid",
            f"a signed order may expire at most {ORDER_LIFETIME_MAX_S} s ahead",
            **where,
        )
    if item.signer != policy.address:
        raise LedgerError(
            "step_up_invalid_signature",
            "the order is not signed by the wallet's signing key (or not over this order)",
            **where,
        )
    return True


# ------------------------------------------------------------------- database edge


def load_policies(conn: Connection, wallet_ids: Sequence[str]) -> dict[str, Policy]:
    keys: dict[str, str] = {}
    thresholds: dict[str, dict[str, int]] = {}
    unique = sorted(set(wallet_ids))
    for start in range(0, len(unique), IN_CHUNK_MAX):
        chunk = unique[start : start + IN_CHUNK_MAX]
        for row in conn.execute(
            select(wallet_signing_keys).where(wallet_signing_keys.c.wallet_id.in_(chunk))
        ):
            keys[row.wallet_id] = row.address
        if not keys:
            continue
        for row in conn.execute(
            select(step_up_thresholds).where(step_up_thresholds.c.wallet_id.in_(chunk))
        ):
            thresholds.setdefault(row.wallet_id, {})[row.currency] = row.threshold_minor
    return {w: Policy(a, thresholds.get(w, {})) for w, a in keys.items()}


def enforce(
    conn: Connection,
    participant_id: str,
    items: Mapping[int, Prepared],
    now_us: int,
    indexed: bool = False,
) -> None:
    """Inside the transaction of the transfers or payment: refuse, or burn the nonces.

    `items` maps a request's index to its prepared order; only items that are really
    being created now are passed (a replay moves no money and needs no confirmation).
    """
    if not items:
        return
    policies = load_policies(conn, [item.from_wallet for item in items.values()])
    if not policies:
        return
    used: list[dict[str, Any]] = []
    claimed: set[tuple[str, int]] = set()
    for index, item in sorted(items.items()):
        policy = policies.get(item.from_wallet)
        if policy is None:
            continue
        where = {"index": index} if indexed else {}
        if not verify(policy, item, now_us, index if indexed else None):
            continue
        assert item.order is not None
        key = (item.from_wallet, item.order.nonce)
        taken = key in claimed or (
            conn.execute(
                select(step_up_nonces.c.client_id).where(
                    step_up_nonces.c.wallet_id == item.from_wallet,
                    step_up_nonces.c.nonce == str(item.order.nonce),
                )
            ).first()
            is not None
        )
        if taken:
            raise LedgerError(
                "step_up_replayed", "this signed order's nonce has been used already", **where
            )
        claimed.add(key)
        used.append(
            {
                "wallet_id": item.from_wallet,
                "nonce": str(item.order.nonce),
                "participant_id": participant_id,
                "client_id": item.client_id,
                "expires_at_us": item.order.expiry_s * 1_000_000,
                "used_at_us": now_us,
            }
        )
    if used:
        # A concurrent use of the same nonce makes this insert fail (unique key): the
        # ledger retries the whole transaction, which then finds the nonce taken.
        conn.execute(insert(step_up_nonces), used)


class StepUpStore:
    """Registering a wallet's key and thresholds; pruning expired nonces."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set_policy(
        self, wallet_id: str, address: str, thresholds_minor: Mapping[str, int], now_us: int
    ) -> Policy:
        checked = check_address(address)
        if len(thresholds_minor) > THRESHOLD_CURRENCIES_MAX:
            raise LedgerError(
                "invalid_thresholds", f"at most {THRESHOLD_CURRENCIES_MAX} currencies"
            )
        if any(v < 0 for v in thresholds_minor.values()):
            raise LedgerError("invalid_thresholds", "thresholds are zero or more")
        with write_transaction(self.engine) as conn:
            conn.execute(
                delete(step_up_thresholds).where(step_up_thresholds.c.wallet_id == wallet_id)
            )
            conn.execute(
                delete(wallet_signing_keys).where(wallet_signing_keys.c.wallet_id == wallet_id)
            )
            conn.execute(
                insert(wallet_signing_keys).values(
                    wallet_id=wallet_id, address=checked, created_at_us=now_us
                )
            )
            if thresholds_minor:
                conn.execute(
                    insert(step_up_thresholds),
                    [
                        {"wallet_id": wallet_id, "currency": c, "threshold_minor": v}
                        for c, v in sorted(thresholds_minor.items())
                    ],
                )
        return Policy(checked, dict(thresholds_minor))

    def get_policy(self, wallet_id: str) -> Policy | None:
        with read_transaction(self.engine) as conn:
            return load_policies(conn, [wallet_id]).get(wallet_id)

    def delete_policy(self, wallet_id: str) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                delete(step_up_thresholds).where(step_up_thresholds.c.wallet_id == wallet_id)
            )
            conn.execute(
                delete(wallet_signing_keys).where(wallet_signing_keys.c.wallet_id == wallet_id)
            )

    def prune_nonces(self, now_us: int) -> int:
        """Forget nonces of orders that have expired: those orders are refused anyway."""
        with write_transaction(self.engine) as conn:
            return int(
                conn.execute(
                    delete(step_up_nonces).where(step_up_nonces.c.expires_at_us < now_us)
                ).rowcount
            )
