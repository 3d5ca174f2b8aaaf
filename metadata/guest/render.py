"""Render: the loaded slices through the matched row into bytes, and the bytes into the
response (the fresh random seed, the ETag and If-None-Match), the same for a warm answer
and a freshly rendered one."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from metadata.errors import NotFound
from metadata.guest.match import Destination
from metadata.guest.tree import Answer
from metadata.records import Slice
from metadata.user_data_versions import ETagMemo, etag_matches

# ETags of user data per (instance, generation): bounded like any per-instance table.
ETAG_MEMO_ENTRIES = 65_536


def listing_answer(names: list[str]) -> Answer:
    return Answer("\n".join(names).encode())


def render(destination: Destination, loaded: Mapping[Slice, Any]) -> Answer:
    """The matched row rendered from its slices; 404 when it is absent for this instance."""
    match = destination.match
    assert match is not None
    answer = destination.root.tree.answer(match, loaded, listing_answer)
    if answer is None:
        raise NotFound("no such path for this instance")
    return answer


def finish(answer: Answer) -> bytes:
    """The answer's bytes with a fresh random seed where it has a hole for one."""
    if answer.seed_at < 0:
        return answer.body
    seed = base64.b64encode(os.urandom(512))
    return answer.body[: answer.seed_at] + seed + answer.body[answer.seed_at :]


class Responder:
    """Answers into responses; rows marked `etag` carry the ETag of their bytes."""

    def __init__(self) -> None:
        self.etags = ETagMemo(ETAG_MEMO_ENTRIES)

    def respond(
        self, request: web.BaseRequest, answer: Answer, etag: bool, uuid: str, generation: int
    ) -> web.Response:
        if not etag:
            return web.Response(body=finish(answer), content_type=answer.content_type)
        tag = self.etags.get(uuid, generation, answer.body)
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None and etag_matches(if_none_match, tag):
            return web.Response(status=304, headers={"ETag": tag})
        response = web.Response(body=finish(answer), content_type=answer.content_type)
        response.headers["ETag"] = tag
        return response
