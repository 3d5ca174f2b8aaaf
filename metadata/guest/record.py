"""Record: one request's statistics row (keyed by the path's template, never the raw
path) and, when the access log is on, what its line says of the request."""

from __future__ import annotations

import time

from aiohttp import web

from metadata.guest.identify import Caller
from metadata.loader import RequestCost
from metadata.logs import GUEST_ACCESS, GuestAccess
from metadata.stats import Statistics, StatsKey


class Recorder:
    def __init__(self, stats: Statistics, access_log: bool) -> None:
        self.stats = stats
        # Only with the access log on are requests annotated for it (metadata/logs.py).
        self.access_log = access_log

    def record(
        self,
        request: web.BaseRequest,
        key: StatsKey,
        caller: Caller | None,
        cost: RequestCost,
        started: float,
        nbytes: int,
        error: bool = False,
    ) -> None:
        statements = cost.db_statements
        self.stats.record(
            key,
            cache_hit=statements == 0 and not error,
            statements=statements,
            nbytes=nbytes,
            seconds=time.perf_counter() - started,
            error=error,
        )
        if self.access_log:
            instance = None if caller is None else caller.instance_uuid
            request[GUEST_ACCESS] = GuestAccess(
                key[0], key[1], instance, statements == 0, statements
            )
