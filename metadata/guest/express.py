"""The express lane: a warm read answered as the request is parsed, without aiohttp's
request, handler task or response objects.

Most of what a guest asks has been answered before at its instance's current generation
(HotAnswers), or its slices are in the in-process cache (the rest of a new instance's boot
after its one statement): it is rendered here then, once, and kept. Such a read is answered
here with the same checks as the full chain
(service.py), in the same order: who is asking, the rendered answer of their generation,
the session token, the rate limit; then the statistics row. Who is asking is known at once
with memory:// coherence (identity.known_caller); with Redis it takes the round trip that
every request of the tick shares (identity.caller_soon), and the answer is written when it
returns: the exactness check per request is kept. Anything this lane
does not handle, or that would be refused, goes the full way, which decides (and answers
errors): a query string, a method but GET, a body, If-None-Match, a forwarded token PUT,
an unknown caller, slices not cached in this process, an empty rate-limit bucket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from multidict import CIMultiDictProxy

from metadata.errors import MetadataError
from metadata.guest.identify import Caller
from metadata.guest.render import finish
from metadata.guest.wire import DateLine, response_bytes
from metadata.mget_batch import Values

if TYPE_CHECKING:
    from metadata.guest.service import GuestService

# What only the full chain handles: conditional reads (304) and oversize requests (431).
_FULL_CHAIN_HEADERS = ("If-None-Match",)


class ExpressLane:
    def __init__(self, guest: GuestService, max_headers: int, max_path: int) -> None:
        self._identity = guest.identity
        self._guard = guest.guard
        self._hot = guest.hot
        self._render_cached = guest.render_cached
        self._stats = guest.services.stats
        self._versions = guest.matcher.version_listing_paths
        self._max_headers = max_headers
        self._max_path = max_path
        self._date = DateLine()
        # Requests answered here (the full chain's are the rest of the statistics' hits).
        self.answered = 0

    def answer(
        self, method: str, path: str, headers: CIMultiDictProxy[str], peer: str
    ) -> bytes | Deferred | None:
        """The whole response for a warm GET; a Deferred one when who is asking takes the
        shared coherence's round trip (Redis); None: take the full chain."""
        started = time.perf_counter()
        if (
            method != "GET"
            or "?" in path
            or len(path) > self._max_path
            or len(headers) > self._max_headers
            or path in self._versions
            or path.endswith("/api/token")
            or _FULL_CHAIN_HEADERS[0] in headers
        ):
            return None
        identity = self._identity
        caller = identity.known_caller(peer, headers)
        if caller is not None:
            return self._answer_for(caller, path, headers, peer, started)
        soon = identity.caller_soon(peer, headers)
        if soon is None:
            return None
        future, decide = soon

        def finish(values: Values) -> bytes | None:
            caller = decide(values)
            return (
                None if caller is None else self._answer_for(caller, path, headers, peer, started)
            )

        return Deferred(future, finish)

    def _answer_for(
        self,
        caller: Caller,
        path: str,
        headers: CIMultiDictProxy[str],
        peer: str,
        started: float,
    ) -> bytes | None:
        hot = self._hot.get(caller.instance_uuid, caller.generation, path)
        if hot is None:
            hot = self._render_cached(caller, path)
        if hot is None or hot.head is None:
            return None
        try:
            self._guard.check_token_of(
                headers, peer, caller, hot.stats_key[0], hot.token_by_default
            )
            self._guard.admit(caller)
        except MetadataError:
            return None
        body = finish(hot.answer)
        self._stats.record(
            hot.stats_key,
            cache_hit=True,
            statements=0,
            nbytes=len(body),
            seconds=time.perf_counter() - started,
        )
        self.answered += 1
        return response_bytes(hot.head, self._date, body)


@dataclass(frozen=True, slots=True)
class Deferred:
    """An answer that waits for the shared coherence's round trip: `complete` its values."""

    future: asyncio.Future[Values]
    complete: Callable[[Values], bytes | None]
