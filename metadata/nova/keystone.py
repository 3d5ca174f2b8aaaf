"""A Keystone v3 password token, as keystoneauth gets one for Nova's `[neutron]` client:
POST {auth_url}/v3/auth/tokens, the token in `X-Subject-Token`, the network endpoint from
the token's catalog (or `endpoint_override`). The token is reused until it expires or
Neutron refuses it. The same for `[vendordata_dynamic_auth]`'s token (no endpoint needed)."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from metadata.nova.conf import NeutronAuth
from metadata.providers.dynamic_vendor_data import TokenUnavailable

# A token this close to its expiry is renewed first: a request must not carry one that
# expires on its way.
RENEW_BEFORE_SECONDS = 60.0
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class KeystoneError(Exception):
    """No usable token or network endpoint; the message says why."""


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # POSIX time; inf when Keystone gives none
    network_url: str  # Neutron's endpoint, without the /v2.0


def tokens_url(auth_url: str) -> str:
    base = auth_url.rstrip("/")
    return base + "/auth/tokens" if base.endswith("/v3") else base + "/v3/auth/tokens"


def request_body(auth: NeutronAuth) -> dict[str, Any]:
    user: dict[str, Any] = {"name": auth.username, "password": auth.password}
    user["domain"] = (
        {"id": auth.user_domain_id} if auth.user_domain_id else {"name": auth.user_domain_name}
    )
    if auth.project_id:
        project: dict[str, Any] = {"id": auth.project_id}
    else:
        project = {"name": auth.project_name}
        project["domain"] = (
            {"id": auth.project_domain_id}
            if auth.project_domain_id
            else {"name": auth.project_domain_name}
        )
    return {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": user}},
            "scope": {"project": project},
        }
    }


def network_endpoint(auth: NeutronAuth, catalog: Any) -> str:
    """The network service's URL of the first valid interface (in `valid_interfaces`
    order) in the region, as keystoneauth's endpoint filter picks it."""
    if auth.endpoint_override:
        return auth.endpoint_override
    services = [s for s in catalog or () if isinstance(s, dict) and s.get("type") == "network"]
    for interface in auth.valid_interfaces:
        for service in services:
            for endpoint in service.get("endpoints") or ():
                if not isinstance(endpoint, dict) or endpoint.get("interface") != interface:
                    continue
                region = endpoint.get("region_id") or endpoint.get("region")
                if auth.region_name and region != auth.region_name:
                    continue
                url = endpoint.get("url")
                if isinstance(url, str) and url:
                    return url
    where = f" in region {auth.region_name}" if auth.region_name else ""
    raise KeystoneError(
        f"no network endpoint ({', '.join(auth.valid_interfaces)}){where} in the catalog"
    )


def _expiry(text: Any) -> float:
    if not isinstance(text, str):
        return float("inf")
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


class KeystoneSession:
    def __init__(
        self, auth: NeutronAuth, session: aiohttp.ClientSession, *, needs_network: bool = True
    ) -> None:
        """`needs_network` False: only the token is wanted (DynamicJSON's POSTs go to
        configured URLs), so a catalog without Neutron is no error."""
        self.auth = auth
        self.needs_network = needs_network
        self._session = session
        self._token: Token | None = None
        # One token request at a time: a boot storm of cold reads asks Keystone once.
        self._lock = asyncio.Lock()
        self.token_requests = 0

    async def token(self) -> Token:
        token = self._token
        if token is not None and _fresh(token):
            return token
        async with self._lock:
            token = self._token
            if token is None or not _fresh(token):
                token = self._token = await self._issue()
            return token

    def refused(self, token: Token) -> None:
        """Neutron answered 401 with this token: the next request asks for a new one."""
        if self._token is token:
            self._token = None

    async def _issue(self) -> Token:
        self.token_requests += 1
        url = tokens_url(self.auth.auth_url)
        async with self._session.post(
            url, json=request_body(self.auth), allow_redirects=False
        ) as resp:
            if resp.status != 201 and resp.status != 200:
                raise KeystoneError(f"Keystone {url}: HTTP {resp.status}")
            value = resp.headers.get("X-Subject-Token")
            if not value:
                raise KeystoneError(f"Keystone {url}: no X-Subject-Token in the answer")
            raw = await resp.content.read(MAX_ANSWER_BYTES + 1)
        if len(raw) > MAX_ANSWER_BYTES:
            raise KeystoneError(f"Keystone {url}: answer over {MAX_ANSWER_BYTES} bytes")
        try:
            body = json_object(raw).get("token") or {}
        except ValueError as exc:
            raise KeystoneError(f"Keystone {url}: answer is not JSON: {exc}") from None
        endpoint = network_endpoint(self.auth, body.get("catalog")) if self.needs_network else ""
        return Token(value, _expiry(body.get("expires_at")), endpoint.rstrip("/"))


def _fresh(token: Token) -> bool:
    now = datetime.datetime.now(datetime.UTC).timestamp()
    return token.expires_at - RENEW_BEFORE_SECONDS > now


def json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object, or ValueError."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


class VendorDataToken:
    """`[vendordata_dynamic_auth]`'s token for the DynamicJSON POSTs, as Nova's keystoneauth
    session adds it: one token, reused until it expires or a service refuses it."""

    def __init__(self, auth: NeutronAuth, session: aiohttp.ClientSession) -> None:
        self.keystone = KeystoneSession(auth, session, needs_network=False)
        self._issued: dict[str, Token] = {}

    async def current(self) -> str:
        try:
            token = await self.keystone.token()
        except (KeystoneError, aiohttp.ClientError, OSError) as exc:
            raise TokenUnavailable(f"Keystone {self.keystone.auth.auth_url}: {exc}") from None
        self._issued = {token.value: token}
        return token.value

    def refused(self, token: str) -> None:
        issued = self._issued.get(token)
        if issued is not None:
            self.keystone.refused(issued)
