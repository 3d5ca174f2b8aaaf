"""An instance's security groups from Neutron's API, as Nova's
`security_group_api.get_instance_security_groups` asks for them: the instance's ports
(`fields=security_groups&fields=device_id`), then the groups those ports carry
(`fields=id&fields=name`, only when there are any); one name per group per port, the id
when the name is empty.

Neutron never tells Nova of a change: an answer is reused for `max_staleness` seconds
(its own bound, METADATA_NOVA_NEUTRON_MAX_STALENESS), so Nova's notifications, which say
nothing about groups, do not make Neutron be asked again. Neutron down, slow or erroring:
the last answer for that instance is served while it is younger than `stale_if_error`
seconds, else none (the leaf is unlisted); logged once per interval, counted for /metrics;
never failing the guest. Concurrent asks for one instance share one round trip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from metadata.nova.conf import NeutronAuth
from metadata.nova.keystone import MAX_ANSWER_BYTES, KeystoneError, KeystoneSession, json_object

log = logging.getLogger(__name__)
OUTCOMES = ("ok", "stale", "error", "timeout")
WARN_EVERY_SECONDS = 10.0
# Requests to Neutron in flight at once, all instances together (a boot storm of cold reads).
MAX_CONCURRENT = 32


class NeutronError(Exception):
    pass


class _Refused(Exception):
    """Neutron answered 401: the token is no longer valid."""


def open_neutron_session() -> aiohttp.ClientSession:
    """No proxies from the environment: requests go to Keystone and Neutron only."""
    connector = aiohttp.TCPConnector(limit=MAX_CONCURRENT)
    return aiohttp.ClientSession(
        connector=connector,
        headers={"Accept": "application/json", "User-Agent": "metadata-neutron"},
        trust_env=False,
    )


def group_names(ports: Any, groups: Any) -> tuple[str, ...]:
    """Nova's bindings: for each port, each of its groups Neutron listed, in port order."""
    by_id = {g.get("id"): g for g in groups if isinstance(g, dict)}
    names: list[str] = []
    for port in ports:
        for group_id in port.get("security_groups") or ():
            group = by_id.get(group_id)
            if group is not None:
                names.append(str(group.get("name") or group.get("id")))
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Bounds:
    """Seconds an answer is reused without asking (0: ask on every derivation), and
    seconds it may still be served while Neutron cannot answer (0: never)."""

    max_staleness: float = 15.0
    stale_if_error: float = 300.0


@dataclass(frozen=True, slots=True)
class _Answer:
    names: tuple[str, ...]
    at: float  # on the monotonic clock


class NeutronSecurityGroups:
    def __init__(
        self,
        auth: NeutronAuth,
        session: aiohttp.ClientSession,
        max_remembered: int,
        bounds: Bounds = Bounds(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keystone = KeystoneSession(auth, session)
        self.timeout = auth.timeout
        self.bounds = bounds
        self.outcomes: Counter[str] = Counter()
        self._session = session
        self._clock = clock
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        # uuid -> the last answer Neutron gave: reused while fresh, served while Neutron
        # cannot answer and it is not too old.
        self._last: OrderedDict[str, _Answer] = OrderedDict()
        self._max_remembered = max_remembered
        self._last_warned: dict[str, float] = {}
        self._in_flight: dict[str, asyncio.Task[tuple[str, ...] | None]] = {}

    async def of_instance(self, uuid: str) -> tuple[str, ...] | None:
        """The instance's group names: a fresh enough answer, else Neutron's; on failure
        the last answer within `stale_if_error`, or None."""
        last = self._last.get(uuid)
        if last is not None and self._clock() - last.at < self.bounds.max_staleness:
            return last.names
        task = self._in_flight.get(uuid)
        if task is None:
            task = asyncio.ensure_future(self._asked(uuid))
            self._in_flight[uuid] = task
            task.add_done_callback(lambda _: self._in_flight.pop(uuid, None))
        # shield: a guest that hangs up must not cancel the ask other guests wait on.
        return await asyncio.shield(task)

    async def _asked(self, uuid: str) -> tuple[str, ...] | None:
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                names = await self._ask(uuid)
        except TimeoutError:
            return self._failed(uuid, "timeout", f"no answer within {self.timeout:g} s")
        except (KeystoneError, NeutronError) as exc:
            return self._failed(uuid, "error", str(exc))
        except (aiohttp.ClientError, OSError) as exc:
            return self._failed(uuid, "error", f"{type(exc).__name__}: {exc}")
        self.outcomes["ok"] += 1
        self._remember(uuid, names)
        return names

    async def _ask(self, uuid: str) -> tuple[str, ...]:
        for attempt in (1, 2):
            token = await self.keystone.token()
            try:
                ports = (
                    await self._get(
                        token.value,
                        token.network_url,
                        "ports",
                        [
                            ("device_id", uuid),
                            ("fields", "security_groups"),
                            ("fields", "device_id"),
                        ],
                    )
                ).get("ports") or []
                ports = [p for p in ports if isinstance(p, dict)]
                ids = list(dict.fromkeys(g for p in ports for g in p.get("security_groups") or ()))
                if not ids:
                    return ()
                query = [("id", str(g)) for g in ids] + [("fields", "id"), ("fields", "name")]
                groups = (
                    await self._get(token.value, token.network_url, "security-groups", query)
                ).get("security_groups") or []
                return group_names(ports, groups)
            except _Refused:
                self.keystone.refused(token)
                if attempt == 2:
                    raise NeutronError("Neutron refused a fresh token (HTTP 401)") from None
        raise AssertionError("unreachable")

    async def _get(
        self, token: str, endpoint: str, resource: str, query: list[tuple[str, str]]
    ) -> dict[str, Any]:
        base = endpoint if endpoint.endswith("/v2.0") else endpoint + "/v2.0"
        url = f"{base}/{resource}?{urlencode(query)}"
        async with self._session.get(
            url, headers={"X-Auth-Token": token}, allow_redirects=False
        ) as resp:
            if resp.status == 401:
                raise _Refused
            if resp.status != 200:
                raise NeutronError(f"Neutron GET /v2.0/{resource}: HTTP {resp.status}")
            raw = await resp.content.read(MAX_ANSWER_BYTES + 1)
        if len(raw) > MAX_ANSWER_BYTES:
            raise NeutronError(
                f"Neutron GET /v2.0/{resource}: answer over {MAX_ANSWER_BYTES} bytes"
            )
        try:
            return json_object(raw)
        except ValueError as exc:
            raise NeutronError(f"Neutron GET /v2.0/{resource}: not JSON: {exc}") from None

    def _remember(self, uuid: str, names: tuple[str, ...]) -> None:
        self._last[uuid] = _Answer(names, self._clock())
        self._last.move_to_end(uuid)
        while len(self._last) > self._max_remembered:
            self._last.popitem(last=False)

    def _failed(self, uuid: str, outcome: str, detail: str) -> tuple[str, ...] | None:
        self.outcomes[outcome] += 1
        now = self._clock()
        last = self._last.get(uuid)
        if last is not None and now - last.at > self.bounds.stale_if_error:
            last = None  # too old to stand for Neutron's answer any more
        if last is not None:
            self.outcomes["stale"] += 1
        if now - self._last_warned.get(outcome, -WARN_EVERY_SECONDS) >= WARN_EVERY_SECONDS:
            self._last_warned[outcome] = now
            served = "the last answer" if last is not None else "no security groups"
            log.warning("Neutron security groups (%s): %s; serving %s", outcome, detail, served)
        return None if last is None else last.names
