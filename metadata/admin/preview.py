"""`GET /v1/instances/{uuid}/preview/{guest path}` on the admin listener: exactly what that
instance would be served at that guest path (body, content type, status), rendered by the
guest's own route and answer steps with a caller for that instance instead of an identity.

The answer comes back with the guest's body and content type; `X-Metadata-Status` carries
the status the guest would get (a guest 404 is a successful preview of a 404) and
`X-Metadata-Path` the path template it is counted under. An unknown instance is a 404 of
the preview itself.
"""

from __future__ import annotations

import dataclasses

from aiohttp import web

from metadata.document import normalise_uuid
from metadata.errors import InstanceNotFound, InvalidDocument, MetadataError, NotFound
from metadata.guest.guard import GuestGuard
from metadata.guest.hot import HotAnswers
from metadata.guest.identify import Caller
from metadata.guest.match import path_segments
from metadata.guest.render import finish
from metadata.guest.service import GuestService
from metadata.http_errors import error_response
from metadata.loader import RequestCost
from metadata.prefetch import BootPlanner
from metadata.services import SERVICES, Services
from metadata.stats import Statistics

PREVIEW_MARKER = "/preview"


class Previewer:
    """The guest service that renders previews, built on first use."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._guest: GuestService | None = None

    @property
    def guest(self) -> GuestService:
        if self._guest is None:
            # The same store, loader and trees as guests; statistics, hot answers and the
            # boot planner of its own, so that previews count as no guest traffic and teach
            # the prefetcher nothing.
            private = dataclasses.replace(
                self._services, stats=Statistics(), hot=HotAnswers(1), planner=BootPlanner()
            )
            self._guest = GuestService(private, GuestGuard(private.settings, private.identity))
        return self._guest

    async def caller(self, uuid: str) -> Caller:
        services = self._services
        generation = await services.coherence.generation(uuid)
        core = await services.loader.core(uuid, generation)
        if core is None:
            raise InstanceNotFound("no such instance")
        return Caller(uuid, core.generation, "")

    async def render(self, caller: Caller, guest_path: str) -> web.Response:
        """The guest's response for this caller and path, or the guest's error response."""
        guest = self.guest
        template = "(unmatched)"
        try:
            destination = guest.matcher.match(path_segments(guest_path))
            template = destination.stats_key[0]
            if destination.match is None:
                body, content_type, status = destination.listing, "text/plain", 200
            else:
                answer, _ = await guest.load_and_render(destination, caller, RequestCost())
                body, content_type, status = finish(answer), answer.content_type, 200
        except MetadataError as exc:
            # Rendered as the guest listener renders errors: short plain text.
            error = error_response(exc.status, exc.message, json_errors=False)
            assert isinstance(error.body, bytes)
            body, content_type, status = error.body, "text/plain", exc.status
        headers = {"X-Metadata-Status": str(status), "X-Metadata-Path": template}
        return web.Response(body=body, content_type=content_type, headers=headers)


PREVIEWER = web.AppKey("previewer", Previewer)


def guest_path_of(raw_path: str) -> str:
    """The guest path, as raw as the guest would send it, after `/preview`."""
    path = raw_path.partition("?")[0]
    return path.partition(PREVIEW_MARKER)[2] or "/"


async def get_preview(request: web.Request) -> web.Response:
    try:
        uuid = normalise_uuid(request.match_info["uuid"])
    except InvalidDocument:
        raise NotFound("no such instance: the id is not a UUID") from None
    previewer = request.app[PREVIEWER]
    caller = await previewer.caller(uuid)
    return await previewer.render(caller, guest_path_of(request.raw_path))


def add_preview_routes(app: web.Application) -> None:
    app[PREVIEWER] = Previewer(app[SERVICES])
    app.router.add_get("/v1/instances/{uuid}/preview", get_preview)
    app.router.add_get("/v1/instances/{uuid}/preview/{path:.*}", get_preview)
