"""Builds the guest app and the admin app, and runs both listeners."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web
from aiohttp.typedefs import Handler

from metadata.admin import build_admin_app
from metadata.config import Settings
from metadata.guard import GuestGuard
from metadata.guest import GuestService
from metadata.http_errors import error_middleware
from metadata.limits import GUEST_SERVER_LIMITS, ConcurrencyGate, guest_limits_middleware
from metadata.logs import IS_GUEST_APP, AccessLog, access_logger, configure_logging
from metadata.services import SERVICES, Services

log = logging.getLogger(__name__)
GUEST = web.AppKey("guest", GuestService)
# Guests send no bodies but the password (1020 bytes): anything larger is refused (413).
GUEST_MAX_BODY = 4096


def build_guest_app(services: Services) -> web.Application:
    guest = GuestService(
        services.store, services.loader, services.identity, services.settings.vendor_data,
        services.stats, services.hot, services.planner,
        GuestGuard(services.settings, services.identity),
    )  # fmt: skip
    gate = ConcurrencyGate(services.settings.guest_max_concurrent)
    app = web.Application(middlewares=[error_middleware(json_errors=False),
                                       guest_limits_middleware(gate)],
                          client_max_size=GUEST_MAX_BODY)  # fmt: skip
    app[SERVICES] = services
    app[GUEST] = guest
    app[IS_GUEST_APP] = True
    guest.access_log = services.settings.access_log
    app.router.add_route("*", "/{tail:.*}", guest.handle)
    return app


async def serve(settings: Settings) -> None:
    """Run both listeners until SIGTERM or SIGINT, then shut down gracefully: stop accepting,
    let in-flight requests finish within `settings.shutdown_grace` seconds (stragglers are
    then cancelled, which takes at most LEFTOVER_TIMEOUT more), close the pools."""
    # A worker (metadata/workers.py) is a spawned process: it sets up its own log lines.
    configure_logging(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Services.open(settings) as services:
            drain = Drain()
            runners: list[web.AppRunner] = []
            try:
                for app, where, limits in (
                    (build_guest_app(services), settings.listen, GUEST_SERVER_LIMITS),
                    (build_admin_app(services), settings.admin_listen, {}),
                ):
                    drain.track(app)
                    runner = web.AppRunner(app, access_log=access_logger(settings),
                                           access_log_class=AccessLog,
                                           shutdown_timeout=LEFTOVER_TIMEOUT, **limits)  # fmt: skip
                    await runner.setup()
                    runners.append(runner)
                    # several workers (metadata/workers.py) share each port
                    await web.TCPSite(runner, where.host, where.port,
                                      reuse_port=settings.workers > 1).start()  # fmt: skip
                    log.info("listening on %s", where)
                await stop.wait()
                log.info("stopping: no new connections, %gs for in-flight requests",
                         settings.shutdown_grace)  # fmt: skip
            finally:
                await _shut_down(runners, drain, settings.shutdown_grace)
        log.info("stopped")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


# After the grace: how long aiohttp waits on what is left (idle connections, a request that
# arrived as the listener closed) before cancelling. aiohttp reads 0 as "forever".
LEFTOVER_TIMEOUT = 1.0


class Drain:
    """Counts the requests in flight on both listeners; once draining, every response closes
    its connection, so a keep-alive client cannot hold a listener open with new requests."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.is_draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def track(self, app: web.Application) -> None:
        # Appended last, so innermost: it counts exactly the handler's run, body read included.
        app.middlewares.append(self._count)
        app.on_response_prepare.append(self._close_when_draining)

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.in_flight += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def _close_when_draining(self, request: web.Request,
                                   response: web.StreamResponse) -> None:  # fmt: skip
        if self.is_draining:
            response.force_close()

    async def wait_idle(self, grace: float) -> bool:
        """Start draining; whether every request in flight finished within `grace` seconds."""
        self.is_draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            return False
        return True


async def _shut_down(runners: list[web.AppRunner], drain: Drain, grace: float) -> None:
    """Close every listening socket, wait (up to `grace`) for the requests in flight, then let
    each runner close what is left, cancel stragglers and run its app's cleanup."""
    for runner in runners:
        for site in list(runner.sites):
            await site.stop()
    # aiohttp's own drain (runner.cleanup) first closes every connection, and a closed
    # connection drops the bytes still arriving: a request whose body is on its way could
    # never finish (aio-libs/aiohttp#2298). So wait for them here, connections still open.
    if not await drain.wait_idle(grace):
        log.warning("%d requests still in flight after %gs: cancelling them",
                    drain.in_flight, grace)  # fmt: skip
    results = await asyncio.gather(*(r.cleanup() for r in runners), return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.error("listener cleanup failed", exc_info=result)
