"""The guest listener's security steps around the request path: the IMDSv2 token PUT, the
token check on reads, the per-instance rate limit, and the forwarded-address rule they share.

Which paths need a token is decided once, from the settings (TokenPolicy); the request path
calls `admit` and `check_token` after identity, each a few dict lookups and one HMAC.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from multidict import CIMultiDictProxy

from metadata.config import Settings
from metadata.errors import (
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from metadata.guest.hop_limit import HopLimiter
from metadata.guest.identify import FORWARDED_FOR, Caller, IdentityResolver, normalise_address
from metadata.guest.limits import RateLimiter
from metadata.guest.tokens import TOKEN_HEADERS, TTL_HEADERS, TokenPolicy, TokenSigner, parse_ttl

TOKEN_PATH = "/latest/api/token"
# Every spelling of the token endpoint comes here, to be answered or refused as EC2 does.
TOKEN_PATH_ENDINGS = ("/api/token", "/api/token/")
MAX_TOKEN_BODY = 1024  # EC2's PUT has none; tolerate a stray one, refuse a flood


def is_token_path(path: str) -> bool:
    return path.endswith(TOKEN_PATH_ENDINGS)


class GuestGuard:
    def __init__(
        self, settings: Settings, identity: IdentityResolver, clock: Callable[[], float] = time.time
    ) -> None:
        self.identity = identity
        self.signer = TokenSigner(settings.token_keys)
        self.policy = TokenPolicy(
            settings.token_mode, settings.token_required_paths, settings.token_exempt_paths
        )
        self.limiter = (
            None
            if settings.rate_limit is None
            else RateLimiter(settings.rate_limit, settings.cache_max_entries)
        )
        self.body_timeout = settings.guest_body_timeout
        self.hop_limiter = HopLimiter(settings.token_hop_limit)
        self._clock = clock

    def admit(self, caller: Caller) -> None:
        """The caller's instance takes one request from its bucket, or gets 429."""
        if self.limiter is not None:
            self.limiter.admit(caller.instance_uuid)

    def check_token(
        self, request: web.BaseRequest, caller: Caller, template: str, by_default: bool
    ) -> None:
        """A token, when sent, must be valid for this caller; when the path's policy needs
        one (`by_default`: what the path's row says for `token_mode=required`), it must be
        sent. Anything else about tokens is 401, which clients read as "get a new token"
        (cloud-init, botocore)."""
        self.check_token_of(request.headers, request.remote or "", caller, template, by_default)

    def check_token_of(
        self,
        headers: CIMultiDictProxy[str],
        peer: str,
        caller: Caller,
        template: str,
        by_default: bool,
    ) -> None:
        """`check_token` for a request known by its headers and peer address."""
        token = headers.get(TOKEN_HEADERS[0])
        if token is None:
            token = headers.get(TOKEN_HEADERS[1])
        if token is None:
            if self.policy.requires_token(template, by_default):
                raise Unauthorized("a session token is required: PUT /latest/api/token")
            return
        if (
            len(headers.getall(TOKEN_HEADERS[0], ())) + len(headers.getall(TOKEN_HEADERS[1], ()))
            > 1
        ):
            raise BadRequest("session token given more than once")
        if FORWARDED_FOR in headers:
            # EC2 refuses a token-bearing GET that came through a proxy it does not trust.
            self.check_forwarded(peer, headers)
        if not self.signer.is_valid(token, caller.instance_uuid, self._clock()):
            raise Unauthorized("the session token is invalid or expired: PUT a new one")

    def check_forwarded(self, peer: str, headers: CIMultiDictProxy[str]) -> None:
        """X-Forwarded-For is allowed only from a trusted proxy, naming one address beyond
        the trusted proxies: a second one means a proxy inside the guest, which could hand
        the guest's token to anything that reaches it (the reason EC2 refuses these)."""
        values = headers.getall(FORWARDED_FOR, ())
        if not values:
            return
        if not self.identity.is_trusted_proxy(normalise_address(peer)):
            raise Forbidden(f"{FORWARDED_FOR} from an untrusted peer")
        entries = [normalise_address(e) for value in values for e in value.split(",") if e.strip()]
        while entries and self.identity.is_trusted_proxy(entries[-1]):
            entries.pop()
        if len(entries) > 1:
            raise Forbidden(f"{FORWARDED_FOR} names more than one hop beyond trusted proxies")

    async def token_request(self, request: web.BaseRequest, path: str) -> web.Response:
        """`PUT /latest/api/token` and its refused variants (EC2: a dated or trailing-slash
        token path is 403). Never a 5xx: cloud-init reads one as "metadata disabled"."""
        segments = [s for s in path.split("/") if s]
        if len(segments) != 3 or segments[1:] != ["api", "token"]:
            raise NotFound("no such path")
        if request.method != "PUT":
            raise MethodNotAllowed(["PUT"])
        if path != TOKEN_PATH:
            raise Forbidden(f"tokens are issued only at PUT {TOKEN_PATH}")
        if (request.content_length or 0) > MAX_TOKEN_BODY:
            raise PayloadTooLarge("a token PUT carries no body")
        self.check_forwarded(request.remote or "", request.headers)
        ttl = parse_ttl(v for name in TTL_HEADERS for v in request.headers.getall(name, ()))
        if ttl is None:
            raise BadRequest(
                f"Missing or Invalid Parameters: {TTL_HEADERS[0]} must be 1 to 21600 seconds"
            )
        try:
            caller = await self.identity.identify(request.remote or "", request.headers)
        except ServiceUnavailable:
            raise TooManyRequests(1, "busy, retry") from None
        self.admit(caller)
        token = self.signer.issue(caller.instance_uuid, ttl, self._clock())
        # Only a granted token is limited: refusals may travel as far as any answer.
        self.hop_limiter.limit_answer(request)
        return web.Response(text=token, headers={TTL_HEADERS[0]: str(ttl)})
