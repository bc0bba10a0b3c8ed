"""The API's contract with its clients: every error documented as RFC 9457 problem+json,
every operation with examples, and input no backend can store refused up front.

`install_conformance(app)` post-processes the generated OpenAPI document once:
- each operation lists the problem responses it can give (400 and 413 with a body, 401,
  403, 404, 409, 422, 429, 500, 503), with the problem schema and an example, instead of
  FastAPI's own 422;
- each request body and success response without an example gets one, built from the
  schema (field examples first), so that every route has examples.
It also adds a middleware refusing NUL characters (PostgreSQL cannot store them in text)
with a 422 problem instead of a 500.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, problem

PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable and machine-readable. "
    "Some problems add members (e.g. `errors`, `limit`, `retry_after_s`).",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:corridor:problem:invalid_amount"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}

_PROBLEMS: Final[dict[str, tuple[str, str, str]]] = {
    # status: (code of the example, description, example detail)
    "400": ("http_error", "The body could not be read", "There was an error parsing the body"),
    "401": ("unauthenticated", "No valid API key", "send an API key as `Authorization: Bearer`"),
    "403": ("forbidden", "The key's role may not do this", "this needs the role operator"),
    "404": ("wallet_not_found", "Not found, or not yours", "no wallet w_123"),
    "409": ("idempotency_conflict", "Conflicts with an earlier request", "id already used"),
    "413": ("payload_too_large", "Request body too large", "bodies are limited to 4194304 B"),
    "422": ("validation_error", "Invalid request", "amount.currency: Field required"),
    "429": ("rate_limited", "Too many requests for this key", "retry in 1 s"),
    "500": ("internal_error", "Unexpected error (nothing internal is shown)", "an error"),
    "503": ("source_unavailable", "A dependency (chain, rate source) is unavailable", "retry"),
}
SCANNED_BODY_BYTES_MAX: Final = 4 * 1024 * 1024


def _problem_response(status: str) -> dict[str, Any]:
    code, description, detail = _PROBLEMS[status]
    response: dict[str, Any] = {
        "description": description,
        "content": {
            PROBLEM_JSON: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": {
                    "type": f"urn:corridor:problem:{code}",
                    "title": code.replace("_", " ").capitalize(),
                    "status": int(status),
                    "detail": detail,
                    "code": code,
                },
            }
        },
    }
    if status == "429":
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return response


def example_of(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A plausible value of a JSON schema: declared examples first, then by type."""
    if depth > 8:
        return None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return example_of(components.get(name, {}), components, depth + 1)
    for key in ("example", "default"):
        if key in schema and schema[key] is not None:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_of(options[0], components, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {
            name: example_of(sub, components, depth + 1)
            for name, sub in properties.items()
            if name in schema.get("required", properties)
        }
    if kind == "array":
        return [example_of(schema.get("items", {}), components, depth + 1)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if kind == "string":
        return {"date-time": "2026-11-25T10:00:00Z", "uri": "https://example.com"}.get(
            schema.get("format", ""), "string"
        )
    return None


def conform(document: dict[str, Any]) -> dict[str, Any]:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            # 409 also on reads: e.g. a batch asked for before it is settled.
            statuses = ["401", "403", "404", "409", "422", "429", "500", "503"]
            if "requestBody" in operation:
                statuses += ["400", "413"]  # 400: a body that is not even text
            for status in statuses:
                responses[status] = _problem_response(status)
            # An idempotent request sent again is answered 200 with the original result.
            headers = {p.get("name", "").lower() for p in operation.get("parameters", [])}
            if "idempotency-key" in headers and "201" in responses and "200" not in responses:
                responses["200"] = {
                    **responses["201"],
                    "description": "A replay of an earlier request with the same id",
                }
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                if "example" not in media and "examples" not in media:
                    media["example"] = example_of(media.get("schema", {}), components)
            for status, response in responses.items():
                if not status.startswith("2"):
                    continue
                for media in response.get("content", {}).values():
                    if "example" not in media and "examples" not in media:
                        media["example"] = example_of(media.get("schema", {}), components)
    return document


def _has_nul(text: str) -> bool:
    return "\x00" in text


def install_conformance(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = conform(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    openapi_version=app.openapi_version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    app.add_middleware(RefuseNul)


class RefuseNul:
    """Plain ASGI middleware (no per-request task or stream, unlike BaseHTTPMiddleware):
    a 422 problem for a NUL in the path, the query or a body of known size."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, query = scope["path"], scope.get("query_string", b"").decode("latin-1")
        if _has_nul(path) or _has_nul(unquote(query)):
            await self._refuse(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        # Larger or unsized bodies are the body-size limit's business, not read here.
        sized = length.isdigit() and int(length) <= SCANNED_BODY_BYTES_MAX
        if not sized or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = bytearray()
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if b"\x00" in body or b"\\u0000" in body:
            await self._refuse(scope, receive, send)
            return
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            422,
            "invalid_characters",
            "NUL characters are not accepted anywhere in a request",
            scope["path"],
        )
        await response(scope, receive, send)
