"""Log lines: one JSON object per line (or plain text), and the optional access log.

Every record has timestamp, level, logger and message; an access-log record adds the
request's fields. Nothing here ever reads headers, query strings or bodies: tokens,
signatures and user data cannot reach a log line through it, and a guest's raw path is
replaced by the path template it matched (bounded, and not the guest's words).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from metadata.config import Settings

ACCESS_LOGGER = "metadata.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else came in through `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Libraries that log their own machinery at INFO (alembic: the plugins it sets up, the
# dialect it picked, each migration step): heard at DEBUG only. The service says what
# matters in its own words (the schema revision, in metadata/store/migrate.py).
QUIET_LIBRARIES = ("alembic",)


class GuestAccess(NamedTuple):
    """What the guest handler learned about a request, for its access-log line."""

    template: str
    version: str
    instance: str | None
    cache_hit: bool
    db_statements: int


GUEST_ACCESS = web.RequestKey("guest_access", GuestAccess)
# Set on the guest app: its requests are logged by template, never by raw path.
IS_GUEST_APP = web.AppKey("is_guest_app", bool)


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line.update(_extra_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """The classic line, with any extra fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = _extra_fields(record)
        if not extra:
            return text
        return text + " " + " ".join(f"{k}={v}" for k, v in extra.items())


def configure_logging(settings: Settings, log_format: str | None = None) -> None:
    """One handler on the root logger, to standard error; calling again replaces it (a
    spawned worker process configures its own)."""
    handler = logging.StreamHandler(sys.stderr)
    chosen = log_format or settings.log_format
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    quiet = logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)


class AccessLog(AbstractAccessLogger):
    """One line per request, handed to aiohttp as `access_log_class`."""

    _ids = itertools.count(1)
    _prefix = f"{os.getpid():x}"
    is_guest = False

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        # A process-unique id that costs a counter step, not a random draw.
        fields: dict[str, Any] = {
            "request_id": f"{self._prefix}-{next(self._ids):x}",
            "method": request.method,
            "status": response.status,
            "latency_ms": round(time * 1000, 3),
        }
        guest = request.get(GUEST_ACCESS)
        if guest is not None:
            fields.update(
                path_template=guest.template,
                version=guest.version,
                instance_uuid=guest.instance,
                cache_hit=guest.cache_hit,
                db_statements=guest.db_statements,
            )
            where = guest.template
        elif self.is_guest or (
            isinstance(request, web.Request) and request.app.get(IS_GUEST_APP, False)
        ):
            # refused before it matched a path (e.g. an unknown address): no template
            where = "-"
        else:
            where = request.path  # the admin API's own paths; never the query string
            fields["path"] = where
        self.logger.info("%s %s %d", request.method, where, response.status, extra=fields)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class GuestAccessLog(AccessLog):
    """The guest listener's lines: a request refused before it matched a path is logged
    without it (a guest-chosen string is no template)."""

    is_guest = True


def access_logger(settings: Settings) -> logging.Logger | None:
    """What `web.AppRunner(access_log=...)` takes: None turns the access log off."""
    return logging.getLogger(ACCESS_LOGGER) if settings.access_log else None
