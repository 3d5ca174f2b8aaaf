"""A Nova deployment as this service sees it: nova.conf read, engines opened (retried until
they answer), cells mapped, the source built; opened and closed in one place."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from metadata.coherence import Coherence
from metadata.config import Settings
from metadata.errors import InvalidSettings
from metadata.nova.cells import CellDirectory
from metadata.nova.conf import NovaConfig, load_nova_config
from metadata.nova.engines import NovaDatabase
from metadata.nova.generations import NovaGenerations
from metadata.nova.keystone import VendorDataToken
from metadata.nova.neutron import Bounds, NeutronSecurityGroups, open_neutron_session
from metadata.nova.notifications import NotificationConsumer
from metadata.nova.notifications_counters import NotificationCounters
from metadata.nova.source import NovaSource
from metadata.nova.urls import async_database_url

log = logging.getLogger(__name__)

# Told of each instance change Nova announced: (uuid, kind) with kind "changed",
# "rebuilt" or "deleted".
ChangeListener = Callable[[str, str], Awaitable[None]]


def static_vendor_data(conf: NovaConfig) -> dict[str, Any]:
    """`[api] vendordata_jsonfile_path`, read once as Nova's JsonFileVendorData does: a file
    that cannot be read or parsed is logged and serves `{}`."""
    path = conf.vendordata_jsonfile_path
    if not path or "StaticJSON" not in conf.vendordata_providers:
        return {}
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        log.warning("vendordata_jsonfile_path %s: %s; vendor data is {}", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(slots=True)
class NovaDeployment:
    conf: NovaConfig
    cells: CellDirectory
    generations: NovaGenerations
    source: NovaSource
    vendor_data: dict[str, Any]
    # Listeners of announced changes beyond the generation bump (the user-data overlay).
    change_listeners: list[ChangeListener] = field(default_factory=list)
    changes: int = 0
    resyncs: int = 0
    # None: no notification transport configured (only the staleness bound applies).
    consumer: NotificationConsumer | None = None
    counters: NotificationCounters = field(default_factory=NotificationCounters)
    # [neutron] Keystone credentials given: security groups asked of Neutron's API.
    neutron: NeutronSecurityGroups | None = None
    # [vendordata_dynamic_auth] credentials given: the DynamicJSON POSTs carry a token.
    vendordata_token: VendorDataToken | None = None

    @property
    def notification_url(self) -> str | None:
        return self.conf.notification_transport_url

    async def on_change(self, uuid: str, kind: str) -> None:
        """An instance change Nova announced: every replica re-reads the instance."""
        self.changes += 1
        self.cells.forget(uuid)  # a cross-cell resize moves it
        await self.generations.bump(uuid, gone=kind == "deleted")
        for listener in self.change_listeners:
            await listener(uuid, kind)

    async def on_resync(self) -> None:
        """The notification bus (re)connected: what it missed meanwhile is unknown."""
        self.resyncs += 1
        self.generations.resync()

    async def readiness_problems(self) -> list[str]:
        problems = []
        for database in self.cells.databases:
            try:
                await database.ping()
            except Exception as exc:
                problems.append(f"Nova {database}: {type(exc).__name__}: {exc}")
        return problems

    def readiness(self) -> dict[str, Any]:
        """What /readyz names in Nova mode. A broker that is down is no reason to stop
        serving (the staleness bound holds), so it is named, not failed."""
        return {
            "databases": [str(d) for d in self.cells.databases],
            "notifications": None
            if self.consumer is None
            else {
                "broker": self.counters.broker,
                "connected": self.consumer.is_connected,
                "brokers": list(self.counters.brokers),
                "failovers": self.counters.failovers,
            },
        }

    @property
    def statements(self) -> int:
        """Statements sent to Nova's databases since start, all engines together."""
        return sum(d.counter.total for d in self.cells.databases)


@contextlib.asynccontextmanager
async def open_nova(
    settings: Settings, coherence: Coherence, *, connect_attempts: int | None = None
) -> AsyncIterator[NovaDeployment]:
    """Read nova.conf (a bad one raises InvalidSettings naming file, section and option),
    open the engines and wait until they answer (each failure logged, never a traceback)."""
    conf = load_nova_config(settings.nova_config)
    if settings.nova_notification_url:
        conf = _with_notification_url(conf, settings.nova_notification_url)
    api = local = None
    session: aiohttp.ClientSession | None = None
    if conf.api_database_url and not conf.local_metadata_per_cell:
        url = async_database_url(conf.api_database_url, "[api_database] connection")
        api = NovaDatabase("API", url, timeout=settings.database_timeout)
    if conf.cell_database_url:
        url = async_database_url(conf.cell_database_url, "[database] connection")
        local = NovaDatabase("local cell", url, timeout=settings.database_timeout)
    cells = CellDirectory(
        api,
        local,
        cell_template_base=conf.cell_database_url,
        max_remembered=settings.cache_max_entries,
        timeout=settings.database_timeout,
    )
    try:
        for database in cells.databases:
            await database.wait_until_reachable(attempts=connect_attempts)
        await cells.load_cells()
        generations = NovaGenerations(coherence, settings.nova_max_staleness)
        source = NovaSource(cells, generations, conf.dhcp_domain)
        deployment = NovaDeployment(conf, cells, generations, source, static_vendor_data(conf))
        if conf.neutron is not None or conf.vendordata_auth is not None:
            session = open_neutron_session()
        if conf.vendordata_auth is not None and session is not None:
            deployment.vendordata_token = VendorDataToken(conf.vendordata_auth, session)
        if conf.neutron is not None and session is not None:
            bounds = Bounds(
                settings.nova_neutron_max_staleness, settings.nova_neutron_stale_if_error
            )
            deployment.neutron = NeutronSecurityGroups(
                conf.neutron, session, settings.cache_max_entries, bounds
            )
            source.neutron = deployment.neutron
        else:
            log.info("Nova: no Keystone credentials in [neutron]; security-groups is unlisted")
        deployment.consumer = _consumer(deployment)
        try:
            if deployment.consumer is not None:
                await deployment.consumer.start()
            try:
                yield deployment
            finally:
                if deployment.consumer is not None:
                    await deployment.consumer.stop()
        finally:
            if session is not None:
                await session.close()
    finally:
        await cells.dispose()


def _consumer(deployment: NovaDeployment) -> NotificationConsumer | None:
    url = deployment.notification_url
    if not url:
        log.warning(
            "Nova notifications: no transport_url in the nova config; cached Nova "
            "data is bounded by nova_max_staleness only"
        )
        return None
    try:
        return NotificationConsumer(
            url,
            deployment.on_change,
            deployment.on_resync,
            deployment.counters,
            topics=deployment.conf.notification_topics,
        )
    except InvalidSettings as exc:
        # e.g. cell0's `none:///`: no bus to follow, the staleness bound still holds.
        log.warning("Nova notifications: not followed (%s)", "; ".join(exc.problems))
        return None


def _with_notification_url(conf: NovaConfig, url: str) -> NovaConfig:
    return replace(conf, notification_transport_url=url)
