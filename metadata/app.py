"""Builds the guest app and the admin app, and runs both listeners."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from metadata.admin import build_admin_app
from metadata.config import Settings
from metadata.guest import GuestService
from metadata.http_errors import error_middleware
from metadata.services import SERVICES, Services

log = logging.getLogger(__name__)
GUEST = web.AppKey("guest", GuestService)
# Guests send no bodies but the password (1020 bytes): anything larger is refused (413).
GUEST_MAX_BODY = 4096


def build_guest_app(services: Services) -> web.Application:
    guest = GuestService(
        services.store, services.loader, services.identity, services.settings.vendor_data,
        services.stats, services.hot, services.planner,
    )  # fmt: skip
    app = web.Application(middlewares=[error_middleware(json_errors=False)],
                          client_max_size=GUEST_MAX_BODY)  # fmt: skip
    app[SERVICES] = services
    app[GUEST] = guest
    app.router.add_route("*", "/{tail:.*}", guest.handle)
    return app


async def serve(settings: Settings) -> None:
    """Run both listeners until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Services.open(settings) as services:
        runners = []
        try:
            for app, where in (
                (build_guest_app(services), settings.listen),
                (build_admin_app(services), settings.admin_listen),
            ):
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                runners.append(runner)
                await web.TCPSite(runner, where.host, where.port).start()
                log.info("listening on %s", where)
            await stop.wait()
            log.info("shutting down")
        finally:
            for runner in reversed(runners):
                await runner.cleanup()
