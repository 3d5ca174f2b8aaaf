"""The guest request path: parse -> route -> identify -> load -> render -> respond.

Version listings (`/`, `/openstack`) are answered before identity, as Nova answers `/`:
they hold no instance data. Everything else is answered for the identified instance only.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp import web

from metadata import ec2, openstack
from metadata.errors import BadRequest, MethodNotAllowed, NotFound
from metadata.identity import Caller, IdentityResolver
from metadata.loader import RequestCost, SliceLoader
from metadata.records import Slice
from metadata.store.store import Store
from metadata.tree import Answer, Match, Tree

READ_METHODS = frozenset({"GET", "HEAD"})
MAX_PASSWORD_BYTES = 1020  # Nova: 4 chunks of 255 characters


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


class GuestService:
    def __init__(self, store: Store, loader: SliceLoader, identity: IdentityResolver,
                 static_vendor_data: Mapping[str, object]) -> None:  # fmt: skip
        self.store = store
        self.loader = loader
        self.identity = identity
        self.trees: dict[str, Tree] = {
            "ec2": ec2.build_tree(),
            "openstack": openstack.build_tree(static_vendor_data),
        }

    def route(self, segments: list[str]) -> Route:
        if segments and segments[0] == "openstack":
            name, resolve, rest = "openstack", openstack.resolve_version, segments[1:]
            if not rest:
                return Route(name, None, openstack.version_listing())
        else:
            name, resolve = "ec2", ec2.resolve_version
            rest = segments[1:] if segments and segments[0] == "ec2" else segments
            if not rest:
                return Route(name, None, ec2.version_listing())
        version = resolve(rest[0])
        match = None if version is None else self.trees[name].match(version, rest[1:])
        if match is None:
            raise NotFound("no such path")
        return Route(name, match)

    async def handle(self, request: web.Request) -> web.Response:
        segments = path_segments(request.raw_path.partition("?")[0])
        route = self.route(segments)
        method = request.method
        if route.match is None:
            check_method(method, READ_METHODS)
            return web.Response(body=route.listing, content_type="text/plain")
        leaf = route.match.node.leaf
        check_method(method, READ_METHODS | (leaf.methods if leaf else frozenset()))
        cost = RequestCost()
        caller = await self.identity.resolve(request.remote or "", request.headers, cost)
        if method == "POST":
            await self.post_password(request, caller)
            return web.Response(status=200, text="")
        answer = await self.answer(route, caller, cost)
        return web.Response(body=finish(answer), content_type=answer.content_type)

    async def answer(self, route: Route, caller: Caller, cost: RequestCost) -> Answer:
        assert route.match is not None
        known = {Slice.CORE: caller.core} if caller.core is not None else None
        loaded = await self.loader.load(caller.instance_uuid, route.match.needs, cost, known)
        answer = self.trees[route.tree_name].answer(route.match, loaded, listing_answer)
        if answer is None:
            raise NotFound("no such path for this instance")
        return answer

    async def post_password(self, request: web.Request, caller: Caller) -> None:
        if request.content_length is not None and request.content_length > MAX_PASSWORD_BYTES:
            raise BadRequest(f"password is over {MAX_PASSWORD_BYTES} bytes")
        body = await request.read()
        if len(body) > MAX_PASSWORD_BYTES:
            raise BadRequest(f"password is over {MAX_PASSWORD_BYTES} bytes")
        try:
            value = body.decode()
        except UnicodeDecodeError:
            raise BadRequest("password must be UTF-8 text") from None
        await self.store.set_password_once(caller.instance_uuid, value)


def check_method(method: str, allowed: frozenset[str]) -> None:
    if method not in allowed:
        raise MethodNotAllowed(sorted(allowed))
