"""What the express lane passes on to the full chain with a request it held: kept apart
from both, which each need it."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from metadata.errors import MetadataError
from metadata.loader import RequestCost


@dataclass(frozen=True, slots=True)
class Handover:
    """What a request the lane held, then passed on, brings to the full chain: the cost of
    the identity read it started, or the error that read ended in (for the same identity
    the full chain would only read it again)."""

    cost: RequestCost | None = None
    failure: MetadataError | None = None


# Where a request the lane passed on carries its Handover (aiohttp's per-request state).
HANDOVER = web.RequestKey("metadata.express.handover", Handover)
