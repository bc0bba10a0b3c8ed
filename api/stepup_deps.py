"""Step-up confirmation at the HTTP edge: the `step_up` member of transfer and payment
bodies, and the checks that run inside the ledger's transaction (settlement/stepup.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy import Connection

from settlement.ledger.model import BatchOutcome, BatchResult
from settlement.ledger.service import WithinPosting
from settlement.stepup import Prepared, StepUpProof, enforce, prepare


class StepUpIn(BaseModel):
    """An EIP-712 signature of the payment order by the wallet's signing key."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "signature": "0x" + "ab" * 65,
                    "nonce": "73921405518630071",
                    "expires_at": 1795000000,
                }
            ]
        },
    )

    signature: StrictStr = Field(
        max_length=200, description="65-byte signature, 0x-prefixed hex (eth_signTypedData_v4)"
    )
    nonce: StrictStr = Field(
        max_length=78,
        pattern=r"^[0-9]{1,78}$",
        description="uint256 in decimal, used once per wallet",
    )
    expires_at: StrictInt = Field(
        ge=0,
        le=2**63 - 1,
        description="Unix seconds; at most 900 s ahead. The order's `expiry`",
    )

    def proof(self) -> StepUpProof:
        return StepUpProof(self.signature, self.nonce, self.expires_at)


def prepared(
    client_id: str,
    from_wallet: str,
    recipient: str,
    amount_minor: int,
    currency: str,
    quote: str,
    step_up: StepUpIn | None,
) -> Prepared:
    """The order rebuilt from the request, its signature recovered (outside any lock)."""
    return prepare(
        client_id,
        from_wallet,
        recipient,
        amount_minor,
        currency,
        quote,
        step_up.proof() if step_up is not None else None,
    )


def transfer_check(
    participant_id: str, items: Sequence[Prepared], clock: Callable[[], int], batch: bool = False
) -> WithinPosting:
    """For Ledger.post_batch: check the items created now, in its transaction."""

    def check(conn: Connection, results: Sequence[BatchResult]) -> None:
        created = {r.index: items[r.index] for r in results if r.outcome is BatchOutcome.CREATED}
        enforce(conn, participant_id, created, clock(), indexed=batch)

    return check


def payment_check(
    participant_id: str, item: Prepared, clock: Callable[[], int]
) -> Callable[[Connection], None]:
    """For Payments.pay: check the payment in its transaction."""

    def check(conn: Connection) -> None:
        enforce(conn, participant_id, {0: item}, clock())

    return check
