"""RFC 9457 problem details: every error the API returns, with a stable `code`.

One place maps the domain's error codes to HTTP statuses, so routers only raise.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fx.currency import CurrencyError
from fx.errors import FxError
from settlement.chain.errors import ChainError, ChainRevertError
from settlement.errors import LedgerError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("corridor.api")

_STATUS_BY_CODE = {
    "unauthenticated": 401,
    "forbidden": 403,
    "idempotency_conflict": 409,
    "alias_taken": 409,
    "participant_exists": 409,
    "transfer_not_pending": 409,
    "pending_expired": 409,
    "quote_used": 409,
    "quote_expired": 409,
    "quote_foreign": 404,
    "rate_limited": 429,
    "payload_too_large": 413,
    "source_unavailable": 503,
    "no_fresh_rate": 503,
    # step-up confirmation and webhooks (issue 6)
    "step_up_required": 403,
    "step_up_invalid_signature": 403,
    "step_up_expired": 403,
    "step_up_replayed": 409,
    "delivery_not_finished": 409,
    "too_many_subscriptions": 409,
}


class ApiError(Exception):
    """An error raised by the HTTP layer itself (authentication, roles, headers)."""

    def __init__(self, code: str, detail: str, status: int | None = None, **extra: Any):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.extra = extra


def status_for(code: str) -> int:
    if code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[code]
    if code.endswith("_not_found"):
        return 404
    return 422


def problem(
    status: int, code: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:corridor:problem:{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    headers = {}
    if "retry_after_s" in extra:
        headers["Retry-After"] = str(extra["retry_after_s"])
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> JSONResponse:
        return problem(status_for(exc.code), exc.code, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(CurrencyError)
    async def _currency(request: Request, exc: CurrencyError) -> JSONResponse:
        return problem(422, exc.code, exc.detail, request.url.path)

    @app.exception_handler(FxError)
    async def _fx(request: Request, exc: FxError) -> JSONResponse:
        return problem(status_for(exc.code), exc.code, exc.detail, request.url.path)

    @app.exception_handler(ChainError)
    async def _chain(request: Request, exc: ChainError) -> JSONResponse:
        # A revert is a refusal by the contract; anything else means the chain is not
        # reachable or not answering now: try again later.
        status = 422 if isinstance(exc, ChainRevertError) else 503
        return problem(status, exc.code, str(exc), request.url.path)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        status = exc.status or status_for(exc.code)
        return problem(status, exc.code, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "location": [str(part) for part in error.get("loc", ())],
                "message": error.get("msg", ""),
            }
            for error in exc.errors()
        ]
        first = errors[0] if errors else {"location": [], "message": "invalid request"}
        detail = f"{'.'.join(first['location'])}: {first['message']}"
        return problem(422, "validation_error", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail), request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its trace for the operator; the client learns nothing internal.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "internal_error", "an unexpected error occurred", request.url.path)
