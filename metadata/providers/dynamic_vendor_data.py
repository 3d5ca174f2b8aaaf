"""Dynamic vendor data, as Nova's DynamicJSON: on a miss, POST the instance's context to each
configured service and keep each answer under the service's name.

A service that is slow, down, answers an error or answers something that is not JSON is
left out of the slice (logged, counted per target and outcome for `/metrics`): a guest's
request never fails for it. The slice is derived from SQL slices and cached like them, so a
service is asked again only when the instance is written (a new generation) or the cached
slice ages out.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson

from metadata.providers.base import Provider
from metadata.records import (
    DynamicVendorData,
    InstanceCore,
    MetadataItems,
    Slice,
    UserData,
    VendorData,
)

log = logging.getLogger(__name__)
OUTCOMES = ("ok", "timeout", "error", "bad_json")
# Outbound POSTs in flight at once, all targets and instances together: a boot storm of
# cold reads must not open thousands of connections to one vendor service.
MAX_CONCURRENT_POSTS = 64
# An answer larger than this is refused (counted as an error): it would be cached per instance.
MAX_ANSWER_BYTES = 1024 * 1024
# One warning per target and outcome in this many seconds; a dead service in a boot storm
# would otherwise log a line per instance.
WARN_EVERY_SECONDS = 10.0
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "User-Agent": "metadata-vendordata",
}
TargetOutcomes = Counter[tuple[str, str]]


def open_session() -> aiohttp.ClientSession:
    """The one client session all vendor-data POSTs share. No proxies from the environment
    (trust_env off): the POSTs go to the configured URLs and nowhere else."""
    connector = aiohttp.TCPConnector(limit=MAX_CONCURRENT_POSTS)
    return aiohttp.ClientSession(connector=connector, headers=HEADERS, trust_env=False)


class TokenUnavailable(Exception):
    """The token source has no token to give (the message says why)."""


class TokenSource(Protocol):
    """Where a Keystone token for the POSTs comes from (Nova's `[vendordata_dynamic_auth]`)."""

    async def current(self) -> str:
        """A token to send; raises TokenUnavailable."""
        ...

    def refused(self, token: str) -> None:
        """A service answered 401 to it: the next `current()` gets a new one."""
        ...


class NoDynamicVendorDataProvider(Provider):
    """No service is configured: an empty slice that requires nothing and does no I/O."""

    slice = Slice.DYNAMIC_VENDOR_DATA

    async def derive(self, uuid: str, inputs: Mapping[Slice, Any]) -> DynamicVendorData:
        return DynamicVendorData()

    def derive_now(self, uuid: str, inputs: Mapping[Slice, Any]) -> DynamicVendorData:
        return DynamicVendorData()


class DynamicVendorDataProvider(Provider):
    slice = Slice.DYNAMIC_VENDOR_DATA

    def __init__(
        self,
        targets: Mapping[str, str],
        timeout: float,
        session: aiohttp.ClientSession,
        outcomes: TargetOutcomes,
        nova: NovaContext | None = None,
        token: TokenSource | None = None,
    ) -> None:
        """`nova`: in Nova mode, the body is Nova's exactly (its boot roles, its raw
        hostname); else the instance document's, which has no boot roles. `token`: each
        POST carries one as `X-Auth-Token` (a 401 gets one new token and one retry, as
        keystoneauth's session does)."""
        self.token = token
        self.requires = frozenset({Slice.CORE, Slice.METADATA, Slice.USER_DATA})
        if nova is not None:
            # The boot roles: vendor_data2.json reads this slice anyway.
            self.requires |= {Slice.VENDOR_DATA}
        self.nova = nova
        self.targets = dict(targets)
        self.timeout = timeout
        self.outcomes = outcomes
        self._session = session
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_POSTS)
        # (uuid, generation) -> the derivation in flight: concurrent misses of one
        # instance (cloud-init's retries, a prefetch) share one round of POSTs.
        self._in_flight: dict[tuple[str, int], asyncio.Task[DynamicVendorData]] = {}
        self._last_warned: dict[tuple[str, str], float] = {}

    async def derive(self, uuid: str, inputs: Mapping[Slice, Any]) -> DynamicVendorData:
        core: InstanceCore = inputs[Slice.CORE]
        key = (uuid, core.generation)
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._ask_all(request_body(inputs, self.nova)))
            self._in_flight[key] = task
            task.add_done_callback(lambda _: self._in_flight.pop(key, None))
        # shield: a guest that hangs up must not cancel the round other guests wait on.
        return await asyncio.shield(task)

    async def _ask_all(self, body: bytes) -> DynamicVendorData:
        names = list(self.targets)
        answers = await asyncio.gather(*(self._ask(name, body) for name in names))
        return DynamicVendorData(
            {name: answer for name, (ok, answer) in zip(names, answers, strict=True) if ok}
        )

    async def _ask(self, name: str, body: bytes) -> tuple[bool, Any]:
        """(True, the JSON answer), or (False, None) when this target is left out."""
        url = self.targets[name]
        try:
            # One deadline for all of it, queueing for a slot included.
            async with asyncio.timeout(self.timeout), self._slots:
                status, raw = await self._post(url, body)
            if not 200 <= status < 300:
                return self._failed(name, "error", f"HTTP {status}")
        except TokenUnavailable as exc:
            return self._failed(name, "error", f"no token: {exc}")
        except TimeoutError:
            return self._failed(name, "timeout", f"no answer within {self.timeout:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return self._failed(name, "error", f"{type(exc).__name__}: {exc}")
        if len(raw) > MAX_ANSWER_BYTES:
            return self._failed(name, "error", f"answer over {MAX_ANSWER_BYTES} bytes")
        try:
            # Nova reads an empty answer as {}.
            answer = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            return self._failed(name, "bad_json", f"answer is not JSON: {exc}")
        self.outcomes[name, "ok"] += 1
        return True, answer

    async def _post(self, url: str, body: bytes) -> tuple[int, bytes]:
        """The status and (bounded) answer; no redirects: a POST goes to the configured URL
        only."""
        source = self.token
        for attempt in (1, 2):
            token = None if source is None else await source.current()
            headers = {} if token is None else {"X-Auth-Token": token}
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                if resp.status == 401 and source is not None and token is not None and attempt == 1:
                    source.refused(token)
                    continue
                if not 200 <= resp.status < 300:
                    return resp.status, b""
                return resp.status, await resp.content.read(MAX_ANSWER_BYTES + 1)
        raise AssertionError("unreachable")

    def _failed(self, name: str, outcome: str, detail: str) -> tuple[bool, None]:
        self.outcomes[name, outcome] += 1
        now = time.monotonic()
        if now - self._last_warned.get((name, outcome), -WARN_EVERY_SECONDS) >= WARN_EVERY_SECONDS:
            self._last_warned[name, outcome] = now
            log.warning("vendor-data service %r left out (%s): %s", name, outcome, detail)
        return False, None


@dataclass(frozen=True, slots=True)
class NovaContext:
    """What Nova mode's body needs beyond the slices: nova.conf's `[api] dhcp_domain`, which
    the served hostname carries and Nova's body does not."""

    dhcp_domain: str


def request_body(inputs: Mapping[Slice, Any], nova: NovaContext | None = None) -> bytes:
    """The context Nova's DynamicJSON POSTs (vendordata_dynamic.py `_do_request`)."""
    core: InstanceCore = inputs[Slice.CORE]
    items: MetadataItems = inputs[Slice.METADATA]
    user_data: UserData = inputs[Slice.USER_DATA]
    hostname, boot_roles = core.hostname, ""
    if nova is not None:
        # Nova POSTs `instance.hostname`, the column, and `system_metadata['boot_roles']`
        # (','.join of the booting token's roles, compute manager `_build_and_run_instance`).
        hostname = _without_domain(hostname, nova.dhcp_domain)
        vendor: VendorData = inputs[Slice.VENDOR_DATA]
        boot_roles = vendor.boot_roles
    return orjson.dumps(
        {
            "project-id": core.project_id,
            "instance-id": core.uuid,
            "image-id": core.image_id,
            # Nova sends the base64 text it stores; None when there is none.
            "user-data": None
            if user_data.data is None
            else base64.b64encode(user_data.data).decode(),
            "hostname": hostname,
            "metadata": dict(items.items),
            # Instance documents carry no boot roles: "" as Nova sends when there are none.
            "boot-roles": boot_roles,
        }
    )


def _without_domain(hostname: str, domain: str) -> str:
    """The Nova column back from the served name: one `.<dhcp_domain>` off the end, which is
    exactly what the Nova source appended."""
    suffix = "." + domain if domain else ""
    return hostname[: -len(suffix)] if suffix and hostname.endswith(suffix) else hostname
