"""Adding and removing a QBFT validator: the vote flow, over Besu's QBFT JSON-RPC API.

With block header validator selection, the validator set changes only by vote: each
validator that agrees calls ``qbft_proposeValidatorVote(address, true|false)`` on *its own*
node; the node puts the vote into the next block it proposes, and once more than half of
the current validators have voted alike, the candidate is added (or removed). Votes still
pending are dropped at each epoch boundary and re-cast by the validators that keep
proposing. Afterwards each voter should ``qbft_discardValidatorVote`` so it does not keep
voting for a settled change.

``plan_vote`` checks the change and says how many votes it needs; ``curl_commands`` prints
the calls for an operator to run, ``cast_votes`` performs them, ``wait_for_change`` polls
``qbft_getValidatorsByBlockNumber`` until the change shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from node_config.network.errors import NetworkConfigError
from node_config.network.extradata import normalize_address
from node_config.network.generator import BFT_VALIDATORS_MIN

RPC_TIMEOUT_S_DEFAULT = 5.0
endpoints_max = 64
wait_timeout_s_max = 3600.0


class RpcError(NetworkConfigError):
    """A JSON-RPC call failed: unreachable node, HTTP error, or a JSON-RPC error object."""

    def __init__(self, url: str, method: str, reason: str) -> None:
        super().__init__("rpc_failed", f"{method} at {url}: {reason}")
        self.url = url
        self.method = method
        self.reason = reason


Transport = Callable[[str, dict[str, Any], float], Any]


def _http_transport(url: str, payload: dict[str, Any], timeout_s: float) -> Any:
    response = httpx.post(url, json=payload, timeout=timeout_s)
    response.raise_for_status()
    return response.json()


def rpc_call(
    url: str,
    method: str,
    params: list[Any],
    *,
    timeout_s: float = RPC_TIMEOUT_S_DEFAULT,
    transport: Transport = _http_transport,
) -> Any:
    """One JSON-RPC 2.0 call; the ``result`` or ``RpcError``."""
    payload = {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}
    try:
        body = transport(url, payload, timeout_s)
    except httpx.HTTPStatusError as exc:
        raise RpcError(url, method, f"HTTP {exc.response.status_code}") from None
    except httpx.HTTPError as exc:
        raise RpcError(url, method, f"unreachable ({type(exc).__name__})") from None
    except ValueError:
        raise RpcError(url, method, "the answer is not JSON") from None
    if not isinstance(body, dict):
        raise RpcError(url, method, "the answer is not a JSON-RPC object")
    if body.get("error") is not None:
        error = body["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise RpcError(url, method, f"error: {message}")
    if "result" not in body:
        raise RpcError(url, method, "the answer has no result")
    return body["result"]


def get_validators(
    url: str, block: str = "latest", *, transport: Transport = _http_transport
) -> list[str]:
    """``qbft_getValidatorsByBlockNumber``: the validator set at ``block``."""
    result = rpc_call(url, "qbft_getValidatorsByBlockNumber", [block], transport=transport)
    if not isinstance(result, list):
        raise RpcError(url, "qbft_getValidatorsByBlockNumber", "the result is not a list")
    return [normalize_address(str(a)) for a in result]


def get_pending_votes(url: str, *, transport: Transport = _http_transport) -> dict[str, bool]:
    """``qbft_getPendingVotes``: this node's own proposals, address -> add (True) / drop."""
    result = rpc_call(url, "qbft_getPendingVotes", [], transport=transport)
    if not isinstance(result, dict):
        raise RpcError(url, "qbft_getPendingVotes", "the result is not an object")
    return {normalize_address(str(k)): bool(v) for k, v in result.items()}


@dataclass(frozen=True)
class VotePlan:
    """A validator change and the calls that make it."""

    candidate: str
    add: bool
    endpoints: tuple[str, ...]  # RPC URLs of validator nodes, one vote each
    current_validators: tuple[str, ...] | None  # None: not known (not queried)
    warnings: tuple[str, ...] = ()

    @property
    def votes_needed(self) -> int | None:
        """More than half of the current validators must vote alike."""
        if self.current_validators is None:
            return None
        return len(self.current_validators) // 2 + 1

    @property
    def method(self) -> str:
        return "qbft_proposeValidatorVote"

    @property
    def params(self) -> list[Any]:
        return [self.candidate, self.add]

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "action": "add" if self.add else "remove",
            "method": self.method,
            "params": self.params,
            "endpoints": list(self.endpoints),
            "current_validators": (
                list(self.current_validators) if self.current_validators is not None else None
            ),
            "votes_needed": self.votes_needed,
            "warnings": list(self.warnings),
            "curl": curl_commands(self),
        }


