"""The one guest write: `POST /openstack/<version>/password`, set once (as Nova's)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from metadata.errors import BadRequest, RequestTimeout

MAX_PASSWORD_BYTES = 1020  # Nova: 4 chunks of 255 characters


async def read_password(request: web.BaseRequest, body_timeout: float) -> str:
    """The password in the body, bounded in size and in time, or a 4xx."""
    if request.content_length is not None and request.content_length > MAX_PASSWORD_BYTES:
        raise BadRequest(f"password is over {MAX_PASSWORD_BYTES} bytes")
    try:
        body = await asyncio.wait_for(request.read(), body_timeout)
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive in time") from None
    if len(body) > MAX_PASSWORD_BYTES:
        raise BadRequest(f"password is over {MAX_PASSWORD_BYTES} bytes")
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise BadRequest("password must be UTF-8 text") from None
