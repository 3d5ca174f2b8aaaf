"""The one place where exceptions become HTTP responses, for both listeners.

Guests get short plain text; the admin API gets `{"error": ...}`. An unexpected exception
is logged with a request id and answered 500 with that id only: no traceback leaves us.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from aiohttp import web

from metadata.errors import MetadataError, MethodNotAllowed, ServiceUnavailable, TooManyRequests

log = logging.getLogger(__name__)


def error_response(
    status: int, message: str, *, json_errors: bool, headers: dict[str, str] | None = None
) -> web.Response:
    if json_errors:
        body = orjson.dumps({"error": message})
        content_type = "application/json"
    else:
        body = f"{status} {message}".encode()
        content_type = "text/plain"
    return web.Response(status=status, body=body, content_type=content_type, headers=headers)


def _headers(exc: MetadataError) -> dict[str, str]:
    if isinstance(exc, MethodNotAllowed):
        return {"Allow": ", ".join(exc.allowed)}
    if isinstance(exc, TooManyRequests | ServiceUnavailable):
        return {"Retry-After": str(exc.retry_after)}
    return {}


def response_for(exc: Exception, request: web.BaseRequest, *, json_errors: bool) -> web.Response:
    """The response an exception raised while handling `request` deserves. An HTTPException
    that is not an error (a redirect) is raised again."""
    if isinstance(exc, MetadataError):
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, exc.message)
        return error_response(
            exc.status, exc.message, json_errors=json_errors, headers=_headers(exc)
        )
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
        return error_response(exc.status, exc.reason, json_errors=json_errors, headers=headers)
    request_id = uuid.uuid4().hex[:12]
    log.error(
        "unexpected error, request id %s: %s %s",
        request_id,
        request.method,
        request.path,
        exc_info=exc,
    )
    return error_response(500, f"internal error (request id {request_id})", json_errors=json_errors)


def error_middleware(*, json_errors: bool) -> Any:
    @web.middleware
    async def map_errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except Exception as exc:
            return response_for(exc, request, json_errors=json_errors)

    return map_errors
