"""The guest request chain, each step in the module named after it:

    identify (identify.py) -> warm shortcut (hot.py) -> match (match.py)
    -> load (metadata/loader.py) -> render (render.py) -> record (record.py)

A read first learns who is asking and tries the rendered answer of that instance's
generation (the warm shortcut); otherwise the path is matched in the trees, the slices its
row needs are loaded, rendered, kept for the next read, and answered. Version listings
(`/`, `/openstack`) hold no instance data and are answered before identity, as Nova
answers `/`. A `?wait_for_change=` read never takes the shortcut: it waits for the change
before loading; the password POST is stored once instead of loaded. Every request, warm or
cold, error or not, is recorded once under its path's template (the token PUT, which leaves
the chain for the guard, is not).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from metadata.errors import BadRequest, MetadataError, MethodNotAllowed, NotFound
from metadata.guest.guard import GuestGuard, is_token_path
from metadata.guest.handover import HANDOVER, Handover
from metadata.guest.hot import HotAnswer
from metadata.guest.identify import Caller, Wanted, nothing_more
from metadata.guest.match import Destination, build_matcher
from metadata.guest.password import read_password
from metadata.guest.record import Recorder
from metadata.guest.render import Responder, render
from metadata.guest.tree import Answer
from metadata.guest.waiting import ABSENT, GONE, parse_wait, wait_for_change
from metadata.guest.wire import answer_head
from metadata.loader import RequestCost
from metadata.nova.tree import build_nova_matcher
from metadata.records import Slice
from metadata.services import Services
from metadata.stats import UNMATCHED, StatsKey
from metadata.user_data_versions import etag_of

READ_METHODS = frozenset({"GET", "HEAD"})


class GuestService:
    def __init__(self, services: Services, guard: GuestGuard) -> None:
        self.services = services
        self.guard = guard
        self.store = services.store
        self.loader = services.loader
        self.identity = services.identity
        self.hot = services.hot
        self.planner = services.planner
        nova = services.nova
        self.matcher = (
            build_matcher(services.settings.vendor_data)
            if nova is None
            else build_nova_matcher(
                services.settings.vendor_data, "StaticJSON" in nova.conf.vendordata_providers
            )
        )
        self.responder = Responder()
        self.recorder = Recorder(services.stats, services.settings.access_log)

    async def handle(self, request: web.BaseRequest) -> web.Response:
        started = time.perf_counter()
        raw = request.raw_path
        path = raw.partition("?")[0] if "?" in raw else raw
        if is_token_path(path):
            return await self.guard.token_request(request, path)
        # Passed on by the express lane after it started identity's read for this request:
        # what that read cost, or the error it ended in (the full chain does not read again).
        handover: Handover | None = request.get(HANDOVER)
        cost = RequestCost() if handover is None or handover.cost is None else handover.cost
        caller = None
        key: StatsKey | None = None
        try:
            if request.method in READ_METHODS and path not in self.matcher.version_listing_paths:
                if handover is not None and handover.failure is not None:
                    raise handover.failure
                caller = await self.identify(request, cost, lambda: self.boot_slices(path))
                # `?wait_for_change=` must wait, so it never takes the shortcut.
                if not ("?" in raw and "wait_for_change" in raw):
                    hot = self.hot.get(caller.instance_uuid, caller.generation, path)
                    if hot is not None:
                        key = hot.stats_key
                        return self.warm(request, hot, caller, cost, started)
            destination = self.matcher.match_path(path)
            key = destination.stats_key
            response = await self.cold(request, path, destination, caller, cost)
        except MetadataError:
            # Refused anywhere (who is asking, the token, the path): under the path's row.
            row = key if key is not None else self.stats_key_of(path)
            self.recorder.record(request, row, caller, cost, started, 0, error=True)
            raise
        self.recorder.record(request, key, caller, cost, started, response.content_length or 0)
        return response

    def stats_key_of(self, path: str) -> StatsKey:
        try:
            return self.matcher.match_path(path).stats_key
        except MetadataError:
            return UNMATCHED

    async def identify(
        self, request: web.BaseRequest, cost: RequestCost, wanted: Wanted = nothing_more
    ) -> Caller:
        """Who is asking; their instance takes one request from its rate-limit bucket."""
        caller = await self.identity.identify(request.remote or "", request.headers, cost, wanted)
        self.guard.admit(caller)
        return caller

    def boot_slices(self, path: str) -> frozenset[Slice]:
        """What a cold read of this path loads: its row's slices and what the boots it
        opens went on to need. Asked by identity when it reads the database, so that one
        statement brings both."""
        try:
            destination = self.matcher.match_path(path)
        except MetadataError:
            return frozenset()
        if destination.match is None:
            return frozenset()
        return destination.match.needs | self.planner.plan(destination.stats_key)

    def warm(
        self,
        request: web.BaseRequest,
        hot: HotAnswer,
        caller: Caller,
        cost: RequestCost,
        started: float,
    ) -> web.Response:
        """The warm shortcut: the answer rendered before for this caller's generation."""
        self.guard.check_token(request, caller, hot.stats_key[0], hot.token_by_default)
        response = self.responder.respond(
            request, hot.answer, hot.etag, caller.instance_uuid, caller.generation
        )
        self.recorder.record(
            request, hot.stats_key, caller, cost, started, response.content_length or 0
        )
        return response

    async def cold(
        self,
        request: web.BaseRequest,
        path: str,
        destination: Destination,
        caller: Caller | None,
        cost: RequestCost,
    ) -> web.Response:
        """The matched path for this caller: load, render, keep the answer, respond."""
        method = request.method
        match = destination.match
        if match is None:
            check_method(method, READ_METHODS)
            return web.Response(body=destination.listing, content_type="text/plain")
        leaf = match.leaf
        check_method(method, READ_METHODS | (leaf.methods if leaf else frozenset()))
        if caller is None:
            caller = await self.identify(request, cost)
        self.guard.check_token(request, caller, match.template, match.token_by_default)
        if method == "POST":
            password = await read_password(request, self.guard.body_timeout)
            await self.set_password_once(caller.instance_uuid, password)
            return web.Response(status=200, text="")
        if "?" in request.raw_path:
            caller = await self.wait(request, destination, caller, cost)
        answer, generation = await self.load_and_render(destination, caller, cost)
        hot = self.keep(caller.instance_uuid, generation, path, destination, answer)
        return self.responder.respond(request, answer, hot.etag, caller.instance_uuid, generation)

    def keep(
        self, uuid: str, generation: int, path: str, destination: Destination, answer: Answer
    ) -> HotAnswer:
        """The rendered answer kept for the next read of this path at this generation,
        with what its row says (and its head prebuilt, for the express lane)."""
        match = destination.match
        assert match is not None
        leaf = match.leaf
        etag = leaf is not None and leaf.etag
        tag = self.responder.etags.get(uuid, generation, answer.body) if etag else None
        hot = HotAnswer(
            answer,
            destination.stats_key,
            etag,
            match.token_by_default,
            answer_head(answer.content_type, tag),
        )
        self.hot.put(uuid, generation, path, hot)
        return hot

    def render_cached(self, caller: Caller, path: str, cold: bool = False) -> HotAnswer | None:
        """A path not rendered yet at the caller's generation, rendered from slices the
        in-process cache holds (a new instance's boot after its one statement) and kept,
        without awaiting; None: the full chain loads (or refuses) it. `cold`: this request
        read the instance (a boot the planner learns from opens here)."""
        try:
            destination = self.matcher.match_path(path)
        except MetadataError:
            return None
        match = destination.match
        if match is None:
            return None
        uuid, generation = caller.instance_uuid, caller.generation
        loaded = self.loader.cached_now(uuid, generation, match.needs)
        if loaded is None:
            return None
        self.planner.observe(uuid, destination.stats_key, match.needs, cold=cold)
        try:
            answer = render(destination, loaded)
        except MetadataError:
            return None
        return self.keep(uuid, generation, path, destination, answer)

    async def wait(
        self, request: web.BaseRequest, destination: Destination, caller: Caller, cost: RequestCost
    ) -> Caller:
        """With `?wait_for_change=true`, hold the request until the row's answer differs
        from `last_etag` or the wait times out; then who is asking again, at the
        generation that holds the change."""
        settings = self.services.settings
        wait = parse_wait(request.query, settings.wait_timeout_default, settings.wait_timeout_max)
        if wait is None:
            return caller
        leaf = destination.leaf
        if leaf is None or not leaf.waitable:
            raise BadRequest("wait_for_change is offered on user data only")
        uuid = caller.instance_uuid

        async def current_etag() -> str:
            if self.services.nova is not None:
                return await self.nova_user_data_etag(uuid)
            try:
                return await self.store.user_data_etag(uuid) or ABSENT
            except NotFound:
                return GONE

        await wait_for_change(self.services.waiters, uuid, wait, current_etag)
        return await self.identity.identify(request.remote or "", request.headers, cost)

    async def set_password_once(self, uuid: str, password: str) -> None:
        nova = self.services.nova
        if nova is None:
            await self.store.set_password_once(uuid, password)
            return
        # Nova mode: kept in our own database; Nova's stored password still wins.
        found = await nova.source.read(uuid, frozenset({Slice.PASSWORD}))
        if found is None or nova.source.overlay is None:
            raise NotFound("no such instance")
        await nova.source.overlay.set_password_once(uuid, password, found.slices[Slice.PASSWORD])

    async def nova_user_data_etag(self, uuid: str) -> str:
        """What a Nova-mode guest is served as user data (the overlay, else Nova's)."""
        assert self.services.nova is not None
        found = await self.services.nova.source.read(uuid, frozenset({Slice.USER_DATA}))
        if found is None:
            return GONE
        data = found.slices[Slice.USER_DATA].data
        return ABSENT if data is None else etag_of(data)

    async def load(
        self, destination: Destination, caller: Caller, cost: RequestCost
    ) -> tuple[Mapping[Slice, Any], int]:
        """The slices the matched row needs, and the generation they are of."""
        match = destination.match
        assert match is not None
        uuid, key = caller.instance_uuid, destination.stats_key
        loaded, generation = await self.loader.load(
            uuid, caller.generation, match.needs, cost, self.planner.plan(key)
        )
        self.planner.observe(uuid, key, match.needs, cold=cost.cold)
        return loaded, generation

    async def load_and_render(
        self, destination: Destination, caller: Caller, cost: RequestCost
    ) -> tuple[Answer, int]:
        loaded, generation = await self.load(destination, caller, cost)
        return render(destination, loaded), generation


def check_method(method: str, allowed: frozenset[str]) -> None:
    if method not in allowed:
        raise MethodNotAllowed(sorted(allowed))
