"""The admin API described as OpenAPI 3, served at `GET /v1/openapi.json` on the admin
listener (behind the bearer token, like every route but the health checks)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSON = "application/json"
ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "bad request",
        401: "bearer token missing or wrong",
        404: "no such thing",
        405: "method not allowed",
        412: "If-Match does not match",
        409: "conflict",
        413: "body too large",
        503: "backend unavailable",
    }
    return {str(s): _json(ERROR, reasons[s]) for s in (401, 405, *statuses)}


HISTORY_ENTRY = {
    "type": "object",
    "required": ["version", "changed_at", "changed_by", "action", "size", "sha256"],
    "properties": {
        "version": {"type": "integer"},
        "changed_at": {"type": "string"},
        "changed_by": {"type": "string"},
        "action": {"type": "string"},
        "size": {"type": "integer"},
        "sha256": {"type": "string", "nullable": True},
        "etag": {"type": "string", "nullable": True},
        "restorable": {"type": "boolean"},
        "restored_from": {"type": "integer", "nullable": True},
    },
}
UUID_PARAM = {"name": "uuid", "in": "path", "required": True, "schema": {"type": "string"}}
INSTANCE = {"$ref": "#/components/schemas/Instance"}
NO_CONTENT = {"204": {"description": "done"}}
RAW_USER_DATA = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
}
HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}
PATH_STATS = {
    "type": "object",
    "required": [
        "path",
        "hits",
        "cache_hits",
        "cache_misses",
        "db_statements",
        "bytes",
        "p50_ms",
        "p95_ms",
        "p99_ms",
    ],
    "properties": {
        "path": {"type": "string"},
        "hits": {"type": "integer"},
        "cache_hits": {"type": "integer"},
        "cache_misses": {"type": "integer"},
        "db_statements": {"type": "integer"},
        "bytes": {"type": "integer"},
        "p50_ms": {"type": "number"},
        "p95_ms": {"type": "number"},
        "p99_ms": {"type": "number"},
    },
}


def _health(summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": [],
            "responses": {
                "200": _json(HEALTH, "ok"),
                "503": _json(HEALTH, "not ready"),
                "405": _json(ERROR, "method not allowed"),
            },
        }
    }


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "metadata admin API", "version": "1"},
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                # The full document is validated by the server (400 names the field).
                "Instance": {
                    "type": "object",
                    "required": ["uuid"],
                    "properties": {
                        "uuid": {"type": "string"},
                        "name": {"type": "string"},
                        "project_id": {"type": "string"},
                    },
                },
            },
        },
        "paths": {
            "/healthz": _health("liveness"),
            "/readyz": _health("readiness: database and cache answer"),
            "/v1/instances": {
                "get": {
                    "summary": "page through instances",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                        {"name": "marker", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["instances", "next_marker"],
                                "properties": {
                                    "instances": {"type": "array", "items": INSTANCE},
                                    "next_marker": {"type": "string", "nullable": True},
                                },
                            },
                            "a page",
                        ),
                        **_errors(400),
                    },
                }
            },
            "/v1/instances/{uuid}": {
                "parameters": [UUID_PARAM],
                "get": {
                    "summary": "read an instance document",
                    "responses": {"200": _json(INSTANCE, "the document"), **_errors(404)},
                },
                "put": {
                    "summary": "create or replace an instance document",
                    "requestBody": {"required": True, "content": {JSON: {"schema": INSTANCE}}},
                    "responses": {
                        "200": _json(INSTANCE, "replaced"),
                        "201": _json(INSTANCE, "created"),
                        **_errors(400, 404, 413),
                    },
                },
                "delete": {
                    "summary": "delete an instance",
                    "responses": {**NO_CONTENT, **_errors(404)},
                },
            },
            "/v1/instances/{uuid}/user-data": {
                "parameters": [UUID_PARAM],
                "get": {
                    "summary": "the raw user data",
                    "responses": {
                        "200": {"description": "raw bytes", **RAW_USER_DATA},
                        **_errors(404),
                    },
                },
                "put": {
                    "summary": "replace the user data with the raw body",
                    "requestBody": {"required": True, **RAW_USER_DATA},
                    "responses": {**NO_CONTENT, **_errors(400, 404, 412, 413)},
                },
                "delete": {
                    "summary": "remove the user data",
                    "responses": {**NO_CONTENT, **_errors(404)},
                },
            },
            "/v1/instances/{uuid}/user-data/history": {
                "parameters": [UUID_PARAM],
                "get": {
                    "summary": "the changes of the user data, newest first",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["history"],
                                "properties": {
                                    "history": {"type": "array", "items": HISTORY_ENTRY}
                                },
                            },
                            "history",
                        ),
                        **_errors(400, 404),
                    },
                },
            },
            "/v1/instances/{uuid}/user-data/history/{version}/restore": {
                "parameters": [
                    UUID_PARAM,
                    {
                        "name": "version",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "post": {
                    "summary": "make a kept version the current user data again",
                    "responses": {
                        "200": _json(HISTORY_ENTRY, "the change this recorded"),
                        **_errors(404, 409),
                    },
                },
            },
            "/v1/instances/{uuid}/preview/{path}": {
                "parameters": [
                    UUID_PARAM,
                    {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "get": {
                    "summary": "exactly what the instance would be served at a guest path "
                    "(X-Metadata-Status: the status the guest would get)",
                    "responses": {"200": {"description": "the guest's body"}, **_errors(404)},
                },
            },
            "/v1/instances/{uuid}/config-drive": {
                "parameters": [UUID_PARAM],
                "get": {
                    "summary": "the instance's config drive: an ISO 9660 image labelled config-2",
                    "responses": {
                        "200": {
                            "description": "the image",
                            "content": {
                                "application/x-iso9660-image": {
                                    "schema": {"type": "string", "format": "binary"}
                                }
                            },
                        },
                        **_errors(404, 409),
                    },
                },
            },
            "/v1/waiters": {
                "get": {
                    "summary": "guests waiting for a user-data change on this replica",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["total", "max_total"],
                                "properties": {
                                    "total": {"type": "integer"},
                                    "max_total": {"type": "integer"},
                                },
                            },
                            "waiters",
                        ),
                        **_errors(),
                    },
                }
            },
            "/v1/stats/paths": {
                "get": {
                    "summary": "per-path statistics, hottest first",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["paths"],
                                "properties": {"paths": {"type": "array", "items": PATH_STATS}},
                            },
                            "statistics",
                        ),
                        **_errors(),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus text",
                    "responses": {
                        "200": {
                            "description": "metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(),
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3"), **_errors()},
                }
            },
        },
    }


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=DOCUMENT, content_type=JSON)


DOCUMENT = orjson.dumps(build_document())


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get("/v1/openapi.json", get_openapi)
