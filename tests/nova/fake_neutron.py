"""A loopback Keystone v3 and Neutron, just the endpoints Nova's security-group look-up uses
(no Neutron runs on this machine): POST /identity/v3/auth/tokens, and under /network
GET /v2.0/ports and GET /v2.0/security-groups with Neutron's `fields` and list filters.
Requests are recorded; `failing` makes Neutron answer 503, `hold` makes it not answer,
`revoke()` makes the tokens issued so far answer 401."""

from __future__ import annotations

import asyncio
import datetime
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

USER, PASSWORD, PROJECT = "nova", "neutron-test-password", "service"


@dataclass
class FakeNeutron:
    # instance uuid -> its ports, each the list of its security-group ids
    ports: dict[str, list[list[str]]] = field(default_factory=dict)
    # group id -> name
    groups: dict[str, str] = field(default_factory=dict)
    failing: bool = False
    # Set: Neutron holds every GET until the event is set (a Neutron that does not answer).
    hold: asyncio.Event | None = None
    token_lifetime: datetime.timedelta = datetime.timedelta(hours=1)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path_qs)
    base_url: str = ""
    _valid: set[str] = field(default_factory=set)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def serve_names(self, uuid: str, names: list[str]) -> None:
        """One port carrying one group per name (ids derived from the names)."""
        ids = []
        for name in names:
            group_id = f"sg-{name}"
            self.groups[group_id] = name
            ids.append(group_id)
        self.ports[uuid] = [ids]

    def revoke(self) -> None:
        self._valid.clear()

    def valid_tokens(self) -> set[str]:
        """The tokens issued and not revoked (for other services of the test to check)."""
        return set(self._valid)

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    def conf(self, **overrides: str) -> str:
        """A nova.conf [neutron] section with credentials for this Keystone."""
        options = {
            "auth_type": "password",
            "auth_url": f"{self.base_url}/identity",
            "username": USER,
            "password": PASSWORD,
            "project_name": PROJECT,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
            "region_name": "RegionOne",
            "valid_interfaces": "internal",
            **overrides,
        }
        return "[neutron]\n" + "".join(f"{k} = {v}\n" for k, v in options.items() if v)

    async def tokens(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path_qs))
        body = await request.json()
        password = body["auth"]["identity"]["password"]["user"]
        if (password.get("name"), password.get("password")) != (USER, PASSWORD):
            return web.json_response({"error": {"code": 401}}, status=401)
        token = f"token-{next(self._numbers)}"
        self._valid.add(token)
        expires = datetime.datetime.now(datetime.UTC) + self.token_lifetime
        network = f"{self.base_url}/network"
        catalog = [
            {"type": "identity", "endpoints": []},
            {
                "type": "network",
                "endpoints": [
                    {"interface": "public", "region_id": "RegionOne", "url": network + "-public"},
                    {"interface": "internal", "region_id": "RegionTwo", "url": network + "-two"},
                    {"interface": "internal", "region_id": "RegionOne", "url": network},
                ],
            },
        ]
        answer = {"token": {"expires_at": expires.isoformat(), "catalog": catalog}}
        return web.json_response(answer, status=201, headers={"X-Subject-Token": token})

    def _refusal(self, request: web.Request) -> web.Response | None:
        self.requests.append((request.method, request.path_qs))
        if self.failing:
            return web.json_response({"NeutronError": "down"}, status=503)
        if request.headers.get("X-Auth-Token") not in self._valid:
            return web.json_response({"error": "unauthorized"}, status=401)
        return None

    async def list_ports(self, request: web.Request) -> web.Response:
        if self.hold is not None:
            await self.hold.wait()
        refused = self._refusal(request)
        if refused is not None:
            return refused
        fields = request.query.getall("fields", [])
        ports = []
        for device in request.query.getall("device_id", []):
            for number, groups in enumerate(self.ports.get(device, [])):
                port: dict[str, Any] = {
                    "id": f"port-{number}",
                    "device_id": device,
                    "security_groups": groups,
                }
                ports.append({k: v for k, v in port.items() if not fields or k in fields})
        return web.json_response({"ports": ports})

    async def list_security_groups(self, request: web.Request) -> web.Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        fields = request.query.getall("fields", [])
        wanted = request.query.getall("id", [])
        found = [
            {
                k: v
                for k, v in {"id": i, "name": self.groups[i], "rules": []}.items()
                if not fields or k in fields
            }
            for i in wanted
            if i in self.groups
        ]
        return web.json_response({"security_groups": found})


@asynccontextmanager
async def fake_neutron() -> AsyncIterator[FakeNeutron]:
    fake = FakeNeutron()
    app = web.Application()
    app.router.add_post("/identity/v3/auth/tokens", fake.tokens)
    app.router.add_get("/network/v2.0/ports", fake.list_ports)
    app.router.add_get("/network/v2.0/security-groups", fake.list_security_groups)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        if fake.hold is not None:
            fake.hold.set()
        await server.close()
