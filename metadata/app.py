"""Builds the guest app and the admin app, and runs both listeners."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from metadata.admin.routes import build_admin_app
from metadata.config import Settings
from metadata.guest.entry import GUEST_MAX_BODY, Drain, GuestEntry, guest_server
from metadata.guest.guard import GuestGuard
from metadata.guest.limits import GUEST_SERVER_LIMITS, ConcurrencyGate
from metadata.guest.service import GuestService
from metadata.logs import IS_GUEST_APP, AccessLog, GuestAccessLog, access_logger, configure_logging
from metadata.services import SERVICES, Services

log = logging.getLogger(__name__)


def build_guest_entry(services: Services, drain: Drain | None = None) -> GuestEntry:
    guest = GuestService(services, GuestGuard(services.settings, services.identity))
    return GuestEntry(guest, ConcurrencyGate(services.settings.guest_max_concurrent), drain)


def build_guest_app(services: Services) -> web.Application:
    """The guest listener's entry point inside an Application, for in-process use (the
    tests); `serve` runs the same entry on aiohttp's low-level server."""
    entry = build_guest_entry(services)
    app = web.Application(client_max_size=GUEST_MAX_BODY)
    app[SERVICES] = services
    app[IS_GUEST_APP] = True
    app.router.add_route("*", "/{tail:.*}", entry.__call__)
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
            admin = build_admin_app(services)
            admin.middlewares.append(drain.middleware)
            guest = guest_server(
                build_guest_entry(services, drain),
                express=not settings.access_log,
                **GUEST_SERVER_LIMITS,
                access_log=access_logger(settings),
                access_log_class=GuestAccessLog,
            )
            runners: list[web.BaseRunner] = []
            try:
                for runner, places in (
                    (web.ServerRunner(guest, shutdown_timeout=LEFTOVER_TIMEOUT), settings.listen),
                    (
                        web.AppRunner(
                            admin,
                            access_log=access_logger(settings),
                            access_log_class=AccessLog,
                            shutdown_timeout=LEFTOVER_TIMEOUT,
                        ),
                        (settings.admin_listen,),
                    ),
                ):
                    await runner.setup()
                    runners.append(runner)
                    # One guest app behind every guest address (IPv4 and IPv6 alike).
                    for where in places:
                        # several workers (metadata/workers.py) share each port
                        await web.TCPSite(
                            runner, where.host, where.port, reuse_port=settings.workers > 1
                        ).start()
                        log.info("listening on %s", where)
                await stop.wait()
                log.info(
                    "stopping: no new connections, %gs for in-flight requests",
                    settings.shutdown_grace,
                )
            finally:
                await _shut_down(runners, drain, settings.shutdown_grace)
        log.info("stopped")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


# After the grace: how long aiohttp waits on what is left (idle connections, a request that
# arrived as the listener closed) before cancelling. aiohttp reads 0 as "forever".
LEFTOVER_TIMEOUT = 1.0


async def _shut_down(runners: list[web.BaseRunner], drain: Drain, grace: float) -> None:
    """Close every listening socket, wait (up to `grace`) for the requests in flight, then let
    each runner close what is left, cancel stragglers and run its app's cleanup."""
    for runner in runners:
        for site in list(runner.sites):
            await site.stop()
    # aiohttp's own drain (runner.cleanup) first closes every connection, and a closed
    # connection drops the bytes still arriving: a request whose body is on its way could
    # never finish (aio-libs/aiohttp#2298). So wait for them here, connections still open.
    if not await drain.wait_idle(grace):
        log.warning(
            "%d requests still in flight after %gs: cancelling them", drain.in_flight, grace
        )
    results = await asyncio.gather(*(r.cleanup() for r in runners), return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            log.error("listener cleanup failed", exc_info=result)
