"""The operator API on its own listener: instance documents, user data, health.

Which routes need the bearer token is decided here, once, when the app is assembled.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from metadata.admin.config_drive import add_config_drive_route
from metadata.admin.dashboard import DASHBOARD_PATH, add_dashboard_route
from metadata.admin.metrics import add_stats_routes
from metadata.admin.openapi import add_openapi_route
from metadata.admin.preview import add_preview_routes
from metadata.admin.responses import json_response
from metadata.document import document_to_json, normalise_uuid, parse_document
from metadata.errors import (
    BadRequest,
    Conflict,
    InvalidDocument,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from metadata.http_errors import error_middleware
from metadata.nova.source import nova_document
from metadata.services import SERVICES, Services
from metadata.user_data_versions import UserDataChange, etag_matches, etag_of

# The dashboard page holds no data (it fetches everything with the token it asks for), so
# it may be opened without one.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", DASHBOARD_PATH})
# The name of the admin token a request presented: history says who changed what.
TOKEN_NAME = web.RequestKey("token_name", str)
MAX_PAGE = 1000
DEFAULT_HISTORY_PAGE = 100


def token_name(tokens: Mapping[str, str], header: str | None) -> str | None:
    """The name of the token presented, compared in constant time against every one."""
    if not header or not header.startswith("Bearer "):
        return None
    presented = header[len("Bearer ") :].strip().encode("utf-8", "replace")
    found = None
    for name, secret in tokens.items():
        if hmac.compare_digest(presented, secret.encode()):
            found = name
    return found


def auth_middleware(tokens: Mapping[str, str]) -> Any:
    @web.middleware
    async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS:
            name = token_name(tokens, request.headers.get("Authorization"))
            if name is None:
                raise Unauthorized("a valid bearer token is required")
            request[TOKEN_NAME] = name
        response: web.StreamResponse = await handler(request)
        return response

    return require_token


def _uuid(request: web.Request) -> str:
    try:
        return normalise_uuid(request.match_info["uuid"])
    except InvalidDocument:
        raise NotFound("no such instance: the id is not a UUID") from None


async def _json_body(request: web.Request) -> Any:
    body = await request.read()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


NOVA_OWNS_INSTANCES = "instances come from Nova: change them through Nova's API"


def _refuse_in_nova_mode(services: Services) -> None:
    if services.nova is not None:
        raise Conflict(NOVA_OWNS_INSTANCES)


async def put_instance(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    _refuse_in_nova_mode(services)
    uuid = _uuid(request)
    doc = parse_document(
        await _json_body(request),
        uuid=uuid,
        user_data_max_bytes=services.settings.user_data_max_bytes,
    )
    created = await services.store.put_document(doc, request[TOKEN_NAME])
    saved = await services.store.get_document(uuid)
    return json_response(document_to_json(saved), 201 if created else 200)


async def get_instance(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    uuid = _uuid(request)
    if services.nova is not None:
        doc = await nova_document(services.nova.source, uuid)
    else:
        doc = await services.store.get_document(uuid)
    return json_response(document_to_json(doc))


async def delete_instance(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    _refuse_in_nova_mode(services)
    await services.store.delete_instance(_uuid(request))
    return web.Response(status=204)


async def list_instances(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
    _refuse_in_nova_mode(request.app[SERVICES])
    marker = request.query.get("marker")
    if marker is not None:
        try:
            marker = normalise_uuid(marker)
        except InvalidDocument:
            raise BadRequest("marker must be an instance uuid") from None
    docs, next_marker = await request.app[SERVICES].store.list_documents(limit, marker)
    return json_response(
        {"instances": [document_to_json(d) for d in docs], "next_marker": next_marker}
    )


async def put_user_data(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    uuid = _uuid(request)
    limit = services.settings.user_data_max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"user data is limited to {limit} bytes")
    body = await request.read()
    if len(body) > limit:
        raise PayloadTooLarge(f"user data is limited to {limit} bytes")
    if services.nova is not None:
        # Nova mode: an overlay in our own database, for an instance Nova has.
        if await services.nova.source.read(uuid, frozenset()) is None:
            raise NotFound(f"no instance {uuid}")
        assert services.nova.source.overlay is not None
        await services.nova.source.overlay.ensure_anchor(uuid)
    etag = await services.store.set_user_data(uuid, body, _change(request))
    return web.Response(status=204, headers={"ETag": etag} if etag else None)


def _change(request: web.Request) -> UserDataChange:
    # If-Match is checked inside the write's transaction, under the instance's row lock.
    return UserDataChange(request[TOKEN_NAME], request.headers.get("If-Match"))


async def get_user_data(request: web.Request) -> web.Response:
    user_data = await request.app[SERVICES].store.get_user_data(_uuid(request))
    if user_data.data is None:
        raise NotFound("this instance has no user data")
    etag = etag_of(user_data.data)
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(
        body=user_data.data, content_type="application/octet-stream", headers={"ETag": etag}
    )


async def delete_user_data(request: web.Request) -> web.Response:
    await request.app[SERVICES].store.set_user_data(_uuid(request), None, _change(request))
    return web.Response(status=204)


async def get_user_data_history(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", str(DEFAULT_HISTORY_PAGE)))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
    versions = await request.app[SERVICES].store.user_data_history(_uuid(request), limit)
    return json_response({"history": [v.to_json() for v in versions]})


async def restore_user_data(request: web.Request) -> web.Response:
    try:
        version = int(request.match_info["version"])
    except ValueError:
        raise NotFound("no such version: versions are integers") from None
    recorded = await request.app[SERVICES].store.restore_user_data(
        _uuid(request), version, _change(request)
    )
    return web.Response(
        body=orjson.dumps(recorded.to_json()),
        content_type="application/json",
        headers={"ETag": recorded.etag} if recorded.etag else None,
    )


async def get_waiters(request: web.Request) -> web.Response:
    """Guests waiting for a change on this replica (each replica counts its own)."""
    waiters = request.app[SERVICES].waiters
    return json_response({"total": waiters.total, "max_total": waiters.max_total})


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    problems = await services.readiness_problems()
    nova = {} if services.nova is None else {"nova": services.nova.readiness()}
    if problems:
        return json_response({"status": "unavailable", "problems": problems, **nova}, 503)
    return json_response({"status": "ok", **nova})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/v1/instances", list_instances)
    r.add_put("/v1/instances/{uuid}", put_instance)
    r.add_get("/v1/instances/{uuid}", get_instance)
    r.add_delete("/v1/instances/{uuid}", delete_instance)
    r.add_put("/v1/instances/{uuid}/user-data", put_user_data)
    r.add_get("/v1/instances/{uuid}/user-data", get_user_data)
    r.add_delete("/v1/instances/{uuid}/user-data", delete_user_data)
    r.add_get("/v1/instances/{uuid}/user-data/history", get_user_data_history)
    r.add_post("/v1/instances/{uuid}/user-data/history/{version}/restore", restore_user_data)
    r.add_get("/v1/waiters", get_waiters)
    add_stats_routes(app)
    add_preview_routes(app)
    add_config_drive_route(app)
    add_dashboard_route(app)
    add_openapi_route(app)


def build_admin_app(services: Services) -> web.Application:
    settings = services.settings
    app = web.Application(
        middlewares=[error_middleware(json_errors=True), auth_middleware(services.admin_tokens)],
        client_max_size=2 * 1024 * 1024 + 2 * settings.user_data_max_bytes,
    )
    app[SERVICES] = services
    add_routes(app)
    return app
