"""The guest listener's one entry point: everything between the socket and the guest
service, in one call.

Served by aiohttp's low-level `web.Server`: no application, router, middleware chain or
signals, which the floor measurements put at ~0.7x of the low-level server's rate. The
concerns middlewares would carry are here, in order: count the request for a graceful
drain, refuse oversize requests, take a slot of the concurrency gate (boot-critical paths
first), map exceptions to responses, and close the connection when draining.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from metadata.errors import ServiceUnavailable, TooManyRequests
from metadata.guest.express import ExpressLane
from metadata.guest.guard import is_token_path
from metadata.guest.handover import HANDOVER
from metadata.guest.limits import (
    MAX_HEADERS,
    MAX_PATH_BYTES,
    ConcurrencyGate,
    Overloaded,
    check_request_size,
)
from metadata.guest.protocol import GuestProtocol, GuestServer
from metadata.guest.service import GuestService
from metadata.http_errors import response_for

# Guests send no bodies but the password (1020 bytes): anything larger is refused (413).
GUEST_MAX_BODY = 4096


class Drain:
    """Counts the requests in flight; once draining, every response closes its connection,
    so a keep-alive client cannot hold the listener open with new requests."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.is_draining = False
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self.idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The same for an Application (the admin listener): count, and close when draining."""
        self.enter()
        try:
            response = await handler(request)
            if self.is_draining:
                response.force_close()
            return response
        finally:
            self.leave()

    async def wait_idle(self, grace: float) -> bool:
        """Start draining; whether every request in flight finished within `grace` seconds."""
        self.is_draining = True
        try:
            await asyncio.wait_for(self.idle.wait(), grace)
        except TimeoutError:
            return False
        return True


class GuestEntry:
    def __init__(
        self, guest: GuestService, gate: ConcurrencyGate, drain: Drain | None = None
    ) -> None:
        self.guest = guest
        self.gate = gate
        self.drain = drain
        self.hop_limiter = guest.guard.hop_limiter

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        # A token answer earlier on this connection left a hop limit on its socket.
        self.hop_limiter.restore(request)
        drain = self.drain
        if drain is not None:
            drain.enter()
        try:
            response = await self._answer(request)
            if drain is not None and drain.is_draining:
                response.force_close()
            return response
        finally:
            if drain is not None:
                drain.leave()

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            check_request_size(request)
        except Exception as exc:
            return response_for(exc, request, json_errors=False)
        raw = request.raw_path
        if "?" in raw and "wait_for_change" in raw:
            # A waiting guest holds no slot for minutes: waits have their own bounds
            # (per instance and in total), so they cannot crowd out boots.
            return await self._handle(request)
        gate = self.gate
        try:
            if not gate.try_acquire():
                await self._wait_for_slot(request)
        except Exception as exc:
            return response_for(exc, request, json_errors=False)
        try:
            return await self._handle(request)
        finally:
            gate.release()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self.guest.handle(request)
        except Exception as exc:
            return response_for(exc, request, json_errors=False)

    async def _wait_for_slot(self, request: web.BaseRequest) -> None:
        path = request.raw_path.partition("?")[0]
        try:
            # The token and the paths whose rows say so are served first (tree.py).
            critical = is_token_path(path) or self.guest.matcher.is_boot_critical(path)
            await self.gate.acquire(critical)
        except Overloaded:
            if is_token_path(path):
                # cloud-init reads a 5xx on the token PUT as "metadata disabled" and stops.
                raise TooManyRequests(1, "busy, retry") from None
            raise ServiceUnavailable("busy, retry") from None


def guest_server(entry: GuestEntry, *, express: bool = True, **kwargs: Any) -> web.Server:
    """The low-level server for the guest listener; `kwargs` go to aiohttp's protocol
    (header limits, keep-alive, access log). `express`: warm reads take the express lane
    (off when every request must reach the access log)."""
    loop = asyncio.get_running_loop()
    lane = ExpressLane(entry.guest, MAX_HEADERS, MAX_PATH_BYTES, entry.gate)
    drain, hop_limiter = entry.drain, entry.hop_limiter

    def lane_open() -> bool:
        # Draining: every answer must close its connection. A hop limit left on a socket
        # by a token answer is put back by the full chain before the next answer.
        return express and not (drain is not None and drain.is_draining) and hop_limiter.idle

    def make_request(
        message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        request = web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=GUEST_MAX_BODY
        )
        handover = protocol.take_handover(message) if isinstance(protocol, GuestProtocol) else None
        if handover is not None:
            request[HANDOVER] = handover
        return request

    return GuestServer(
        entry, request_factory=make_request, lane=lane, lane_open=lane_open, **kwargs
    )
