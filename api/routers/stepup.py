"""Step-up confirmation settings of a wallet: its signing key and thresholds."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StrictStr

from api.auth import CorridorDep, OperatorOrParticipant, Reader
from api.schemas import Money, Strict, to_minor_or_zero
from fx.currency import currency as check_currency
from settlement.errors import LedgerError
from settlement.stepup import DOMAIN, ORDER_LIFETIME_MAX_S, PRIMARY_TYPE, TYPES, Policy, StepUpStore

router = APIRouter(prefix="/v1/wallets", tags=["step-up"])

_EIP712 = {"domain": DOMAIN, "primaryType": PRIMARY_TYPE, "types": TYPES}


class StepUpPolicyIn(Strict):
    signing_address: StrictStr = Field(
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="The Ethereum address whose EIP-712 signature confirms large payments",
        examples=["0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"],
    )
    thresholds: list[Money] = Field(
        default_factory=list,
        max_length=32,
        description="Per currency: amounts above this need a signature. A currency not "
        "listed needs one for every amount",
        examples=[[{"amount": "500.00", "currency": "USD"}]],
    )


class StepUpPolicyOut(BaseModel):
    wallet_id: str
    signing_address: str
    thresholds: list[Money]
    order_lifetime_max_s: int = Field(description="Longest an order may be signed ahead")
    eip712: dict[str, Any] = Field(
        description="What to sign: domain, primary type and types of the payment order"
    )


def _out(wallet_id: str, policy: Policy) -> StepUpPolicyOut:
    return StepUpPolicyOut(
        wallet_id=wallet_id,
        signing_address=policy.address,
        thresholds=[Money.of(v, c) for c, v in sorted(policy.thresholds_minor.items())],
        order_lifetime_max_s=ORDER_LIFETIME_MAX_S,
        eip712=_EIP712,
    )


@router.put("/{wallet_id}/step-up", response_model=StepUpPolicyOut)
def set_step_up(
    wallet_id: str, body: StepUpPolicyIn, who: OperatorOrParticipant, corridor: CorridorDep
) -> StepUpPolicyOut:
    """Register the wallet's signing key and thresholds (replacing any before)."""
    who.check_wallet(corridor.ledger.get_wallet(wallet_id))
    thresholds: dict[str, int] = {}
    for money in body.thresholds:
        check_currency(money.currency)
        if money.currency in thresholds:
            raise LedgerError("invalid_thresholds", f"{money.currency} is listed twice")
        thresholds[money.currency] = to_minor_or_zero(money.amount, money.currency)
    policy = StepUpStore(corridor.engine).set_policy(
        wallet_id, body.signing_address, thresholds, corridor.clock()
    )
    return _out(wallet_id, policy)


@router.get("/{wallet_id}/step-up", response_model=StepUpPolicyOut)
def get_step_up(wallet_id: str, who: Reader, corridor: CorridorDep) -> StepUpPolicyOut:
    """The wallet's signing key, thresholds, and the EIP-712 types to sign orders with."""
    who.check_wallet(corridor.ledger.get_wallet(wallet_id))
    policy = StepUpStore(corridor.engine).get_policy(wallet_id)
    if policy is None:
        raise LedgerError("step_up_not_found", f"wallet {wallet_id} has no signing key")
    return _out(wallet_id, policy)


@router.delete("/{wallet_id}/step-up", status_code=204, response_class=Response)
def delete_step_up(wallet_id: str, who: OperatorOrParticipant, corridor: CorridorDep) -> Response:
    """Remove the wallet's signing key: its payments no longer need a signature."""
    who.check_wallet(corridor.ledger.get_wallet(wallet_id))
    StepUpStore(corridor.engine).delete_policy(wallet_id)
    return Response(status_code=204)
