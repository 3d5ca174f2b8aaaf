"""The guest request path: parse -> route -> identify -> load -> render -> respond.

Version listings (`/`, `/openstack`) are answered before identity, as Nova answers `/`:
they hold no instance data. Everything else is answered for the identified instance only.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from metadata.cache import HotAnswer
from metadata.errors import (
    BadRequest,
    MetadataError,
    MethodNotAllowed,
    NotFound,
    RequestTimeout,
)
from metadata.guest import ec2, openstack
from metadata.guest.guard import GuestGuard
from metadata.guest.identify import Caller
from metadata.guest.limits import is_token_path
from metadata.guest.tree import Answer, Match, Tree
from metadata.guest.waiting import ABSENT, GONE, WaitRequest, parse_wait, wait_for_change
from metadata.loader import RequestCost
from metadata.logs import GUEST_ACCESS, GuestAccess
from metadata.services import Services
from metadata.stats import UNMATCHED, StatsKey
from metadata.user_data_versions import USER_DATA_TEMPLATES, ETagMemo, etag_matches

READ_METHODS = frozenset({"GET", "HEAD"})
# Version listings hold no instance data: answered before identity, as Nova answers `/`.
VERSION_LISTING_PATHS = frozenset({"/", "/openstack", "/openstack/", "/ec2", "/ec2/"})
MAX_PASSWORD_BYTES = 1020  # Nova: 4 chunks of 255 characters
# ETags of user data per (instance, generation): bounded like any per-instance table.
ETAG_MEMO_ENTRIES = 65_536


@dataclass(frozen=True, slots=True)
class Route:
    """Where a guest path leads: a version listing (match None) or a match in a tree."""

    tree_name: str
    match: Match | None
    listing: bytes = b""


def path_segments(raw_path: str) -> list[str]:
    """Segments of the raw path: `//`, `.` and trailing `/` fall away; `..` and encoded
    separators are refused rather than resolved."""
    segments = []
    for raw in raw_path.split("/"):
        try:
            segment = unquote(raw, errors="strict") if "%" in raw else raw
        except UnicodeDecodeError:
            raise BadRequest("path is not UTF-8") from None
        if segment in ("", "."):
            continue
        if segment == ".." or "/" in segment or "\\" in segment or "\x00" in segment:
            raise NotFound("no such path")
        segments.append(segment)
    return segments


def listing_answer(names: list[str]) -> Answer:
    return Answer("\n".join(names).encode())


def finish(answer: Answer) -> bytes:
    if answer.seed_at < 0:
        return answer.body
    seed = base64.b64encode(os.urandom(512))
    return answer.body[: answer.seed_at] + seed + answer.body[answer.seed_at :]


def stats_key(route: Route, version_name: str) -> StatsKey:
    if route.match is None:
        return ("/openstack" if route.tree_name == "openstack" else "/", "")
    prefix = "/openstack/{version}" if route.tree_name == "openstack" else "/{version}"
    template = route.match.template
    return (f"{prefix}/{template}" if template else prefix + "/", version_name)


class GuestService:
    def __init__(self, services: Services, guard: GuestGuard) -> None:
        self.services = services
        self.guard = guard
        self.store = services.store
        self.loader = services.loader
        self.identity = services.identity
        self.stats = services.stats
        self.hot = services.hot
        self.planner = services.planner
        # build_guest_app turns it on with the access log: only then are requests annotated
        self.access_log = False
        self.etags = ETagMemo(ETAG_MEMO_ENTRIES)
        self.trees: dict[str, Tree] = {
            "ec2": ec2.build_tree(),
            "openstack": openstack.build_tree(services.settings.vendor_data),
        }

    def route(self, segments: list[str]) -> tuple[Route, str]:
        """Where the path leads, and the version name as asked (for statistics)."""
        if segments and segments[0] == "openstack":
            name, resolve, rest = "openstack", openstack.resolve_version, segments[1:]
            if not rest:
                return Route(name, None, openstack.version_listing()), ""
        else:
            name, resolve = "ec2", ec2.resolve_version
            rest = segments[1:] if segments and segments[0] == "ec2" else segments
            if not rest:
                return Route(name, None, ec2.version_listing()), ""
        version = resolve(rest[0])
        match = None if version is None else self.trees[name].match(version, rest[1:])
        if match is None:
            raise NotFound("no such path")
        return Route(name, match), rest[0]

    async def handle(self, request: web.BaseRequest) -> web.Response:
        started = time.perf_counter()
        raw = request.raw_path
        path = raw.partition("?")[0] if "?" in raw else raw
        if is_token_path(path):
            return await self.guard.token_request(request, path)
        cost = RequestCost()
        caller = None
        if request.method in READ_METHODS and path not in VERSION_LISTING_PATHS:
            # The warm path: who is asking, then one lookup of the rendered answer.
            caller = await self.identity.resolve(request.remote or "", request.headers, cost)
            self.guard.admit(caller)
            hot = self.hot.get(caller.instance_uuid, caller.generation, path)
            # `?wait_for_change=` must wait, so it takes the slow path.
            if hot is not None and not ("?" in raw and "wait_for_change" in raw):
                self.guard.check_token(request, caller, hot.stats_key[0])
                body = finish(hot.answer)
                self.stats.record(hot.stats_key, cache_hit=cost.db_statements == 0,
                                  statements=cost.db_statements, nbytes=len(body),
                                  seconds=time.perf_counter() - started)  # fmt: skip
                if self.access_log:
                    note_access(request, hot.stats_key, caller, cost)
                response = web.Response(body=body, content_type=hot.answer.content_type)
                if hot.stats_key[0] in USER_DATA_TEMPLATES:
                    return self.with_etag(request, caller.instance_uuid, caller.generation,
                                          hot.answer.body, response)  # fmt: skip
                return response
        key = UNMATCHED
        try:
            route, version_name = self.route(path_segments(path))
            key = stats_key(route, version_name)
            response = await self.resolve(request, route, key, path, caller, cost)
        except MetadataError:
            self.stats.record(key, cache_hit=False, statements=cost.db_statements, nbytes=0,
                              seconds=time.perf_counter() - started, error=True)  # fmt: skip
            if self.access_log:
                note_access(request, key, caller, cost)
            raise
        self.stats.record(key, cache_hit=cost.db_statements == 0,
                          statements=cost.db_statements, nbytes=response.content_length or 0,
                          seconds=time.perf_counter() - started)  # fmt: skip
        if self.access_log:
            note_access(request, key, caller, cost)
        return response

    async def resolve(self, request: web.BaseRequest, route: Route, key: StatsKey, path: str,
                      caller: Caller | None, cost: RequestCost) -> web.Response:  # fmt: skip
        method = request.method
        if route.match is None:
            check_method(method, READ_METHODS)
            return web.Response(body=route.listing, content_type="text/plain")
        leaf = route.match.node.leaf
        check_method(method, READ_METHODS | (leaf.methods if leaf else frozenset()))
        if caller is None:
            caller = await self.identity.resolve(request.remote or "", request.headers, cost)
            self.guard.admit(caller)
        self.guard.check_token(request, caller, key[0])
        if method == "POST":
            await self.post_password(request, caller)
            return web.Response(status=200, text="")
        if "?" in request.raw_path:
            settings = self.services.settings
            wait = parse_wait(request.query, settings.wait_timeout_default,
                              settings.wait_timeout_max)  # fmt: skip
            if wait is not None:
                caller = await self.wait_for_change(request, caller, key, wait, cost)
        answer, generation = await self.answer(route, key, caller, cost)
        self.hot.put(caller.instance_uuid, generation, path, HotAnswer(answer, key))
        response = web.Response(body=finish(answer), content_type=answer.content_type)
        if key[0] in USER_DATA_TEMPLATES:
            return self.with_etag(request, caller.instance_uuid, generation, answer.body,
                                  response)  # fmt: skip
        return response

    def with_etag(self, request: web.BaseRequest, uuid: str, generation: int, body: bytes,
                  response: web.Response) -> web.Response:  # fmt: skip
        """User data answers carry the ETag of their bytes, and honour If-None-Match."""
        etag = self.etags.get(uuid, generation, body)
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None and etag_matches(if_none_match, etag):
            return web.Response(status=304, headers={"ETag": etag})
        response.headers["ETag"] = etag
        return response

    async def wait_for_change(self, request: web.BaseRequest, caller: Caller, key: StatsKey,
                              wait: WaitRequest, cost: RequestCost) -> Caller:  # fmt: skip
        """Hold the request until the user data differs from `wait.last_etag` or the wait
        times out; then who is asking again, at the generation that holds the change."""
        if key[0] not in USER_DATA_TEMPLATES:
            raise BadRequest("wait_for_change is offered on user data only")
        uuid = caller.instance_uuid

        async def current_etag() -> str:
            try:
                return await self.store.user_data_etag(uuid) or ABSENT
            except NotFound:
                return GONE

        await wait_for_change(self.services.waiters, uuid, wait, current_etag)
        return await self.identity.resolve(request.remote or "", request.headers, cost)

    async def answer(self, route: Route, key: StatsKey, caller: Caller, cost: RequestCost
                     ) -> tuple[Answer, int]:  # fmt: skip
        match = route.match
        assert match is not None
        uuid = caller.instance_uuid
        loaded, generation = await self.loader.load(
            uuid, caller.generation, match.needs, cost, self.planner.plan(key)
        )
        self.planner.observe(uuid, key, match.needs, cold=cost.cold)
        answer = self.trees[route.tree_name].answer(match, loaded, listing_answer)
        if answer is None:
            raise NotFound("no such path for this instance")
        return answer, generation

    async def post_password(self, request: web.BaseRequest, caller: Caller) -> None:
        if request.content_length is not None and request.content_length > MAX_PASSWORD_BYTES:
            raise BadRequest(f"password is over {MAX_PASSWORD_BYTES} bytes")
        try:
            body = await asyncio.wait_for(request.read(), self.guard.body_timeout)
        except TimeoutError:
            raise RequestTimeout("the request body did not arrive in time") from None
        if len(body) > MAX_PASSWORD_BYTES:
            raise BadRequest(f"password is over {MAX_PASSWORD_BYTES} bytes")
        try:
            value = body.decode()
        except UnicodeDecodeError:
            raise BadRequest("password must be UTF-8 text") from None
        await self.store.set_password_once(caller.instance_uuid, value)


def note_access(request: web.BaseRequest, key: StatsKey, caller: Caller | None,
                cost: RequestCost) -> None:  # fmt: skip
    """What the access log says of this request (metadata/logs.py)."""
    instance = None if caller is None else caller.instance_uuid
    request[GUEST_ACCESS] = GuestAccess(key[0], key[1], instance, cost.db_statements == 0,
                                        cost.db_statements)  # fmt: skip


def check_method(method: str, allowed: frozenset[str]) -> None:
    if method not in allowed:
        raise MethodNotAllowed(sorted(allowed))
