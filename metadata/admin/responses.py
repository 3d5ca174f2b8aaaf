"""The admin API's JSON answer, shared by its routes and its statistics endpoint."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")