def plan_vote(
    candidate: str,
    *,
    add: bool,
    endpoints: Sequence[str],
    current_validators: Sequence[str] | None = None,
) -> VotePlan:
    """Check a validator change against the current set (when known) and plan its votes."""
    address = normalize_address(candidate)
    urls = tuple(dict.fromkeys(u.strip() for u in endpoints if u.strip()))
    if not urls:
        raise NetworkConfigError("endpoints_none", "no validator RPC endpoint to vote on")
    if len(urls) > endpoints_max:
        raise NetworkConfigError("endpoints_too_many", f"at most {endpoints_max} endpoints")
    warnings: list[str] = []
    current = None
    if current_validators is not None:
        current = tuple(normalize_address(v) for v in current_validators)
        if add and address in current:
            raise NetworkConfigError("vote_pointless", f"{address} is already a validator")
        if not add and address not in current:
            raise NetworkConfigError("vote_pointless", f"{address} is not a validator")
        if not add and len(current) == 1:
            raise NetworkConfigError("vote_refused", "cannot remove the last validator")
        after = len(current) + (1 if add else -1)
        if not add and after < BFT_VALIDATORS_MIN:
            warnings.append(
                f"after removal {after} validator(s) remain: below {BFT_VALIDATORS_MIN}, "
                "QBFT tolerates no faulty validator"
            )
        needed = len(current) // 2 + 1
        if len(urls) < needed:
            warnings.append(
                f"{len(urls)} endpoint(s) given, {needed} votes needed: the change will wait "
                "for votes cast elsewhere"
            )
    return VotePlan(
        candidate=address,
        add=add,
        endpoints=urls,
        current_validators=current,
        warnings=tuple(warnings),
    )


def _payload(method: str, params: list[Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})


def curl_commands(plan: VotePlan) -> list[str]:
    """The calls as shell commands, one per validator endpoint."""
    body = _payload(plan.method, plan.params)
    return [
        f"curl -s -X POST -H 'Content-Type: application/json' --data '{body}' {url}"
        for url in plan.endpoints
    ]


def discard_commands(candidate: str, endpoints: Sequence[str]) -> list[str]:
    body = _payload("qbft_discardValidatorVote", [normalize_address(candidate)])
    return [
        f"curl -s -X POST -H 'Content-Type: application/json' --data '{body}' {url}"
        for url in endpoints
    ]


@dataclass(frozen=True)
class VoteResult:
    endpoint: str
    ok: bool
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "ok": self.ok, "error": self.error}


def cast_votes(
    plan: VotePlan,
    *,
    timeout_s: float = RPC_TIMEOUT_S_DEFAULT,
    transport: Transport = _http_transport,
) -> list[VoteResult]:
    """Call ``qbft_proposeValidatorVote`` on every endpoint; one endpoint failing does not
    stop the others (the change passes once a majority has voted)."""
    return _call_each(plan.endpoints, plan.method, plan.params, timeout_s, transport)


def discard_votes(
    candidate: str,
    endpoints: Sequence[str],
    *,
    timeout_s: float = RPC_TIMEOUT_S_DEFAULT,
    transport: Transport = _http_transport,
) -> list[VoteResult]:
    """``qbft_discardValidatorVote`` on every endpoint, once the change has shown."""
    address = normalize_address(candidate)
    return _call_each(endpoints, "qbft_discardValidatorVote", [address], timeout_s, transport)


def _call_each(
    endpoints: Sequence[str],
    method: str,
    params: list[Any],
    timeout_s: float,
    transport: Transport,
) -> list[VoteResult]:
    results = []
    for url in endpoints:
        try:
            accepted = rpc_call(url, method, params, timeout_s=timeout_s, transport=transport)
        except RpcError as exc:
            results.append(VoteResult(url, False, exc.reason))
            continue
        if accepted is True:
            results.append(VoteResult(url, True))
        else:
            results.append(VoteResult(url, False, f"the node answered {accepted!r}"))
    return results


@dataclass
class WaitOutcome:
    changed: bool
    validators: list[str] = field(default_factory=list)
    waited_s: float = 0.0


def wait_for_change(
    plan: VotePlan,
    *,
    timeout_s: float = 60.0,
    poll_s: float = 1.0,
    transport: Transport = _http_transport,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Poll the first reachable endpoint until the candidate is in (add) or out (remove)."""
    timeout_s = min(timeout_s, wait_timeout_s_max)
    start = clock()
    validators: list[str] = []
    while True:
        for url in plan.endpoints:
            try:
                validators = get_validators(url, transport=transport)
                break
            except RpcError:
                continue
        if (plan.candidate in validators) == plan.add and validators:
            return WaitOutcome(True, validators, clock() - start)
        if clock() - start >= timeout_s:
            return WaitOutcome(False, validators, clock() - start)
        sleep(poll_s)
