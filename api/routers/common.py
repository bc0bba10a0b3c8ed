"""Small helpers shared by the routers: idempotency keys, cursors, replay status."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query, Response

from api.problems import ApiError

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="Makes the request safe to retry; same as the body's `id`",
    ),
]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
After = Annotated[str | None, Query(description="Cursor from the previous page's next_cursor")]


def client_id(body_id: str | None, header: str | None) -> str:
    """The request's idempotency key: the body's `id` or the Idempotency-Key header."""
    if body_id is not None and header is not None and body_id != header:
        raise ApiError(
            "idempotency_key_mismatch", "the Idempotency-Key header and the body's id differ"
        )
    key = body_id if body_id is not None else header
    if not key:
        raise ApiError(
            "idempotency_key_missing",
            "money-moving requests need an id: the body's `id` or an Idempotency-Key header",
        )
    return key


def mark_replay(response: Response, created: bool) -> None:
    """201 for a new resource; 200 and Idempotent-Replayed for a replayed request."""
    response.status_code = 201 if created else 200
    if not created:
        response.headers["Idempotent-Replayed"] = "true"


def int_cursor(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit():
        raise ApiError("invalid_cursor", "after must be a cursor returned by a previous page")
    return int(after)
