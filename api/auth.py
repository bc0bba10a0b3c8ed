"""Bearer API keys and the three roles, as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.auth_store import ApiKey, Role
from api.context import Corridor
from api.problems import ApiError
from api.ratelimit import enforce_rate_limit
from settlement.ledger.model import Wallet

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cor_...`")


# The dependencies are coroutines that do not block: FastAPI would run plain functions in
# its thread pool, a thread hop for each on every request.


async def corridor(request: Request) -> Corridor:
    found: Corridor = request.app.state.corridor
    return found


CorridorDep = Annotated[Corridor, Depends(corridor)]


@dataclass(frozen=True)
class Principal:
    key: ApiKey

    @property
    def role(self) -> Role:
        return self.key.role

    @property
    def participant_id(self) -> str | None:
        return self.key.participant_id

    def acting_participant(self) -> str:
        """The participant a money-moving request acts for: only participant keys move money."""
        if self.role is not Role.PARTICIPANT or self.participant_id is None:
            raise ApiError("forbidden", "only a participant's key can move its money", 403)
        return self.participant_id

    def may_read_participant(self, participant_id: str) -> bool:
        return self.role is not Role.PARTICIPANT or self.participant_id == participant_id

    def check_wallet(self, wallet: Wallet) -> Wallet:
        """Participants see only their own wallets; another's is reported as not found."""
        if not self.may_read_participant(wallet.participant_id):
            raise ApiError("wallet_not_found", f"no wallet {wallet.id}", 404)
        return wallet


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    if credentials is None:
        raise ApiError("unauthenticated", "send an API key as `Authorization: Bearer <key>`", 401)
    found: Corridor = request.app.state.corridor
    now = found.clock()
    key = found.keys.remembered(credentials.credentials, now)
    if key is None:  # a database read (and now and then a write): not on the event loop
        key = await run_in_threadpool(found.keys.authenticate, credentials.credentials, now)
    if key is None:
        raise ApiError("unauthenticated", "the API key is unknown, revoked or expired", 401)
    enforce_rate_limit(found, key.id)  # 429 rate_limited with Retry-After
    return Principal(key)


async def principal(request: Request, credentials: BearerCredentials) -> Principal:
    return await _authenticate(request, credentials)


def require(
    *roles: Role,
) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Principal]]:
    allowed = set(roles)

    # One dependency rather than one on top of `principal`: each level of dependencies
    # costs FastAPI work on every request.
    async def check(request: Request, credentials: BearerCredentials) -> Principal:
        who = await _authenticate(request, credentials)
        if who.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise ApiError("forbidden", f"this needs the role {names}", 403)
        return who

    return check


Anyone = Annotated[Principal, Depends(principal)]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Participant = Annotated[Principal, Depends(require(Role.PARTICIPANT))]
Reader = Annotated[Principal, Depends(require(Role.OPERATOR, Role.AUDITOR, Role.PARTICIPANT))]
OperatorOrParticipant = Annotated[Principal, Depends(require(Role.OPERATOR, Role.PARTICIPANT))]
