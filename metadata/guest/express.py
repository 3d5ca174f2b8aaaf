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
returns: the exactness check per request is kept.

A caller not known yet (a new instance's first requests, which a guest's agents send at
once) is identified here by identity's own `identify`, started by the first of them; the
others with the same identity wait for that one read instead of each taking the full
chain, and all are answered when it lands (the read brings the slices the boot goes on to
need). What that read cost, or the error it ended in, goes with any of them the lane then
passes on (`Handover`), so that the full chain neither reads again nor loses the count.

Anything this lane does not handle, or that would be refused, goes the full way, which
decides (and answers errors): a query string, a method but GET, a body, If-None-Match, a
forwarded token PUT, slices not cached in this process, an empty rate-limit bucket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDictProxy

from metadata.errors import MetadataError
from metadata.guest.handover import Handover
from metadata.guest.identify import Caller, SharedKey
from metadata.guest.limits import ConcurrencyGate
from metadata.guest.render import finish
from metadata.guest.wire import DateLine, answer_head, response_bytes
from metadata.loader import RequestCost

if TYPE_CHECKING:
    from metadata.guest.service import GuestService

LOG = logging.getLogger(__name__)

# What only the full chain handles: conditional reads (304) and oversize requests (431).
_FULL_CHAIN_HEADERS = ("If-None-Match",)
# A version listing's head, as the full chain's `web.Response(content_type="text/plain")`.
_LISTING_HEAD = answer_head("text/plain", None)


# What a held request comes to: its answer, or the full chain (with a Handover, or not).
Completion = bytes | Handover | None


@dataclass(frozen=True, slots=True)
class Deferred:
    """An answer that waits for `future` (the shared coherence's round trip, or identity's
    read); `complete` is called with it once it is done, and whether the lane may still
    answer (not when the connection went, or the listener drains)."""

    future: asyncio.Future[Any]
    complete: Callable[[asyncio.Future[Any], bool], Completion]


def _failed(future: asyncio.Future[Any]) -> bool:
    return future.cancelled() or future.exception() is not None


class ExpressLane:
    def __init__(
        self,
        guest: GuestService,
        max_headers: int,
        max_path: int,
        gate: ConcurrencyGate | None = None,
    ) -> None:
        """`gate`: an identity read the lane starts holds one of its slots, as the full
        chain's requests do."""
        self._gate = gate
        self._boot_slices = guest.boot_slices
        self._identity = guest.identity
        self._guard = guest.guard
        self._hot = guest.hot
        self._render_cached = guest.render_cached
        self._stats = guest.services.stats
        self._versions = guest.matcher.version_listing_paths
        self._match_path = guest.matcher.match_path
        self._max_headers = max_headers
        self._max_path = max_path
        self._date = DateLine()
        # identity's reads the lane started, by what they identify (shared_key)
        self._identifying: dict[SharedKey, asyncio.Task[Caller]] = {}
        # Requests answered here (the full chain's are the rest of the statistics' hits).
        self.answered = 0

    def answer(
        self, method: str, path: str, headers: CIMultiDictProxy[str], peer: str
    ) -> bytes | Deferred | None:
        """The whole response for a warm GET; a Deferred one when who is asking takes the
        shared coherence's round trip (Redis) or a database read; None: the full chain."""
        started = time.perf_counter()
        if (
            method != "GET"
            or "?" in path
            or len(path) > self._max_path
            or len(headers) > self._max_headers
            or path.endswith("/api/token")
            or _FULL_CHAIN_HEADERS[0] in headers
        ):
            return None
        if path in self._versions:
            return self._version_listing(path, started)
        identity = self._identity
        caller = identity.known_caller(peer, headers)
        if caller is not None:
            return self._answer_for(caller, path, headers, peer, started)
        soon = identity.caller_soon(peer, headers)
        if soon is None:
            return self._after_identity_read(path, headers, peer, started)
        future, decide = soon

        def complete(future: asyncio.Future[Any], answerable: bool) -> Completion:
            # A failed round trip: the full chain asks again, and marks Redis down.
            if not answerable or _failed(future):
                return None
            caller = decide(future.result())
            return (
                None if caller is None else self._answer_for(caller, path, headers, peer, started)
            )

        return Deferred(future, complete)

    def _version_listing(self, path: str, started: float) -> bytes:
        """`/`, `/openstack`: no instance data, so no identity, token or rate limit, as in
        the full chain (which answers them before identity, as Nova does)."""
        destination = self._match_path(path)
        body = destination.listing
        self._stats.record(
            destination.stats_key,
            cache_hit=True,
            statements=0,
            nbytes=len(body),
            seconds=time.perf_counter() - started,
        )
        self.answered += 1
        return response_bytes(_LISTING_HEAD, self._date, body)

    def _after_identity_read(
        self, path: str, headers: CIMultiDictProxy[str], peer: str, started: float
    ) -> Deferred | None:
        """A caller not known yet: identity's read for it, the one in flight for the same
        identity or one started now, and the answer when it lands. None: the full chain."""
        identity = self._identity
        key = identity.shared_key(peer, headers)
        if key is None:
            return None
        reading = self._identifying.get(key)
        cost = None  # the requests joining a read in flight cost nothing of their own
        if reading is None:
            gate = self._gate
            if gate is not None and not gate.try_acquire():
                return None
            cost = RequestCost()
            reading = asyncio.ensure_future(self._identify(key, peer, headers, cost, path))
            self._identifying[key] = reading

        def complete(future: asyncio.Future[Any], answerable: bool) -> Completion:
            if future.cancelled():
                return Handover(cost)
            failure = future.exception()
            if failure is not None:
                # The same identity gives the same error: the full chain answers it.
                return Handover(cost, failure if isinstance(failure, MetadataError) else None)
            # The one that started the read has its caller; the others' headers are
            # checked as any warm read's (a signature exactly as verified).
            caller = future.result() if cost is not None else identity.known_caller(peer, headers)
            answer = None
            if caller is not None and answerable:
                try:
                    answer = self._answer_for(caller, path, headers, peer, started, cost)
                except Exception:
                    # The full chain answers it (and its error, if it is one), counted.
                    LOG.exception("express lane: answering %s failed", path)
            return answer if answer is not None or cost is None else Handover(cost)

        return Deferred(reading, complete)

    async def _identify(
        self,
        key: SharedKey,
        peer: str,
        headers: CIMultiDictProxy[str],
        cost: RequestCost,
        path: str,
    ) -> Caller:
        try:
            return await self._identity.identify(
                peer, headers, cost, lambda: self._boot_slices(path)
            )
        finally:
            del self._identifying[key]
            if self._gate is not None:
                self._gate.release()

    def _answer_for(
        self,
        caller: Caller,
        path: str,
        headers: CIMultiDictProxy[str],
        peer: str,
        started: float,
        cost: RequestCost | None = None,
    ) -> bytes | None:
        """`cost`: of the identity read this request started (None: it read nothing)."""
        hot = self._hot.get(caller.instance_uuid, caller.generation, path)
        if hot is None:
            hot = self._render_cached(caller, path, cost is not None and cost.cold)
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
        statements = 0 if cost is None else cost.db_statements
        self._stats.record(
            hot.stats_key,
            cache_hit=statements == 0,
            statements=statements,
            nbytes=len(body),
            seconds=time.perf_counter() - started,
        )
        self.answered += 1
        return response_bytes(hot.head, self._date, body)
