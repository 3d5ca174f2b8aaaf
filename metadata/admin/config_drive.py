"""`GET /v1/instances/{uuid}/config-drive` on the admin listener: the instance's config drive
as an ISO 9660 image, the same bytes `metadata config-drive` writes."""

from __future__ import annotations

import asyncio

from aiohttp import web

from metadata.configdrive import drive_files, drive_image
from metadata.document import normalise_uuid
from metadata.errors import InvalidDocument, NotFound
from metadata.services import SERVICES

ISO_CONTENT_TYPE = "application/x-iso9660-image"


async def get_config_drive(request: web.Request) -> web.Response:
    try:
        uuid = normalise_uuid(request.match_info["uuid"])
    except InvalidDocument:
        raise NotFound("no such instance: the id is not a UUID") from None
    services = request.app[SERVICES]
    files = await drive_files(services.loader, services.settings, uuid)
    # Pure Python and CPU-bound (tens of milliseconds): off the loop that serves guests.
    image = await asyncio.to_thread(drive_image, files)
    return web.Response(
        body=image,
        content_type=ISO_CONTENT_TYPE,
        headers={"Content-Disposition": f'attachment; filename="config-drive-{uuid}.iso"'},
    )


def add_config_drive_route(app: web.Application) -> None:
    app.router.add_get("/v1/instances/{uuid}/config-drive", get_config_drive)
